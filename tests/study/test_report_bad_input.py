"""Garbled results JSON and samples lines never crash `rgen-harness report`: each is listed under
Problems with the file (and line) and what to do, and the other models are reported as usual."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from lm_eval_fixtures import paired_fixture, write_run

from rgen_harness.study.report import build_report

GARBLED = {
    "not utf-8": b"\xff\xfe\x00garbled",
    "cut short": b'{"results": {"deita_qr": {"alias"',
    "a list": b"[1, 2, 3]",
    "results is a list": b'{"results": ["deita_qr"], "config": {}}',
    "entry not a mapping": b'{"results": {"deita_qr": [1]}, "config": []}',
}


def _study(root, broken: bytes):
    spec = [
        {"name": "good", "model": "hf", "model_args": {"pretrained": "org/good"}},
        {"name": "bad", "model": "hf", "model_args": {"pretrained": "org/bad"}},
    ]
    root.mkdir()
    (root / "study.json").write_text(
        json.dumps({"name": "bad-input", "models": spec, "report": {"resamples": 1000}})
    )
    for s in spec:
        out = write_run(
            root / f"runs/{s['name']}/deita",
            model_name=s["model_args"]["pretrained"],
            model_args=s["model_args"],
            tasks=paired_fixture(12, seed=3),
        )
    (results,) = out.glob("results_*.json")
    results.write_bytes(broken)
    return results


@pytest.mark.parametrize("kind", sorted(GARBLED))
def test_garbled_results_file_is_a_problem_not_a_crash(tmp_path, kind):
    results = _study(tmp_path / "study", GARBLED[kind])
    files = build_report(tmp_path / "study", tmp_path / "out")
    rows = {r["model"]: r for r in files.rows}
    assert rows["good"]["paired"]["diff"]["n"] > 0
    assert rows["bad"]["qr"] is None and rows["bad"]["paired"]["diff"]["n"] == 0
    problems = json.loads(files.json.read_text())["problems"]
    ours = [p for p in problems if str(results) in p]
    assert ours and all("rgen-harness study" in p for p in ours), problems
    md = files.markdown.read_text()
    assert "## Problems" in md and str(results) in md


def test_garbled_sample_lines_are_left_out_with_file_and_line(tmp_path):
    root = tmp_path / "study"
    _study(root, b"[]")
    (samples,) = (root / "runs/good/deita").rglob("samples_deita_qr_*.jsonl")
    lines = samples.read_bytes().splitlines(keepends=True)
    lines[2] = b"\xff\xfe not utf-8\n"
    lines[4] = b"[1, 2]\n"
    lines[6] = b'{"doc": "not a mapping", "doc_id": "x"}\n'
    samples.write_bytes(b"".join(lines))
    files = build_report(root, tmp_path / "out")
    good = next(r for r in files.rows if r["model"] == "good")
    assert good["qr"]["n"] == 12 - 3
    problems = json.loads(files.json.read_text())["problems"]
    for lineno in (3, 5, 7):
        assert any(p.startswith(f"{samples}:{lineno}: unreadable sample") for p in problems)


def test_report_command_goes_on_past_a_garbled_file(tmp_path):
    results = _study(tmp_path / "study", GARBLED["not utf-8"])
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    done = subprocess.run(
        [sys.executable, "-m", "rgen_harness.cli", "report", "study", "--out", "out"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "2 model(s)" in done.stdout
    assert "problem" in done.stdout and "leaderboard.md" in done.stdout
    assert str(results.relative_to(tmp_path)) in (tmp_path / "out/leaderboard.md").read_text()
