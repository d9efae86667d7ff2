"""With a prefix cache the rounds run in waves: a conversation's QR and QCR side by side, each
wave's round 2 right after its round 1 (so round 2 finds round 1's blocks); without one, every
round for all conversations at once. Results come back in input order either way."""

from __future__ import annotations

from rgen_harness.chat.generation import Generation
from rgen_harness.chat.protocol import ChatRequest
from rgen_harness.chat.runner import FIRST_WAVE, run_rounds


class Backend:
    max_length = 10_000
    concurrent_generate = False

    def __init__(self, cache_tokens):
        self.prefix_cache_tokens = cache_tokens
        self.calls = []

    def render(self, messages):
        return " | ".join(m["content"] for m in messages)

    def count_tokens(self, text):
        return len(text.split())

    def max_gen_toks(self, gen_kwargs):
        return 8

    def generate(self, prompts, gen_kwargs):
        self.calls.append([p.rsplit(" | ", 1)[-1] + "@" + p.split(" | ")[0] for p in prompts])
        return [Generation(text="some criteria", finish_reason="stop", tokens=2) for _ in prompts]


def requests(n):
    out = []
    for mode in ("qr", "qcr"):  # lm-eval sends one task's requests, then the other's
        for i in range(n):
            rounds = [[]] if mode == "qr" else [[{"role": "user", "content": "R1"}]]
            if mode == "qcr":
                rounds.append([{"role": "user", "content": "R2"}])
            history = [{"role": "user", "content": f"d{i:03d} " + "word " * 40}]
            request = ChatRequest.build(doc_id=f"d{i:03d}", messages=history, rounds=rounds)
            out.append((request, {"max_gen_toks": 8}))
    return out


def order(backend):
    return [item for call in backend.calls for item in call]


def test_waves_put_round_2_right_after_round_1_and_qr_beside_qcr():
    n = 200
    backend = Backend(cache_tokens=4000)
    results = run_rounds(requests(n), backend)
    assert all(r.status == "ok" for r in results)
    assert [len(r.rounds) for r in results] == [1] * n + [2] * n  # input order kept
    seen = order(backend)
    first_r2 = next(i for i, x in enumerate(seen) if x.startswith("R2@d000"))
    last_r1 = max(i for i, x in enumerate(seen) if x.startswith("R1@"))
    assert first_r2 < last_r1  # a wave's round 2 before later waves' round 1
    first_call = backend.calls[0]
    assert len(first_call) == FIRST_WAVE  # 32 conversations, QR and QCR side by side
    docs = [x.split("@")[1].split()[0] for x in first_call]
    assert docs[0] == docs[1] == "d000" and docs[2] == docs[3] == "d001"
    assert len(backend.calls) > 3  # several waves


def test_without_a_prefix_cache_each_round_runs_for_everyone():
    backend = Backend(cache_tokens=0)
    run_rounds(requests(100), backend)
    assert [len(c) for c in backend.calls] == [200, 100]
