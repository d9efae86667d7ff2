"""Per-model numbers of the report, computed from the logged samples (and results JSON).

One `summarise_model` call gives a nested dict per model: reward per mode with bootstrap
intervals, the paired QCR - QR comparison, win rates against the reference reply, the
length-controlled difference, reply lengths, counts of truncated / skipped / failed replies,
reference-based metrics, throughput, benchmark scores and the CharacterEval figures
(rgen_harness.study.roleplay). `flatten` turns it into one CSV row.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from rgen_harness.study import stats
from rgen_harness.study.collect import (
    DEITA_MODES,
    ROLEPLAY_TASK,
    ModelResults,
    SampleRow,
    TaskResult,
)
from rgen_harness.study.roleplay import summarise_roleplay

MODES = ("qr", "qcr")
REFERENCE_METRICS = ("rouge1_f", "rouge2_f", "rougeL_f", "similarity")
PREFERRED_METRICS = (
    "acc,none",
    "exact_match,strict-match",
    "exact_match,flexible-extract",
    "exact_match,none",
    "acc_norm,none",
)
_NOT_METRICS = ("alias", "name", "sample_len", " ")


@dataclass(frozen=True)
class ReportSettings:
    level: float = 0.95
    resamples: int = 10000
    seed: int = 0
    tie_margin: float = 0.0

    @property
    def percent(self) -> str:
        return f"{self.level * 100:g}%"


def by_conversation(samples: list[SampleRow], key: str) -> dict[str, float]:
    """Values keyed by conversation id; a repeated id gets '#2', '#3'... in order."""
    out: dict[str, float] = {}
    seen: dict[str, int] = {}
    for row in samples:
        seen[row.conv_id] = seen.get(row.conv_id, 0) + 1
        k = row.conv_id if seen[row.conv_id] == 1 else f"{row.conv_id}#{seen[row.conv_id]}"
        out[k] = row.get(key)
    return out


def _column(samples: list[SampleRow], key: str) -> np.ndarray:
    return np.array([row.get(key) for row in samples], dtype=float)


def _mode_summary(
    result: TaskResult, s: ReportSettings, seed: int, max_gen_toks: int | None = None
) -> dict[str, Any]:
    metrics = result.metrics
    out: dict[str, Any] = {"task": result.task, "results_file": str(result.results_file)}
    out["max_gen_toks"] = result.max_gen_toks or max_gen_toks
    samples = result.samples
    if samples is None:
        out["n"] = int(metrics.get("sample_len") or 0)
        for key in ("skipped", "failed", "special_text_rows"):
            value = metrics.get(f"{key},none")
            out[key] = int(value) if isinstance(value, (int, float)) else None
        out["truncated"] = None
        out["reward"] = stats.Estimate.empty().as_dict()
        out["win_vs_reference"] = stats.Estimate.empty().as_dict()
        return out
    out["n"] = len(samples)
    kw = {"level": s.level, "resamples": s.resamples}
    out["reward"] = stats.mean_ci(_column(samples, "reward"), seed=seed, **kw).as_dict()
    out["reference_reward"] = stats.describe(_column(samples, "reference_reward"))
    out["reward_failed"] = int(np.nansum(_column(samples, "reward_failed")))
    out["win_vs_reference"] = stats.win_rate(
        by_conversation(samples, "reward"),
        by_conversation(samples, "reference_reward"),
        seed=seed + 1,
        **kw,
    ).as_dict()
    for key in ("reply_chars", "reply_tokens", "criteria_chars"):
        out[key] = stats.describe(_column(samples, key))
    tokens = _column(samples, "reply_tokens")
    limit = out["max_gen_toks"]
    # A reply holds at most max_gen_toks generated tokens: a larger count is the reply's text
    # encoded again by the tokenizer, not the number of tokens the model generated.
    out["reply_tokens_over_limit"] = (
        int(np.sum(tokens[np.isfinite(tokens)] > limit)) if limit else None
    )
    dropped = _column(samples, "dropped_turns")
    out["truncated"] = int(np.sum(dropped[np.isfinite(dropped)] > 0))
    out["skipped"] = sum(1 for r in samples if r.status == "skipped" or r.get("skipped") == 1)
    out["failed"] = sum(1 for r in samples if r.status == "failed" or r.get("failed") == 1)
    # rows whose contents hold special-token strings (encoded as text unless special_text=control)
    out["special_text_rows"] = int(np.nansum(_column(samples, "special_text_rows")))
    for key in REFERENCE_METRICS:
        out[key] = stats.describe(_column(samples, key))["mean"]
    out["gen_tokens"] = float(np.nansum([r.gen_tokens for r in samples]))
    return out


def _throughput(model: ModelResults) -> dict[str, Any]:
    """Wall time of the deita run and rates over it; plus any rate the backend recorded."""
    results = [model.tasks[t] for t in DEITA_MODES if t in model.tasks]
    out: dict[str, Any] = {"wall_s": math.nan, "samples_per_s": math.nan}
    out["gen_tokens_per_s"] = math.nan
    if not results:
        return out
    walls = {str(r.results_file): r.wall_s for r in results}
    wall = sum(w for w in walls.values() if math.isfinite(w)) or math.nan
    n = sum(len(r.samples) if r.samples is not None else 0 for r in results)
    toks = [row.gen_tokens for res in results if res.samples for row in res.samples]
    out["wall_s"] = wall
    if math.isfinite(wall) and wall > 0:
        out["samples_per_s"] = n / wall
        if toks and all(math.isfinite(t) for t in toks):
            out["gen_tokens_per_s"] = float(sum(toks)) / wall
    recorded = {}
    for r in results:
        config = r.run_info.get("config")
        thr = config.get("throughput") if isinstance(config, dict) else None
        if isinstance(thr, dict):  # the lmdeploy backend's own figures (generation only)
            part = thr.get("generate_chat_rounds") or thr.get("total") or {}
            for key in ("samples_per_s", "generated_tokens_per_s", "wall_s"):
                if isinstance(part.get(key), (int, float)):
                    recorded[f"engine_{key}"] = float(part[key])
            continue
        for source in (r.metrics, r.run_info):
            for key, value in source.items():
                name = key.split(",")[0]
                if "stderr" in name or not isinstance(value, (int, float)):
                    continue
                if "per_s" in name or "throughput" in name or "per_second" in name:
                    recorded[f"{r.task}:{name}" if source is r.metrics else name] = float(value)
    out["recorded"] = recorded
    return out


def pick_metric(metrics: dict[str, Any], wanted: str | None) -> tuple[str | None, float]:
    if wanted:
        key = wanted if "," in wanted else f"{wanted},none"
        value = metrics.get(key)
        return key, float(value) if isinstance(value, (int, float)) else math.nan
    for key in PREFERRED_METRICS:
        if isinstance(metrics.get(key), (int, float)):
            return key, float(metrics[key])
    for key, value in metrics.items():
        if "_stderr" in key or key in _NOT_METRICS or isinstance(value, bool):
            continue
        if isinstance(value, (int, float)):
            return key, float(value)
    return None, math.nan


def benchmark_scores(model: ModelResults, specs: list[dict] | None) -> dict[str, dict]:
    """label -> {task, metric, value}; from the study's benchmark list, or every other task."""
    out: dict[str, dict] = {}
    if specs is not None:
        for spec in specs:
            label = spec.get("label") or spec["task"]
            result = model.tasks.get(spec["task"])
            if result is None:
                out[label] = {"task": spec["task"], "metric": spec.get("metric"), "value": math.nan}
                continue
            metric, value = pick_metric(result.metrics, spec.get("metric"))
            out[label] = {"task": spec["task"], "metric": metric, "value": value}
        return out
    for task, result in sorted(model.tasks.items()):
        if task in DEITA_MODES or task in ("deita_pairwise", ROLEPLAY_TASK):  # own columns
            continue
        subtasks = {t for subs in result.run_info.get("group_subtasks", {}).values() for t in subs}
        if task in subtasks:
            continue
        metric, value = pick_metric(result.metrics, None)
        out[task] = {"task": task, "metric": metric, "value": value}
    return out


