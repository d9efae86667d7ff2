"""Head-to-head figures for a pairwise judge over two systems' replies (A vs B).

Each pair is judged twice, A shown first ("original") and B shown first ("swapped"); verdicts
are mapped back to A/B terms (1 = A better, 2 = B better, 0 = tie, None = unreadable).

- Both-orders rule: a pair is a win for A only when both orders prefer A, a loss only when both
  prefer B, a tie otherwise (one order each way, or a tie in either). A pair with an unreadable
  verdict in either order is counted in `unreadable` and left out of W/T/L (never guessed); so
  are pairs the judge could not see (`too_long`: the prompt did not fit even with every earlier
  turn dropped), whose judgment failed (`failed`), or that were not judgeable (`skipped`).
- win_rate_adjusted = (wins + 0.5 ties) / n over the n judged pairs.
- consistency: share of judged pairs with the same verdict in both orders.
- first_pick_rate: share of the read non-tie verdicts (as the judge saw the pair) that pick
  the reply shown first; 0.5 means no position bias.
- Per source: W/T/L and win_rate_adjusted per `source` of the data; micro = over all pairs
  (the overall figure), macro = the mean of the sources' win_rate_adjusted.
- Reward agreement: the judge's outcome against the sign of reward_A - reward_B (equal rewards
  are a tie) on the judged pairs with both rewards. `reward_agreement`: equal outcomes, ties
  included; `reward_agreement_no_ties`: over the pairs where neither calls a tie.
- Close length: win_rate_adjusted over judged pairs whose reply lengths (characters) differ
  by less than `length_ratio` (longer / shorter < ratio).
- Intervals: percentile bootstrap over conversations (`rgen_harness.study.stats.bootstrap`),
  `level` and `resamples` as given, one seeded generator per statistic.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import numpy as np

NAN = math.nan
SCORE = {"win": 1.0, "tie": 0.5, "loss": 0.0}
COUNTS = {"win": "wins", "tie": "ties", "loss": "losses"}


def outcome(record: dict) -> str:
    """win / tie / loss, or why the pair has none: skipped, too_long, failed, unreadable."""
    if record["skipped"]:
        return "skipped"
    status = record["status"]
    if "skipped" in status:
        return "too_long"
    if "failed" in status:
        return "failed"
    first, second = record["verdicts"]
    if first is None or second is None:
        return "unreadable"
    if first == second == 1:
        return "win"
    if first == second == 2:
        return "loss"
    return "tie"


def reward_sign(record: dict) -> str | None:
    """win / tie / loss of A by the reward difference; None without both rewards."""
    a, b = record.get("reward_a"), record.get("reward_b")
    if a is None or b is None or not (math.isfinite(a) and math.isfinite(b)):
        return None
    return "win" if a > b else "loss" if a < b else "tie"


def close_length(record: dict, ratio: float) -> bool:
    a, b = record["chars_a"], record["chars_b"]
    return min(a, b) > 0 and max(a, b) / min(a, b) < ratio


def slug(source: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", source.lower()).strip("_") or "unknown"


def _interval(columns, statistic, *, level, resamples, seed) -> tuple[float, float]:
    from rgen_harness.study.stats import bootstrap

    return bootstrap(columns, statistic, level=level, resamples=resamples, seed=seed)


def _macro(scores: np.ndarray, codes: np.ndarray, n_sources: int) -> np.ndarray:
    """Row-wise mean over sources of each source's mean score (sources absent from a row
    are left out of that row's mean)."""
    means = []
    for s in range(n_sources):
        member = codes == s
        count = member.sum(axis=-1)
        with np.errstate(invalid="ignore", divide="ignore"):
            means.append(np.where(count > 0, (scores * member).sum(axis=-1) / count, np.nan))
    with np.errstate(invalid="ignore"):
        stacked = np.stack(means, axis=-1)
        present = np.isfinite(stacked)
        return np.where(present, stacked, 0).sum(axis=-1) / present.sum(axis=-1)


