"""The leaderboard's measures with percentile bootstrap intervals over pairs.

Each measure is a ratio of sums over the judged pairs (docs), so that it can be resampled
cheaply: every pair contributes a small vector of counts (`counts`), and `finish` turns the
column sums into the value. The counts follow rgen_harness.tasks.judge.aggregate exactly (the
values equal lm-eval's; the report checks it and lists any difference under Problems):

- accuracy: verdicts equal to gold / verdicts, both orders pooled;
- macro_f1: per class, F1 = 2 TP / (predicted + gold) (scikit-learn's, 0 when undefined),
  averaged over the set's classes (3 with ties, 2 for LLMBar), both orders pooled;
- consistency: pairs with the same, read verdict in both orders / pairs judged in both orders;
- agreement (MT-Bench): FastChat's judge-vs-expert vote agreement per turn, with or without
  ties (`rgen_harness.metrics.judge.mtbench_agreement` counted per pair);
- the authors' figures (see rgen_harness.metrics.judge): PandaLM's accuracy and macro
  precision / recall / F1 on the given order only, a missing verdict read as a tie; Auto-J's
  agreement in both orders (`agreement_both`) and single-order agreement
  (`accuracy_original`); LLMBar's positional agreement (their Acc is `accuracy`).

Intervals resample pairs (with replacement) through rgen_harness.study.stats.bootstrap; a pair
that does not enter a measure (a skipped row, one order only for consistency, the other turn)
is not resampled for it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from rgen_harness.metrics import judge as m
from rgen_harness.study.stats import Estimate, bootstrap


@dataclass(frozen=True)
class Measure:
    name: str
    title: str
    counts: Callable[[dict, tuple[int, ...]], list[float] | None]  # None: pair not used
    finish: Callable[[np.ndarray, tuple[int, ...]], np.ndarray]  # (k, d) sums -> (k,)


def _ratio(sums: np.ndarray, labels) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(sums[..., 1] > 0, sums[..., 0] / sums[..., 1], np.nan)


def _accuracy(r: dict, labels) -> list[float] | None:
    if r["gold"] < 0:
        return None
    return [sum(p == r["gold"] for p in r["pred"]), len(r["pred"])]


def _confusion(r: dict, labels) -> list[float] | None:
    """Per class: true positives, predicted, gold (over the pair's verdicts)."""
    if r["gold"] < 0:
        return None
    out: list[float] = []
    for label in labels:
        out += [
            sum(p == label == r["gold"] for p in r["pred"]),
            sum(p == label for p in r["pred"]),
            len(r["pred"]) * (r["gold"] == label),
        ]
    return out


def _macro_f1(sums: np.ndarray, labels) -> np.ndarray:
    per_class = sums.reshape(*sums.shape[:-1], len(labels), 3)
    tp, predicted, gold = per_class[..., 0], per_class[..., 1], per_class[..., 2]
    denominator = predicted + gold
    with np.errstate(divide="ignore", invalid="ignore"):
        f1 = np.where(denominator > 0, 2 * tp / denominator, 0.0)
    return f1.mean(axis=-1)


def _precision(sums: np.ndarray, labels) -> np.ndarray:
    return _per_class(sums, labels, 1)


def _recall(sums: np.ndarray, labels) -> np.ndarray:
    return _per_class(sums, labels, 2)


def _per_class(sums: np.ndarray, labels, column: int) -> np.ndarray:
    """Macro average of TP / predicted (column 1) or TP / gold (column 2), 0 when undefined."""
    per_class = sums.reshape(*sums.shape[:-1], len(labels), 3)
    tp, denominator = per_class[..., 0], per_class[..., column]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denominator > 0, tp / denominator, 0.0).mean(axis=-1)


def _pandalm_view(r: dict) -> dict:
    """PandaLM's reading of a pair: the given order only, a missing verdict a tie."""
    return {**r, "pred": m.missing_as_tie(r["pred"][:1])}


def _pandalm(counts):
    def pandalm_counts(r: dict, labels) -> list[float] | None:
        return counts(_pandalm_view(r), labels) if r["pred"] else None

    return pandalm_counts


def _original(r: dict, labels) -> list[float] | None:
    if r["gold"] < 0 or not r["pred"]:
        return None
    return [r["pred"][0] == r["gold"], 1]


