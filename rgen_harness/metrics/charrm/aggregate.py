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
- lm-eval's stderr of a dimension average or `overall`: the standard deviation of the same
  statistic over 1,000 bootstrap resamples of examples (seed 0). lm-eval computes a stderr only
  for its own aggregation functions, so the task reports it as a metric of its own,
  `<name>_stderr`, which lm-eval's results table shows in the stderr column of `<name>`.
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


STDERR_SUFFIX = "_stderr"
STDERR_RESAMPLES = 1000
STDERR_SEED = 0


def stderr_name(name: str) -> str:
    """The metric whose aggregation is the stderr of `name` (lm-eval's `<name>_stderr`)."""
    return name + STDERR_SUFFIX


def _columns(name: str) -> list[int]:
    index = {metric: j for j, metric in enumerate(METRIC_NAMES)}
    if name in DIMENSIONS:
        return [index[m] for m in DIMENSIONS[name]]
    if name == OVERALL:
        return list(range(len(METRIC_NAMES)))
    return [index[name]]


def bootstrap_stderr(
    records: Sequence[Mapping[str, float]],
    name: str,
    *,
    resamples: int = STDERR_RESAMPLES,
    seed: int = STDERR_SEED,
) -> float:
    """Standard deviation of `name` (a metric, dimension or `overall`) over bootstrap
    resamples of the examples; NaN with fewer than two examples or no finite resample."""
    n = len(records)
    if n < 2:
        return math.nan
    matrix = score_matrix(records)
    present = (~np.isnan(matrix)).astype(float)
    values = np.where(present > 0, matrix, 0.0)
    cols = _columns(name)
    rng = np.random.default_rng(seed)
    draws = []
    for start in range(0, resamples, 250):
        k = min(250, resamples - start)
        counts = rng.multinomial(n, np.full(n, 1.0 / n), size=k).astype(float)
        with np.errstate(invalid="ignore", divide="ignore"):
            means = (counts @ values) / (counts @ present)
        draws.append(means[:, cols].mean(axis=1))
    out = np.concatenate(draws)
    out = out[np.isfinite(out)]
    return float(np.std(out, ddof=1)) if out.size > 1 else math.nan


def stderr_aggregation(name: str):
    """The lm-eval aggregation of `<name>_stderr`: the bootstrap stderr of `name` ("N/A", as
    lm-eval writes it, where there is none)."""

    def aggregate(records) -> float | str:
        value = bootstrap_stderr(records, name)
        return value if math.isfinite(value) else "N/A"

    aggregate.__name__ = f"charactereval_{name}_stderr"
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
    weights = present.astype(float)
    n_pairs = present.sum(axis=0)
    point = metric_means(records)
    point.update(summarise(point))
    index = {name: j for j, name in enumerate(METRIC_NAMES)}
    n = len(records)

    def stat_for(name: str):
        cols = _columns(name)

        def statistic(drawn):  # (k, n) example indices of k resamples
            k = drawn.shape[0]
            flat = (np.arange(k)[:, None] * n + drawn).ravel()
            counts = np.bincount(flat, minlength=k * n).reshape(k, n).astype(float)
            with np.errstate(invalid="ignore", divide="ignore"):
                means = (counts @ values) / (counts @ weights)
            return means[:, cols].mean(axis=1)

        return statistic

    out = {}
    for name in (*METRIC_NAMES, *SUMMARY_NAMES):
        if not math.isfinite(point[name]):
            out[name] = Estimate.empty()
            continue
        low, high = bootstrap(
            (np.arange(n),), stat_for(name), level=level, resamples=resamples, seed=seed
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
