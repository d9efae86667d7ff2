"""The judge leaderboard: Markdown, CSV, JSON and a PNG plot from lm-eval judge runs.

Every interval is computed from the logged samples (pairs resampled); without a samples file
the results file's values are shown without an interval. Unreadable inputs are listed under
"Problems", never a crash.
"""

from __future__ import annotations

import csv
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rgen_harness.data.judge.sources import SETS
from rgen_harness.judge_report.collect import JudgeCollection, collect
from rgen_harness.judge_report.measures import AGREEMENT, AUTHORS, CONSISTENCY, GOLD_MEASURES
from rgen_harness.judge_report.measures import __doc__ as METHODS
from rgen_harness.judge_report.summary import COUNTS, HEADLINE, Settings, headline, summarise
from rgen_harness.report_format import jsonable as _jsonable

NA = "n/a"


class NoJudgeRuns(ValueError):
    """The folders hold no results of a `judge_*` task: nothing to rank."""


@dataclass
class JudgeReportFiles:
    markdown: Path
    csv: Path
    json: Path
    plot: Path | None
    rows: list[dict]
    problems: list[str]


def build_judge_report(
    roots: list[str | Path],
    out_dir: str | Path,
    *,
    settings: Settings | None = None,
    notice: str | None = None,
) -> JudgeReportFiles:
    from rgen_harness.judge_report.plot import accuracy_by_set

    s = settings or Settings()
    collection = collect(roots)
    if not collection.judges:
        problems = collection.problems
        found = f" ({len(problems)} unreadable: {problems[0]})" if problems else ""
        raise NoJudgeRuns(
            f"no results of a judge_* task under {', '.join(str(r) for r in collection.roots)}"
            f"{found}. Pass the lm_eval --output_path folders of judge runs, e.g. "
            "`lm_eval --model hf --model_args pretrained=MODEL --tasks judge_pairwise "
            "--log_samples --output_path results/judge`, then "
            "`rgen-harness judge-report results/judge`."
        )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = summarise(collection.judges, s, collection.problems)
    plot = accuracy_by_set(rows, out, s, notice=notice)
    payload = {
        "notice": notice,
        "inputs": [str(r) for r in collection.roots],
        "interval_level": s.level,
        "bootstrap_resamples": s.resamples,
        "bootstrap_seed": s.seed,
        "methods": METHODS,
        "rows": rows,
        "problems": collection.problems,
    }
    json_path = out / "judge_leaderboard.json"
    json_path.write_text(json.dumps(_jsonable(payload), indent=2, ensure_ascii=False) + "\n")
    csv_path = out / "judge_leaderboard.csv"
    _write_csv(csv_path, rows)
    md_path = out / "judge_leaderboard.md"
    md_path.write_text(_markdown(collection, rows, s, plot, out, notice), encoding="utf-8")
    return JudgeReportFiles(md_path, csv_path, json_path, plot, rows, collection.problems)


# -- formatting ---------------------------------------------------------------------------------


def _csv_value(v: Any) -> Any:
    if isinstance(v, float):
        return "" if not math.isfinite(v) else f"{v:.6g}"
    return "" if v is None else v


def _write_csv(path: Path, rows: list[dict]) -> None:
    """Long format: one line per (judge, set, measure)."""
    columns = ["judge", "kind", "lora", "lm_eval_model", "set", "measure", "value", "low", "high"]
    columns += ["n", "pairs", *COUNTS, "results_file"]
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            for measure, est in row["measures"].items():
                line = {k: row.get(k) for k in columns}
                line.update(measure=measure, **est)
                writer.writerow({k: _csv_value(v) for k, v in line.items()})


def _f(x: Any, digits: int = 0) -> str:
    if not isinstance(x, (int, float)) or isinstance(x, bool) or not math.isfinite(x):
        return NA
    return f"{x:.{digits}f}"


