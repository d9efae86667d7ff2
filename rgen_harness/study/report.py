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
from rgen_harness.report_format import NA, est_text, jsonable, md_table
from rgen_harness.study import plots, roleplay_report
from rgen_harness.study.collect import Collection, collect
from rgen_harness.study.stats import METHODS
from rgen_harness.study.summary import (
    MODES,
    REFERENCE_METRICS,
    ReportSettings,
    consistency_problems,
    flatten,
    summarise_model,
)

BROWSER_PAGE = "browser.html"
ROLES_CSV = "charactereval_roles.csv"
JUDGE_PAGE = "judge_browser.html"


class ReportLocationError(ValueError):
    """The report folder cannot be told from the study folder: the user must name one."""


@dataclass
class ReportFiles:
    markdown: Path
    csv: Path
    json: Path
    plots: list[Path]
    rows: list[dict]
    browser: Path | None
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
    out = Path(out_dir) if out_dir is not None else default_report_dir(Path(root), study)
    out.mkdir(parents=True, exist_ok=True)
    benchmarks = list(study.get("benchmarks") or []) if study is not None else None
    limit = _study_max_gen_toks(study)
    rows = [
        summarise_model(m, settings, benchmarks, limit, collection.problems)
        for m in collection.models
    ]
    for m in collection.models:
        collection.problems.extend(consistency_problems(m))
    notice = _notice(study)
    drawn = plots.draw_all(rows, collection.models, out, settings, notice)
    judge_section: list[str] = []
    judge_rows: list[dict] | None = None
    if judge_results:
        from rgen_harness.study import judge_link

        dirs = [Path(d) for d in judge_results]
        judge_model, judge_rows = judge_link.reward_judge_rows(
            dirs, study, settings, collection.problems
        )
        judge_section = judge_link.markdown(judge_model, judge_rows, dirs, settings.percent)
        judge_link.write_page(dirs, out / JUDGE_PAGE, notice=_notice(study))
    payload = {
        "study": study,
        "subset": _subset_summary(collection.subset),
        "interval_level": settings.level,
        "bootstrap_resamples": settings.resamples,
        "bootstrap_seed": settings.seed,
        "tie_margin": settings.tie_margin,
        "methods": " ".join(METHODS),
        "environment": _environment(collection),
        "models": rows,
        "reward_model_vs_humans": judge_rows,
        "problems": collection.problems,
    }
    json_path = out / "leaderboard.json"
    payload = mask_data(jsonable(payload))
    write_text(json_path, json.dumps(payload, indent=2, ensure_ascii=False) + "\n")
    csv_path = out / "leaderboard.csv"
    _write_csv(csv_path, [mask_data(flatten(r)) for r in rows])
    roles = roleplay_report.roles_table(rows)
    if roles:
        _write_csv(out / ROLES_CSV, [mask_data(r) for r in roles])
    from rgen_harness.report_page import write_study_page

    browser = write_study_page(collection, rows, out / BROWSER_PAGE, notice=notice)
    md_path = out / "leaderboard.md"
    write_text(
        md_path,
        mask_text(_markdown(collection, rows, settings, drawn, out, judge_section, browser)),
    )
    return ReportFiles(md_path, csv_path, json_path, drawn, rows, browser, collection.problems)


def default_report_dir(root: Path, study: dict | None) -> Path:
    """Where the report goes when the user names no folder: the study's `report_dir`, a
    relative one resolved against the folder the study ran from (the study folder is
    `output_dir` below it); for a folder that is not a study, `report/` inside it. Never a
    path taken relative to the current directory."""
    if study is None:
        return root / "report"
    name = study.get("name") or root.resolve().name
    report_dir = Path(str(study.get("report_dir") or f"results/{name}"))
    if report_dir.is_absolute():
        return report_dir
    output_dir = Path(str(study.get("output_dir") or f"studies/{name}"))
    here = root.resolve()
    parts = output_dir.parts
    if not output_dir.is_absolute() and ".." not in parts and here.parts[-len(parts) :] == parts:
        return here.parents[len(parts) - 1] / report_dir
    raise ReportLocationError(
        f"{root}: the study's report_dir {str(report_dir)!r} is relative to the folder the study "
        f"ran from, which cannot be told from this folder (its output_dir was "
        f"{str(output_dir)!r}; was it moved?). Name one: rgen-harness report {root} --out DIR"
    )


