"""Scoring logged charactereval samples again (`rgen-harness score`), as the task does inline.

A samples line holds the doc (role, profile text, context, assigned metrics) and the ChatResult
of its reply, so nothing else is needed: the pairs are built and scored exactly as in
`CharacterEvalTask.apply_filters`, the per-doc figures by the task's own `doc_metrics`, and the
results aggregated with the task's aggregations (the dimension averages included).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from rgen_harness.chat.protocol import ChatResult
from rgen_harness.metrics.reward.samples import FileSummary
from rgen_harness.metrics.scorers import MetricSpec


def is_charactereval(task: str) -> bool:
    return task == "charactereval" or task.startswith("charactereval_")


class CharacterEvalSummary(FileSummary):
    """Per-metric values like FileSummary, plus the per-example records the dimension
    averages aggregate (lm-eval's results format)."""

    def __init__(self, task: str, metrics, records: list[dict], roles: list[str]) -> None:
        super().__init__(task, metrics)
        self.records = records
        self.roles = roles

    def aggregate(self, *, bootstrap_iters: int) -> dict[str, float | str]:
        from rgen_harness.metrics.charrm import aggregate as agg
        from rgen_harness.metrics.reward.samples import aggregate as base

        plain = FileSummary(
            self.task, tuple(m for m in self.metrics if m.name not in agg.SUMMARY_NAMES)
        )
        plain.values = self.values
        out = base(plain, bootstrap_iters=bootstrap_iters)
        for name, value in agg.summarise(agg.metric_means(self.records)).items():
            out[f"{name},none"] = value
            out[f"{name}_stderr,none"] = agg.stderr_aggregation(name)(self.records)
        return out


def rescore_file(src: Path, dst: Path, *, task: str, metadata: dict) -> CharacterEvalSummary:
    from rgen_harness.metrics.charrm import aggregate as agg
    from rgen_harness.metrics.charrm.scorer import from_metadata
    from rgen_harness.tasks.charactereval import (
        BASE_METRICS,
        SCORE_COUNTS,
        doc_metrics,
        score_results,
    )

    samples, results = [], []
    with open(src, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                sample = json.loads(line)
                result = ChatResult.from_json(sample["filtered_resps"][0])
                sample["doc"]["metrics"]  # noqa: B018  (a charactereval doc)
            except (json.JSONDecodeError, KeyError, IndexError, TypeError, ValueError) as e:
                raise ValueError(
                    f"{src}:{number}: not a charactereval sample from lm_eval --log_samples "
                    f"({type(e).__name__}: {e}); rescore the samples files lm_eval wrote."
                ) from None
            result.scores = {}
            samples.append(sample)
            results.append(result)
    scorer = from_metadata(metadata)
    score_results(scorer, [s["doc"] for s in samples], results)
    table = {**BASE_METRICS, **SCORE_COUNTS}
    table.update({agg.metric_key(m): ("mean", True) for m in agg.METRIC_NAMES})
    specs = tuple(MetricSpec(name, a, h) for name, (a, h) in table.items())
    specs += tuple(MetricSpec(name, "mean", True) for name in agg.SUMMARY_NAMES)
    records, roles = [], []
    summary = CharacterEvalSummary(task, specs, records, roles)
    summary.config = {"charrm": {k: str(v) for k, v in vars(scorer.options).items()}}
    dst.parent.mkdir(parents=True, exist_ok=True)
    with open(dst, "w", encoding="utf-8") as out:
        for sample, result in zip(samples, results, strict=True):
            sample["filtered_resps"][0] = result.to_json()
            figures = doc_metrics(sample["doc"], result, scored=True)
            record = figures.pop(agg.OVERALL, {})
            for name in agg.SUMMARY_NAMES:
                figures.pop(name, None)
                figures.pop(agg.stderr_name(name), None)
            records.append(record)
            roles.append(sample["doc"].get("role", ""))
            for name in table:
                value = figures.get(name, math.nan)
                summary.values.setdefault(name, []).append(value)
                sample[name] = None if math.isnan(value) else value
            for name in agg.SUMMARY_NAMES:
                sample[name] = record
            sample["metrics"] = list(dict.fromkeys([*sample.get("metrics", []), *figures]))
            out.write(json.dumps(sample, ensure_ascii=False, allow_nan=False) + "\n")
    return summary
