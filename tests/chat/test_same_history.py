"""QR and QCR prompts of one conversation keep the same turns (QCR's need decides), by default."""

from __future__ import annotations

import pytest

from rgen_harness.chat.protocol import ChatRequest
from rgen_harness.chat.runner import Generation, run_rounds
from rgen_harness.prompts.qcr import load_qcr_prompts
from rgen_harness.tasks.settings import DeitaSettings

MAX_GEN = 8


class WordBackend:
    """One token per word; the criteria and final replies are fixed short texts."""

    max_length = 300

    def render(self, messages):
        return " ".join(m["content"] for m in messages)

    def count_tokens(self, text):
        return len(text.split())

    def max_gen_toks(self, gen_kwargs):
        return int(gen_kwargs.get("max_gen_toks", MAX_GEN))

    def generate(self, prompts, gen_kwargs):
        return [Generation(text="short reply", finish_reason="stop", tokens=2) for _ in prompts]


def conversation():
    """Four earlier pairs of 10 words and a last question (82 words): QR fits whole in 300;
    with QCR's criteria request (~205 words) and final request (18) it does not."""
    msgs = []
    for i in range(4):
        msgs += [
            {"role": "user", "content": f"q{i} " + "w " * 9},
            {"role": "assistant", "content": f"a{i} " + "a " * 9},
        ]
    return msgs + [{"role": "user", "content": "last question?"}]


def run(mode: str, same_history: bool):
    prompts = load_qcr_prompts()
    rounds = prompts.rounds() if mode == "qcr" else [[]]
    request = ChatRequest.build(
        doc_id="c1",
        messages=conversation(),
        rounds=rounds,
        budget_tail=prompts.budget_tail() if same_history else None,
    )
    (result,) = run_rounds([(request, {"max_gen_toks": MAX_GEN})], WordBackend())
    assert result.status == "ok", result.reason
    return result


def test_a_conversation_that_needs_drops_only_in_qcr_gets_the_same_history_in_qr():
    own_qr, own_qcr = run("qr", False), run("qcr", False)
    assert own_qr.dropped_turns == 0 and own_qcr.dropped_turns > 0  # the case of the smoke run

    qr, qcr = run("qr", True), run("qcr", True)
    assert qr.dropped_turns == qcr.dropped_turns > 0
    assert [r.dropped_turns for r in qcr.rounds] == [qcr.dropped_turns] * 2
    # Room for a criteria reply of max_gen_toks: QCR's second round needs no further drop.
    assert qcr.dropped_turns >= own_qcr.dropped_turns


def test_same_history_is_the_default_and_false_restores_per_mode_budgets():
    assert DeitaSettings.from_metadata({}, task="deita_qr").same_history is True
    off = DeitaSettings.from_metadata({"same_history": False}, task="deita_qr")
    assert off.same_history is False
    with pytest.raises(ValueError, match="same_history='maybe'"):
        DeitaSettings.from_metadata({"same_history": "maybe"}, task="deita_qr")


def test_the_budget_tail_is_recorded_in_the_logged_request():
    tail = load_qcr_prompts().budget_tail()
    request = ChatRequest.build(doc_id="c", messages=conversation(), rounds=[[]], budget_tail=tail)
    assert ChatRequest.read(request).budget_tail == tail
    assert "Now, please generate your answer" in tail[-1]["content"]
