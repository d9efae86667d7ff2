"""The study's parallel scheduler on a simulated 4-GPU node: runs side by side pinned to
distinct GPUs, resume and refusal as in the sequential runner, the dry-run plan, and Ctrl-C
stopping every child (see `sim_study`: lm_eval replaced by sleeping children)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import yaml
from sim_study import fixture_templates, lmdeploy_models, read_records, use_sim
from study_fakes import base_config, study

from rgen_harness.study.config import StudyConfigError

MODELS = [("big", 2), ("mid", 1), ("small", 1), ("tiny", 1), ("wide", 2)]
SECONDS = {"org/big": 1.5, "org/mid": 1.0, "org/small": 0.8, "org/tiny": 0.5, "org/wide": 1.2}


def _config(tmp_path, **overrides):
    overrides.setdefault("shards", 1)  # whole runs here; shards: test_study_shards
    return base_config(
        tmp_path, models=lmdeploy_models(MODELS), gpus=[0, 1, 2, 3], gpu_memory_gb=80, **overrides
    )


@pytest.fixture
def sim(tmp_path, monkeypatch):
    records = tmp_path / "records"
    use_sim(monkeypatch, fixture_templates(tmp_path / "templates"), records, SECONDS)
    return records


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def test_runs_share_the_gpus_never_oversubscribed(tmp_path, sim):
    start = time.monotonic()
    outcome, printed = study(_config(tmp_path))
    wall = time.monotonic() - start
    assert sorted(outcome.done) == sorted(f"{n}/deita" for n, _ in MODELS), printed
    recs = read_records(sim)
    assert len(recs) == len(MODELS)
    tp = {f"org/{n}": t for n, t in MODELS}
    for r in recs:
        gpus = r["gpus"].split(",")
        assert len(gpus) == tp[r["model"]] and set(gpus) <= {"0", "1", "2", "3"}
        # the runs going when this one started hold distinct GPUs
        going = [o for o in recs if o["start"] <= r["start"] < o["end"]]
        used = [g for o in going for g in o["gpus"].split(",")]
        assert len(used) == len(set(used)), going
    assert max(sum(1 for o in recs if o["start"] <= r["start"] < o["end"]) for r in recs) >= 2
    assert wall < sum(SECONDS.values())  # side by side, not one after the other
    first = min(recs, key=lambda r: r["start"])
    assert first["model"] in ("org/big", "org/wide")  # the largest (most GPUs) first
    assert "on GPU " in printed and "run.json" not in printed


def test_resume_and_refusal_work_in_parallel(tmp_path, sim):
    raw = _config(tmp_path)
    study(raw)
    outcome, printed = study(raw)
    assert len(outcome.skipped) == len(MODELS) and printed.count("finished earlier") == 5
    # a run stopped half-way resumes; the others stay finished
    for f in (tmp_path / "study/runs/mid/deita").rglob("samples_deita_qcr_*"):
        f.write_text("")
    outcome, printed = study(raw)
    assert outcome.done == ["mid/deita"] and "mid/deita: not finished" in printed, printed
    raw["generation"] = {"max_gen_toks": 5}
    with pytest.raises(StudyConfigError, match="different settings"):
        study(raw)


def test_dry_run_prints_the_plan_with_estimates_from_earlier_throughput(tmp_path, sim):
    earlier = _config(tmp_path, subset={"size": 3, "seed": 0})
    earlier["output_dir"] = str(tmp_path / "studies/subset")
    study(earlier)
    full = _config(tmp_path, subset={"size": 6, "seed": 0})
    full["output_dir"] = str(tmp_path / "studies/full")
    _, printed = study(full, dry_run=True)
    assert "[study] plan on GPUs 0,1,2,3 (80 GB each)" in printed
    assert "big/deita: 2 GPU(s) [0,1], size unknown, starts at 0 s, takes ~3 s" in printed
    assert "estimated wall time: " in printed and "one at a time 10 s" in printed
    assert not (tmp_path / "studies/full").exists()


DRIVER = textwrap.dedent(
    """
    import dataclasses, sys
    sys.path[:0] = sys.argv[2:4]
    from sim_study import sim_argv
    from rgen_harness.study import runner
    original = runner.plan_runs
    runner.plan_runs = lambda *a, **k: [
        dataclasses.replace(r, argv=sim_argv(r)) for r in original(*a, **k)]
    from rgen_harness.cli import main
    sys.exit(main(["study", sys.argv[1]]))
    """
)


def test_ctrl_c_stops_every_child(tmp_path, sim):
    raw = _config(tmp_path)
    cfg = tmp_path / "study.yaml"
    cfg.write_text(yaml.safe_dump(raw))
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    env = dict(os.environ, SIM_SECONDS=json.dumps({k: 120 for k in SECONDS}))
    here = os.path.dirname(__file__)
    proc = subprocess.Popen(
        [sys.executable, str(driver), str(cfg), here, str(os.getcwd())],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while len(read_records(sim)) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(0.5)  # both runs started (the 4 GPUs are full): interrupt the study
        assert len(read_records(sim)) == 2
        proc.send_signal(signal.SIGINT)
        out = proc.communicate(timeout=60)[0].decode()
        assert proc.returncode == 130, out[-2000:]
        assert "interrupted; every run was stopped" in out
        time.sleep(0.5)
        assert [r["pid"] for r in read_records(sim) if _alive(r["pid"])] == []
        assert not any(r["end"] for r in read_records(sim))
    finally:  # whatever failed above, leave nothing running
        for pid in [proc.pid, *(r["pid"] for r in read_records(sim))]:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        proc.wait()