def same_history(qr: list[SampleRow], qcr: list[SampleRow]) -> dict[str, Any]:
    """Conversations generated in both modes, and those whose QR and QCR prompts kept the same
    turns (equal `dropped_turns`); the ids of the others."""
    a, b = by_conversation(qr, "dropped_turns"), by_conversation(qcr, "dropped_turns")
    both = [k for k in a if k in b and math.isfinite(a[k]) and math.isfinite(b[k])]
    differ = [k for k in both if a[k] != b[k]]
    return {"conversations": len(both), "same": len(both) - len(differ), "differ": differ}


def summarise_model(
    model: ModelResults,
    settings: ReportSettings,
    benchmarks: list[dict] | None,
    max_gen_toks: int | None = None,
    problems: list[str] | None = None,
) -> dict[str, Any]:
    """`problems`: where unreadable or inconsistent charactereval samples are listed."""
    s = settings
    row: dict[str, Any] = {
        "model": model.name,
        "lora": model.lora,
        "model_type": model.model_type,
        "pretrained": model.model_args.get("pretrained"),
    }
    results = {mode: model.mode(mode) for mode in MODES}
    for i, mode in enumerate(MODES):
        r = results[mode]
        row[mode] = _mode_summary(r, s, s.seed + 10 * i, max_gen_toks) if r is not None else None
    qr, qcr = results["qr"], results["qcr"]
    if qr is not None and qcr is not None and qr.samples is not None and qcr.samples is not None:
        kw = {"level": s.level, "resamples": s.resamples}
        r_qr, r_qcr = by_conversation(qr.samples, "reward"), by_conversation(qcr.samples, "reward")
        paired = stats.paired_difference(
            r_qr, r_qcr, seed=s.seed + 100, tie_margin=s.tie_margin, **kw
        )
        lc = stats.length_controlled(
            r_qr,
            r_qcr,
            by_conversation(qr.samples, "reply_chars"),
            by_conversation(qcr.samples, "reply_chars"),
            seed=s.seed + 200,
            **kw,
        )
        row["paired"] = paired.as_dict()
        row["length_controlled"] = {"diff": lc.diff.as_dict(), "slope_per_log_char": lc.slope}
        row["conversations_in_both"] = len(
            set(by_conversation(qr.samples, "reply_chars"))
            & set(by_conversation(qcr.samples, "reply_chars"))
        )
        row["same_history"] = same_history(qr.samples, qcr.samples)
    else:
        row["paired"] = stats.Paired(stats.Estimate.empty(), 0, 0, 0).as_dict()
        row["length_controlled"] = {
            "diff": stats.Estimate.empty().as_dict(),
            "slope_per_log_char": math.nan,
        }
        row["conversations_in_both"] = 0
        row["same_history"] = {"conversations": 0, "same": 0, "differ": []}
    row["throughput"] = _throughput(model)
    row["benchmarks"] = benchmark_scores(model, benchmarks)
    from rgen_harness.study.judge_block import judge_row

    row["judge"] = judge_row(model)
    row["charactereval"], row["charactereval_roles"] = summarise_roleplay(
        model,
        level=s.level,
        resamples=s.resamples,
        seed=s.seed,
        problems=problems if problems is not None else [],
    )
    return row


