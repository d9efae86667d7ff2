"""Auto-J's per-scenario-group table (`codes/leaderboard/pairwise_eval.py`): per group of
scenarios, then "Overall", the agreement in both orders, the consistency and the single-order
agreement, over the judged pairs of each group (no intervals, as their script prints them).
Made only where the samples carry Auto-J's scenarios."""

from __future__ import annotations

import math

from rgen_harness.data.judge.autoj_groups import SCENARIO_GROUPS, UNGROUPED, group_of
from rgen_harness.metrics import judge as m

OVERALL = "Overall"


def _figures(records: list[dict]) -> dict:
    both = [r for r in records if len(r["pred"]) == 2]
    orders = [r["pred"][0] for r in both], [r["pred"][1] for r in both]
    return {
        "pairs": len(records),
        "agreement_both": m.both_correct([r["gold"] for r in both], *orders) if both else math.nan,
        "consistency": m.consistency(*orders) if both else math.nan,
        "accuracy_original": m.accuracy(
            [r["gold"] for r in records], [r["pred"][0] for r in records]
        ),
    }


def autoj_group_table(records: list[dict] | None) -> list[dict]:
    """One dict per group present (Auto-J's order, then any ungrouped scenario, then Overall);
    empty without samples or without scenarios."""
    judged = [r for r in records or [] if not r["skipped"] and r["gold"] >= 0 and r["pred"]]
    if not any(r.get("scenario") for r in judged):
        return []
    by_group: dict[str, list[dict]] = {}
    for r in judged:
        by_group.setdefault(group_of(r.get("scenario", "")), []).append(r)
    table = [
        {"group": group, **_figures(by_group[group])}
        for group in (*SCENARIO_GROUPS, UNGROUPED)
        if group in by_group
    ]
    return [*table, {"group": OVERALL, **_figures(judged)}]
