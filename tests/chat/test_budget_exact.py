"""The batched, piece-cached budget gives the same prompts, token for token, as the original
one-string-at-a-time binary search (kept here verbatim as the reference)."""

from __future__ import annotations

import random

import pytest
from family_util import family_tokenizer

from rgen_harness.chat.budget import (
    ContextTooLong,
    FitJob,
    Fitted,
    drop_oldest,
    droppable_turns,
    fit_prompts,
)
from rgen_harness.chat.special_tokens import encode_prompt
from rgen_harness.chat.token_counts import PromptEncoder, piecewise_reason
from rgen_harness.prompts.qcr import load_qcr_prompts
from rgen_harness.smoke.families import FAMILIES


def reference_fit_prompt(history, tail, *, render, count_tokens, max_prompt_tokens, min_dropped=0):
    """`fit_prompt` as it was before batching (the reference)."""
    max_pairs = droppable_turns(history) // 2
    lo = min(min_dropped // 2 + min_dropped % 2, max_pairs)

    def attempt(pairs):
        prompt = render(drop_oldest(history, 2 * pairs) + tail)
        return Fitted(prompt, count_tokens(prompt), 2 * pairs)

    best = attempt(lo)
    if best.prompt_tokens <= max_prompt_tokens:
        return best
    last = attempt(max_pairs) if max_pairs > lo else best
    if last.prompt_tokens > max_prompt_tokens:
        raise ContextTooLong(f"{last.prompt_tokens}")
    best = last
    low, high = lo + 1, max_pairs - 1
    while low <= high:
        mid = (low + high) // 2
        cand = attempt(mid)
        if cand.prompt_tokens <= max_prompt_tokens:
            best, high = cand, mid - 1
        else:
            low = mid + 1
    return best


WORDS = [
    "the",
    "model",
    "answer",
    "数据",
    "分析",
    "naïve",
    "🙂",
    "e\u0301",
    "  ",
    "\n\n",
    "\t",
    "x=1;",
]


def text(rng: random.Random, specials: list[str]) -> str:
    n = int(rng.lognormvariate(3.5, 1.0)) + 1
    words = [rng.choice(WORDS) for _ in range(n)]
    if rng.random() < 0.1:  # a special token's text inside a message: cut there too
        words.insert(rng.randrange(len(words) + 1), rng.choice(specials))
    return " ".join(words)


def conversations(rng: random.Random, specials: list[str], n: int) -> list[list[dict]]:
    out = []
    for _ in range(n):
        msgs = [{"role": "system", "content": text(rng, specials)}] if rng.random() < 0.3 else []
        for _ in range(1 + min(12, int(rng.expovariate(1 / 4)))):
            msgs.append({"role": "user", "content": text(rng, specials)})
            msgs.append({"role": "assistant", "content": text(rng, specials)})
        msgs.append({"role": "user", "content": text(rng, specials)})
        out.append(msgs)
    return out


@pytest.fixture(scope="module", params=list(FAMILIES))
def tokenizer(request, tmp_path_factory):
    return family_tokenizer(tmp_path_factory.mktemp(request.param), request.param)


def test_piece_encoding_is_used_and_equals_whole_encoding(tokenizer):
    assert piecewise_reason(tokenizer) is None
    encoder = PromptEncoder(tokenizer)
    assert encoder.piecewise
    specials = [t.content for t in tokenizer.added_tokens_decoder.values()]
    render = _render(tokenizer)
    prompts = [render(m) for m in conversations(random.Random(1), specials, 40)]
    prompts.append("")
    whole = [encode_prompt(tokenizer, p) for p in prompts]
    assert encoder.count_many(prompts) == [len(ids) for ids in whole]
    assert [list(ids) for ids in encoder.encode_many(prompts)] == whole


def _render(tokenizer):
    return lambda m: tokenizer.apply_chat_template(m, tokenize=False, add_generation_prompt=True)


def test_budgets_equal_the_reference_on_long_conversations(tokenizer):
    """QR and both QCR rounds (min_dropped carried over), budgets that keep everything, drop
    turns, and skip conversations: every outcome equals the reference's."""
    rng = random.Random(7)
    specials = [t.content for t in tokenizer.added_tokens_decoder.values()]
    histories = conversations(rng, specials, 60)
    render = _render(tokenizer)
    encoder = PromptEncoder(tokenizer)

    def count(p):
        return len(encode_prompt(tokenizer, p))

    qcr = load_qcr_prompts().rounds()
    seen = {"fits": 0, "drops": 0, "skipped": 0}
    for budget in (60, 400, 1500, 100_000):
        for rounds in ([[]], qcr):
            tails = [[] for _ in histories]
            dropped = [0] * len(histories)
            live = list(range(len(histories)))
            for k, messages in enumerate(rounds):
                for i in live:
                    tails[i] = tails[i] + messages
                jobs = [FitJob(histories[i], tails[i], budget, dropped[i]) for i in live]
                got = fit_prompts(jobs, render=render, count_many=encoder.count_many)
                still = []
                for i, outcome in zip(live, got, strict=True):
                    try:
                        want = reference_fit_prompt(
                            histories[i],
                            tails[i],
                            render=render,
                            count_tokens=count,
                            max_prompt_tokens=budget,
                            min_dropped=dropped[i],
                        )
                    except ContextTooLong:
                        assert isinstance(outcome, ContextTooLong)
                        seen["skipped"] += 1
                        continue
                    assert outcome == want
                    (ids,) = encoder.encode_many([outcome.prompt])
                    assert list(ids) == encode_prompt(tokenizer, want.prompt)
                    seen["drops" if want.dropped_turns else "fits"] += 1
                    dropped[i] = want.dropped_turns
                    tails[i] = tails[i] + [{"role": "assistant", "content": f"reply {k} 回答"}]
                    still.append(i)
                live = still
                encoder.keep_only_used()
    assert all(seen.values()), seen  # every kind of outcome was compared


def test_tokenizer_where_pieces_differ_is_encoded_whole(tmp_path):
    """Metaspace that marks only the first piece: piece-by-piece ids would differ, so the
    encoder must fall back to whole prompts (and still be exact)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<unk>": 0, "<|im_start|>": 1, "<|im_end|>": 2, "▁": 3, "a": 4, "b": 5, "▁a": 6}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(prepend_scheme="first")
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="<unk>",
        additional_special_tokens=["<|im_start|>", "<|im_end|>"],
    )
    prompt = "a<|im_start|>a b<|im_end|>a"
    assert "first piece" in piecewise_reason(fast)
    encoder = PromptEncoder(fast)
    assert not encoder.piecewise
    assert encoder.count_many([prompt]) == [len(encode_prompt(fast, prompt))]
    assert [list(i) for i in encoder.encode_many([prompt])] == [encode_prompt(fast, prompt)]
    # the check is needed: cut at the special tokens, this tokenizer gives other ids
    pieces = [
        fast.encode(p, add_special_tokens=False) if p not in ("<|im_start|>", "<|im_end|>") else [1]
        for p in ("a", "<|im_start|>", "a b", "<|im_end|>", "a")
    ]
    assert sum(pieces, []) != encode_prompt(fast, prompt)


def test_reward_inputs_equal_the_reference(tiny_dir):
    """The reward renderer's batched inputs: the same ids and dropped turns as fitting each
    (history, reply) with the reference search and encoding the text again."""
    import json

    from transformers import AutoTokenizer

    from rgen_harness.metrics.reward.render import RewardRenderer

    tok = AutoTokenizer.from_pretrained(tiny_dir / "reward")
    config = json.loads((tiny_dir / "reward" / "config.json").read_text())
    config["architectures"] = ["InternLM2ForRewardModel"]  # inputs end in the reward token
    specials = [t.content for t in tok.added_tokens_decoder.values()]
    histories = conversations(random.Random(3), specials, 30)
    pairs = [(h, f"reply {i} 回答 🙂") for i, h in enumerate(histories)]
    seen = set()
    for max_length in (80, 700, 100_000):
        r = RewardRenderer(tok, config, max_length=max_length)
        for (history, reply), got in zip(pairs, r.render_many(pairs), strict=True):
            try:
                want = reference_fit_prompt(
                    history,
                    [{"role": "assistant", "content": reply}],
                    render=r.render_text,
                    count_tokens=lambda t: len(r.encode(t)),  # noqa: B023
                    max_prompt_tokens=max_length,
                )
            except ContextTooLong:
                assert isinstance(got, ContextTooLong)
                seen.add("skipped")
                continue
            assert got.ids == r.encode(want.prompt)
            assert got.dropped_turns == want.dropped_turns
            seen.add("drops" if want.dropped_turns else "fits")
    assert seen == {"skipped", "drops", "fits"}


def test_compiled_template_renders_as_apply_chat_template(tokenizer):
    """The lmdeploy model's compiled-template path gives apply_chat_template's text, byte for
    byte (system turns, special tokens' text inside messages, every history length)."""
    from rgen_harness.chat.fast_template import FastChatTemplate

    fast = FastChatTemplate.build(tokenizer)
    assert fast is not None
    specials = [t.content for t in tokenizer.added_tokens_decoder.values()]
    render = _render(tokenizer)
    for messages in conversations(random.Random(5), specials, 40):
        for dropped in range(0, droppable_turns(messages) + 1, 2):
            history = drop_oldest(messages, dropped)
            assert fast.takes(history)
            assert fast.render(history) == render(history)
    assert not fast.takes([{"role": "user", "content": "x", "name": "n"}])
