"""`PromptEncoder`'s other ways of adding special tokens and its JSON text of the ids: the same
as tokenising each prompt whole, for every model family."""

from __future__ import annotations

import json
import random

import pytest

from rgen_harness.chat.special_tokens import encode_prompt
from rgen_harness.chat.token_counts import PromptEncoder, StagedIds
from rgen_harness.smoke.families import FAMILIES, build_family_tokenizer

WORDS = ["the", "model", "数据", "naïve", "🙂", "  ", "\n\n", "x=1;", "e\u0301"]


@pytest.fixture(scope="module", params=list(FAMILIES))
def tokenizer(request, tmp_path_factory):
    return build_family_tokenizer(tmp_path_factory.mktemp(request.param), request.param)


def prompts(tokenizer, n: int = 30) -> list[str]:
    rng = random.Random(2)
    specials = [t.content for t in tokenizer.added_tokens_decoder.values()]
    out = []
    for _ in range(n):
        messages = []
        for role in ("system", "user", "assistant", "user")[rng.randrange(3) :]:
            words = [rng.choice(WORDS + specials) for _ in range(rng.randrange(1, 40))]
            messages.append({"role": role, "content": " ".join(words)})
        out.append(
            tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        )
    return [*out, "", "plain text without a template", specials[0] + "x"]


@pytest.mark.parametrize("specials", [None, False, True])
def test_counts_ids_and_json_equal_whole_encoding(tokenizer, specials):
    texts = prompts(tokenizer)
    if specials is None:
        want = [encode_prompt(tokenizer, t) for t in texts]
    else:
        want = [tokenizer.encode(t, add_special_tokens=specials) for t in texts]
    encoder = PromptEncoder(tokenizer, add_special_tokens=specials)
    assert encoder.piecewise
    assert encoder.count_many(texts) == [len(w) for w in want]
    assert [list(ids) for ids in encoder.encode_many(texts)] == want
    for _ in range(2):  # made once, then joined from the kept texts
        got = ["[" + ", ".join(p) + "]" for p in encoder.json_parts_many(texts)]
        assert got == [json.dumps(w) for w in want]
    encoder.keep_only_used()
    assert encoder.count_many(texts) == [len(w) for w in want]


def test_prefix_added_every_time_or_once(tokenizer):
    """add_special_tokens=True puts the tokenizer's prefix in front even of a prompt whose
    template wrote it (as `tokenizer.encode` does); None keeps one."""
    once = PromptEncoder(tokenizer)
    always = PromptEncoder(tokenizer, add_special_tokens=True)
    if not once.prefix:
        assert always.prefix == ()
        return
    text = tokenizer.decode(list(once.prefix)) + "hello"
    (ids_once,) = once.encode_many([text])
    (ids_always,) = always.encode_many([text])
    assert list(ids_always) == list(once.prefix) + list(ids_once)


def test_staged_ids_are_taken_once_per_staging(tokenizer):
    encoder = PromptEncoder(tokenizer, add_special_tokens=False)
    staged = StagedIds(encoder, as_json=True)
    texts = prompts(tokenizer, 3)
    staged.stage([texts[0], texts[0], texts[1]])
    first, second = staged.take(texts[0]), staged.take(texts[0])
    assert first == second == encoder.json_parts_many([texts[0]])[0]
    assert staged.take(texts[0]) is None and staged.take(texts[2]) is None
    assert staged.take(texts[1]) is not None
