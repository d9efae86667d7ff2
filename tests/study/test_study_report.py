"""The report on hand-written lm-eval output: its paired statistics agree with independent
computations from the sample files, and the tables and plots are written."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
from lm_eval_fixtures import paired_fixture, sample_line, write_run

from rgen_harness.study import stats
from rgen_harness.study.report import build_report

LEVEL, RESAMPLES, SEED = 0.95, 4000, 0


def _read(path):
    """An independent reader: conversation id -> sample line."""
    out = {}
    with open(path) as f:
        for line in f:
            d = json.loads(line)
            out[d["doc"]["id"]] = d
    return out


@pytest.fixture
def study(tmp_path):
    root = tmp_path / "study"
    spec = [
        {"name": "base", "model": "hf", "model_args": {"pretrained": "org/base"}},
        {
            "name": "base-lora",
            "model": "hf",
            "lora": "sft-r16",
            "model_args": {"pretrained": "org/base", "peft": "/ckpt/sft-r16"},
        },
        {"name": "noreward", "model": "lmdeploy", "model_args": {"pretrained": "org/other"}},
    ]
    root.mkdir()
    (root / "study.json").write_text(
        json.dumps(
            {
                "name": "fixture",
                "models": spec,
                "notice": "FIXTURE DATA",
                "report": {"interval": LEVEL, "resamples": RESAMPLES, "seed": SEED},
                "benchmarks": [{"task": "mmlu", "label": "MMLU", "metric": "acc,none"}],
                "data": {"path": "sample"},
                "generation": {"max_gen_toks": 8},
            }
        )
    )
    write_run(
        root / "runs/base/deita",
        model_name="org/base",
        model_args=spec[0]["model_args"],
        tasks=paired_fixture(40, seed=0),
    )
    write_run(
        root / "runs/base/bench-1",
        model_name="org/base",
        model_args=spec[0]["model_args"],
        tasks={},
        extra_results={
            "mmlu": {"acc,none": 0.61, "acc_stderr,none": 0.01},
            "mmlu_anatomy": {"acc,none": 0.4},
        },
        group_subtasks={"mmlu": ["mmlu_anatomy"]},
    )
    write_run(
        root / "runs/base-lora/deita",
        model_name="org/base",
        model_args=spec[1]["model_args"],
        tasks=paired_fixture(25, seed=1),
        config_extra={
            "throughput": {"total": {"samples_per_s": 3.5, "generated_tokens_per_s": 900.0}}
        },
    )
    # No reward keys at all (a run without the reward scorer), plus one corrupt line.
    lines = {
        t: [{k: v for k, v in ln.items() if "reward" not in k} for ln in ls]
        for t, ls in paired_fixture(6, seed=2).items()
    }
    out = write_run(
        root / "runs/noreward/deita",
        model_name="org/other",
        model_args=spec[2]["model_args"],
        tasks=lines,
    )
    with open(next(out.glob("samples_deita_qr_*.jsonl")), "a") as f:
        f.write("{not json\n")
    return root


def test_paired_statistics_agree_with_independent_computation(study, tmp_path):
    files = build_report(study, tmp_path / "out")
    row = next(r for r in files.rows if r["model"] == "base")
    samples = study / "runs/base/deita/org__base"
    qr = _read(next(samples.glob("samples_deita_qr_*.jsonl")))
    qcr = _read(next(samples.glob("samples_deita_qcr_*.jsonl")))
    keys = [k for k in qr if math.isfinite(qr[k]["reward"]) and math.isfinite(qcr[k]["reward"])]
    d = np.array([qcr[k]["reward"] - qr[k]["reward"] for k in keys])
    assert row["paired"]["diff"]["n"] == len(keys) == 36  # 40 - NaN(2) - skipped - failed
    assert row["paired"]["diff"]["value"] == pytest.approx(d.mean(), abs=1e-12)
    assert row["paired"]["wins"] == int((d > 0).sum())
    assert row["paired"]["losses"] == int((d < 0).sum())
    assert row["paired"]["win_rate"] == pytest.approx((d > 0).mean())

    # The interval: the same percentile bootstrap in plain numpy (same seed) ...
    rng = np.random.default_rng(SEED + 100)
    means = np.concatenate(
        [
            d[rng.integers(0, d.size, size=(min(stats.CHUNK, RESAMPLES - s), d.size))].mean(axis=1)
            for s in range(0, RESAMPLES, stats.CHUNK)
        ]
    )
    lo, hi = np.quantile(means, [0.025, 0.975])
    assert row["paired"]["diff"]["low"] == pytest.approx(lo, abs=1e-12)
    assert row["paired"]["diff"]["high"] == pytest.approx(hi, abs=1e-12)
    # ... and scipy's own paired percentile bootstrap, which draws differently.
    from scipy.stats import bootstrap

    ref = bootstrap(
        (np.array([qr[k]["reward"] for k in keys]), np.array([qcr[k]["reward"] for k in keys])),
        lambda a, b, axis: (b - a).mean(axis=axis),
        paired=True,
        confidence_level=LEVEL,
        n_resamples=20000,
        method="percentile",
        random_state=np.random.default_rng(123),
    )
    width = hi - lo
    assert row["paired"]["diff"]["low"] == pytest.approx(
        ref.confidence_interval.low, abs=0.1 * width
    )
    assert row["paired"]["diff"]["high"] == pytest.approx(
        ref.confidence_interval.high, abs=0.1 * width
    )

    # Per-mode mean reward and win rate vs the reference reply.
    qr_r = np.array([v["reward"] for v in qr.values()])
    assert row["qr"]["reward"]["value"] == pytest.approx(np.nanmean(qr_r))
    assert row["qr"]["reward"]["n"] == int(np.isfinite(qr_r).sum())
    wins = [v["reward"] > v["reference_reward"] for v in qcr.values() if math.isfinite(v["reward"])]
    assert row["qcr"]["win_vs_reference"]["value"] == pytest.approx(np.mean(wins))


def test_length_controlled_difference_equals_fixed_effects_regression(study, tmp_path):
    files = build_report(study, tmp_path / "out")
    row = next(r for r in files.rows if r["model"] == "base")
    samples = study / "runs/base/deita/org__base"
    qr = _read(next(samples.glob("samples_deita_qr_*.jsonl")))
    qcr = _read(next(samples.glob("samples_deita_qcr_*.jsonl")))
    keys = [k for k in qr if math.isfinite(qr[k]["reward"]) and math.isfinite(qcr[k]["reward"])]
    # Stacked design: one dummy per conversation, a QCR indicator, log(1 + chars).
    n = len(keys)
    X = np.zeros((2 * n, n + 2))
    y = np.zeros(2 * n)
    for i, k in enumerate(keys):
        for j, (src, is_qcr) in enumerate(((qr, 0.0), (qcr, 1.0))):
            X[2 * i + j, i] = 1.0
            X[2 * i + j, n] = is_qcr
            X[2 * i + j, n + 1] = math.log1p(src[k]["reply_chars"])
            y[2 * i + j] = src[k]["reward"]
    beta = np.linalg.lstsq(X, y, rcond=None)[0]
    lc = row["length_controlled"]
    assert lc["diff"]["value"] == pytest.approx(beta[n], abs=1e-9)
    assert lc["slope_per_log_char"] == pytest.approx(beta[n + 1], abs=1e-9)
    assert lc["diff"]["low"] < lc["diff"]["value"] < lc["diff"]["high"]


def test_report_tables_plots_counts_lora_and_benchmarks(study, tmp_path):
    files = build_report(study, tmp_path / "out")
    md = files.markdown.read_text()
    assert "FIXTURE DATA" in md
    assert "QCR - QR paired [95% CI]" in md and "(reward; 95% bootstrap intervals)" in md
    assert "| [base-lora](browser.html#model=base-lora) | sft-r16 |" in md  # the LoRA row
    assert "MMLU" in md and "0.6100" in md  # benchmark column from the other run
    assert "mmlu `acc,none`" in md
    assert "unreadable sample" in md  # the corrupt line is reported, not fatal
    assert {p.name for p in files.plots} >= {
        "reward_by_mode.png",
        "paired_difference.png",
        "win_tie_loss.png",
        "reply_length.png",
    }
    for p in files.plots:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    base = next(r for r in files.rows if r["model"] == "base")
    assert base["qr"]["skipped"] == 1 and base["qcr"]["failed"] == 1
    assert base["qcr"]["truncated"] == 4  # dropped_turns > 0 on every 10th conversation
    assert base["qr"]["reward_failed"] == 1
    assert base["benchmarks"]["MMLU"]["value"] == pytest.approx(0.61)
    assert base["throughput"]["wall_s"] == pytest.approx(12.5)
    lora = next(r for r in files.rows if r["model"] == "base-lora")
    assert lora["throughput"]["recorded"]["engine_samples_per_s"] == pytest.approx(3.5)
    noreward = next(r for r in files.rows if r["model"] == "noreward")
    assert math.isnan(noreward["qr"]["reward"]["value"]) and noreward["paired"]["diff"]["n"] == 0
    assert math.isnan(noreward["benchmarks"]["MMLU"]["value"])
    assert noreward["qr"]["reply_chars"]["n"] == 6  # the corrupt 7th line is left out
    with open(files.csv) as f:
        rows = list(csv.DictReader(f))
    assert [r["model"] for r in rows] == ["base", "base-lora", "noreward"]
    assert float(rows[0]["paired_diff_value"]) == pytest.approx(
        base["paired"]["diff"]["value"], rel=1e-5
    )
    assert rows[2]["qr_reward_value"] == ""  # n/a, not 0
    data = json.loads(files.json.read_text())
    assert data["interval_level"] == LEVEL and data["models"][0]["lora"] is None
    assert data["models"][2]["qr"]["reward"]["value"] is None


def test_plain_lm_eval_folder_groups_models_and_labels_lora(tmp_path):
    """Without study.json: models by name + model_args, LoRA from `peft`, other tasks as columns."""
    root = tmp_path / "plain"
    write_run(
        root / "a",
        model_name="org/base",
        model_args={"pretrained": "org/base"},
        tasks=paired_fixture(8),
    )
    write_run(
        root / "b",
        model_name="org/base",
        model_args={"pretrained": "org/base", "peft": "/ckpt/lora-x"},
        tasks={},
        extra_results={
            "gsm8k": {"exact_match,strict-match": 0.25, "exact_match,flexible-extract": 0.3}
        },
    )
    files = build_report(root, tmp_path / "out")
    names = {r["model"]: r for r in files.rows}
    assert set(names) == {"org/base", "org/base + lora-x"}
    assert names["org/base + lora-x"]["lora"] == "lora-x"
    assert names["org/base + lora-x"]["benchmarks"]["gsm8k"]["value"] == pytest.approx(0.25)
    assert names["org/base"]["paired"]["diff"]["n"] > 0


def test_pairing_follows_conversation_ids_not_line_order(tmp_path):
    root = tmp_path / "r"
    qr = [sample_line(i, f"c{i}", {"reward": float(i), "reply_chars": 10.0}) for i in range(5)]
    qcr = [
        sample_line(i, f"c{i}", {"reward": float(i) + 1, "reply_chars": 10.0}, qcr=True)
        for i in reversed(range(5))
    ]
    write_run(
        root / "x",
        model_name="m",
        model_args={"pretrained": "m"},
        tasks={"deita_qr": qr, "deita_qcr": qcr},
    )
    row = build_report(root, tmp_path / "out", resamples=1000).rows[0]
    assert row["paired"]["diff"]["value"] == pytest.approx(1.0)
    assert row["paired"]["wins"] == 5
    assert row["paired"]["diff"]["low"] == pytest.approx(1.0)  # no spread, no interval width
