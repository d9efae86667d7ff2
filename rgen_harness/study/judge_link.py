"""The study report's "reward model vs human judgments" section: how often the study's reward
model agrees with human labels on the pairwise judge sets, from judge runs given with
`rgen-harness report STUDY --judge-results DIR` (lm_eval output of `judge_*` tasks run with
`"judge_with": "reward"`; see rgen_harness.judge_report).

The study's reward model (`reward.model` of study.json) is matched with a reward-model judge by
the same name, the same resolved path, or the same last path component (a hub id and a local
copy of it); the section names both, so a match can be checked. A folder that is not a study
has no reward model on record: every reward-model judge found is shown.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _same_model(study_model: str, judge_model: str) -> bool:
    if study_model == judge_model:
        return True
    a, b = Path(study_model).expanduser(), Path(judge_model).expanduser()
    if a.exists() and b.exists() and a.resolve() == b.resolve():
        return True
    return a.name != "" and a.name == b.name


def reward_judge_rows(
    dirs: list[Path], study: dict | None, settings, problems: list[str]
) -> tuple[str | None, list[dict]]:
    """(the study's reward model or None, judge leaderboard rows of the matching judges)."""
    from rgen_harness.judge_report.collect import collect
    from rgen_harness.judge_report.summary import Settings, summarise

    reward = (study or {}).get("reward")
    model = reward.get("model") if isinstance(reward, dict) else None
    model = str(model) if model else None
    try:
        collection = collect(dirs)
    except FileNotFoundError as e:
        problems.append(f"--judge-results: {e}")
        return model, []
    s = Settings(level=settings.level, resamples=settings.resamples, seed=settings.seed)
    found = [j for j in collection.judges if j.judge.kind == "reward model"]
    matched = [j for j in found if model is None or _same_model(model, j.judge.name)]
    judge_problems: list[str] = []
    rows = summarise(matched, s, judge_problems)
    problems += [f"judge results: {p}" for p in collection.problems + judge_problems]
    if not matched:
        names = ", ".join(sorted(j.judge.name for j in found)) or "none"
        problems.append(
            f"--judge-results {' '.join(str(d) for d in dirs)}: no reward-model judge runs "
            f"{'of ' + repr(model) if model else ''} there (reward-model judges found: {names}). "
            "Run the judge tasks with the study's reward model: lm_eval --model dummy --tasks "
            "judge_pairwise --log_samples --metadata "
            f'\'{{"judge_with": "reward", "reward_model": "{model or "MODEL"}"}}\' '
            "--output_path DIR"
        )
    return model, rows


def markdown(model: str | None, rows: list[dict], dirs: list[Path], pct: str) -> list[str]:
    from rgen_harness.judge_report.summary import headline
    from rgen_harness.report_format import est_text, md_table

    if not rows:
        return []
    columns: list[str] = []
    cells: dict[tuple[str, str], Any] = {}
    for row in rows:
        for column, est in headline(row):
            columns += [column] if column not in columns else []
            cells[row["judge"], column] = est
    judges = list(dict.fromkeys(r["judge"] for r in rows))
    body = [[j, *(est_text(cells.get((j, c))) for c in columns)] for j in judges]
    source = ", ".join(f"`{d}`" for d in dirs)
    who = f"the study's reward model `{model}`" if model else "the reward models found"
    return [
        "## Reward model vs human judgments",
        "",
        f"How often {who} agrees with human labels when it judges public pairwise test sets "
        f"(higher score wins; judge runs in {source}; {pct} bootstrap intervals over pairs). "
        "Accuracy per set; MT-Bench: agreement with the experts without ties, per turn. Full "
        "table: `rgen-harness judge-report` on the same folders.",
        "",
        md_table(["Reward-model judge", *columns], body),
        "",
    ]


def write_page(dirs: list[Path], path: Path, *, notice: str | None = None) -> Path | None:
    """The judge runs' results browser (every pair, both orders' raw replies and verdicts)."""
    from rgen_harness.judge_report.collect import collect
    from rgen_harness.report_page import write_judge_page

    try:
        collection = collect(dirs)
    except FileNotFoundError:
        return None  # already listed under Problems by reward_judge_rows
    return write_judge_page(collection, path, notice=notice)