def _both_right(r: dict, labels) -> list[float] | None:
    if r["gold"] < 0 or len(r["pred"]) != 2:
        return None
    return [r["pred"][0] == r["gold"] == r["pred"][1], 1]


def _same_verdict(r: dict, labels) -> list[float] | None:
    """LLMBar's "equal": two missing verdicts count as the same."""
    if r["gold"] < 0 or len(r["pred"]) != 2:
        return None
    return [r["pred"][0] == r["pred"][1], 1]


def _consistency(r: dict, labels) -> list[float] | None:
    if len(r["pred"]) != 2:
        return None
    first, second = r["pred"]
    return [first is not None and first == second, 1]


def _agreement(turn: int, with_tie: bool):
    def counts(r: dict, labels) -> list[float] | None:
        if r["turn"] != turn:
            return None
        vote = m.fastchat_vote(*r["pred"])
        agree, total = m.mtbench_agreement([vote], [r["votes"]], with_tie=with_tie)
        return [agree, total]

    return counts


GOLD_MEASURES = (
    Measure("accuracy", "Accuracy", _accuracy, _ratio),
    Measure("macro_f1", "Macro-F1", _confusion, _macro_f1),
)
CONSISTENCY = Measure("consistency", "Consistency", _consistency, _ratio)
AGREEMENT = tuple(
    Measure(
        f"agreement_turn{turn}_{'tie' if tie else 'notie'}",
        f"Agreement turn {turn} {'with' if tie else 'without'} ties",
        _agreement(turn, tie),
        _ratio,
    )
    for turn in (1, 2)
    for tie in (True, False)
)


PANDALM = (
    Measure("pandalm_accuracy", "Accuracy", _pandalm(_accuracy), _ratio),
    Measure("pandalm_macro_precision", "Precision", _pandalm(_confusion), _precision),
    Measure("pandalm_macro_recall", "Recall", _pandalm(_confusion), _recall),
    Measure("pandalm_macro_f1", "F1", _pandalm(_confusion), _macro_f1),
)
AGREEMENT_BOTH = Measure("agreement_both", "Agreement (both orders)", _both_right, _ratio)
SINGLE_ORDER = Measure("accuracy_original", "Agreement (single order)", _original, _ratio)
LLMBAR_ACC = Measure("accuracy", "Acc", _accuracy, _ratio)
POSITIONAL = Measure("positional_agreement", "Positional agreement", _same_verdict, _ratio)
# The figures each set's authors report, computed their way; the first leads the leaderboard.
AUTHORS: dict[str, tuple[Measure, ...]] = {
    "pandalm": PANDALM,
    "autoj": (AGREEMENT_BOTH, CONSISTENCY, SINGLE_ORDER),
    "llmbar": (LLMBAR_ACC, POSITIONAL),
    "mtbench": AGREEMENT,
}


def measures_for(kind: str) -> tuple[Measure, ...]:
    """The measures of a set kind (see rgen_harness.data.judge.sources.SetSpec.kind): the
    authors' figures, then the project's pooled ones not already among them."""
    pooled = (*AGREEMENT, CONSISTENCY) if kind == "mtbench" else (*GOLD_MEASURES, CONSISTENCY)
    names = {x.name for x in AUTHORS[kind]}
    return (*AUTHORS[kind], *(x for x in pooled if x.name not in names))


def estimate(
    measure: Measure,
    records: list[dict],
    labels: tuple[int, ...],
    *,
    level: float,
    resamples: int,
    seed: int,
) -> Estimate:
    """Value of `measure` over the pairs that enter it, with a bootstrap interval over them
    (NaN interval with fewer than 2 pairs; n = pairs used)."""
    rows = [measure.counts(r, labels) for r in records if not r["skipped"]]
    rows = [row for row in rows if row is not None]
    if not rows:
        return Estimate.empty()
    counts = np.asarray(rows, dtype=float)
    value = float(measure.finish(counts.sum(axis=0), labels))
    if not math.isfinite(value):
        return Estimate(math.nan, math.nan, math.nan, len(rows))
    low, high = bootstrap(
        (counts,),
        lambda resampled: measure.finish(resampled.sum(axis=1), labels),
        level=level,
        resamples=resamples,
        seed=seed,
    )
    return Estimate(value, low, high, len(rows))
