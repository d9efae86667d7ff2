"""A study whose `lm_eval` runs are replaced by writing lm-eval 0.4.13's files (results JSON,
then the samples of each task), so resume decisions are tested without running models."""

from __future__ import annotations

import io
import itertools
import shutil
from pathlib import Path

from lm_eval_fixtures import sample_line, write_run

from rgen_harness.data.deita import SAMPLE_PATH
from rgen_harness.study import runner
from rgen_harness.study.config import parse_study_config


def base_config(tmp_path: Path, **overrides) -> dict:
    data = tmp_path / "data.jsonl"
    if not data.exists():
        shutil.copy(SAMPLE_PATH, data)
    config = {
        "name": "fake",
        "models": [{"name": "first", "model": "hf", "model_args": {"pretrained": "org/first"}}],
        "data": {"path": str(data)},
        "scorers": [],
        "output_dir": str(tmp_path / "study"),
        "report_dir": str(tmp_path / "report"),
    }
    config.update(overrides)
    return config


class FakeLmEval:
    """Stands in for `runner._execute`: records the run like it, then writes fixture output."""

    def __init__(self, monkeypatch):
        self.calls: list[str] = []
        self._stamps = (f"2026-01-01T00-00-{i:02d}.000001" for i in itertools.count(1))
        monkeypatch.setattr(runner, "_execute", self)

    def __call__(self, run, stream) -> int:
        self.calls.append(run.label)
        run.out_dir.mkdir(parents=True, exist_ok=True)
        record = {"fingerprint": run.fingerprint, "settings": run.recorded_settings}
        runner._write_json(run.out_dir / runner.RUN_FILE, record)
        lines = [sample_line(i, f"c{i}", {"reply_chars": 10.0 + i}) for i in range(3)]
        write_run(
            run.out_dir,
            model_name=run.model.model_args["pretrained"],
            model_args=run.model.model_args,
            tasks={task: lines for task in run.tasks},
            ts=next(self._stamps),
        )
        return 0


def study(raw: dict, **kwargs) -> tuple[runner.StudyOutcome, str]:
    """Run the study with its output captured: (outcome, what it printed)."""
    out = io.StringIO()
    outcome = runner.run_study(parse_study_config(raw), stream=out, **kwargs)
    return outcome, out.getvalue()


def samples_files(tmp_path: Path, model: str = "first") -> list[Path]:
    return sorted((tmp_path / "study/runs" / model / "deita").rglob("samples_*.jsonl"))


def results_files(tmp_path: Path, model: str = "first") -> list[Path]:
    return sorted((tmp_path / "study/runs" / model / "deita").rglob("results_*.json"))
