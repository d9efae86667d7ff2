"""The shipped smoke study (`study_smoke.yaml`: two tiny chat models, deita and CharacterEval,
reward and CharRM scoring) as the CPU runs it (one run at a time, scored inline) and as a node
with six GPUs runs it (the GPU ids handed out by the scheduler; the models run on the CPU as
configured): runs side by side, shards, every reply scored in the scoring phase with the reward
model and CharRM loaded once. The two reports are the same, timings aside."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from report_compare_util import report_files

pytestmark = pytest.mark.slow

SMOKE = Path(__file__).parents[2] / "rgen_harness" / "configs" / "study_smoke.yaml"


def _study(workdir: Path, **extra) -> subprocess.CompletedProcess:
    workdir.mkdir()
    config = yaml.safe_load(SMOKE.read_text(encoding="utf-8"))
    config.update(extra)
    path = workdir / "study.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True))
    proc = subprocess.run(
        [sys.executable, "-m", "rgen_harness.cli", "study", str(path)],
        cwd=workdir,
        env=dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1"),
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def test_smoke_study_reports_the_same_one_at_a_time_and_side_by_side(tmp_path):
    one = _study(tmp_path / "one")
    assert "generating (scored later)" not in one.stdout  # the CPU: one run at a time
    six = _study(tmp_path / "six", gpus=list(range(6)))
    printed = six.stdout
    for run in ("tiny-llama/charactereval", "tiny-qwen2/charactereval"):
        assert f"[study] {run}: generating (scored later) on GPU" in printed, printed[-3000:]
        assert f"[study] {run}: scored, done" in printed
    assert printed.count("shards merged") == 2  # 4 runs, 6 GPUs: each deita run in 2 shards
    assert "[study] scoring: reward model loaded 1 time(s), CharRM 1 time(s)" in printed
    a = report_files(tmp_path / "one" / "results" / "smoke", tmp_path / "one")
    b = report_files(tmp_path / "six" / "results" / "smoke", tmp_path / "six")
    assert a.keys() == b.keys() and len(a) > 10
    assert a == b
