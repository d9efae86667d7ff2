"""Adapter overhead of `--model lmdeploy` per request, with an engine that answers instantly.

Runs 6,000 deita_qcr-shaped conversations (the bundled sample conversations, repeated with new
ids, each with the two QCR rounds) through the real `LMDeployLM.generate_chat_rounds`, and the
same number of rendered prompts through `generate_until`. The engine is replaced by one that
returns lmdeploy `Response` objects at once, so the time left is the adapter's.

Rendering each prompt with the chat template and tokenising it once is work lmdeploy's own
`Pipeline.infer(messages)` does too; it is measured separately ("baseline") and the adapter
overhead is what remains. Target: <= 100 microseconds per request.

    python benchmarks/lmdeploy_overhead.py [--conversations 6000] [--model /tmp/tiny/chat]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

TARGET_US = 100.0
REPLY = "# Criteria List\n## accuracy\nDescription: All contents should be accurate and correct."


class InstantEngine:
    """InferenceEngine that answers every request at once with a fixed reply."""

    backend = "pytorch"
    closed = False

    def __init__(self, tokenizer, session_len: int = 32768) -> None:
        from lmdeploy.messages import Response

        self.session_len = session_len
        self._response = Response
        self.requests = 0
        # what lmdeploy returns for a reply ended by EOS (the stop token's text is not kept)
        self.reply_ids = tokenizer.encode(REPLY, add_special_tokens=False)
        self.reply_text = REPLY

    def generate(self, input_ids, gen_configs, *, adapter_name=None, use_tqdm=False):
        self.requests += len(input_ids)
        return [
            self._response(
                text=self.reply_text,
                generate_token_len=len(self.reply_ids),
                input_token_len=len(ids),
                finish_reason="stop",
                token_ids=list(self.reply_ids),
                index=i,
            )
            for i, ids in enumerate(input_ids)
        ]

    def settings(self) -> dict:
        return {"backend": self.backend, "session_len": self.session_len}

    def prompt_logprobs(self, input_ids, logprob_start_lens, **kwargs):
        raise NotImplementedError

    def close(self) -> None:
        self.closed = True

    def sleep(self, level: int = 1) -> None: ...

    def wakeup(self) -> None: ...


def build_instant_engine(spec):
    from transformers import AutoTokenizer

    return InstantEngine(AutoTokenizer.from_pretrained(spec.model_path))


def conversations(n: int) -> list[list[dict[str, str]]]:
    from rgen_harness.data.deita import SAMPLE_PATH

    rows = [json.loads(line) for line in SAMPLE_PATH.read_text(encoding="utf-8").splitlines()]
    roles = {"human": "user", "gpt": "assistant", "system": "system"}
    histories = []
    for row in rows:
        turns = [{"role": roles[t["from"]], "content": t["value"]} for t in row["conversations"]]
        while turns and turns[-1]["role"] == "assistant":
            turns.pop()  # the reply to generate is removed, as the task does
        histories.append(turns)
    return [histories[i % len(histories)] for i in range(n)]


class Timed:
    """Wraps a method to add up the time spent in it (and count the calls)."""

    def __init__(self, cls, name: str) -> None:
        self.cls, self.name, self.original = cls, name, getattr(cls, name)
        self.seconds, self.calls = 0.0, 0
        timed = self

        def wrapper(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return timed.original(*args, **kwargs)
            finally:
                timed.seconds += time.perf_counter() - t0
                timed.calls += 1

        setattr(cls, name, wrapper)

    def reset(self) -> None:
        self.seconds, self.calls = 0.0, 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=6000)
    parser.add_argument("--repeats", type=int, default=3, help="best of N (a busy CPU is noisy)")
    parser.add_argument("--model", default=None, help="model folder (default: build tiny one)")
    args = parser.parse_args(argv)

    from lm_eval.api.instance import Instance

    from rgen_harness.chat.protocol import REQUEST_TYPE, ChatRequest
    from rgen_harness.models.engine_chat import EngineChatBackend
    from rgen_harness.models.lmdeploy_lm import LMDeployLM
    from rgen_harness.prompts.qcr import load_qcr_prompts

    model = args.model
    if model is None:
        from rgen_harness.smoke.tiny_models import build_chat_model

        model = str(build_chat_model(Path(tempfile.gettempdir()) / "rgen_tiny_bench" / "chat"))
    sys.modules.setdefault("lmdeploy_overhead", sys.modules[__name__])
    os.environ["RGEN_HARNESS_LMDEPLOY_ENGINE"] = "lmdeploy_overhead:build_instant_engine"
    lm = LMDeployLM(pretrained=model, session_len=32768)

    histories = conversations(args.conversations)
    rounds = load_qcr_prompts(None).rounds()
    gen_kwargs = {"until": [], "max_gen_toks": 1024, "do_sample": False, "temperature": 0.0}
    chat_requests = [
        Instance(
            REQUEST_TYPE,
            {},
            (ChatRequest.build(doc_id=f"c{i}", messages=h, rounds=rounds), dict(gen_kwargs)),
            i,
        )
        for i, h in enumerate(histories)
    ]
    prompts = [lm.apply_chat_template(h) for h in histories]
    gen_requests = [
        Instance("generate_until", {}, (p, {"until": ["\n\n"], "max_gen_toks": 256}), i)
        for i, p in enumerate(prompts)
    ]

    render = Timed(EngineChatBackend, "render")
    count = Timed(EngineChatBackend, "count_tokens")
    chat_runs, gen_runs = [], []
    for _ in range(args.repeats):
        render.reset()
        count.reset()
        engine_before = lm.engine.requests
        t0 = time.perf_counter()
        results = lm.generate_chat_rounds(chat_requests, disable_tqdm=True)
        total = time.perf_counter() - t0
        n_engine = lm.engine.requests - engine_before
        chat_runs.append(
            (total, render.seconds + count.seconds, n_engine, render.calls, count.calls)
        )
        t0 = time.perf_counter()
        lm.generate_until(gen_requests, disable_tqdm=True)
        gen_runs.append(time.perf_counter() - t0)
    statuses = sorted({json.loads(r)["status"] for r in results})

    # isolated: the same run with rendering and token counting answered in O(1) (the last
    # message's text, ~4 characters per token), so only the adapter's own work is timed
    def constant_render(self, messages):
        return messages[-1]["content"]

    def constant_count(self, text):
        return len(text) // 4

    EngineChatBackend.render, EngineChatBackend.count_tokens = constant_render, constant_count
    isolated = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        lm.generate_chat_rounds(chat_requests, disable_tqdm=True)
        isolated.append(time.perf_counter() - t0)
    isolated_total = min(isolated)

    total, template, n_engine, renders, counts = min(chat_runs, key=lambda r: r[0] - r[1])
    gen_total = min(gen_runs)
    rows = [
        ("chat rounds (QCR), real template+tok", len(chat_requests), n_engine, total, template),
        ("chat rounds (QCR), template+tok stubbed", len(chat_requests), n_engine,
         isolated_total, 0.0),
        ("generate_until", len(gen_requests), len(gen_requests), gen_total, 0.0),
    ]  # fmt: skip
    print(f"\nlmdeploy adapter overhead, instant engine, model {model}")
    print(
        f"conversations: {len(histories)}; statuses: {statuses}; chat template renders per "
        f"engine request: {renders / n_engine:.2f}, tokenisations: {counts / n_engine:.2f}; "
        f"best of {args.repeats}\n"
    )
    header = (
        f"{'path':42} {'requests':>8} {'engine req':>10} {'total s':>8} "
        f"{'template+tok s':>14} {'overhead us/req':>15} {'target':>7}"
    )
    print(header)
    print("-" * len(header))
    for name, n_req, n_eng, total, template in rows:
        overhead_us = (total - template) / n_eng * 1e6
        verdict = "ok" if overhead_us <= TARGET_US else "OVER"
        print(
            f"{name:42} {n_req:8d} {n_eng:10d} {total:8.3f} {template:14.3f} "
            f"{overhead_us:15.1f} {verdict:>7}"
        )
    print(
        "\ntemplate+tok = time inside chat-template rendering and token counting (once per "
        "prompt, as lmdeploy's Pipeline.infer(messages) also does);\noverhead = (total - "
        "template+tok) per engine request (row 1: by subtraction, noisy on a busy CPU; row 2: "
        f"measured directly, render/count answered in O(1)); target <= {TARGET_US:.0f} us."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
