"""What the reward model reads: its own chat template, the InternLM2 reward token exactly once,
and oldest-turns-first truncation to its maximum length."""

from __future__ import annotations

import json

import pytest

from rgen_harness.metrics.reward.render import (
    ContextTooLong,
    RewardRenderer,
    load_model_config,
    load_tokenizer,
)
from rgen_harness.smoke.tiny_models import build_tokenizer


@pytest.fixture(scope="module")
def internlm2_style(tmp_path_factory):
    """The tiny tokenizer (it has a `<|reward|>` special token) with an InternLM2 reward config."""
    folder = tmp_path_factory.mktemp("internlm2_rm")
    build_tokenizer(folder)
    config = {"architectures": ["InternLM2ForRewardModel"], "max_position_embeddings": 4096}
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def renderer(folder, **kw):
    tok = load_tokenizer(str(folder), revision=None, trust_remote_code=False)
    return RewardRenderer(tok, load_model_config(str(folder), revision=None), **kw)


HISTORY = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "first question about lists"},
    {"role": "assistant", "content": "first answer about lists"},
    {"role": "user", "content": "second question about tuples"},
]


def test_internlm2_reward_token_ends_the_input_exactly_once(internlm2_style):
    r = renderer(internlm2_style)
    tok = r.tokenizer
    reward_id = tok.convert_tokens_to_ids("<|reward|>")
    assert r.reward_token_id == reward_id
    out = r.render(HISTORY, "the reply")
    text = tok.apply_chat_template(
        HISTORY + [{"role": "assistant", "content": "the reply"}],
        tokenize=False,
        add_generation_prompt=False,
    )
    assert out.ids == tok(text, add_special_tokens=False)["input_ids"] + [reward_id]
    assert out.ids.count(reward_id) == 1
    # the template (here: the reply) already ending in the reward token is not doubled
    again = r.encode(text + "<|reward|>")
    assert again[-1] == reward_id and again[-2] != reward_id


def test_sequence_classification_model_gets_no_reward_token(tiny_dir):
    r = renderer(tiny_dir / "reward")
    assert r.reward_token_id is None
    out = r.render(HISTORY, "the reply")
    assert out.ids[-1] != r.tokenizer.convert_tokens_to_ids("<|reward|>")
    assert r.max_length == 1024  # from max_position_embeddings


def test_truncation_drops_oldest_pairs_and_skips_when_it_cannot_fit(tiny_dir):
    full = renderer(tiny_dir / "reward").render(HISTORY, "the reply")
    without_pair = renderer(tiny_dir / "reward").render([HISTORY[0], HISTORY[3]], "the reply")
    r = renderer(tiny_dir / "reward", max_length=len(full.ids) - 1)
    cut = r.render(HISTORY, "the reply")
    assert cut.dropped_turns == 2 and cut.ids == without_pair.ids
    with pytest.raises(ContextTooLong):
        renderer(tiny_dir / "reward", max_length=len(without_pair.ids) - 1).render(
            HISTORY, "the reply"
        )
