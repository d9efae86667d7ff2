"""Studies whose lm_eval runs are `benchmarks/sim_lm_eval.py` children: they sleep, record their
GPUs and times, and copy lm_eval output (`fixture_templates`, or real output)."""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from pathlib import Path

from lm_eval_fixtures import sample_line, write_run

from rgen_harness.study import runner

ROOT = Path(__file__).resolve().parents[2]
SIM = ROOT / "benchmarks" / "sim_lm_eval.py"


def fixture_templates(folder: Path) -> Path:
    """lm-eval files for `inline` and `predicted` runs (fixture samples, no scores)."""
    lines = [sample_line(i, f"c{i}", {"reply_chars": 10.0 + i}) for i in range(3)]
    for name in ("inline", "predicted"):
        write_run(
            folder / name,
            model_name="tpl",
            model_args={},
            tasks={"deita_qr": lines, "deita_qcr": lines},
        )
    return folder


def sim_argv(run) -> tuple[str, ...]:
    return (sys.executable, str(SIM), *run.argv[3:])


def use_sim(monkeypatch, templates: Path, records: Path, seconds: dict[str, float]) -> None:
    """Plan runs whose command is the simulated lm_eval (what a Ray task runs, too)."""
    monkeypatch.setenv("SIM_TEMPLATES", str(templates))
    monkeypatch.setenv("SIM_RECORDS", str(records))
    monkeypatch.setenv("SIM_SECONDS", json.dumps(seconds))
    original = runner.plan_runs

    def plan(*args, **kwargs):
        # The settings travel with each run (a Ray worker does not see this process's env).
        env = tuple((k, v) for k, v in os.environ.items() if k.startswith("SIM_"))
        return [
            dataclasses.replace(r, argv=sim_argv(r), env=(*r.env, *env))
            for r in original(*args, **kwargs)
        ]

    monkeypatch.setattr(runner, "plan_runs", plan)


def read_records(records: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(records.glob("*.json"))]


def lmdeploy_models(specs: list[tuple[str, int]]) -> list[dict]:
    """Study models `(name, tp)` of type lmdeploy (never loaded: the runs are simulated)."""
    return [
        {"name": n, "model": "lmdeploy", "model_args": {"pretrained": f"org/{n}", "tp": tp}}
        for n, tp in specs
    ]


TIMINGS = ("start_time", "end_time", "total_evaluation_time_seconds", "date")


def result_files(study: Path) -> dict[str, object]:
    """Every results and samples file under runs/, by relative path: samples as bytes, results
    as parsed JSON without what records when and how fast they ran (times, throughput)."""
    out: dict[str, object] = {}
    for path in sorted((study / "runs").rglob("*")):
        if path.is_file() and path.name.startswith("samples_"):
            out[str(path.relative_to(study))] = path.read_bytes()
        elif path.is_file() and path.name.startswith("results_"):
            data = json.loads(path.read_text(encoding="utf-8"))
            for key in TIMINGS:
                data.pop(key, None)
            data.get("config", {}).pop("throughput", None)
            out[str(path.relative_to(study))] = data
    return out