def consistency_problems(model: ModelResults) -> list[str]:
    """Per-sample means that disagree with lm-eval's own aggregate of the same metric."""
    problems = []
    for task, result in model.tasks.items():
        if result.samples is None:
            continue
        for key in ("reward", "reply_chars", "reply_tokens", "dropped_turns"):
            agg = result.metrics.get(f"{key},none")
            column = _column(result.samples, key)
            if not isinstance(agg, (int, float)) or not np.isfinite(column).any():
                continue
            mine = float(np.nanmean(column))
            if math.isfinite(agg) and not math.isclose(mine, agg, rel_tol=1e-6, abs_tol=1e-9):
                problems.append(
                    f"{model.name}/{task}: mean {key} from samples {mine:.6g} != results JSON "
                    f"{agg:.6g}"
                )
    return problems


def flatten(row: dict[str, Any]) -> dict[str, Any]:
    """One CSV row: nested keys joined with '_'."""
    out: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}_{k}" if prefix else str(k), v)
        elif value is None:
            out[prefix] = ""
        else:
            out[prefix] = value

    walk("", {k: v for k, v in row.items() if k not in ("benchmarks", "charactereval_roles")})
    out.pop("same_history_differ", None)
    for label, b in row.get("benchmarks", {}).items():
        out[f"bench_{label}"] = b["value"]
    for key in [k for k in out if k.endswith("results_file") or k.endswith("_task")]:
        del out[key]
    return out
