"""PNG plots of the report (matplotlib, Agg backend: no display needed).

Reward plots are drawn only when some reply has a reward; the reply-length plot whenever
samples exist. Each function returns the file it wrote, or None when there was nothing to draw.
Every plot carries the study's notice (a smoke run says so on each figure) and keeps its legend
outside the axes, clear of the data.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from rgen_harness.report_format import finish_figure
from rgen_harness.study.collect import ModelResults
from rgen_harness.study.summary import MODES, ReportSettings

COLORS = {"qr": "#4C72B0", "qcr": "#DD8452"}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _label(row: dict) -> str:
    return f"{row['model']} (LoRA: {row['lora']})" if row.get("lora") else row["model"]


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def reward_by_mode(
    rows: list[dict], out: Path, s: ReportSettings, notice: str | None = None
) -> Path | None:
    if not any(r[m] and _finite(r[m]["reward"]["value"]) for r in rows for m in MODES):
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(max(5, 1.6 * len(rows) + 2), 4))
    width = 0.38
    for j, mode in enumerate(MODES):
        xs, ys, errs = [], [], [[], []]
        for i, r in enumerate(rows):
            est = r[mode]["reward"] if r[mode] else None
            if est is None or not _finite(est["value"]):
                continue
            xs.append(i + (j - 0.5) * width)
            ys.append(est["value"])
            lo, hi = est["low"], est["high"]
            errs[0].append(est["value"] - lo if _finite(lo) else 0)
            errs[1].append(hi - est["value"] if _finite(hi) else 0)
        ax.bar(xs, ys, width, yerr=errs, capsize=3, label=mode.upper(), color=COLORS[mode])
    ax.set_xticks(range(len(rows)), [_label(r) for r in rows], rotation=20, ha="right")
    ax.set_ylabel("mean reward")
    ax.set_title(f"Mean reward by mode ({s.percent} bootstrap intervals)")
    ax.axhline(0, color="black", linewidth=0.5)
    _legend_right(ax)
    return _save(fig, out / "reward_by_mode.png", notice)


def paired_difference(
    rows: list[dict], out: Path, s: ReportSettings, notice: str | None = None
) -> Path | None:
    if not any(_finite(r["paired"]["diff"]["value"]) for r in rows):
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 1 + 0.7 * len(rows)))
    for i, r in enumerate(rows):
        for off, est, color, name in (
            (-0.15, r["paired"]["diff"], "#4C72B0", "QCR - QR"),
            (0.15, r["length_controlled"]["diff"], "#55A868", "length-controlled"),
        ):
            if not _finite(est["value"]):
                continue
            lo = est["low"] if _finite(est["low"]) else est["value"]
            hi = est["high"] if _finite(est["high"]) else est["value"]
            ax.errorbar(
                est["value"],
                i + off,
                xerr=[[est["value"] - lo], [hi - est["value"]]],
                fmt="o",
                color=color,
                capsize=3,
                label=name if i == 0 else None,
            )
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_yticks(range(len(rows)), [_label(r) for r in rows])
    ax.invert_yaxis()
    ax.set_xlabel("reward difference QCR - QR (paired by conversation)")
    ax.set_title(f"Paired difference, {s.percent} paired bootstrap intervals")
    _legend_right(ax)
    return _save(fig, out / "paired_difference.png", notice)


def win_tie_loss(rows: list[dict], out: Path, notice: str | None = None) -> Path | None:
    rows = [r for r in rows if r["paired"]["diff"]["n"]]
    if not rows:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 1 + 0.6 * len(rows)))
    for i, r in enumerate(rows):
        p = r["paired"]
        left = 0.0
        for key, color, name in (
            ("win_rate", "#55A868", "QCR wins"),
            ("tie_rate", "#BBBBBB", "tie"),
            ("loss_rate", "#C44E52", "QR wins"),
        ):
            ax.barh(i, p[key], left=left, color=color, label=name if i == 0 else None)
            left += p[key]
    ax.set_yticks(range(len(rows)), [_label(r) for r in rows])
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("fraction of conversations")
    ax.set_title("QCR vs QR per conversation (reward)")
    _legend_right(ax)
    return _save(fig, out / "win_tie_loss.png", notice)


def reply_length(models: list[ModelResults], out: Path, notice: str | None = None) -> Path | None:
    data, labels, colors = [], [], []
    for m in models:
        for mode in MODES:
            r = m.mode(mode)
            if r is None or not r.samples:
                continue
            values = [row.get("reply_chars") for row in r.samples]
            values = [v for v in values if math.isfinite(v)]
            if values:
                data.append(values)
                labels.append(f"{m.name}\n{mode.upper()}")
                colors.append(COLORS[mode])
    if not data:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(max(5, 0.9 * len(data) + 2), 4))
    parts = ax.boxplot(data, patch_artist=True)
    for patch, color in zip(parts["boxes"], colors, strict=True):
        patch.set_facecolor(color)
    ax.set_xticks(range(1, len(data) + 1), labels, fontsize=8)
    ax.set_ylabel("final reply length (characters)")
    ax.set_title("Reply length by model and mode")
    return _save(fig, out / "reply_length.png", notice)


def reward_vs_length(
    models: list[ModelResults], out: Path, notice: str | None = None
) -> Path | None:
    points = {mode: ([], []) for mode in MODES}
    for m in models:
        for mode in MODES:
            r = m.mode(mode)
            for row in (r.samples or []) if r else []:
                x, y = row.get("reply_chars"), row.get("reward")
                if math.isfinite(x) and math.isfinite(y):
                    points[mode][0].append(math.log1p(x))
                    points[mode][1].append(y)
    if not any(xs for xs, _ in points.values()):
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    for mode, (xs, ys) in points.items():
        ax.scatter(xs, ys, s=8, alpha=0.5, label=mode.upper(), color=COLORS[mode])
    ax.set_xlabel("log(1 + reply characters)")
    ax.set_ylabel("reward")
    ax.set_title("Reward vs reply length (all models)")
    _legend_right(ax)
    return _save(fig, out / "reward_vs_length.png", notice)


def charactereval_metrics(
    rows: list[dict], out: Path, s: ReportSettings, notice: str | None = None
) -> Path | None:
    """The 12 CharacterEval metric means per model (points, side by side within a metric), with
    their bootstrap intervals; the axis fits the values (the scale is 1-5)."""
    from rgen_harness.metrics.charrm.aggregate import METRIC_NAMES, SHORT, metric_key

    rows = [r for r in rows if r.get("charactereval")]
    if not rows:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(max(8, 0.3 * len(rows) * 12 + 2), 4))
    width = 0.8 / len(rows)
    cmap = plt.get_cmap("tab10")
    for i, r in enumerate(rows):
        xs, ys, errs = [], [], [[], []]
        for j, metric in enumerate(METRIC_NAMES):
            est = r["charactereval"].get(metric_key(metric)) or {}
            if not _finite(est.get("value")):
                continue
            xs.append(j + (i - (len(rows) - 1) / 2) * width)
            ys.append(est["value"])
            errs[0].append(est["value"] - est["low"] if _finite(est.get("low")) else 0)
            errs[1].append(est["high"] - est["value"] if _finite(est.get("high")) else 0)
        ax.errorbar(xs, ys, yerr=errs, fmt="o", capsize=2, label=_label(r), color=cmap(i % 10))
    ax.set_xticks(range(len(METRIC_NAMES)), [SHORT[m] for m in METRIC_NAMES])
    for x in range(len(METRIC_NAMES) - 1):  # separate the metrics
        ax.axvline(x + 0.5, color="#DDDDDD", linewidth=0.6)
    ax.set_ylabel("mean CharRM score (scale 1-5)")
    ax.set_title(f"CharacterEval metrics ({s.percent} bootstrap intervals over examples)")
    _legend_right(ax)
    return _save(fig, out / "charactereval_metrics.png", notice)


def score_histograms(
    models: list[ModelResults], out: Path, notice: str | None = None
) -> Path | None:
    """Per-reply scores: reward (QR and QCR replies), similarity where present, and CharRM
    (every scored CharacterEval pair); one panel each, one outline per model."""
    from rgen_harness.study.roleplay import samples_of

    panels: list[tuple[str, dict[str, list[float]]]] = []
    for key, title in (("reward", "reward (QR and QCR replies)"), ("similarity", "similarity")):
        data = {}
        for m in models:
            values = [
                row.get(key)
                for mode in MODES
                if m.mode(mode) is not None
                for row in (m.mode(mode).samples or [])
            ]
            values = [v for v in values if math.isfinite(v)]
            if values:
                data[m.name] = values
        if data:
            panels.append((title, data))
    charrm = {}
    for m in models:
        samples = samples_of(m, [])
        if samples is not None and samples.pair_scores():
            charrm[m.name] = samples.pair_scores()
    if charrm:
        panels.append(("CharRM score (CharacterEval pairs)", charrm))
    if not panels:
        return None
    plt = _plt()
    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels) + 1.5, 3.6), squeeze=False)
    cmap = plt.get_cmap("tab10")
    names = list(dict.fromkeys(name for _, data in panels for name in data))
    for ax, (title, data) in zip(axes[0], panels, strict=True):
        low = min(min(v) for v in data.values())
        high = max(max(v) for v in data.values())
        bins = 20 if high > low else 1
        for name, values in data.items():
            ax.hist(
                values,
                bins=bins,
                range=(low, high) if high > low else None,
                histtype="step",
                linewidth=1.4,
                color=cmap(names.index(name) % 10),
                label=name,
            )
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("score")
        ax.set_ylabel("count")
    seen: dict = {}  # model -> its outline, from whichever panel has it
    for ax in axes[0]:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            seen.setdefault(label, handle)
    axes[0][-1].legend(
        [seen[n] for n in names],
        names,
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        fontsize=8,
        borderaxespad=0,
    )
    return _save(fig, out / "score_histograms.png", notice)


def _legend_right(ax) -> None:
    """The legend beside the axes (right), never over bars or points."""
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, borderaxespad=0)


def _save(fig, path: Path, notice: str | None) -> Path:
    from rgen_harness.file_writes import replacing

    finish_figure(fig, notice)
    with replacing(path) as tmp:
        fig.savefig(tmp, dpi=110, format=path.suffix.lstrip("."))
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


def draw_all(
    rows: list[dict],
    models: list[ModelResults],
    out: Path,
    s: ReportSettings,
    notice: str | None = None,
):
    drawn = [
        reward_by_mode(rows, out, s, notice),
        paired_difference(rows, out, s, notice),
        win_tie_loss(rows, out, notice),
        reply_length(models, out, notice),
        reward_vs_length(models, out, notice),
        charactereval_metrics(rows, out, s, notice),
        score_histograms(models, out, notice),
    ]
    return [p for p in drawn if p is not None]
