"""A run is finished only when everything it writes is there, whole: a run killed between the
results JSON and the samples files resumes; garbled run files are named with the fix; broken
caches are set aside before lm_eval starts."""

from __future__ import annotations

import json
import sqlite3

import pytest
from study_fakes import FakeLmEval, base_config, results_files, samples_files, study

from rgen_harness.study.config import StudyConfigError


@pytest.mark.parametrize("kill", ["deleted", "empty", "cut mid-line", "fewer lines"])
def test_run_killed_before_its_samples_were_written_resumes(tmp_path, monkeypatch, kill):
    fake = FakeLmEval(monkeypatch)
    raw = base_config(tmp_path)
    outcome, _ = study(raw)
    assert outcome.done == ["first/deita"] and fake.calls == ["first/deita"]
    outcome, printed = study(raw)
    assert outcome.skipped == ["first/deita"] and "finished earlier, skipped" in printed

    qcr = [p for p in samples_files(tmp_path) if "deita_qcr" in p.name][0]
    text = qcr.read_text()
    if kill == "deleted":
        qcr.unlink()
    elif kill == "empty":
        qcr.write_text("")
    elif kill == "cut mid-line":
        qcr.write_text(text[: len(text) // 2])
    else:
        qcr.write_text("".join(text.splitlines(keepends=True)[:-1]))

    outcome, printed = study(raw)
    assert "finished earlier" not in printed
    assert f"first/deita: not finished: {results_files(tmp_path)[0]}: {qcr.name}" in printed
    assert "resuming (cached generations are reused)" in printed
    assert outcome.done == ["first/deita"] and len(fake.calls) == 2
    outcome, printed = study(raw)  # the resumed run wrote everything: finished now
    assert outcome.skipped == ["first/deita"] and len(fake.calls) == 2


@pytest.mark.parametrize(
    "content", [b"\xff\xfe garbled", b'{"results": {"deita_qr": {}', b"[1, 2]", b'{"a": 1}']
)
def test_unreadable_results_file_is_set_aside_and_the_run_resumes(tmp_path, monkeypatch, content):
    fake = FakeLmEval(monkeypatch)
    raw = base_config(tmp_path)
    study(raw)
    (results,) = results_files(tmp_path)
    results.write_bytes(content)
    outcome, printed = study(raw)
    assert f"not finished: {results}: " in printed
    assert f"moved the unreadable {results.name} to {results.name}.broken-" in printed
    assert list(results.parent.glob(results.name + ".broken-*"))
    assert outcome.done == ["first/deita"] and len(fake.calls) == 2


@pytest.mark.parametrize("content", [b"\xff\xfe", b"{not json", b"[]"])
def test_unreadable_run_record_stops_with_the_path_and_the_fix(tmp_path, monkeypatch, content):
    fake = FakeLmEval(monkeypatch)
    raw = base_config(tmp_path)
    study(raw)
    record = tmp_path / "study/runs/first/deita/run.json"
    record.write_bytes(content)
    with pytest.raises(StudyConfigError) as e:
        study(raw)
    assert str(record) in str(e.value) and "unreadable" in str(e.value)
    assert f"Delete {record.parent} to run first/deita again" in str(e.value)
    assert len(fake.calls) == 1


def test_broken_generation_cache_is_set_aside_before_lm_eval_starts(tmp_path, monkeypatch):
    fake = FakeLmEval(monkeypatch)
    seen = []
    cache = tmp_path / "study/cache/first/deita_rank0.db"

    def check_then_run(run, stream):
        seen.append(cache.exists())  # what lm_eval would find
        return fake(run, stream)

    monkeypatch.setattr("rgen_harness.study.runner._execute", check_then_run)
    cache.parent.mkdir(parents=True)
    cache.write_bytes(b"SQLite format 3\x00" + b"\xff" * 5000)
    outcome, _ = study(base_config(tmp_path))
    assert seen == [False] and outcome.done == ["first/deita"]
    (moved,) = cache.parent.glob("deita_rank0.db.broken-*")
    assert moved.read_bytes().startswith(b"SQLite format 3")


def test_broken_reward_cache_is_set_aside_before_lm_eval_starts(tmp_path, monkeypatch):
    FakeLmEval(monkeypatch)
    reward = tmp_path / "reward-model"
    reward.mkdir()
    (reward / "config.json").write_text(
        json.dumps({"architectures": ["LlamaForSequenceClassification"]})
    )
    scores = tmp_path / "reward-cache/scores.sqlite"
    scores.parent.mkdir()
    db = sqlite3.connect(scores)
    db.execute("CREATE TABLE scores (unrelated TEXT)")
    db.commit()
    db.close()
    raw = base_config(
        tmp_path,
        scorers=["reward"],
        reward={"model": str(reward), "cache": str(scores.parent), "device": "cpu"},
    )
    outcome, _ = study(raw)
    assert outcome.done == ["first/deita"]
    assert not scores.exists() and list(scores.parent.glob("scores.sqlite.broken-*"))