def summary(
    records: Sequence[dict],
    *,
    length_ratio: float = 1.25,
    level: float = 0.95,
    resamples: int = 2000,
    seed: int = 0,
) -> dict[str, float]:
    """Every figure of the comparison (see the module docstring), as a flat mapping."""
    outcomes = [outcome(r) for r in records]
    judged = [(r, o) for r, o in zip(records, outcomes, strict=True) if o in SCORE]
    out: dict[str, float] = {"pairs": float(len(records))}
    for name in ("skipped", "too_long", "failed", "unreadable"):
        out[name] = float(outcomes.count(name))
    out["unreadable_verdicts"] = float(sum(r["status"].count("unparsed") for r in records))
    out["history_differs"] = float(sum(bool(r.get("history_differs")) for r in records))
    dropped = [r["judge_dropped"] for r, _ in judged if r.get("judge_dropped") is not None]
    out["judge_dropped_turns"] = float(np.mean(dropped)) if dropped else NAN
    n = len(judged)
    out["n"] = float(n)
    for name, plural in COUNTS.items():
        count = sum(o == name for _, o in judged)
        out[plural] = float(count)
        out[f"{name}_rate"] = count / n if n else NAN
    scores = np.array([SCORE[o] for _, o in judged], float)
    ci = {"level": level, "resamples": resamples, "seed": seed}
    out["win_rate_adjusted"] = float(scores.mean()) if n else NAN
    low, high = _interval((scores,), lambda s: s.mean(axis=1), **ci) if n else (NAN, NAN)
    out["win_rate_adjusted_low"], out["win_rate_adjusted_high"] = low, high
    out["consistency"] = (
        float(np.mean([r["verdicts"][0] == r["verdicts"][1] for r, _ in judged])) if n else NAN
    )
    shown = [v for r in records if not r["skipped"] for v in r["shown"] if v in (1, 2)]
    out["first_pick_rate"] = float(np.mean([v == 1 for v in shown])) if shown else NAN

    sources = sorted({r["source"] for r, _ in judged})
    codes = np.array([sources.index(r["source"]) for r, _ in judged], int)
    for s, source in enumerate(sources):
        member = codes == s
        key = f"source_{slug(source)}"
        out[f"{key}_n"] = float(member.sum())
        mine = [o for (_, o), m in zip(judged, member, strict=True) if m]
        for name, plural in COUNTS.items():
            out[f"{key}_{plural}"] = float(mine.count(name))
        out[f"{key}_win_rate_adjusted"] = float(scores[member].mean())
    out["macro_win_rate_adjusted"] = float(_macro(scores, codes, len(sources))) if n else NAN
    low, high = (
        _interval((scores, codes), lambda s, c: _macro(s, c, len(sources)), **ci)
        if n
        else (NAN, NAN)
    )
    out["macro_win_rate_adjusted_low"], out["macro_win_rate_adjusted_high"] = low, high

    pairs = [(o, reward_sign(r)) for r, o in judged if reward_sign(r) is not None]
    agree = np.array([o == s for o, s in pairs], float)
    out["reward_agreement_n"] = float(len(pairs))
    out["reward_agreement"] = float(agree.mean()) if pairs else NAN
    low, high = _interval((agree,), lambda s: s.mean(axis=1), **ci) if pairs else (NAN, NAN)
    out["reward_agreement_low"], out["reward_agreement_high"] = low, high
    strict = [o == s for o, s in pairs if o != "tie" and s != "tie"]
    out["reward_agreement_no_ties_n"] = float(len(strict))
    out["reward_agreement_no_ties"] = float(np.mean(strict)) if strict else NAN
    reward_wins = [s for _, s in pairs]
    out["reward_win_rate_adjusted"] = (
        float(np.mean([SCORE[s] for s in reward_wins])) if reward_wins else NAN
    )

    close = np.array([close_length(r, length_ratio) for r, _ in judged], bool)
    out["close_length_n"] = float(close.sum())
    out["close_length_win_rate_adjusted"] = float(scores[close].mean()) if close.any() else NAN
    low, high = (
        _interval((scores[close],), lambda s: s.mean(axis=1), **ci) if close.any() else (NAN, NAN)
    )
    out["close_length_win_rate_adjusted_low"] = low
    out["close_length_win_rate_adjusted_high"] = high
    return out
