"""`rgen-harness demo --judge` end to end, as a user types it: tiny judges on the bundled
sample rows through the real lm_eval command, then the judge leaderboard."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from rgen_harness.data.judge import SETS, get_spec, load_docs

pytestmark = pytest.mark.slow


def test_every_set_has_usable_bundled_sample_rows():
    for name in SETS:
        docs = load_docs(get_spec(name), {f"judge_path_{name}": "sample"})
        assert 3 <= len(docs) <= 6 and not [d for d in docs if d["problem"]], name


def test_sample_path_names_the_fix_for_a_missing_file(tmp_path):
    from rgen_harness.data.judge.sources import local_path

    with pytest.raises(FileNotFoundError, match='"sample" for the bundled sample rows'):
        local_path(get_spec("pandalm"), {"judge_path_pandalm": str(tmp_path / "none.json")})


def test_bundled_sample_rows_ship_in_the_wheel(tmp_path):
    from rgen_harness.data.judge.sources import sample_path

    root = Path(__file__).resolve().parents[2]
    build = [sys.executable, "-m", "hatchling", "build", "-t", "wheel", "-d", str(tmp_path)]
    subprocess.run(build, cwd=root, check=True, capture_output=True, timeout=300)
    (wheel,) = tmp_path.glob("rgen_harness-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "rgen_harness/data/judge/samples/README.md" in names
    for name in SETS:
        path = sample_path(get_spec(name))
        assert f"rgen_harness/data/judge/samples/{path.name}" in names, name


def test_demo_judge_writes_the_leaderboard(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    proc = subprocess.run(
        ["rgen-harness", "demo", "--judge", "--work-dir", str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "the scores mean nothing" in proc.stdout
    board = tmp_path / "results" / "judge_smoke"
    md = (board / "judge_leaderboard.md").read_text(encoding="utf-8")
    assert "SMOKE RUN" in md and "## Problems" not in md
    assert (board / "judge_accuracy.png").stat().st_size > 1000
    rows = json.loads((board / "judge_leaderboard.json").read_text())["rows"]
    kinds = {r["judge"]: r["kind"] for r in rows}
    assert kinds == {
        "judge/models/tiny-chat": "model",
        "judge/models/tiny-reward (reward model)": "reward model",
    }
    assert len(rows) == 2 * len(SETS)
    for r in rows:
        docs = load_docs(get_spec(r["set"]), {"judge_path": "sample"})
        assert r["pairs"] == len(docs) and r["skipped"] == 0, r
        # Every judgment is accounted for: a verdict, a parse failure or a failure.
        orders = 2 if r["kind"] == "model" else 1
        key = "accuracy" if r["set"] != "mtbench_human" else "consistency"
        if r["kind"] == "model":
            assert r["measures"][key]["n"] == len(docs)
        assert r["parse_failures"] + r["failed"] <= orders * len(docs)
    # The lm_eval commands the demo printed are the ones a user can type.
    assert "lm_eval --model hf --model_args pretrained=judge/models/tiny-chat" in proc.stdout
    assert '--metadata \'{"judge_path": "sample"' in proc.stdout
