"""CharacterEval's figures from per-example records ({metric: score} of the pairs scored).

- Metric means: the mean over the (example, metric) pairs id2metric assigns (compute_score.py).
- Dimension averages, the paper's Table 4: conversational ability = Fluency, Coherence,
  Consistency; character consistency = Exposure (KE), Accuracy (KA), Hallucination (KH),
  Behavior (PB), Utterance (PU); role-playing attractiveness = Humanlikeness (HL),
  Communication_skills (CS), Diversity (ED), Empathy (Emp); each the unweighted mean of its
  metrics' means.
- `overall`: the unweighted mean of the 12 metric means (not a figure of the paper).
- Intervals: percentile bootstrap over examples (rgen_harness.study.stats.bootstrap): each
  resample draws examples with replacement and recomputes every mean from their pairs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from rgen_harness.data.charactereval import METRICS

METRIC_NAMES = tuple(en for en, _ in METRICS)
DIMENSIONS: dict[str, tuple[str, ...]] = {
    "conversational_ability": ("Fluency", "Coherence", "Consistency"),
    "character_consistency": ("Exposure", "Accuracy", "Hallucination", "Behavior", "Utterance"),
    "roleplay_attractiveness": ("Humanlikeness", "Communication_skills", "Diversity", "Empathy"),
}
OVERALL = "overall"
SUMMARY_NAMES = (*DIMENSIONS, OVERALL)
# The paper's column labels (Table 4).
SHORT = {
    "Fluency": "Flu.",
    "Coherence": "Coh.",
    "Consistency": "Cons.",
    "Exposure": "KE",
    "Accuracy": "KA",
    "Hallucination": "KH",
    "Behavior": "PB",
    "Utterance": "PU",
    "Humanlikeness": "HL",
    "Communication_skills": "CS",
    "Diversity": "ED",
    "Empathy": "Emp.",
}


def metric_key(metric: str) -> str:
    """The lm-eval metric name of a CharacterEval metric (lower case)."""
    return metric.lower()


def metric_means(records: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """Mean per metric over the finite scores of all records (NaN where none)."""
    sums = dict.fromkeys(METRIC_NAMES, 0.0)
    counts = dict.fromkeys(METRIC_NAMES, 0)
    for record in records:
        for name, value in record.items():
            if name in sums and isinstance(value, (int, float)) and math.isfinite(value):
                sums[name] += value
                counts[name] += 1
    return {n: sums[n] / counts[n] if counts[n] else math.nan for n in METRIC_NAMES}


def summarise(means: Mapping[str, float]) -> dict[str, float]:
    """Dimension averages and the overall mean from the metric means (NaN if one is missing)."""
    out = {dim: _mean([means[m] for m in metrics]) for dim, metrics in DIMENSIONS.items()}
    out[OVERALL] = _mean([means[m] for m in METRIC_NAMES])
    return out


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values and all(math.isfinite(v) for v in values) else math.nan


def aggregation(name: str):
    """The lm-eval aggregation of a dimension average / `overall` over per-example records."""

    def aggregate(records) -> float:
        return summarise(metric_means(records))[name]

    aggregate.__name__ = f"charactereval_{name}"
    return aggregate


def score_matrix(records: Sequence[Mapping[str, float]]) -> np.ndarray:
    """(examples x 12) scores, NaN where a metric is not assigned or not scored."""
    out = np.full((len(records), len(METRIC_NAMES)), np.nan)
    for i, record in enumerate(records):
        for j, name in enumerate(METRIC_NAMES):
            value = record.get(name)
            if isinstance(value, (int, float)) and math.isfinite(value):
                out[i, j] = value
    return out


def estimates(
    records: Sequence[Mapping[str, float]],
    *,
    level: float = 0.95,
    resamples: int = 2000,
    seed: int = 0,
):
    """{name: Estimate} for the 12 metrics, the three dimensions and `overall`, with percentile
    bootstrap intervals over examples; `n` is the number of scored pairs behind each value."""
    from rgen_harness.study.stats import Estimate, bootstrap

    matrix = score_matrix(records)
    present = ~np.isnan(matrix)
    values = np.where(present, matrix, 0.0)
    n_pairs = present.sum(axis=0)
    point = {
        **metric_means(records),
    }
    point.update(summarise(point))
    index = {name: j for j, name in enumerate(METRIC_NAMES)}

    def stat_for(name: str):
        cols = [index[name]] if name in index else None
        if name in DIMENSIONS:
            cols = [index[m] for m in DIMENSIONS[name]]
        elif name == OVERALL:
            cols = list(range(len(METRIC_NAMES)))

        def statistic(v, p):  # v, p: (k, n, 12) resampled examples
            with np.errstate(invalid="ignore", divide="ignore"):
                means = v.sum(axis=1) / p.sum(axis=1)
            return means[:, cols].mean(axis=1)

        return statistic

    out = {}
    for name in (*METRIC_NAMES, *SUMMARY_NAMES):
        if not math.isfinite(point[name]):
            out[name] = Estimate.empty()
            continue
        low, high = bootstrap(
            (values, present.astype(float)),
            stat_for(name),
            level=level,
            resamples=resamples,
            seed=seed,
        )
        cols = DIMENSIONS.get(name, METRIC_NAMES if name == OVERALL else (name,))
        out[name] = Estimate(point[name], low, high, int(sum(n_pairs[index[c]] for c in cols)))
    return out


def per_role(records: Sequence[Mapping[str, float]], roles: Sequence[str]) -> dict[str, dict]:
    """{role: {examples, pairs, the 12 metric means, dimension averages, overall}}."""
    by_role: dict[str, list] = {}
    for record, role in zip(records, roles, strict=True):
        by_role.setdefault(role, []).append(record)
    out = {}
    for role, group in sorted(by_role.items()):
        means = metric_means(group)
        pairs = int(np.isfinite(score_matrix(group)).sum())
        out[role] = {"examples": len(group), "pairs": pairs, **means, **summarise(means)}
    return out
