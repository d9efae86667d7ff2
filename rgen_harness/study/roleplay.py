"""The report's CharacterEval figures, recomputed from the logged `charactereval` samples.

Each logged sample holds the doc (its role) and the reply's ChatResult, whose `scores` are the
CharRM scores (metric -> 1-5) of the pairs id2metric assigns it. From them: the 12 metric means,
the three dimension averages and `overall` with percentile bootstrap intervals over examples
(rgen_harness.metrics.charrm.aggregate.estimates), the same figures per role (`per_role`), and
every pair's score for the histogram. Without a samples file the results JSON's values are shown
without intervals; a samples file that disagrees with the results JSON is listed as a problem.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rgen_harness.study.collect import ROLEPLAY_TASK, ModelResults, TaskResult, _num, chat_result

SEED_OFFSET = 300  # bootstrap seed = the report's seed + this (no other statistic shares it)


@dataclass
class RoleplaySamples:
    records: list[dict[str, float]] = field(default_factory=list)  # per example: metric -> score
    roles: list[str] = field(default_factory=list)
    statuses: list[str] = field(default_factory=list)  # ok | skipped | failed | unknown

    def pair_scores(self) -> list[float]:
        return [v for record in self.records for v in record.values()]


_READ: dict[tuple[str, int, int], RoleplaySamples] = {}


def read_roleplay(path: Path, problems: list[str]) -> RoleplaySamples:
    """Roles, statuses and CharRM scores of a charactereval samples file; an unreadable line
    is listed in `problems` (file:line) and left out. Read once per file version."""
    from rgen_harness.metrics.charrm.aggregate import METRIC_NAMES

    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key in _READ:
        return _READ[key]
    out = RoleplaySamples()
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            try:
                data = json.loads(raw.decode("utf-8"))
                if not isinstance(data, dict) or not isinstance(data.get("doc"), dict):
                    raise ValueError("not a charactereval sample (no doc)")
                chat = chat_result(data) or {}
                scores = chat.get("scores") if isinstance(chat.get("scores"), dict) else {}
                record = {
                    m: float(v)
                    for m, v in scores.items()
                    if m in METRIC_NAMES and math.isfinite(_num(v))
                }
            except (TypeError, ValueError, AttributeError) as e:
                problems.append(
                    f"{path}:{lineno}: unreadable sample ({type(e).__name__}: {e}); left out "
                    "(the file is damaged: rerun that model to rewrite it)"
                )
                continue
            out.records.append(record)
            out.roles.append(str(data["doc"].get("role", "")))
            out.statuses.append(str(chat.get("status", "unknown")))
    _READ[key] = out
    return out


def samples_of(model: ModelResults, problems: list[str]) -> RoleplaySamples | None:
    result = model.tasks.get(ROLEPLAY_TASK)
    if result is None or result.samples_file is None:
        return None
    return read_roleplay(result.samples_file, problems)


def summarise_roleplay(
    model: ModelResults, *, level: float, resamples: int, seed: int, problems: list[str]
) -> tuple[dict[str, Any] | None, dict[str, dict] | None]:
    """(the model's figures: counts and one estimate per metric, dimension and `overall`;
    the per-role table), or (None, None) when the model has no charactereval results."""
    from rgen_harness.metrics.charrm import aggregate as agg

    result = model.tasks.get(ROLEPLAY_TASK)
    if result is None:
        return None, None
    names = (*agg.METRIC_NAMES, *agg.SUMMARY_NAMES)
    samples = samples_of(model, problems)
    if samples is None:
        row: dict[str, Any] = {"examples": int(_num(result.metrics.get("sample_len")) or 0)}
        for key in ("skipped", "failed", "charrm_pairs"):
            row[key] = _count(result.metrics.get(f"{key},none"))
        row["pairs"] = row.pop("charrm_pairs")
        for name in names:
            value = _num(result.metrics.get(f"{agg.metric_key(name)},none"))
            row[agg.metric_key(name)] = {"value": value, "low": math.nan, "high": math.nan, "n": 0}
        return row, None
    estimates = agg.estimates(
        samples.records, level=level, resamples=resamples, seed=seed + SEED_OFFSET
    )
    row = {
        "examples": len(samples.records),
        "pairs": sum(len(r) for r in samples.records),
        "skipped": samples.statuses.count("skipped"),
        "failed": samples.statuses.count("failed"),
    }
    for name in names:
        row[agg.metric_key(name)] = estimates[name].as_dict()
    _check_against_results(model.name, result, row, problems)
    return row, agg.per_role(samples.records, samples.roles)


def _count(value: Any) -> int | None:
    number = _num(value)
    return int(number) if math.isfinite(number) else None


def _check_against_results(name: str, result: TaskResult, row: dict, problems: list[str]) -> None:
    """The samples' figures must be lm-eval's own (same replies, same scores)."""
    from rgen_harness.metrics.charrm import aggregate as agg

    for metric in ("overall", *(agg.metric_key(m) for m in agg.METRIC_NAMES)):
        recorded = _num(result.metrics.get(f"{metric},none"))
        mine = row[metric]["value"]
        if math.isfinite(recorded) and not math.isclose(mine, recorded, rel_tol=1e-6, abs_tol=1e-9):
            problems.append(
                f"{name}/{ROLEPLAY_TASK}: {metric} from samples {mine:.6g} != results JSON "
                f"{recorded:.6g} ({result.samples_file})"
            )
