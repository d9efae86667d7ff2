"""The leaderboard plot: grouped bars of each judge's headline measure per set (accuracy;
MT-Bench: agreement without ties per turn) with the bootstrap intervals as error bars, a dashed
line at chance (0.5: a coin flip picks the preferred reply of a pair half the time), each bar's
value written above it (so a bar of 0 is seen, not missed) and the run's notice on the figure."""

from __future__ import annotations

import math
from pathlib import Path

from rgen_harness.judge_report.summary import Settings, headline
from rgen_harness.report_format import finish_figure


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


CHANCE = 0.5


def accuracy_by_set(
    rows: list[dict], out: Path, s: Settings, notice: str | None = None
) -> Path | None:
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
        bars = ax.bar(
            xs, ys, width, yerr=errs, capsize=2, label=judge, edgecolor="black", linewidth=0.6
        )
        for x, y, hi in zip(xs, ys, errs[1], strict=True):
            ax.text(x, y + hi + 0.01, f"{y:.2f}", ha="center", va="bottom", fontsize=7)
        for bar, y in zip(bars, ys, strict=True):
            if y == 0:  # a zero-height bar: its outline as a thick mark on the axis
                ax.plot(
                    [bar.get_x(), bar.get_x() + bar.get_width()],
                    [0.004, 0.004],
                    color=bar.get_facecolor(),
                    linewidth=3,
                    solid_capstyle="butt",
                )
    ax.axhline(CHANCE, color="dimgray", linestyle="--", linewidth=1, label="chance (0.5)")
    ax.set_xticks(range(len(columns)), columns, rotation=30, ha="right")
    ax.set_ylim(0, 1.12)
    ax.set_ylabel("accuracy (MT-Bench: agreement w/o ties)")
    ax.set_title(f"Judges vs human labels ({s.percent} bootstrap intervals over pairs)")
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    finish_figure(fig, notice)
    path = out / "judge_accuracy.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
