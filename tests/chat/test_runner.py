"""Multi-round generation through lm-eval's own `hf` model (real tiny transformers model)."""

from __future__ import annotations

import json

import pytest

from rgen_harness.chat.protocol import REQUEST_TYPE, ChatRequest, ChatResult
from rgen_harness.chat.runner import (
    ChatTemplateUnavailable,
    Generation,
    LMChatBackend,
    RoundCache,
    run_rounds,
)
from rgen_harness.prompts.qcr import load_qcr_prompts

GEN = {"until": [], "max_gen_toks": 8, "do_sample": False, "temperature": 0.0}


@pytest.fixture(scope="module")
def hf_lm(tiny_dir):
    import lm_eval.api.model  # noqa: F401  (the start-up hook extends LM on import)
    from lm_eval.models.huggingface import HFLM

    return HFLM(pretrained=str(tiny_dir / "chat"), device="cpu", max_length=1024, batch_size=4)


def history(n_pairs=2, words=10):
    msgs = []
    for i in range(n_pairs):
        msgs += [
            {"role": "user", "content": f"question {i} " + "w " * words},
            {"role": "assistant", "content": f"answer {i} " + "a " * words},
        ]
    return msgs + [{"role": "user", "content": "final question?"}]


def instances(*requests, gen=GEN):
    from lm_eval.api.instance import Instance

    return [
        Instance(
            request_type=REQUEST_TYPE, doc={}, arguments=(r, dict(gen)), idx=0, metadata=("t", i, 1)
        )
        for i, r in enumerate(requests)
    ]


def qcr(doc_id="c", msgs=None):
    return ChatRequest.build(
        doc_id=doc_id, messages=msgs or history(), rounds=load_qcr_prompts().rounds()
    )


def qr(doc_id="r", msgs=None):
    return ChatRequest.build(doc_id=doc_id, messages=msgs or history(), rounds=[[]])


def test_every_lm_eval_model_gets_the_round_method(hf_lm):
    from lm_eval.api.model import LM

    assert hasattr(LM, REQUEST_TYPE)
    out = getattr(hf_lm, REQUEST_TYPE)(instances(qr(), qcr()))
    qr_res, qcr_res = (ChatResult.from_json(o) for o in out)
    assert qr_res.status == qcr_res.status == "ok"
    assert len(qr_res.rounds) == 1 and len(qcr_res.rounds) == 2
    crit, final = qcr_res.rounds
    # Each turn rendered by the model's own template, the round-1 reply fed back as a turn.
    assert "<|im_start|>assistant\n<PLACEHOLDER><|im_end|>" in crit.prompt
    assert crit.prompt.endswith("<|im_start|>assistant\n")
    assert f"<|im_start|>assistant\n{crit.reply}<|im_end|>" in final.prompt
    assert "Now, please generate your answer" in final.prompt
    assert qcr_res.reply == final.reply and json.loads(out[1])["reply"] == final.reply
    assert qr_res.rounds[0].prompt == hf_lm.apply_chat_template(history())


def test_budget_drops_oldest_turns_and_records_them(hf_lm):
    long = history(n_pairs=8, words=60)
    old_max = hf_lm._max_length
    limit = 1100  # the QCR criteria request alone is ~710 tiny-tokenizer tokens
    hf_lm._max_length = limit
    try:
        (res,) = [
            ChatResult.from_json(o) for o in getattr(hf_lm, REQUEST_TYPE)(instances(qcr(msgs=long)))
        ]
    finally:
        hf_lm._max_length = old_max
    assert res.status == "ok", res.reason
    assert res.dropped_turns >= 2 and res.dropped_turns % 2 == 0
    for rnd in res.rounds:
        assert rnd.prompt_tokens + GEN["max_gen_toks"] <= limit
        assert "final question?" in rnd.prompt
    assert "question 0" not in res.rounds[-1].prompt


def test_too_long_and_bad_rows_are_skipped_not_sent(hf_lm):
    calls = []
    backend = LMChatBackend(hf_lm)
    original = backend.generate
    backend.generate = lambda p, k: calls.append(len(p)) or original(p, k)
    huge = [{"role": "user", "content": "x " * 3000}]
    bad = ChatRequest.build(doc_id="b", messages=[], rounds=[[]], skip_reason="row 1 (id 'b') bad")
    results = run_rounds([(qr(msgs=huge), GEN), (bad, GEN), (qr(), GEN)], backend)
    assert [r.status for r in results] == ["skipped", "skipped", "ok"]
    assert "context too long" in results[0].reason and results[1].reason == "row 1 (id 'b') bad"
    assert calls == [1]


def test_failed_generation_is_recorded_per_conversation(hf_lm):
    backend = LMChatBackend(hf_lm)

    def generate(prompts, kwargs):
        return [
            Generation(text="", finish_reason="error", error="engine exploded")
            if i == 0
            else Generation(text="fine", finish_reason="stop")
            for i, _ in enumerate(prompts)
        ]

    backend.generate = generate
    a, b = run_rounds([(qcr("a"), GEN), (qr("b"), GEN)], backend)
    assert (a.status, a.reason, a.reply) == ("failed", "engine exploded", "")
    assert (b.status, b.reply) == ("ok", "fine")


def test_empty_criteria_reply_fails_the_conversation_instead_of_being_sent_on(hf_lm):
    backend = LMChatBackend(hf_lm)
    prompts_seen = []

    def generate(prompts, kwargs):
        prompts_seen.append(len(prompts))
        return [Generation(text=" \n", finish_reason="stop", tokens=1) for _ in prompts]

    backend.generate = generate
    a, b = run_rounds([(qcr("a"), GEN), (qr("b"), GEN)], backend)
    assert (a.status, a.reason) == ("failed", "empty reply in round 1 of 2")
    assert prompts_seen == [2]  # no round 2 was sent for the empty criteria
    assert (b.status, b.reply) == ("ok", " \n")  # a final reply is what the model wrote


def test_use_cache_serves_rounds_from_lm_eval_cache(hf_lm, tmp_path):
    from lm_eval.api.model import CacheHook, CachingLM

    from rgen_harness.models.hf_chat import HFChatBackend

    calls = []
    original = HFChatBackend.generate
    HFChatBackend.generate = lambda self, prompts, kw: (
        calls.append(len(prompts)) or original(self, prompts, kw)
    )
    try:
        first = getattr(CachingLM(hf_lm, str(tmp_path / "c.db")), REQUEST_TYPE)(
            instances(qcr(), qr())
        )
        assert sum(calls) == 3  # two QCR rounds + one QR round
        calls.clear()
        again = getattr(CachingLM(hf_lm, str(tmp_path / "c.db")), REQUEST_TYPE)(
            instances(qcr(), qr())
        )
        assert calls == [] and again == first
        assert RoundCache.of(hf_lm) is not None
    finally:
        HFChatBackend.generate = original
        hf_lm.set_cache_hook(CacheHook(None))


def test_model_without_chat_template_fails_fast():
    from lm_eval.api.model import LM

    class PlainLM(LM):  # a model class that implements no chat template
        def loglikelihood(self, requests):
            return []

        def loglikelihood_rolling(self, requests):
            return []

        def generate_until(self, requests):
            return ["never called" for _ in requests]

    with pytest.raises(ChatTemplateUnavailable, match="cannot render chat messages"):
        getattr(PlainLM(), REQUEST_TYPE)(instances(qr()))
