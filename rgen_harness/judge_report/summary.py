"""One leaderboard row per (judge, test set): the measures with intervals, the counts, and a
check that the values recomputed from the samples equal lm-eval's (a difference means the
samples file is not the results file's, or is damaged: listed under Problems)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from rgen_harness.data.judge.sources import SETS
from rgen_harness.judge_report.collect import JudgeRuns, SetRun
from rgen_harness.judge_report.groups import autoj_group_table
from rgen_harness.judge_report.measures import AUTHORS, SINGLE_ORDER, estimate, measures_for
from rgen_harness.study.stats import Estimate

COUNTS = ("parse_failures", "failed", "skipped")
HEADLINE = (
    "PandaLM: accuracy as PandaLM computes it (given order, annotators' majority, an unreadable "
    "verdict read as a tie); Auto-J: agreement in both orders (single order for one-order "
    "judges such as reward models, as Auto-J scores them); LLMBar: Acc; MT-Bench: agreement "
    "with the experts without ties, per turn"
)
TOLERANCE = 1e-9


@dataclass(frozen=True)
class Settings:
    level: float = 0.95
    resamples: int = 10000
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.5 <= self.level < 1:
            raise ValueError(f"interval level {self.level} must be in [0.5, 1), e.g. 0.95")
        if self.resamples < 1:
            raise ValueError(f"resamples={self.resamples} must be >= 1, e.g. 10000")

    @property
    def percent(self) -> str:
        return f"{100 * self.level:g}%"


def _num(value: Any) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return math.nan


def _from_results(run: SetRun, name: str) -> float:
    return _num(run.metrics.get(f"{name},none"))


def _labels(set_name: str) -> tuple[int, ...]:
    return (0, 1, 2) if SETS[set_name].has_ties else (1, 2)


def summarise_set(runs: JudgeRuns, run: SetRun, s: Settings, problems: list[str]) -> dict[str, Any]:
    judge = runs.judge
    spec = SETS[run.set_name]
    measures: dict[str, dict] = {}
    for measure in measures_for(spec.kind):
        reported = _from_results(run, measure.name)
        # A results file from before a measure existed has no value to compare with.
        compare = f"{measure.name},none" in run.metrics
        if run.records is None:
            est = Estimate(reported, math.nan, math.nan, 0)
        else:
            est = estimate(
                measure,
                run.records,
                _labels(run.set_name),
                level=s.level,
                resamples=s.resamples,
                seed=s.seed,
            )
            both = math.isfinite(est.value) and math.isfinite(reported)
            if compare and (
                (both and abs(est.value - reported) > TOLERANCE)
                or (math.isfinite(est.value) != math.isfinite(reported))
            ):
                problems.append(
                    f"{run.samples_file}: {measure.name} from the samples is {est.value:.6g} but "
                    f"{run.results_file.name} says {reported:.6g} (the samples file is not that "
                    "run's, or is damaged); the table shows the samples' value: rerun that "
                    "judge's lm_eval command"
                )
        measures[measure.name] = est.as_dict()
    counts = {}
    for name in COUNTS:
        value = _from_results(run, name)
        if not math.isfinite(value) and run.records is not None and name == "skipped":
            value = float(sum(r["skipped"] for r in run.records))
        counts[name] = value
    if run.records is not None:
        pairs: float = float(sum(1 for r in run.records if not r["skipped"]))
    elif run.n_samples is not None and math.isfinite(counts["skipped"]):
        pairs = run.n_samples - counts["skipped"]
    else:
        pairs = math.nan
    return {
        "judge": judge.label,
        "name": judge.name,
        "kind": judge.kind,
        "lora": judge.lora,
        "prompt": judge.prompt,
        "tie_margin": judge.tie_margin,
        "lm_eval_model": judge.lm_eval_model,
        "set": run.set_name,
        "task": run.task,
        "pairs": pairs,
        "limit": run.limit,
        "measures": measures,
        "groups": autoj_group_table(run.records) if spec.kind == "autoj" else [],
        **counts,
        "results_file": str(run.results_file),
        "samples_file": str(run.samples_file) if run.samples_file else None,
    }


def headline(row: dict) -> list[tuple[str, dict]]:
    """(column, estimate) of a set row in the leaderboard: the figure the set's authors report,
    computed their way (see HEADLINE)."""
    kind = SETS[row["set"]].kind
    measures = row["measures"]
    if kind == "mtbench":
        return [(f"{row['set']} t{i}", measures[m.name]) for i, m in enumerate(AUTHORS[kind], 1)]
    lead = AUTHORS[kind][0].name
    if kind == "autoj" and not math.isfinite(measures[lead]["value"]):
        single = measures[SINGLE_ORDER.name]
        if math.isfinite(single["value"]):
            return [(f"{row['set']} (single order)", single)]
    return [(row["set"], measures[lead])]


def summarise(judges: list[JudgeRuns], s: Settings, problems: list[str]) -> list[dict]:
    return [summarise_set(runs, run, s, problems) for runs in judges for run in runs.sets.values()]
