"""The leaderboard plot: grouped bars of each judge's headline measure per set (accuracy;
MT-Bench: agreement without ties per turn) with the bootstrap intervals as error bars."""

from __future__ import annotations

import math
from pathlib import Path

from rgen_harness.judge_report.summary import Settings, headline


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def accuracy_by_set(rows: list[dict], out: Path, s: Settings) -> Path | None:
    columns: list[str] = []
    values: dict[tuple[str, str], dict] = {}
    judges: list[str] = []
    for row in rows:
        if row["judge"] not in judges:
            judges.append(row["judge"])
        for column, est in headline(row):
            columns += [column] if column not in columns else []
            values[row["judge"], column] = est
    if not any(_finite(e["value"]) for e in values.values()):
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    width = 0.8 / max(1, len(judges))
    wide = min(18.0, max(6.0, 0.35 * len(columns) * len(judges) + 4))
    fig, ax = plt.subplots(figsize=(wide, 4.5))
    for j, judge in enumerate(judges):
        xs, ys, errs = [], [], [[], []]
        for i, column in enumerate(columns):
            est = values.get((judge, column))
            if est is None or not _finite(est["value"]):
                continue
            xs.append(i + (j - (len(judges) - 1) / 2) * width)
            ys.append(est["value"])
            errs[0].append(est["value"] - est["low"] if _finite(est["low"]) else 0)
            errs[1].append(est["high"] - est["value"] if _finite(est["high"]) else 0)
        ax.bar(xs, ys, width, yerr=errs, capsize=2, label=judge)
    ax.set_xticks(range(len(columns)), columns, rotation=30, ha="right")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("accuracy (MT-Bench: agreement w/o ties)")
    ax.set_title(f"Judges vs human labels ({s.percent} bootstrap intervals over pairs)")
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    path = out / "judge_accuracy.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
