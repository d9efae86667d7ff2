"""The report: a Markdown leaderboard, CSV, JSON and PNG plots from a study or lm-eval folder.

Every number is computed from the logged samples (the results JSON only fills in what samples
cannot give: benchmark scores, wall time, counts when samples are missing). Anything missing is
shown as n/a and listed under "Problems", never a crash.
"""

from __future__ import annotations

import csv
import json
import math
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rgen_harness.file_writes import replacing, write_text
from rgen_harness.redact import mask_data, mask_text
from rgen_harness.study import plots
from rgen_harness.study.collect import Collection, collect
from rgen_harness.study.stats import __doc__ as STATS_METHODS
from rgen_harness.study.summary import (
    MODES,
    REFERENCE_METRICS,
    ReportSettings,
    consistency_problems,
    flatten,
    summarise_model,
)

NA = "n/a"


@dataclass
class ReportFiles:
    markdown: Path
    csv: Path
    json: Path
    plots: list[Path]
    rows: list[dict]
    problems: list[str]  # unreadable or inconsistent inputs (also under Problems in the report)


def settings_from_study(study: dict | None, **overrides) -> ReportSettings:
    spec = dict((study or {}).get("report") or {})
    values = {
        "level": spec.get("interval", 0.95),
        "resamples": spec.get("resamples", 10000),
        "seed": spec.get("seed", 0),
        "tie_margin": spec.get("tie_margin", 0.0),
    }
    values.update({k: v for k, v in overrides.items() if v is not None})
    return ReportSettings(**values)


def build_report(
    root: str | Path,
    out_dir: str | Path | None = None,
    judge_results: list[str | Path] | None = None,
    **overrides,
) -> ReportFiles:
    """`judge_results`: lm-eval folders of judge runs; the reward model's agreement with human
    labels is shown next to the leaderboard (see rgen_harness.study.judge_link)."""
    collection = collect(root)
    study = collection.study
    settings = settings_from_study(study, **overrides)
    if out_dir is None:
        name = (study or {}).get("name") or Path(root).resolve().name
        out_dir = (study or {}).get("report_dir") or f"results/{name}"
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    benchmarks = list(study.get("benchmarks") or []) if study is not None else None
    rows = [summarise_model(m, settings, benchmarks) for m in collection.models]
    for m in collection.models:
        collection.problems.extend(consistency_problems(m))
    drawn = plots.draw_all(rows, collection.models, out, settings)
    judge_section: list[str] = []
    judge_rows: list[dict] | None = None
    if judge_results:
        from rgen_harness.study import judge_link

        dirs = [Path(d) for d in judge_results]
        judge_model, judge_rows = judge_link.reward_judge_rows(
            dirs, study, settings, collection.problems
        )
        judge_section = judge_link.markdown(judge_model, judge_rows, dirs, settings.percent)
    payload = {
        "study": study,
        "subset": _subset_summary(collection.subset),
        "interval_level": settings.level,
        "bootstrap_resamples": settings.resamples,
        "bootstrap_seed": settings.seed,
        "tie_margin": settings.tie_margin,
        "methods": STATS_METHODS,
        "environment": _environment(collection),
        "models": rows,
        "reward_model_vs_humans": judge_rows,
        "problems": collection.problems,
    }
    json_path = out / "leaderboard.json"
    payload = mask_data(_jsonable(payload))
    write_text(json_path, json.dumps(payload, indent=2, ensure_ascii=False) + "\n")
    csv_path = out / "leaderboard.csv"
    _write_csv(csv_path, [mask_data(flatten(r)) for r in rows])
    md_path = out / "leaderboard.md"
    write_text(md_path, mask_text(_markdown(collection, rows, settings, drawn, out, judge_section)))
    return ReportFiles(md_path, csv_path, json_path, drawn, rows, collection.problems)