def _notice(study: dict | None) -> str | None:
    notice = (study or {}).get("notice")
    return " ".join(str(notice).split()) if notice else None


def _study_max_gen_toks(study: dict | None) -> int | None:
    gen = (study or {}).get("generation")
    value = gen.get("max_gen_toks") if isinstance(gen, dict) else None
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else None


# -- formatting ---------------------------------------------------------------------------------


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
    return est_text(e, digits)


def _rate(x: Any) -> str:
    """A rate as a fraction 0-1, the scale of every rate in the report."""
    return NA if not isinstance(x, (int, float)) or not math.isfinite(x) else f"{x:.2f}"


JUDGE_NOTE = (
    "Judge W/T/L: a pairwise LLM judge (`deita_pairwise`, the study's `judge:` block) compared "
    "each conversation's QCR and QR replies in both orders; a win (loss) for QCR only when both "
    "orders prefer QCR (QR), a tie otherwise; pairs with an unreadable verdict are left out and "
    "counted. Shown: wins / ties / losses, then (wins + ties / 2) / n with its bootstrap "
    "interval over conversations. Reward-judge agreement: the share of judged pairs where the "
    "judge's outcome equals the sign of the reward difference (ties included), then without "
    "ties."
)


def judge_cells(judge: dict | None, pct: str) -> list[str]:
    """The leaderboard's two judge cells of a row (n/a without a judge run)."""
    if not judge or not judge.get("n"):
        return [NA, NA]
    wtl = f"{judge['wins']:.0f} / {judge['ties']:.0f} / {judge['losses']:.0f}"
    adj = (
        f"{_f(judge['win_rate_adjusted'], 2)} [{_f(judge['win_rate_adjusted_low'], 2)}, "
        f"{_f(judge['win_rate_adjusted_high'], 2)}]"
    )
    agree = (
        f"{_f(judge['reward_agreement'], 2)} (n={judge['reward_agreement_n']:.0f}); "
        f"no ties {_f(judge['reward_agreement_no_ties'], 2)} "
        f"(n={judge['reward_agreement_no_ties_n']:.0f})"
        if judge.get("reward_agreement_n")
        else NA
    )
    return [f"{wtl}; {adj}", agree]


