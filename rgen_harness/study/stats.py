"""Statistics of the report: bootstrap intervals, paired QR/QCR comparisons, length control.

All intervals are percentile bootstrap intervals from `numpy.random.default_rng(seed)`; each
statistic draws from its own generator seeded the same way, so adding a model or a column never
changes another number. Values that are not finite (NaN: not scored, skipped, failed) are left
out, and the count of values used is reported beside every estimate.

- Mean: bootstrap over replies.
- Paired difference QCR - QR: conversations present in both modes with finite values; the
  bootstrap resamples conversations (the pairs stay together).
- Win rate vs reference: share of replies whose reward exceeds the reference reply's reward for
  the same history (ties count one half, as in AlpacaEval); bootstrap over replies.
- Length-controlled difference: per conversation, d_reward = QCR - QR and
  d_len = log(1 + QCR chars) - log(1 + QR chars); OLS d_reward = a + b * d_len. The intercept `a`
  is the QCR - QR difference at equal reply length (the same estimate as a conversation
  fixed-effects regression of reward on a QCR indicator and log length); paired bootstrap.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

# The Methods section of the report: the same rules as above, written for a reader.
METHODS = (
    "Every interval is a percentile bootstrap interval. Each statistic draws its resamples from "
    "its own seeded random generator, so adding a model or a column never changes another "
    "number. Replies without a finite value (not scored, skipped or failed) are left out, and "
    "the number of values used is given beside each estimate.",
    "A mean reward is bootstrapped over replies.",
    "The paired difference QCR - QR uses the conversations that have a reward in both modes; "
    "the bootstrap resamples conversations, so each QR reply stays with the QCR reply to the "
    "same history. Win, tie and loss are the fractions of these conversations where the QCR "
    "reply's reward is higher, within the tie margin, or lower.",
    "The win rate against the reference is the fraction of replies whose reward is higher than "
    "the reward of the dataset's reference reply to the same history; a tie counts one half, "
    "as in AlpacaEval.",
    "The length-controlled difference regresses, per conversation, the reward difference "
    "QCR - QR on the difference of log(1 + reply characters). Its intercept is the QCR - QR "
    "difference at equal reply length (the same estimate as a regression of reward on a QCR "
    "indicator and log length with one intercept per conversation); its interval comes from "
    "the paired bootstrap.",
)

CHUNK = 256  # bootstrap resamples drawn at once (bounds memory for long studies)


@dataclass(frozen=True)
class Estimate:
    value: float
    low: float
    high: float
    n: int

    @classmethod
    def empty(cls, n: int = 0) -> Estimate:
        return cls(math.nan, math.nan, math.nan, n)

    def as_dict(self) -> dict[str, float | int]:
        return {"value": self.value, "low": self.low, "high": self.high, "n": self.n}


@dataclass(frozen=True)
class Paired:
    diff: Estimate
    wins: int
    ties: int
    losses: int

    @property
    def n(self) -> int:
        return self.diff.n

    def rate(self, count: int) -> float:
        return count / self.n if self.n else math.nan

    def as_dict(self) -> dict:
        return {
            "diff": self.diff.as_dict(),
            "wins": self.wins,
            "ties": self.ties,
            "losses": self.losses,
            "win_rate": self.rate(self.wins),
            "tie_rate": self.rate(self.ties),
            "loss_rate": self.rate(self.losses),
        }


@dataclass(frozen=True)
class LengthControlled:
    diff: Estimate  # intercept: QCR - QR at equal length
    slope: float  # reward change per unit of log length


def finite(values) -> np.ndarray:
    arr = np.asarray(values, dtype=float)
    return arr[np.isfinite(arr)]


def bootstrap(
    columns: tuple[np.ndarray, ...],
    statistic: Callable[..., np.ndarray],
    *,
    level: float,
    resamples: int,
    seed: int,
) -> tuple[float, float]:
    """Percentile interval of `statistic` over rows resampled with replacement.

    `statistic` takes the resampled columns, each of shape (k, n), and returns k values.
    """
    n = len(columns[0])
    if n < 2:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    out = np.empty(resamples)
    for start in range(0, resamples, CHUNK):
        k = min(CHUNK, resamples - start)
        idx = rng.integers(0, n, size=(k, n))
        out[start : start + k] = statistic(*(c[idx] for c in columns))
    out = out[np.isfinite(out)]
    if out.size == 0:
        return math.nan, math.nan
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(out, [alpha, 1.0 - alpha])
    return float(low), float(high)


def mean_ci(values, *, level: float, resamples: int, seed: int) -> Estimate:
    x = finite(values)
    if x.size == 0:
        return Estimate.empty()
    low, high = bootstrap(
        (x,), lambda s: s.mean(axis=1), level=level, resamples=resamples, seed=seed
    )
    return Estimate(float(x.mean()), low, high, int(x.size))


def pair(
    a: Mapping[str, float], b: Mapping[str, float]
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Keys with finite values in both mappings, in a's order, and the two value arrays."""
    keys = [k for k, v in a.items() if k in b and math.isfinite(v) and math.isfinite(b[k])]
    return keys, np.array([a[k] for k in keys], float), np.array([b[k] for k in keys], float)