def est_text(e: dict | None, digits: int = 3) -> str:
    if not e or not isinstance(e.get("value"), float) or not math.isfinite(e["value"]):
        return NA
    if math.isfinite(e["low"]) and math.isfinite(e["high"]):
        return f"{e['value']:.{digits}f} [{e['low']:.{digits}f}, {e['high']:.{digits}f}]"
    return f"{e['value']:.{digits}f}"


def md_table(header: list[str], lines: list[list[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c).replace("|", "\\|") for c in line) + " |" for line in lines]
    return "\n".join(out)


_AUTHORS_TEXT = {
    "pandalm": (
        "PandaLM, computed as PandaLM does",
        "The given order only, against the majority of the three annotators, a verdict that "
        "could not be read (or a failed judgment) counted as a tie, as PandaLM's "
        "`parse_pandalm_response` reads it; scikit-learn macro averages over tie / 1 / 2.",
    ),
    "autoj": (
        "Auto-J, computed as Auto-J does",
        "Agreement: right in both orders (their headline, `pairwise_eval.py` type pairwise); "
        "consistency: the same verdict in both orders; single order: the given order alone "
        "(their type single, used for reward models). A missing verdict is wrong (their "
        "script accepts none).",
    ),
    "llmbar": (
        "LLMBar, computed as LLMBar does",
        "Acc: the mean of the two orders' accuracies (`correct_average`); positional "
        "agreement: the same verdict in both orders, two missing verdicts counting as the "
        "same (`equal`). Default prompt: forced choice (`judge_forced_v1`), read as their "
        "evaluator reads it.",
    ),
}


def _authors_sections(rows: list[dict], pct: str) -> list[str]:
    lines: list[str] = []
    for kind, (title, text) in _AUTHORS_TEXT.items():
        mine = [r for r in rows if SETS[r["set"]].kind == kind]
        if not mine:
            continue
        header = ["Judge", "Set", "Pairs", *(f"{m.title} [{pct} CI]" for m in AUTHORS[kind])]
        body = [
            [r["judge"], r["set"], _f(r["pairs"])]
            + [est_text(r["measures"][m.name]) for m in AUTHORS[kind]]
            for r in mine
        ]
        lines += [f"## {title}", "", md_table(header, body), "", text, ""]
        if kind == "autoj":
            lines += _autoj_groups(mine)
    return lines


def _autoj_groups(rows: list[dict]) -> list[str]:
    with_groups = [r for r in rows if r["groups"]]
    if not with_groups:
        return []
    lines = ["### Auto-J per scenario group (as their `pairwise_eval.py` prints it)", ""]
    header = ["Judge", "Set", "Group", "Pairs", "Agreement (both orders)", "Consistency"]
    header += ["Agreement (single order)"]
    body = [
        [r["judge"], r["set"], g["group"], _f(g["pairs"])]
        + [_f(g[k], 3) for k in ("agreement_both", "consistency", "accuracy_original")]
        for r in with_groups
        for g in r["groups"]
    ]
    return [*lines, md_table(header, body), ""]