def _table(header: list[str], lines: list[list[str]]) -> str:
    return md_table(header, lines)


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
    browser: Path | None = None,
) -> str:
    study = collection.study or {}
    pct = s.percent
    title = study.get("name") or collection.root.name
    lines = [f"# QR vs QCR leaderboard: {title}", ""]
    if study.get("notice"):
        lines += ["> **" + study["notice"].strip().replace("\n", " ") + "**", ""]
    lines += [
        f"Generated {time.strftime('%Y-%m-%d %H:%M')} from `{collection.root}`. Rewards come "
        "from the logged samples; higher is better. Rates (win, tie, loss) are fractions "
        "from 0 to 1.",
        "",
    ]
    if browser is not None:
        lines += [
            f"Every reply can be read in [{browser.name}]({browser.name}): one page, opened "
            "from disk in a browser, no server needed.",
            "",
        ]
    lines += ["## Setup", ""]
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
    roleplay = roleplay_report.has_roleplay(rows)
    header = [
        "Model",
        "LoRA",
        "Pairs",
        "Same history",
        f"QR reward [{pct} CI]",
        f"QCR reward [{pct} CI]",
        f"QCR - QR paired [{pct} CI]",
        "QCR win / tie / loss",
        f"Length-controlled QCR - QR [{pct} CI]",
        f"QR win vs reference [{pct} CI]",
        f"QCR win vs reference [{pct} CI]",
    ]
    header += roleplay_report.leaderboard_header(pct) if roleplay else []
    header += bench_labels
    judged = any(r.get("judge") for r in rows)
    if judged:
        header += ["Judge W/T/L (QCR vs QR)", "Reward-judge agreement"]
    body = []
    for r in rows:
        p = r["paired"]
        wtl = (
            f"{_rate(p['win_rate'])} / {_rate(p['tie_rate'])} / {_rate(p['loss_rate'])}"
            if p["diff"]["n"]
            else NA
        )
        same = r.get("same_history") or {}
        label = _model_label(r)
        if browser is not None:
            label = f"[{label}]({browser.name}#model={_anchor(r['model'])})"
        body.append(
            [
                label,
                r.get("lora") or "",
                str(p["diff"]["n"]) if p["diff"]["n"] else NA,
                f"{same['same']} of {same['conversations']}" if same.get("conversations") else NA,
                _est(_mode(r, "qr").get("reward")),
                _est(_mode(r, "qcr").get("reward")),
                _est(p["diff"]),
                wtl,
                _est(r["length_controlled"]["diff"]),
                _est(_mode(r, "qr").get("win_vs_reference"), 2),
                _est(_mode(r, "qcr").get("win_vs_reference"), 2),
            ]
            + (roleplay_report.leaderboard_cells(r) if roleplay else [])
            + [_f(r["benchmarks"].get(b, {}).get("value"), 4) for b in bench_labels]
            + (judge_cells(r.get("judge"), pct) if judged else [])
        )
    lines += [_table(header, body), ""]
    if judged:
        lines += [JUDGE_NOTE, ""]
    lines += _same_history_note(rows, study)
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
    if roleplay:
        lines += [
            "Role-play columns: CharacterEval replies scored by BaichuanCharRM (1-5), the "
            "paper's dimension averages and their overall mean; see Role-play: CharacterEval.",
            "",
        ]
    lines += judge_section or []
    lines += roleplay_report.section(rows, study, pct)
    lines += ["## Replies: length, truncation, failures", ""]
    header = [
        "Model",
        "Mode",
        "Replies",
        "Chars mean / median / p90",
        "Reply tokens mean",
        "Criteria chars mean",
        "Truncated (turns dropped)",
        "Skipped",
        "Failed",
        "Reward failed",
    ]
    body = []
    over_limit = []
    for r in rows:
        for mode in MODES:
            m = _mode(r, mode)
            if not m:
                continue
            chars = m.get("reply_chars") or {}
            tokens = _f((m.get("reply_tokens") or {}).get("mean"), 1)
            if m.get("reply_tokens_over_limit"):
                tokens += " *"
                over_limit.append(
                    f"{r['model']} {mode.upper()}: {m['reply_tokens_over_limit']} of "
                    f"{(m.get('reply_tokens') or {}).get('n', NA)}"
                )
            body.append(
                [
                    _model_label(r),
                    mode.upper(),
                    str(m.get("n", NA)),
                    f"{_f(chars.get('mean'), 0)} / {_f(chars.get('median'), 0)} / "
                    f"{_f(chars.get('p90'), 0)}",
                    tokens,
                    _f((m.get("criteria_chars") or {}).get("mean"), 0) if mode == "qcr" else "",
                    _count(r, mode, "truncated"),
                    _count(r, mode, "skipped"),
                    _count(r, mode, "failed"),
                    _count(r, mode, "reward_failed"),
                ]
            )
    lines += [_table(header, body), ""]
    lines += [
        "Reply tokens: the token ids generated for the final reply (lmdeploy and hf generate "
        "from ids); served models give the server's count, or the reply's text encoded again "
        "with the model's tokenizer where the server sends none.",
        "",
    ]
    if over_limit:
        lines += [
            "\\* Some replies count more tokens than max_gen_toks allows ("
            + "; ".join(over_limit)
            + "). A model cannot generate more than max_gen_toks tokens, so these counts are "
            "the reply's text encoded again, which can split it into more tokens than were "
            "generated (e.g. text decoded from random or byte-level ids). Lengths in characters "
            "are exact.",
            "",
        ]
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
        recorded = ", ".join(f"{k} = {v:.4g}" for k, v in (t.get("recorded") or {}).items())
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
        "Wall time is lm-eval's total evaluation time of the QR and QCR run, model loading and "
        "scoring included; samples/s and tokens/s divide by it (QR and QCR replies together, "
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
        f"Intervals are {pct} intervals from {s.resamples} bootstrap resamples (seed {s.seed}). "
        f"Two rewards closer than {s.tie_margin:g} count as a tie. A pair is one conversation "
        "(the dataset's id) with a reward in both modes.",
        "",
        *(p for para in METHODS for p in (para, "")),
        "Truncated replies were generated from a history whose oldest turns were dropped to fit "
        "the model's context. Skipped conversations are malformed or do not fit even with every "
        "earlier turn dropped. Failed ones ended in a generation error. Reward failed counts "
        "replies the reward model could not score. None of them enters a reward mean.",
        "",
    ]
    if collection.problems:
        lines += ["## Problems", ""]
        lines += [f"- {p}" for p in collection.problems[:50]]
        if len(collection.problems) > 50:
            lines += [f"- ... and {len(collection.problems) - 50} more (see leaderboard.json)"]
        lines += [""]
    return "\n".join(lines)


