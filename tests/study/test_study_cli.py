"""`rgen-harness study` end to end through the real `lm_eval` command line (two lm_eval runs):
a study interrupted after its first model resumes without redoing it, and writes the report."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml

pytestmark = pytest.mark.slow


def _study(cwd, *args):
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    return subprocess.run(
        [sys.executable, "-m", "rgen_harness.cli", "study", *map(str, args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )


def test_study_resumes_and_reports(tiny_dir, tmp_path):
    chat = str(tiny_dir / "chat")
    config = {
        "name": "resume",
        "notice": "SMOKE RUN on random weights",
        "models": [
            {"name": "first", "model": "hf", "model_args": {"pretrained": chat}},
            {"name": "second", "model": "hf", "model_args": {"pretrained": chat}},
        ],
        "device": "cpu",
        "data": {"path": "sample"},
        "subset": {"size": 3, "seed": 1},
        "generation": {"max_gen_toks": 8},
        "scorers": [],
        "report": {"resamples": 1000},
    }
    cfg = tmp_path / "study.yaml"
    cfg.write_text(yaml.safe_dump(config))

    # 1) The study is "interrupted" after its first model: only `first` runs.
    done = _study(tmp_path, cfg, "--only", "first", "--no-report")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    first_dir = tmp_path / "studies/resume/runs/first/deita"
    results = sorted(first_dir.rglob("results_*.json"))
    assert len(results) == 1
    stamp = results[0].stat().st_mtime_ns

    # 2) The same command without --only: `first` is skipped, `second` runs, then the report.
    again = _study(tmp_path, cfg)
    out = again.stdout
    assert again.returncode == 0, out[-3000:] + again.stderr[-3000:]
    assert "first/deita: finished earlier, skipped" in out
    assert "second/deita: running" in out
    assert sorted(first_dir.rglob("results_*.json")) == results
    assert results[0].stat().st_mtime_ns == stamp  # not redone
    assert (tmp_path / "studies/resume/cache/first/deita_rank0.db").is_file()

    # QR and QCR saw exactly the seeded subset's conversations.
    subset = json.loads((tmp_path / "studies/resume/subset.json").read_text())
    assert subset["size"] == 3 and len(subset["ids"]) == 3
    for name in ("first", "second"):
        for task in ("deita_qr", "deita_qcr"):
            (path,) = (tmp_path / f"studies/resume/runs/{name}/deita").rglob(f"samples_{task}_*")
            ids = [json.loads(line)["doc"]["id"] for line in path.read_text().splitlines()]
            assert sorted(ids) == sorted(subset["ids"])

    report = tmp_path / "results/resume"
    md = (report / "leaderboard.md").read_text()
    assert "SMOKE RUN on random weights" in md
    assert "| first |" in md and "| second |" in md
    assert (report / "leaderboard.csv").is_file() and (report / "reply_length.png").is_file()
    data = json.loads((report / "leaderboard.json").read_text())
    first = data["models"][0]
    # Numbers recompute from the logged samples: mean reply length per mode.
    (qr_path,) = first_dir.rglob("samples_deita_qr_*")
    chars = [json.loads(line)["reply_chars"] for line in qr_path.read_text().splitlines()]
    assert first["qr"]["reply_chars"]["mean"] == pytest.approx(sum(chars) / len(chars))
    assert data["problems"] == []

    # 3) Everything finished: a dry run plans nothing; changed settings are refused.
    dry = _study(tmp_path, cfg, "--dry-run")
    assert dry.returncode == 0 and dry.stdout.count("finished earlier, skipped") == 2
    config["generation"]["max_gen_toks"] = 9
    cfg.write_text(yaml.safe_dump(config))
    changed = _study(tmp_path, cfg, "--dry-run")
    assert changed.returncode == 2
    assert "different settings (changed: gen_kwargs)" in changed.stderr
