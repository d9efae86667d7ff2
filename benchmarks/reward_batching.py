"""Reward scoring throughput and the padding cost of length-sorted batches.

    python benchmarks/reward_batching.py [--tiny-dir DIR] [--gpu-model REWARD_MODEL]

1. Padding efficiency (real tokens / padded tokens) of the length-sorted batches on deita-like
   length spreads (log-normal, median ~3k tokens, long tail clipped at 32k); target >= 0.9.
2. CPU: replies scored per second with the tiny reward model (hf backend), batched vs one at a
   time. Batching does not speed up a 2-layer model on 2 cores; the figure shows the overhead.
3. GPU (CUDA + lmdeploy + --gpu-model): lmdeploy vs a transformers one-at-a-time loop (target
   >= 3x) and vs batched transformers. Without CUDA it says so and exits 0.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

from rgen_harness.metrics.reward.batching import length_sorted_batches, padding_efficiency


def deita_like_lengths(n: int, seed: int = 0, max_length: int = 32768) -> list[int]:
    rng = random.Random(seed)
    return [min(max_length, max(64, int(rng.lognormvariate(8.0, 0.9)))) for _ in range(n)]


def padding_table() -> None:
    print("## Padding efficiency of length-sorted batches (batch_tokens=65536)")
    print("| inputs | batch_size | batches | efficiency | unsorted efficiency |")
    print("|-------:|-----------:|--------:|-----------:|--------------------:|")
    for n in (200, 1000, 12000):
        lengths = deita_like_lengths(n)
        for bs in (8, 64):
            batches = length_sorted_batches(lengths, batch_size=bs, batch_tokens=65536)
            unsorted = [list(range(i, min(i + bs, n))) for i in range(0, n, bs)]
            print(
                f"| {n} | {bs} | {len(batches)} | {padding_efficiency(lengths, batches):.3f} "
                f"| {padding_efficiency(lengths, unsorted):.3f} |"
            )


def cpu_table(tiny_dir: Path) -> None:
    from rgen_harness.metrics.reward.backends.hf import HFRewardBackend
    from rgen_harness.metrics.reward.render import load_model_config
    from rgen_harness.smoke.tiny_models import build_reward_model

    path = str(build_reward_model(tiny_dir / "reward"))
    backend = HFRewardBackend(path, model_config=load_model_config(path, revision=None))
    rng = random.Random(1)
    lengths = [min(1000, max(16, int(rng.lognormvariate(5.5, 0.7)))) for _ in range(128)]
    seqs = [[rng.randrange(4, 500) for _ in range(n)] for n in lengths]
    print("\n## CPU, tiny 2-layer reward model (hf backend), 128 replies of 16-1000 tokens")
    print("| mode | batch_size | replies/s | padding efficiency |")
    print("|------|-----------:|----------:|-------------------:|")
    for bs in (1, 8, 32):
        batches = length_sorted_batches(lengths, batch_size=bs, batch_tokens=65536)
        start = time.perf_counter()
        for batch in batches:
            backend.score([seqs[i] for i in batch])
        rate = len(seqs) / (time.perf_counter() - start)
        mode = "one at a time" if bs == 1 else "length-sorted batches"
        print(f"| {mode} | {bs} | {rate:.1f} | {padding_efficiency(lengths, batches):.3f} |")


def gpu_table(model: str | None) -> None:
    import importlib.util

    import torch

    print("\n## GPU")
    if not torch.cuda.is_available():
        print("No CUDA GPU here: the GPU comparison (lmdeploy vs transformers) was not run.")
        return
    if model is None or importlib.util.find_spec("lmdeploy") is None:
        print("GPU found; pass --gpu-model <InternLM2 reward model> with lmdeploy installed.")
        return
    from rgen_harness.metrics.reward.backends.hf import HFRewardBackend
    from rgen_harness.metrics.reward.backends.lmdeploy import LMDeployRewardBackend
    from rgen_harness.metrics.reward.render import load_model_config

    lengths = deita_like_lengths(256, max_length=8192)
    rng = random.Random(2)
    seqs = [[rng.randrange(1000, 90000) for _ in range(n)] + [92527] for n in lengths]
    rows = []

    def timed(name, backend, bs):
        batches = length_sorted_batches([len(s) for s in seqs], batch_size=bs, batch_tokens=65536)
        start = time.perf_counter()
        for batch in batches:
            backend.score([seqs[i] for i in batch])
        rows.append((name, bs, len(seqs) / (time.perf_counter() - start)))

    hf = HFRewardBackend(model, model_config=load_model_config(model, revision=None))
    timed("transformers, one at a time", hf, 1)
    timed("transformers, length-sorted batches", hf, 8)
    hf.close()
    lm = LMDeployRewardBackend(model, max_length=8200)
    timed("lmdeploy get_reward_score", lm, 64)
    lm.close()
    base = rows[0][2]
    print("| backend | batch_size | replies/s | speed-up vs one at a time |")
    print("|---------|-----------:|----------:|--------------------------:|")
    for name, bs, rate in rows:
        print(f"| {name} | {bs} | {rate:.2f} | {rate / base:.1f}x |")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny-dir", type=Path, default=Path("/tmp/rgen_tiny"))
    parser.add_argument("--gpu-model", default=None)
    args = parser.parse_args(argv)
    padding_table()
    cpu_table(args.tiny_dir)
    gpu_table(args.gpu_model)
    return 0


if __name__ == "__main__":
    sys.exit(main())