def _anchor(name: str) -> str:
    from urllib.parse import quote

    return quote(name, safe="")


def _same_history_note(rows: list[dict], study: dict) -> list[str]:
    """What "Same history" means, and which conversations it does not hold for."""
    metadata = study.get("metadata") if isinstance(study.get("metadata"), dict) else {}
    per_mode = metadata.get("same_history") is False
    rule = (
        "This study set `same_history: false`: each mode dropped only the turns its own prompts "
        "needed, so QCR, whose prompts are longer, may answer a shorter history than QR."
        if per_mode
        else "By default a conversation's QR and QCR prompts keep the same turns: the oldest "
        "turns that QCR's longer prompts need dropped (with room for a criteria reply of "
        "max_gen_toks tokens) are dropped for QR too, so the paired difference compares "
        "replies to one history."
    )
    out = [f"Same history: conversations whose QR and QCR prompts kept the same turns. {rule}"]
    differ = [
        f"{r['model']}: {', '.join(r['same_history']['differ'][:10])}"
        + (" ..." if len(r["same_history"]["differ"]) > 10 else "")
        for r in rows
        if (r.get("same_history") or {}).get("differ")
    ]
    if differ:
        out[0] += " Histories differ in " + "; ".join(differ) + "."
    return [*out, ""]


def _setup(collection: Collection, rows: list[dict]) -> list[str]:
    study = collection.study or {}
    header = ["Model", "lm-eval model", "Weights", "LoRA", "Other model settings"]
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
                "; ".join(f"{k} = {v}" for k, v in extra.items()),
            ]
        )
    lines = [_table(header, body), ""]
    settings: list[list[str]] = []
    if study:
        data = study.get("data") or {}
        source = data.get("path") or data.get("dataset") or "hkust-nlp/deita-6k-v0"
        if source == "sample":
            source = "the bundled 8-conversation deita sample"
        settings.append(["Data", str(source)])
        subset = _subset_summary(collection.subset)
        if subset:
            settings.append(
                [
                    "Conversations",
                    f"{subset['size']} of {subset['n_rows']}, drawn at random (seed "
                    f"{subset['seed']}); their row numbers are in subset.json",
                ]
            )
        elif study.get("limit"):
            settings.append(["Conversations", f"the first {study['limit']}"])
        gen = {k: v for k, v in (study.get("generation") or {}).items() if v is not None}
        settings.append(
            ["Reply length limit (max_gen_toks)", str(gen.pop("max_gen_toks", "1024 (default)"))]
        )
        sampling = "greedy" if not gen.get("do_sample") else "sampled"
        settings.append(["Decoding", sampling])
        for key, value in gen.items():
            if key != "do_sample":
                settings.append([f"Generation: {key}", str(value)])
        reward = dict(study.get("reward") or {})
        settings.append(["Reward model", str(reward.pop("model", "the reward scorer's default"))])
        for key, value in reward.items():
            settings.append([f"Reward model {key}", str(value)])
        scorers = study.get("scorers")
        settings.append(
            ["Scorers", ", ".join(scorers) if scorers is not None else "the tasks' defaults"]
        )
        metadata = study.get("metadata") if isinstance(study.get("metadata"), dict) else {}
        settings.append(
            [
                "History kept",
                "per mode (same_history: false)"
                if metadata.get("same_history") is False
                else "the same turns for QR and QCR",
            ]
        )
    env = _environment(collection)
    if env:
        settings.append(["Hardware", str(env.get("hardware", NA))])
        settings.append(
            [
                "Software",
                f"lm-eval {env.get('lm_eval_version', NA)}, "
                f"transformers {env.get('transformers_version', NA)}",
            ]
        )
    if settings:
        lines += [_table(["Setting", "Value"], settings), ""]
    return lines