def _markdown(
    collection: JudgeCollection,
    rows: list[dict],
    s: Settings,
    plot: Path | None,
    out: Path,
    notice: str | None,
) -> str:
    pct = s.percent
    lines = ["# Judge leaderboard", ""]
    if notice:
        lines += ["> **" + notice.strip().replace("\n", " ") + "**", ""]
    inputs = ", ".join(f"`{r}`" for r in collection.roots)
    lines += [
        f"Generated {time.strftime('%Y-%m-%d %H:%M')} by `rgen-harness judge-report` from "
        f"{inputs}. Higher is better; intervals are {pct} percentile bootstrap intervals over "
        "pairs, from the logged samples.",
        "",
    ]
    judges = {}
    for row in rows:
        judges.setdefault(row["judge"], row)
    columns: list[str] = []
    cells: dict[tuple[str, str], dict] = {}
    for row in rows:
        for column, est in headline(row):
            columns += [column] if column not in columns else []
            cells[row["judge"], column] = est
    if rows:
        title = f"## Leaderboard: each set's own figure, computed its authors' way ({pct} CI)"
        lines += [title, "", HEADLINE + ".", ""]
        body = [
            [
                judge,
                first["kind"],
                first["lora"] or "",
                *(est_text(cells.get((judge, c))) for c in columns),
            ]
            for judge, first in judges.items()
        ]
        lines += [md_table(["Judge", "Kind", "LoRA", *columns], body), ""]
    lines += _authors_sections(rows, pct)
    gold_rows = [r for r in rows if SETS[r["set"]].kind != "mtbench"]
    if gold_rows:
        lines += ["## Per set: the project's pooled figures", ""]
        header = ["Judge", "Set", "Pairs"]
        header += [f"{m.title} [{pct} CI]" for m in (*GOLD_MEASURES, CONSISTENCY)]
        header += ["Parse failures", "Failed", "Skipped"]
        body = [
            [r["judge"], r["set"], _f(r["pairs"])]
            + [est_text(r["measures"][m.name]) for m in (*GOLD_MEASURES, CONSISTENCY)]
            + [_f(r[k]) for k in COUNTS]
            for r in gold_rows
        ]
        lines += [md_table(header, body), ""]
        lines += [
            "Accuracy and macro-F1 pool both orders (a missing verdict is wrong); consistency: "
            "same verdict in both orders (n/a for judges that judge one order, such as reward "
            "models). Parse failures and failed count judgments (orders), skipped counts rows.",
            "",
        ]
    mt_rows = [r for r in rows if SETS[r["set"]].kind == "mtbench"]
    if mt_rows:
        lines += ["## MT-Bench human judgments: agreement with the expert votes", ""]
        header = ["Judge", "Pairs", *(f"{m.title} [{pct} CI]" for m in AGREEMENT)]
        header += [f"Consistency [{pct} CI]", "Parse failures", "Failed", "Skipped"]
        body = [
            [r["judge"], _f(r["pairs"])]
            + [est_text(r["measures"][m.name]) for m in (*AGREEMENT, CONSISTENCY)]
            + [_f(r[k]) for k in COUNTS]
            for r in mt_rows
        ]
        lines += [md_table(header, body), ""]
    if rows:
        lines += ["## Judges", ""]
        header = ["Judge", "Kind", "lm-eval model", "LoRA", "Sets", "Limit", "Results files"]
        body = []
        for judge, first in judges.items():
            mine = [r for r in rows if r["judge"] == judge]
            files = sorted({Path(r["results_file"]).name for r in mine})
            limits = sorted({str(r["limit"]) for r in mine if r["limit"] is not None})
            body.append(
                [
                    judge,
                    first["kind"],
                    first["lm_eval_model"] or NA,
                    first["lora"] or "",
                    str(len(mine)),
                    ", ".join(limits) or "none",
                    ", ".join(files),
                ]
            )
        lines += [md_table(header, body), ""]
        lines += [
            "Kind: `model` = the evaluated model generates a verdict for each order; "
            "`reward model` = a reward model scores both responses (`judge_with: reward`), one "
            "order. LoRA: the adapter of the results' model_args (hf `peft`, lmdeploy "
            "`adapters`) or lmdeploy's `lora_adapter`.",
            "",
        ]
    if plot is not None:
        lines += ["## Plot", "", f"![{plot.stem}]({plot.relative_to(out).as_posix()})", ""]
    lines += [
        "## Methods",
        "",
        f"{s.resamples} bootstrap resamples, seed {s.seed}, interval level {pct}; no interval "
        "with fewer than 2 pairs or without a samples file.",
        "",
        METHODS.strip(),
        "",
    ]
    if collection.problems:
        lines += ["## Problems", ""]
        lines += [f"- {p}" for p in collection.problems[:50]]
        if len(collection.problems) > 50:
            lines += [
                f"- ... and {len(collection.problems) - 50} more (see judge_leaderboard.json)"
            ]
        lines += [""]
    return "\n".join(lines)
