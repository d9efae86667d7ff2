"""`rgen-harness study study_default.yaml --dry-run` works offline and says what it cannot know."""

from __future__ import annotations

import io
from importlib import resources

from rgen_harness.study.config import load_study_config
from rgen_harness.study.runner import run_study


def test_dry_run_of_the_default_study_works_without_the_hub(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf" / "datasets"))
    monkeypatch.chdir(tmp_path)
    config = load_study_config(
        str(resources.files("rgen_harness") / "configs" / "study_default.yaml")
    )
    out = io.StringIO()
    outcome = run_study(config, dry_run=True, stream=out)
    text = out.getvalue()
    assert "dry run: cannot tell which 300 conversations" in text
    assert '"deita_path": "sample"' in text
    assert text.count("$ lm_eval --model") == len(config.models)
    assert not outcome.failed and not (tmp_path / "studies").exists()  # a dry run writes nothing
