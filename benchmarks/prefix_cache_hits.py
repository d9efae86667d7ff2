"""Prefix-cache hits of the deita rounds at study scale, with a KV cache sized like an 80 GB GPU's.

    python benchmarks/prefix_cache_hits.py [--n 300] [--max-gen-toks 512]

`lm_eval`'s evaluator runs deita_qr + deita_qcr through `--model lmdeploy` over an engine that
answers at once and keeps lmdeploy's prefix cache as the CPU engine does (full blocks of 64
tokens, a finite pool, oldest blocks evicted first: `CPUEngine.prefix_cached`). The pool holds
the same number of mean conversations as an 80 GB GPU holds for InternLM2.5-7B: KV of 32 layers
x 8 KV heads x 128 x 2 (K, V) x 2 bytes = 128 KiB per token; (80 GB - 15.5 GB of bf16 weights) x
0.8 (lmdeploy's cache_max_entry_count) = ~394k tokens; a deita-6k conversation is ~10k tokens
(37-49 KB of text), so ~39 conversations. Synthetic data as in harness_scale.py (seeded).

Two orders of the same requests: every round for all conversations at once (the order before
the waves), and the waves the runner uses when the backend has a prefix cache (a conversation's
QR and QCR side by side, each wave's round 2 right after its round 1).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

GPU_KV_TOKENS = 394_000
DEITA_CONVERSATION_TOKENS = 10_000
BLOCK = 64


class CacheEngine:
    """An instant engine with the CPU engine's prefix-cache accounting (no model)."""

    backend = "pytorch"

    def __init__(self, spec) -> None:
        from sim_engine import InstantEngine

        from rgen_harness.models.cpu_engine import CPUEngine

        self.inner = InstantEngine(spec)
        self.session_len = self.inner.session_len
        self.closed = False
        self.block_size = BLOCK
        self.num_blocks = int(os.environ["RGEN_BENCH_KV_BLOCKS"])
        self.prefix_caching = True
        from collections import OrderedDict

        self.cached_blocks = OrderedDict()
        self.stats = {"evicted_blocks": 0}
        self._block_keys = CPUEngine._block_keys.__get__(self)
        self._prefix_cached = CPUEngine.prefix_cached.__get__(self)
        self.log = []  # (round, prompt tokens, cached tokens)
        self.pipe = None

    def generate(self, input_ids, gen_configs, **kwargs):
        out = self.inner.generate(input_ids, gen_configs, **kwargs)
        for ids, resp in zip(input_ids, out, strict=True):
            ids = list(ids)
            hit, _ = self._prefix_cached(None, ids)
            self._prefix_cached(None, ids + list(resp.token_ids))
            resp.cached_tokens = hit
            self.log.append((len(ids), hit))
        return out

    def prefix_cache_tokens(self):
        return int(os.environ.get("RGEN_BENCH_WAVES", "1")) and self.num_blocks * BLOCK or 0

    def settings(self):
        return {"backend": "pytorch", "session_len": self.session_len, "tp": 1}

    def prompt_logprobs(self, *a, **k):
        raise NotImplementedError

    def close(self):
        self.closed = True

    def sleep(self, level=1): ...

    def wakeup(self): ...


ENGINE: CacheEngine | None = None


def build(spec):
    global ENGINE
    ENGINE = CacheEngine(spec)
    return ENGINE


def run(data: Path, model: Path, n: int, max_gen: int, waves: bool) -> dict:
    import lm_eval

    from rgen_harness import plugin
    from rgen_harness.chat.protocol import ChatResult
    from rgen_harness.models.lmdeploy_lm import LMDeployLM

    plugin.apply()
    os.environ["RGEN_BENCH_WAVES"] = "1" if waves else "0"
    os.environ["RGEN_HARNESS_LMDEPLOY_ENGINE"] = f"{Path(__file__).stem}:build"
    lm = LMDeployLM(pretrained=str(model), session_len=32768, max_gen_toks=max_gen)
    start = time.perf_counter()
    out = lm_eval.simple_evaluate(
        model=lm,
        tasks=["deita_qr", "deita_qcr"],
        limit=n,
        task_manager=lm_eval.tasks.TaskManager(
            metadata={"deita_path": str(data), "scorers": "none"}
        ),
        gen_kwargs=f"max_gen_toks={max_gen}",
        log_samples=True,
        bootstrap_iters=0,
    )
    wall = time.perf_counter() - start
    rounds = {1: [0, 0], 2: [0, 0]}
    for samples in out["samples"].values():
        for s in samples:
            result = ChatResult.from_json(s["filtered_resps"][0])
            for k, r in enumerate(result.rounds, 1):
                rounds[k][0] += r.prompt_tokens or 0
                rounds[k][1] += r.cached_tokens or 0
    prompt = sum(v[0] for v in rounds.values())
    cached = sum(v[1] for v in rounds.values())
    return {
        "order": "waves (QR beside QCR, round 2 after its round 1)" if waves else "round by round",
        "round2_hit": rounds[2][1] / max(rounds[2][0], 1),
        "all_hit": cached / max(prompt, 1),
        "prefill_tokens": prompt - cached,
        "prompt_tokens": prompt,
        "wall_s": wall,
    }


def main(argv=None) -> int:
    from harness_scale import make_dataset, make_model

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--max-gen-toks", type=int, default=512)
    ap.add_argument("--vocab", type=int, default=8000)
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="prefix_hits_"))
    data = work / "data.jsonl"
    make_dataset(data, args.n, seed=0)
    model = make_model(work / "model", data, args.vocab)
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model)
    lines = data.read_text(encoding="utf-8").splitlines()
    tokens = [
        sum(
            len(tok.encode(t["value"], add_special_tokens=False))
            for t in json.loads(x)["conversations"]
        )
        for x in lines
    ]
    mean = sum(tokens) / len(tokens)
    pool = GPU_KV_TOKENS / DEITA_CONVERSATION_TOKENS * mean
    os.environ["RGEN_BENCH_KV_BLOCKS"] = str(int(pool // BLOCK))
    rows = [run(data, model, args.n, args.max_gen_toks, waves) for waves in (False, True)]
    print(
        f"\n{args.n} conversations, mean {mean:,.0f} tokens; KV pool {pool:,.0f} tokens "
        f"(= {GPU_KV_TOKENS:,} / {DEITA_CONVERSATION_TOKENS:,} mean conversations), "
        f"max_gen_toks {args.max_gen_toks}\n"
    )
    print(
        "| order | QCR round-2 prompt tokens from cache | all prompt tokens from cache | "
        "prefill tokens | harness wall |"
    )
    print("|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['order']} | {r['round2_hit']:.1%} | {r['all_hit']:.1%} | "
            f"{r['prefill_tokens']:,} of {r['prompt_tokens']:,} | {r['wall_s']:.0f} s |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
