"""BaichuanCharRM scoring: batched vs one input at a time (run_char_rm.py's loop).

Scores the same inputs both ways with the charrm scorer's model class, prints the wall time,
the speed-up and the largest difference between the two score lists.

    python benchmarks/charrm_batching.py                      # tiny random model, CPU
    python benchmarks/charrm_batching.py --model /models/BaichuanCharRM \
        --data /data/CharacterEval/data --n 512
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--model", help="BaichuanCharRM folder (default: a tiny random one)")
    p.add_argument("--data", default="sample", help="charactereval_path (default: the sample)")
    p.add_argument("--n", type=int, default=64, help="pairs to score")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--device", default="auto")
    args = p.parse_args()

    from rgen_harness.data.charactereval import CharacterEvalSource, load_docs
    from rgen_harness.metrics.charrm.options import CharRMOptions
    from rgen_harness.metrics.charrm.scorer import CharRMScorer, Pair

    model = args.model
    if model is None:
        from rgen_harness.smoke.tiny_charrm import build_charrm

        model = str(build_charrm(Path(tempfile.mkdtemp()) / "BaichuanCharRM"))
    docs = load_docs(CharacterEvalSource.from_metadata({"charactereval_path": args.data}))
    base = [
        Pair(d["role_info"], d["context"], d["messages"][-2]["content"], m["zh"])
        for d in docs
        if not d["problem"]
        for m in d["metrics"]
    ]
    # distinct replies, so every input is new
    pairs = [
        Pair(b.role_info, b.context, f"{b.response}{i}", b.dimension_zh)
        for i, b in ((i, base[i % len(base)]) for i in range(args.n))
    ]
    options = CharRMOptions(
        model=model, trust_remote_code=True, batch_size=args.batch_size, cache="none",
        device=args.device,
    )  # fmt: skip
    scorer = CharRMScorer(options)
    ids = scorer.encode(pairs)
    rm = scorer.model()
    rm.score(ids[:2])  # warm-up
    start = time.perf_counter()
    alone = [rm.score_alone(x) for x in ids]
    t_alone = time.perf_counter() - start
    start = time.perf_counter()
    batched = scorer.score(pairs, desc="batched")
    t_batched = time.perf_counter() - start
    diff = max(abs(a - b) for a, b in zip(alone, batched, strict=True))
    lengths = sorted(len(x) for x in ids)
    print(
        f"model {model} on {rm.device}; {len(ids)} inputs, tokens "
        f"median {lengths[len(lengths) // 2]}, max {lengths[-1]}"
    )
    print("| mode | wall s | inputs/s |")
    print("|---|---|---|")
    print(f"| one at a time (run_char_rm.py) | {t_alone:.2f} | {len(ids) / t_alone:.1f} |")
    print(
        f"| batched (batch_size {args.batch_size}) | {t_batched:.2f} | {len(ids) / t_batched:.1f} |"
    )
    print(f"speed-up x{t_alone / t_batched:.2f}; largest |batched - one at a time| = {diff:.2e}")


if __name__ == "__main__":
    main()
