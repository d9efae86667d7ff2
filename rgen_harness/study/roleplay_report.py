"""The report's CharacterEval parts: leaderboard columns and the role-play section (Markdown).

The leaderboard gets the paper's three dimension averages and `overall` (the mean of the 12
metric means) beside the deita columns; the section gives the 12 metric means, the counts, and a
per-role table (the `overall` of each role, one column per model). Numbers come from
rgen_harness.study.roleplay (logged samples), intervals are percentile bootstrap intervals over
examples.
"""

from __future__ import annotations

from rgen_harness.report_format import NA, est_text, finite, md_table

COLUMNS = (
    ("conversational_ability", "Role-play: conversational ability"),
    ("character_consistency", "Role-play: character consistency"),
    ("roleplay_attractiveness", "Role-play: attractiveness"),
    ("overall", "Role-play: overall"),
)
MAX_ROLES = 100  # per-role rows shown in Markdown (all are in leaderboard.json / roles CSV)


def has_roleplay(rows: list[dict]) -> bool:
    return any(r.get("charactereval") for r in rows)


def leaderboard_header(pct: str) -> list[str]:
    return [f"{label} [{pct} CI]" for _, label in COLUMNS]


def leaderboard_cells(row: dict) -> list[str]:
    figures = row.get("charactereval") or {}
    return [est_text(figures.get(key)) for key, _ in COLUMNS]


def section(rows: list[dict], study: dict, pct: str) -> list[str]:
    """The "Role-play: CharacterEval" section (nothing when no model ran charactereval)."""
    from rgen_harness.metrics.charrm.aggregate import METRIC_NAMES, SHORT, metric_key

    if not has_roleplay(rows):
        return []
    spec = study.get("charactereval") if isinstance(study.get("charactereval"), dict) else {}
    charrm = spec.get("charrm") if isinstance(spec.get("charrm"), dict) else {}
    data = spec.get("data") or "the authors' files (morecry/CharacterEval, pinned commit)"
    if data == "sample":
        data = "the bundled hand-written CharacterEval sample"
    lines = ["## Role-play: CharacterEval", ""]
    lines += [
        f"Data: {data}. Replies scored by BaichuanCharRM "
        f"(`{charrm.get('model', 'morecry/BaichuanCharRM')}`), 1 to 5 per (example, metric) "
        "pair that id2metric assigns; higher is better. Each metric is the mean of its pairs; "
        "a dimension is the mean of its metric means (the paper's Table 4); overall is the mean "
        f"of the 12 (ours, not a figure of the paper). Intervals: {pct} percentile bootstrap "
        "over examples.",
        "",
    ]
    header = ["Model", "Examples", "Pairs", "Skipped", "Failed"]
    header += [SHORT[m] for m in METRIC_NAMES]
    body = []
    for r in rows:
        figures = r.get("charactereval")
        if not figures:
            continue
        body.append(
            [
                r["model"],
                _int(figures.get("examples")),
                _int(figures.get("pairs")),
                _int(figures.get("skipped")),
                _int(figures.get("failed")),
            ]
            + [_value(figures.get(metric_key(m))) for m in METRIC_NAMES]
        )
    lines += [md_table(header, body), ""]
    lines += [
        "Metric columns (the paper's labels): "
        + ", ".join(f"{SHORT[m]} = {m}" for m in METRIC_NAMES)
        + ". Each metric's interval is in leaderboard.json.",
        "",
    ]
    lines += _roles(rows)
    return lines


def _roles(rows: list[dict]) -> list[str]:
    models = [r for r in rows if r.get("charactereval_roles")]
    if not models:
        return []
    roles = sorted({role for r in models for role in r["charactereval_roles"]})
    header = ["Role", *(f"{r['model']}: mean (metrics, examples)" for r in models)]
    body = []
    for role in roles[:MAX_ROLES]:
        cells = [role]
        for r in models:
            entry = r["charactereval_roles"].get(role)
            cells.append(_role_cell(entry) if entry else NA)
        body.append(cells)
    lines = ["### Per role", "", md_table(header, body), ""]
    if len(roles) > MAX_ROLES:
        lines += [f"{len(roles) - MAX_ROLES} more roles in charactereval_roles.csv.", ""]
    lines += [
        "Per role: the mean of the role's metric means over the metrics it has scored pairs "
        "for (how many of the 12, and the role's examples, in brackets); it equals the role's "
        "overall when all 12 are there. Every metric per role, with the dimension averages, is "
        "in charactereval_roles.csv and leaderboard.json.",
        "",
    ]
    return lines


def _role_cell(entry: dict) -> str:
    from rgen_harness.metrics.charrm.aggregate import METRIC_NAMES

    means = [entry.get(m) for m in METRIC_NAMES]
    means = [m for m in means if finite(m)]
    if not means:
        return f"{NA} (0/12, {entry.get('examples', 0)})"
    mean = sum(means) / len(means)
    return f"{mean:.3f} ({len(means)}/12, {entry.get('examples', 0)})"


def roles_table(rows: list[dict]) -> list[dict]:
    """One CSV row per (model, role): examples, pairs, the 12 metric means, dimensions."""
    out = []
    for r in rows:
        for role, entry in (r.get("charactereval_roles") or {}).items():
            out.append({"model": r["model"], "role": role, **entry})
    return out


def _value(x) -> str:
    if isinstance(x, dict):
        x = x.get("value")
    return f"{x:.3f}" if finite(x) else NA


def _int(x) -> str:
    return str(x) if isinstance(x, int) else NA