def paired_difference(
    qr: Mapping[str, float],
    qcr: Mapping[str, float],
    *,
    level: float,
    resamples: int,
    seed: int,
    tie_margin: float = 0.0,
) -> Paired:
    keys, x, y = pair(qr, qcr)
    if not keys:
        return Paired(Estimate.empty(), 0, 0, 0)
    d = y - x
    low, high = bootstrap(
        (d,), lambda s: s.mean(axis=1), level=level, resamples=resamples, seed=seed
    )
    wins = int(np.sum(d > tie_margin))
    losses = int(np.sum(d < -tie_margin))
    return Paired(
        Estimate(float(d.mean()), low, high, d.size), wins, d.size - wins - losses, losses
    )


def _win_share(s: np.ndarray) -> np.ndarray:
    return (s > 0).mean(axis=-1) + 0.5 * (s == 0).mean(axis=-1)


def win_rate(
    reward: Mapping[str, float],
    reference: Mapping[str, float],
    *,
    level: float,
    resamples: int,
    seed: int,
) -> Estimate:
    keys, r, ref = pair(reward, reference)
    if not keys:
        return Estimate.empty()
    d = r - ref
    low, high = bootstrap((d,), _win_share, level=level, resamples=resamples, seed=seed)
    return Estimate(float(_win_share(d)), low, high, d.size)


def _ols(dx: np.ndarray, dy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise simple OLS dy = a + b dx; returns (a, b), NaN where dx has no spread."""
    xm = dx.mean(axis=-1, keepdims=True)
    ym = dy.mean(axis=-1, keepdims=True)
    sxx = ((dx - xm) ** 2).sum(axis=-1)
    sxy = ((dx - xm) * (dy - ym)).sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        b = np.where(sxx > 1e-12, sxy / np.where(sxx > 1e-12, sxx, 1.0), np.nan)
    a = ym[..., 0] - b * xm[..., 0]
    return a, b


def length_controlled(
    qr_reward: Mapping[str, float],
    qcr_reward: Mapping[str, float],
    qr_len: Mapping[str, float],
    qcr_len: Mapping[str, float],
    *,
    level: float,
    resamples: int,
    seed: int,
) -> LengthControlled:
    keys = [
        k
        for k in qr_reward
        if all(k in m and math.isfinite(m[k]) for m in (qr_reward, qcr_reward, qr_len, qcr_len))
    ]
    if len(keys) < 3:
        return LengthControlled(Estimate.empty(len(keys)), math.nan)
    dy = np.array([qcr_reward[k] - qr_reward[k] for k in keys])
    dx = np.array([math.log1p(qcr_len[k]) - math.log1p(qr_len[k]) for k in keys])
    a, b = _ols(dx, dy)
    if not math.isfinite(float(a)):
        return LengthControlled(Estimate.empty(len(keys)), math.nan)
    low, high = bootstrap(
        (dx, dy), lambda x, y: _ols(x, y)[0], level=level, resamples=resamples, seed=seed
    )
    return LengthControlled(Estimate(float(a), low, high, len(keys)), float(b))


def describe(values) -> dict[str, float]:
    """Mean, median, p90 and max of the finite values (NaN when there are none)."""
    x = finite(values)
    if x.size == 0:
        return {"n": 0, "mean": math.nan, "median": math.nan, "p90": math.nan, "max": math.nan}
    return {
        "n": int(x.size),
        "mean": float(x.mean()),
        "median": float(np.median(x)),
        "p90": float(np.quantile(x, 0.9)),
        "max": float(x.max()),
    }
