"""`rgen-harness report STUDY --judge-results DIR`: the study's reward model's agreement with
human labels beside the QR-vs-QCR leaderboard."""

from __future__ import annotations

import json

import pytest
from judge_runs import record, write_run

from rgen_harness.study.report import build_report


def reward_run(folder, reward_model, records):
    meta = {"judge_with": "reward", "reward_model": reward_model}
    write_run(folder, records, model="dummy", model_name="x1", metadata=meta)


@pytest.fixture
def study(tmp_path):
    root = tmp_path / "studies" / "s"
    root.mkdir(parents=True)
    spec = {
        "name": "s",
        "models": [{"name": "base", "model": "hf", "model_args": {"pretrained": "org/base"}}],
        "reward": {"model": "org/rm-20b", "backend": "hf"},
        "report": {"resamples": 300},
    }
    (root / "study.json").write_text(json.dumps(spec))
    return root


def test_reward_model_agreement_is_shown_next_to_the_leaderboard(study, tmp_path):
    judges = tmp_path / "judge"
    reward_run(
        judges / "rm",
        "/models/rm-20b",  # a local copy of the study's hub model: same last name
        {"pandalm": [record(1, [1]), record(2, [1]), record(0, [0]), record(2, [2])]},
    )
    reward_run(judges / "other", "org/other-rm", {"pandalm": [record(1, [2]), record(2, [1])]})
    write_run(judges / "llm", {"pandalm": [record(1, [1, 1])]}, model_name="org/chat")
    files = build_report(study, tmp_path / "out", judge_results=[judges])
    md = files.markdown.read_text()
    section = md[md.index("## Reward model vs human judgments") :]
    section = section[: section.index("\n## ", 5)]
    assert "the study's reward model `org/rm-20b`" in section
    assert "| /models/rm-20b (reward model) | 0.750 [" in section
    assert "other-rm" not in section and "org/chat" not in section
    assert md.index("## Leaderboard") < md.index("## Reward model vs human judgments")
    assert md.index("## Reward model vs human judgments") < md.index("## Replies")
    payload = json.loads(files.json.read_text())
    (row,) = payload["reward_model_vs_humans"]
    assert row["measures"]["accuracy"]["value"] == 0.75 and row["kind"] == "reward model"
    assert not [p for p in files.problems if "judge" in p]


def test_no_run_of_the_study_reward_model_is_a_problem_with_the_fix(study, tmp_path):
    judges = tmp_path / "judge"
    reward_run(judges / "other", "org/other-rm", {"pandalm": [record(1, [2]), record(2, [1])]})
    files = build_report(study, tmp_path / "out", judge_results=[judges])
    problem = next(p for p in files.problems if p.startswith("--judge-results"))
    assert "no reward-model judge runs of 'org/rm-20b'" in problem
    assert "reward-model judges found: org/other-rm" in problem
    assert '"reward_model": "org/rm-20b"' in problem
    md = files.markdown.read_text()
    assert "## Reward model vs human judgments" not in md and "## Problems" in md
    # A folder that is not there is a problem too, not a crash.
    files = build_report(study, tmp_path / "out", judge_results=[tmp_path / "nowhere"])
    assert any("--judge-results: not a folder" in p for p in files.problems)


def test_report_command_takes_judge_results(study, tmp_path):
    from rgen_harness.cli import main

    judges = tmp_path / "judge"
    reward_run(judges / "rm", "org/rm-20b", {"llmbar_natural": [record(1, [1]), record(2, [2])]})
    out = tmp_path / "out"
    assert main(["report", str(study), "--out", str(out), "--judge-results", str(judges)]) == 0
    md = (out / "leaderboard.md").read_text()
    assert "| org/rm-20b (reward model) | 1.000 [1.000, 1.000] |" in md
