"""Engines for `RGEN_HARNESS_LMDEPLOY_ENGINE` that cost the harness nothing but their own time.

- `build_instant_engine`: answers every request at once (what is left is the harness's time);
- `build_sim_engine`: sleeps as long as a GPU would take at the stated throughputs
  (`RGEN_SIM_PREFILL_TPS`, default 30,000 prompt tokens/s, and `RGEN_SIM_DECODE_TPS`, default
  4,000 generated tokens/s, for the whole call), so the harness's CPU work can overlap it as it
  would overlap a GPU.

Both answer with a fixed reply of `RGEN_SIM_REPLY_TOKENS` tokens (default 256) and, when
`RGEN_SIM_ENGINE_LOG` names a file, write there (JSON) when they were built, when the first and
last calls started and ended, how many calls and prompts they served and the seconds they spent.
"""

from __future__ import annotations

import atexit
import json
import os
import time

REPLY_WORD = "answer "


class InstantEngine:
    backend = "pytorch"

    def __init__(self, spec, *, prefill_tps: float | None = None, decode_tps: float | None = None):
        self.session_len = int(getattr(spec.args, "session_len", None) or 32768)
        self.closed = False
        self.prefill_tps, self.decode_tps = prefill_tps, decode_tps
        self.reply_tokens = int(os.environ.get("RGEN_SIM_REPLY_TOKENS", "256"))
        self.reply_ids = self._reply_ids(spec.model_path)
        self.stats = {
            "built": time.time(),
            "first_call": None,
            "last_end": None,
            "calls": 0,
            "prompts": 0,
            "prompt_tokens": 0,
            "engine_s": 0.0,
        }
        path = os.environ.get("RGEN_SIM_ENGINE_LOG")
        if path:
            atexit.register(self._write, path)

    def _reply_ids(self, model_path: str) -> list[int]:
        """The fixed reply as ids of the model's tokenizer (replies are decoded from ids)."""
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(model_path)
        ids = tokenizer.encode(REPLY_WORD * self.reply_tokens, add_special_tokens=False)
        return ids[: self.reply_tokens]

    def _write(self, path: str) -> None:
        with open(path, "w", encoding="utf-8") as f:
            json.dump(self.stats, f)

    def _seconds(self, prompt_tokens: int, n: int) -> float:
        if not self.prefill_tps:
            return 0.0
        return prompt_tokens / self.prefill_tps + n * self.reply_tokens / self.decode_tps

    def generate(self, input_ids, gen_configs, *, adapter_name=None, use_tqdm=False):
        from lmdeploy.messages import Response

        start = time.time()
        if self.stats["first_call"] is None:
            self.stats["first_call"] = start
        n_tokens = sum(len(ids) for ids in input_ids)
        text = REPLY_WORD * self.reply_tokens
        out = [
            Response(
                text=text,
                generate_token_len=self.reply_tokens,
                input_token_len=len(ids),
                finish_reason="length",
                token_ids=list(self.reply_ids),
                index=i,
            )
            for i, ids in enumerate(input_ids)
        ]
        wait = self._seconds(n_tokens, len(out))
        if wait:
            time.sleep(wait)
        self.stats["calls"] += 1
        self.stats["prompts"] += len(out)
        self.stats["prompt_tokens"] += n_tokens
        self.stats["engine_s"] += time.time() - start
        self.stats["last_end"] = time.time()
        return out

    def prompt_logprobs(self, input_ids, logprob_start_lens, **kwargs):
        raise NotImplementedError("the simulated engines only generate")

    def settings(self) -> dict:
        return {"backend": self.backend, "session_len": self.session_len}

    def close(self) -> None:
        self.closed = True

    def sleep(self, level: int = 1) -> None: ...

    def wakeup(self) -> None: ...


def build_instant_engine(spec) -> InstantEngine:
    return InstantEngine(spec)


def build_sim_engine(spec) -> InstantEngine:
    return InstantEngine(
        spec,
        prefill_tps=float(os.environ.get("RGEN_SIM_PREFILL_TPS", "30000")),
        decode_tps=float(os.environ.get("RGEN_SIM_DECODE_TPS", "4000")),
    )