# -- formatting ---------------------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def _write_csv(path: Path, rows: list[dict]) -> None:
    columns: list[str] = []
    for r in rows:
        columns += [k for k in r if k not in columns]
    with replacing(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        for r in rows:
            writer.writerow({k: _csv_value(r.get(k, "")) for k in columns})


def _csv_value(v: Any) -> Any:
    if isinstance(v, float):
        return "" if not math.isfinite(v) else f"{v:.6g}"
    return v


def _f(x: Any, digits: int = 3) -> str:
    if not isinstance(x, (int, float)) or isinstance(x, bool) or not math.isfinite(x):
        return NA
    return f"{x:.{digits}f}"


def _est(e: dict | None, digits: int = 3) -> str:
    if not e or not isinstance(e.get("value"), (int, float)) or not math.isfinite(e["value"]):
        return NA
    if math.isfinite(e.get("low", math.nan)) and math.isfinite(e.get("high", math.nan)):
        return f"{e['value']:.{digits}f} [{e['low']:.{digits}f}, {e['high']:.{digits}f}]"
    return f"{e['value']:.{digits}f}"


def _pct(x: Any) -> str:
    return NA if not isinstance(x, (int, float)) or not math.isfinite(x) else f"{100 * x:.0f}%"


def _table(header: list[str], lines: list[list[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c).replace("|", "\\|") for c in line) + " |" for line in lines]
    return "\n".join(out)


def _model_label(row: dict) -> str:
    return row["model"]


def _mode(row: dict, mode: str) -> dict:
    return row.get(mode) or {}


def _count(row: dict, mode: str, key: str) -> str:
    value = _mode(row, mode).get(key)
    return NA if value is None else str(value)


def _environment(collection: Collection) -> dict[str, Any]:
    """Versions and hardware from the results JSON files (first one that has them)."""
    env: dict[str, Any] = {}
    for m in collection.models:
        for r in m.tasks.values():
            info = r.run_info
            for key in ("lm_eval_version", "transformers_version"):
                if info.get(key) and key not in env:
                    env[key] = info[key]
            text = info.get("pretty_env_info") or ""
            if text and "hardware" not in env:
                env["hardware"] = _hardware(text)
    return env


def _hardware(text: str) -> str:
    def field(name: str) -> str | None:
        m = re.search(rf"^{re.escape(name)}:\s*(.+)$", text, flags=re.MULTILINE)
        return m.group(1).strip() if m else None

    gpu = field("GPU models and configuration")
    cpu = field("Model name")
    cores = field("CPU(s)")
    parts = []
    if gpu and "could not collect" not in gpu.lower():
        parts.append(f"GPU: {gpu}")
    else:
        parts.append("no GPU")
    if cpu:
        parts.append(f"CPU: {cpu}" + (f" ({cores} cores)" if cores else ""))
    return "; ".join(parts)


def _subset_summary(subset: dict | None) -> dict | None:
    if not subset:
        return None
    return {k: subset[k] for k in ("size", "seed", "n_rows", "data", "method") if k in subset}


def _markdown(
    collection: Collection,
    rows: list[dict],
    s: ReportSettings,
    drawn: list[Path],
    out: Path,
    judge_section: list[str] | None = None,
) -> str:
    study = collection.study or {}
    pct = s.percent
    title = study.get("name") or collection.root.name
    lines = [f"# QR vs QCR leaderboard: {title}", ""]
    if study.get("notice"):
        lines += ["> **" + study["notice"].strip().replace("\n", " ") + "**", ""]
    lines += [
        f"Generated {time.strftime('%Y-%m-%d %H:%M')} by `rgen-harness report` from "
        f"`{collection.root}`. Rewards come from the logged samples; higher is better.",
        "",
        "## Setup",
        "",
    ]
    lines += _setup(collection, rows)
    has_reward = any(
        _mode(r, m).get("reward", {}).get("n") for r in rows for m in MODES if _mode(r, m)
    )
    lines += ["", f"## Leaderboard (reward; {pct} bootstrap intervals)", ""]
    if not has_reward:
        lines += [
            "No reply in these runs has a reward value (`reward` key missing or NaN in the logged "
            "samples): run with a reward model (`reward:` in the study config) to fill the "
            "reward columns.",
            "",
        ]
    bench_labels: list[str] = []
    for r in rows:
        bench_labels += [b for b in r["benchmarks"] if b not in bench_labels]
    header = [
        "Model",
        "LoRA",
        "Pairs",
        f"QR reward [{pct} CI]",
        f"QCR reward [{pct} CI]",
        f"QCR - QR paired [{pct} CI]",
        "QCR win/tie/loss",
        f"Length-controlled QCR - QR [{pct} CI]",
        f"QR win vs reference [{pct} CI]",
        f"QCR win vs reference [{pct} CI]",
    ] + bench_labels
    body = []
    for r in rows:
        p = r["paired"]
        wtl = (
            f"{_pct(p['win_rate'])} / {_pct(p['tie_rate'])} / {_pct(p['loss_rate'])}"
            if p["diff"]["n"]
            else NA
        )
        body.append(
            [
                _model_label(r),
                r.get("lora") or "",
                str(p["diff"]["n"]) if p["diff"]["n"] else NA,
                _est(_mode(r, "qr").get("reward")),
                _est(_mode(r, "qcr").get("reward")),
                _est(p["diff"]),
                wtl,
                _est(r["length_controlled"]["diff"]),
                _est(_mode(r, "qr").get("win_vs_reference"), 2),
                _est(_mode(r, "qcr").get("win_vs_reference"), 2),
            ]
            + [_f(r["benchmarks"].get(b, {}).get("value"), 4) for b in bench_labels]
        )
    lines += [_table(header, body), ""]
    if bench_labels:
        metric_names = {}
        for r in rows:
            for label, b in r["benchmarks"].items():
                if b.get("metric"):
                    metric_names.setdefault(label, f"{b['task']} `{b['metric']}`")
        lines += [
            "Benchmark columns: "
            + "; ".join(f"{k} = {v}" for k, v in metric_names.items())
            + " (lm-eval results of the same model).",
            "",
        ]
    lines += judge_section or []
    lines += ["## Replies: length, truncation, failures", ""]
    header = [
        "Model",
        "Mode",
        "Replies",
        "Chars mean / median / p90",
        "Tokens mean",
        "Criteria chars mean",
        "Truncated (turns dropped)",
        "Skipped",
        "Failed",
        "Reward failed",
    ]
    body = []
    for r in rows:
        for mode in MODES:
            m = _mode(r, mode)
            if not m:
                continue
            chars = m.get("reply_chars") or {}
            body.append(
                [
                    _model_label(r),
                    mode.upper(),
                    str(m.get("n", NA)),
                    f"{_f(chars.get('mean'), 0)} / {_f(chars.get('median'), 0)} / "
                    f"{_f(chars.get('p90'), 0)}",
                    _f((m.get("reply_tokens") or {}).get("mean"), 1),
                    _f((m.get("criteria_chars") or {}).get("mean"), 0) if mode == "qcr" else "",
                    _count(r, mode, "truncated"),
                    _count(r, mode, "skipped"),
                    _count(r, mode, "failed"),
                    _count(r, mode, "reward_failed"),
                ]
            )
    lines += [_table(header, body), ""]
    if any(
        isinstance(_mode(r, m).get(k), float) and math.isfinite(_mode(r, m)[k])
        for r in rows
        for m in MODES
        for k in REFERENCE_METRICS
    ):
        lines += ["## Against the reference reply (mean over replies)", ""]
        header = ["Model", "Mode", *REFERENCE_METRICS]
        body = [
            [_model_label(r), mode.upper(), *(_f(_mode(r, mode).get(k)) for k in REFERENCE_METRICS)]
            for r in rows
            for mode in MODES
            if _mode(r, mode)
        ]
        lines += [_table(header, body), ""]
    lines += ["## Throughput", ""]
    header = ["Model", "Wall time (s)", "Samples/s", "Generated tokens/s", "Recorded by backend"]
    body = []
    for r in rows:
        t = r["throughput"]
        recorded = ", ".join(f"{k}={v:.4g}" for k, v in (t.get("recorded") or {}).items())
        body.append(
            [
                _model_label(r),
                _f(t["wall_s"], 1),
                _f(t["samples_per_s"], 3),
                _f(t["gen_tokens_per_s"], 1),
                recorded or NA,
            ]
        )
    lines += [
        _table(header, body),
        "",
        "Wall time is lm-eval's `total_evaluation_time_seconds` of the QR+QCR run (model loading "
        "and scoring included); samples/s and tokens/s divide by it (QR and QCR replies together, "
        "tokens of every round).",
        "",
    ]
    if drawn:
        lines += ["## Plots", ""]
        lines += [f"![{p.stem}]({p.relative_to(out).as_posix()})" for p in drawn]
        lines += [""]
    lines += [
        "## Methods",
        "",
        f"Interval level {pct}, {s.resamples} bootstrap resamples, seed {s.seed}; "
        f"tie margin {s.tie_margin:g}. Pairs are conversations (dataset `id`) with a finite "
        "reward in both modes.",
        "",
        STATS_METHODS.strip(),
        "",
        "Truncated: replies generated from a history whose oldest turns were dropped to fit the "
        "context (`dropped_turns > 0`). Skipped: malformed rows or histories that cannot fit. "
        "Failed: generation errors. Reward failed: replies the reward model could not score. "
        "None of them enters a reward mean.",
        "",
    ]
    if collection.problems:
        lines += ["## Problems", ""]
        lines += [f"- {p}" for p in collection.problems[:50]]
        if len(collection.problems) > 50:
            lines += [f"- ... and {len(collection.problems) - 50} more (see leaderboard.json)"]
        lines += [""]
    return "\n".join(lines)


def _setup(collection: Collection, rows: list[dict]) -> list[str]:
    study = collection.study or {}
    lines = []
    header = ["Model", "lm-eval model", "pretrained", "LoRA", "model_args"]
    by_name = {m.name: m for m in collection.models}
    body = []
    for r in rows:
        m = by_name[r["model"]]
        extra = {k: v for k, v in m.model_args.items() if k != "pretrained"}
        body.append(
            [
                r["model"],
                m.model_type or NA,
                f"`{r.get('pretrained') or NA}`",
                r.get("lora") or "",
                ", ".join(f"{k}={v}" for k, v in extra.items()),
            ]
        )
    lines += [_table(header, body), ""]
    data = study.get("data") or {}
    if study:
        source = data.get("path") or data.get("dataset") or "hkust-nlp/deita-6k-v0"
        if source == "sample":
            source = "the bundled 8-conversation sample (rgen_harness/data/sample)"
        lines.append(f"- Data: {source}")
        subset = _subset_summary(collection.subset)
        if subset:
            lines.append(
                f"- Subset: {subset['size']} of {subset['n_rows']} conversations, seed "
                f"{subset['seed']} ({subset['method']}); indices in `subset.json`"
            )
        elif study.get("limit"):
            lines.append(f"- Limit: first {study['limit']} conversations")
        gen = {k: v for k, v in (study.get("generation") or {}).items() if v is not None}
        lines.append(f"- Generation: {gen or 'task defaults (greedy, max_gen_toks 1024)'}")
        reward = study.get("reward") or {}
        scorers = study.get("scorers")
        lines.append(
            f"- Reward model: {reward.get('model', 'the reward scorer default')} "
            f"(settings {reward or 'default'}); scorers: "
            f"{', '.join(scorers) if scorers is not None else 'task defaults'}"
        )
    env = _environment(collection)
    if env:
        lines.append(
            f"- Hardware: {env.get('hardware', NA)}; lm-eval {env.get('lm_eval_version', NA)}, "
            f"transformers {env.get('transformers_version', NA)}"
        )
    return lines
