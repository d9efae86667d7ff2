"""Check the judge metrics against the figures the test-set authors published, from their own
released prediction files, each figure computed the authors' way.

Reads the authors' files with this package's loaders and metric functions and prints ours next
to theirs, with where each published figure is (repository, file, commit):

- PandaLM (WeOpenML/PandaLM): `data/testset-v1.json` with the released verdicts of
  PandaLM-7B (`data/pandalm-7b-testset-v1.json`) and gpt-3.5-turbo
  (`data/gpt-3.5-turbo-testset-v1.json`); accuracy and macro precision / recall / F1 on the
  given order against the annotators' majority, an unreadable verdict a tie (PandaLM's
  `parse_pandalm_response`). Published in the README table added at 77cec46 (removed from the
  README at e3d143c). The repository has released no GPT-4 predictions (none in its history).
- Auto-J (GAIR-NLP/auto-j): `data/test/testdata_pairwise.jsonl` with
  `data/outputs/pairwise_example_output.jsonl` and its exchanged-order twin; agreement in
  both orders, consistency and single-order agreement, overall and per scenario group, as
  printed in `codes/leaderboard/README.md` at 2ae17a3.
- LLMBar (princeton-nlp/LLMBar): every `evaluators/<model>/<method>/result.json` below the
  folder given, recomputed and compared with the `statistics.json` beside it (correct_False,
  correct_True, correct_average = Acc, correct_both, equal = positional agreement).

Usage (a checkout of each repository, or a fetched mirror exported with `git archive`):
    python benchmarks/judge_reference_metrics.py --pandalm PandaLM/data --autoj auto-j/data \\
        --llmbar LLMBar/Dataset
Each argument is optional; the sets given are checked. Exit status 1 if a figure differs.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from rgen_harness.data.judge import SETS, load_docs
from rgen_harness.data.judge.autoj_groups import group_of
from rgen_harness.data.judge.rows import normalise_row
from rgen_harness.metrics import judge as m

PANDALM_README = "WeOpenML/PandaLM README.md @77cec462f0f7b32c2995ea4a184e7170dd9ea7fe"
AUTOJ_README = (
    "GAIR-NLP/auto-j codes/leaderboard/README.md @2ae17a3965d933232e9cd50302aa0f176249c83b"
)
LLMBAR = "princeton-nlp/LLMBar {} @900616bff90b6c6c8e1681f7d079250637c55992"

# name, metric, ours, published, decimals, source
ROWS: list[tuple[str, str, float, float, int, str]] = []


def row(name: str, metric: str, ours: float, published: float, decimals: int, source: str):
    ROWS.append((name, metric, ours, published, decimals, source))


# -- PandaLM ------------------------------------------------------------------------------------
# (file, verdict field, published accuracy / precision / recall / F1 in percent)
PANDALM_FILES = (
    ("gpt-3.5-turbo-testset-v1.json", "gpt_result", "gpt-3.5-turbo", (71.07, 58.79, 57.36, 57.55)),
    ("pandalm-7b-testset-v1.json", "pandalm_result", "PandaLM-7B", (66.77, 57.38, 57.50, 57.43)),
)


def pandalm_verdict(value) -> int | None:
    """A released verdict as the project reads it: 1, 2, tie -> 0, anything else None."""
    first = str(value).strip().split("\n")[0].strip().lower()
    return {"1": 1, "2": 2, "0": 0, "tie": 0}.get(first)


def pandalm(folder: Path) -> None:
    docs = load_docs(SETS["pandalm"], {"judge_path": str(folder / "testset-v1.json")})
    gold = [d["gold"] for d in docs]
    for name, field, judge, published in PANDALM_FILES:
        path = folder / name
        if not path.is_file():
            print(f"PandaLM: no {path}; {judge} not checked")
            continue
        by_id = {str(p["idx"]): pandalm_verdict(p[field]) for p in json.loads(path.read_text())}
        pred = [by_id.get(d["id"]) for d in docs]
        theirs = m.missing_as_tie(pred)  # parse_pandalm_response: unreadable -> 0
        p, r, f = m.macro_prf(gold, theirs, (0, 1, 2))
        values = (m.accuracy(gold, theirs), p, r, f)
        source = f"{PANDALM_README} (predictions: data/{name})"
        for metric, ours, pub in zip(
            ("accuracy", "precision", "recall", "F1"), values, published, strict=True
        ):
            row(f"PandaLM {judge}", f"{metric} (PandaLM's way)", 100 * ours, pub, 2, source)
        p, r, f = m.macro_prf(gold, pred, (0, 1, 2))
        unread = sum(x is None for x in pred)
        print(
            f"PandaLM {judge}: {unread} unreadable verdicts; under the project's rule "
            f"(unreadable = wrong): {100 * m.accuracy(gold, pred):.2f} / {100 * p:.2f} / "
            f"{100 * r:.2f} / {100 * f:.2f}"
        )


# -- Auto-J -------------------------------------------------------------------------------------
_AUTOJ = {0: 1, 1: 2, 2: 0}  # Auto-J label -> ours (1 first better, 2 second, 0 tie)
# group: (agreement both orders, consistency, single-order agreement), in percent
AUTOJ_PUBLISHED = {
    "Summarization": (45.83, 73.61, 56.94),
    "Exam Questions": (38.89, 69.44, 41.67),
    "Code": (47.5, 75.83, 54.17),
    "Rewriting": (49.17, 74.17, 57.5),
    "Creative Writing": (59.72, 87.04, 63.43),
    "Functional Writing": (61.67, 81.67, 68.33),
    "General Communication": (55.21, 92.36, 57.29),
    "NLP Tasks": (57.58, 86.36, 62.12),
    "Overall": (54.96, 83.41, 59.99),
}


def _autoj_outputs(path: Path) -> list[int]:
    lines = path.read_text(encoding="utf-8").split("\n")
    return [_AUTOJ[int(json.loads(line)["output"])] for line in lines if line.strip()]


def autoj(folder: Path) -> None:
    docs = load_docs(SETS["autoj"], {"judge_path": str(folder / "test/testdata_pairwise.jsonl")})
    first = _autoj_outputs(folder / "outputs/pairwise_example_output.jsonl")
    # The exchanged file answers for the swapped pair: map its verdicts back to the given order.
    exchanged = folder / "outputs/pairwise_exchange_example_output.jsonl"
    swapped = [m.FLIP[p] for p in _autoj_outputs(exchanged)]
    groups: dict[str, list[int]] = {"Overall": list(range(len(docs)))}
    for i, d in enumerate(docs):
        groups.setdefault(group_of(d["scenario"]), []).append(i)
    source = f"{AUTOJ_README} (predictions: data/outputs/pairwise_*example_output.jsonl)"
    for group, published in AUTOJ_PUBLISHED.items():
        idx = groups.get(group, [])
        gold = [docs[i]["gold"] for i in idx]
        a, b = [first[i] for i in idx], [swapped[i] for i in idx]
        ours = (m.both_correct(gold, a, b), m.consistency(a, b), m.accuracy(gold, a))
        metrics = ("agreement (both orders)", "consistency", "agreement (single order)")
        for metric, value, pub in zip(metrics, ours, published, strict=True):
            row(f"Auto-J example / {group}", metric, 100 * value, pub, 2, source)


# -- LLMBar -------------------------------------------------------------------------------------
def _percent(text: str) -> float:
    return float(re.search(r"([\d.]+)%", text).group(1))


def _winner(value) -> int | None:
    return None if value is None else int(value)


def llmbar(root: Path) -> None:
    spec = SETS["llmbar_natural"]
    checked = differing = 0
    for result_path in sorted(root.rglob("evaluators/*/*/result.json")):
        stats_path = result_path.parent / "statistics.json"
        if not stats_path.is_file():
            continue
        stats = json.loads(stats_path.read_text(encoding="utf-8"))
        results = json.loads(result_path.read_text(encoding="utf-8"))
        docs = [normalise_row(spec, r, i) for i, r in enumerate(results)]
        gold = [d["gold"] for d in docs]
        verdicts = [r["results"][-1] for r in results]
        first = [_winner(v["swap = False"]["winner"]) for v in verdicts]
        second = [_winner(v["swap = True"]["winner"]) for v in verdicts]
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
        rel = result_path.relative_to(root)
        source = LLMBAR.format(f"{root.name}/{rel.parent}/statistics.json")
        name = f"LLMBar {'/'.join(rel.parts[:-4])} {'/'.join(rel.parts[-3:-1])}"
        row(
            name,
            "Acc",
            100 * ours["correct_average"],
            _percent(stats["correct_average"]),
            2,
            source,
        )
        row(name, "positional agreement", 100 * ours["equal"], _percent(stats["equal"]), 2, source)
    print(f"LLMBar: {checked} evaluator results recomputed, {differing} statistics differ")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pandalm", type=Path, help="PandaLM's data/ folder")
    parser.add_argument("--autoj", type=Path, help="auto-j's data/ folder")
    parser.add_argument("--llmbar", type=Path, help="LLMBar's Dataset folder (or a part of it)")
    parser.add_argument("--all-rows", action="store_true", help="print every LLMBar row")
    args = parser.parse_args(argv)
    if not (args.pandalm or args.autoj or args.llmbar):
        parser.error("give at least one of --pandalm, --autoj, --llmbar")
    for fn, path in ((pandalm, args.pandalm), (autoj, args.autoj), (llmbar, args.llmbar)):
        if path is not None:
            fn(path)
    print(f"\n{'judge / set':<52} {'metric':<30} {'ours':>8} {'published':>10}  match  source")
    bad = shown = 0
    for name, metric, ours, published, decimals, source in ROWS:
        ok = round(ours, decimals) == round(published, decimals)
        bad += not ok
        if not ok or args.all_rows or not name.startswith("LLMBar"):
            shown += 1
            print(
                f"{name:<52} {metric:<30} {ours:>8.{decimals}f} {published:>10.{decimals}f}  "
                + ("yes  " if ok else "NO   ")
                + f"  {source}"
            )
    print(f"\n{len(ROWS)} published figures checked, {len(ROWS) - bad} reproduced", end="")
    print(
        f" ({len(ROWS) - shown} matching LLMBar rows not printed; --all-rows)"
        if shown < len(ROWS)
        else ""
    )
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
