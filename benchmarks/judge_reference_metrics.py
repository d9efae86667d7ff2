"""Check the judge metrics against numbers the test-set authors published, from their own files.

Reads the authors' released predictions with this package's loaders and metric functions and
prints ours next to theirs:

- PandaLM: `data/testset-v1.json` + `data/pandalm-7b-testset-v1.json` (PandaLM-7B's verdicts);
  accuracy and macro precision / recall / F1 against the annotators' majority (paper: 0.668 and
  macro-F1 0.574 for PandaLM-7B).
- Auto-J: `data/test/testdata_pairwise.jsonl` + `data/outputs/pairwise_example_output.jsonl` and
  its exchanged-order twin `pairwise_exchange_example_output.jsonl`; agreement (right in both
  orders) and consistency (codes/leaderboard/README.md: 54.96 and 83.41; single order 59.99).
- LLMBar: every `evaluators/<model>/<method>/result.json` under a `Dataset/LLMBar` folder,
  recomputed and compared with the `statistics.json` beside it (correct_False, correct_True,
  correct_average = Acc, correct_both, equal = positional agreement).

Usage (paths to a checkout of each repository, any commit with these files):
    python benchmarks/judge_reference_metrics.py --pandalm PandaLM/data --autoj auto-j/data \
        --llmbar LLMBar/Dataset/LLMBar
Each argument is optional; the sets given are checked. Exit status 1 if a number differs.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from rgen_harness.data.judge import SETS, load_docs
from rgen_harness.data.judge.rows import normalise_row
from rgen_harness.metrics import judge as m

ROWS: list[tuple[str, str, float, float, int]] = []  # set, metric, ours, published, decimals


def row(name: str, metric: str, ours: float, published: float, decimals: int) -> None:
    ROWS.append((name, metric, ours, published, decimals))


def pandalm(folder: Path) -> None:
    docs = load_docs(SETS["pandalm"], {"judge_path": str(folder / "testset-v1.json")})
    preds = json.loads((folder / "pandalm-7b-testset-v1.json").read_text(encoding="utf-8"))
    by_id = {str(p["idx"]): int(p["pandalm_result"]) for p in preds}
    gold = [d["gold"] for d in docs]
    pred = [by_id.get(d["id"]) for d in docs]
    p, r, f = m.macro_prf(gold, pred, (0, 1, 2))
    row("PandaLM-7B", "accuracy", m.accuracy(gold, pred), 0.668, 3)
    row("PandaLM-7B", "macro_f1", f, 0.574, 3)
    print(f"PandaLM-7B macro precision {p:.4f}, recall {r:.4f} (no published figure to compare)")


_AUTOJ = {0: 1, 1: 2, 2: 0}  # Auto-J label -> ours (1 first better, 2 second, 0 tie)


def _autoj_outputs(path: Path) -> list[int]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [_AUTOJ[int(json.loads(line)["output"])] for line in lines if line.strip()]


def autoj(folder: Path) -> None:
    docs = load_docs(SETS["autoj"], {"judge_path": str(folder / "test/testdata_pairwise.jsonl")})
    gold = [d["gold"] for d in docs]
    first = _autoj_outputs(folder / "outputs/pairwise_example_output.jsonl")
    # The exchanged file answers for the swapped pair: map its verdicts back to the given order.
    swapped = [
        m.FLIP[p] for p in _autoj_outputs(folder / "outputs/pairwise_exchange_example_output.jsonl")
    ]
    row(
        "Auto-J example",
        "agreement (both orders)",
        100 * m.both_correct(gold, first, swapped),
        54.96,
        2,
    )
    row("Auto-J example", "consistency", 100 * m.consistency(first, swapped), 83.41, 2)
    row("Auto-J example", "agreement (single order)", 100 * m.accuracy(gold, first), 59.99, 2)


def _percent(text: str) -> float:
    return float(re.search(r"([\d.]+)%", text).group(1))


def llmbar(root: Path) -> None:
    spec = SETS["llmbar_natural"]
    checked = differing = 0
    for result_path in sorted(root.rglob("evaluators/*/*/result.json")):
        stats = json.loads((result_path.parent / "statistics.json").read_text(encoding="utf-8"))
        results = json.loads(result_path.read_text(encoding="utf-8"))
        docs = [normalise_row(spec, r, i) for i, r in enumerate(results)]
        gold = [d["gold"] for d in docs]
        verdicts = [r["results"][-1] for r in results]
        first = [
            None if v["swap = False"]["winner"] is None else int(v["swap = False"]["winner"])
            for v in verdicts
        ]
        second = [
            None if v["swap = True"]["winner"] is None else int(v["swap = True"]["winner"])
            for v in verdicts
        ]
        ours = {
            "correct_False": m.accuracy(gold, first),
            "correct_True": m.accuracy(gold, second),
            "correct_average": m.accuracy(gold + gold, first + second),
            "correct_both": m.both_correct(gold, first, second),
            "equal": m.positional_agreement(first, second),
        }
        checked += 1
        for key, value in ours.items():
            if abs(100 * value - _percent(stats[key])) > 1e-6:
                differing += 1
                print(f"LLMBar differs: {result_path} {key}: ours {100 * value} vs {stats[key]}")
        if result_path.parts[-3:-1] == ("GPT-4", "Swap_CoT") or checked == 1:
            name = "/".join(result_path.relative_to(root).parts[:-4] + result_path.parts[-3:-1])
            row(
                f"LLMBar {name}",
                "Acc",
                100 * ours["correct_average"],
                _percent(stats["correct_average"]),
                2,
            )
            row(
                f"LLMBar {name}",
                "positional agreement",
                100 * ours["equal"],
                _percent(stats["equal"]),
                2,
            )
    print(f"LLMBar: {checked} evaluator results recomputed, {differing} statistics differ")
    if differing or not checked:
        ROWS.append(("LLMBar", "statistics.json files reproduced", checked - differing, checked, 0))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pandalm", type=Path, help="PandaLM's data/ folder")
    parser.add_argument("--autoj", type=Path, help="auto-j's data/ folder")
    parser.add_argument("--llmbar", type=Path, help="LLMBar's Dataset/LLMBar folder")
    args = parser.parse_args(argv)
    if not (args.pandalm or args.autoj or args.llmbar):
        parser.error("give at least one of --pandalm, --autoj, --llmbar")
    for fn, path in ((pandalm, args.pandalm), (autoj, args.autoj), (llmbar, args.llmbar)):
        if path is not None:
            fn(path)
    print(f"\n{'set':<44} {'metric':<26} {'ours':>8} {'published':>10}  match")
    bad = 0
    for name, metric, ours, published, decimals in ROWS:
        ok = round(ours, decimals) == round(published, decimals)
        bad += not ok
        print(
            f"{name:<44} {metric:<26} {ours:>8.{decimals}f} {published:>10.{decimals}f}  "
            + ("yes" if ok else "NO")
        )
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
