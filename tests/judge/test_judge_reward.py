"""Reward models as judges: both responses scored by the project's reward backend (hf, on a
tiny random reward model), the verdict from the score gap and the tie margin."""

from __future__ import annotations

import json
import math

import pytest
from judge_files import write

from rgen_harness.tasks.judge import reward


def test_verdict_from_scores_and_margin():
    assert reward.verdict(1.0, 0.5, 0.0) == 1
    assert reward.verdict(0.5, 1.0, 0.0) == 2
    assert reward.verdict(1.0, 1.0, 0.0) == 0  # strict by default: ties only when equal
    assert reward.verdict(1.0, 0.9, 0.1) == 0
    assert reward.verdict(math.nan, 1.0, 0.0) is None
    assert reward.read_margin({}) == 0.0
    with pytest.raises(ValueError, match=r"judge_tie_margin=-1 must be a number >= 0"):
        reward.read_margin({"judge_tie_margin": -1})
    with pytest.raises(ValueError, match="judge_with='rm' is not valid"):
        reward.read_mode({"judge_with": "rm"})


def evaluate(tiny_dir, path, **metadata):
    from lm_eval import simple_evaluate
    from lm_eval.models.dummy import DummyLM
    from lm_eval.tasks import TaskManager

    meta = {
        "judge_path": str(path),
        "judge_with": "reward",
        "reward_model": str(tiny_dir / "reward"),
        "reward_backend": "hf",
        "reward_device": "cpu",
        "reward_cache": "none",
        **metadata,
    }
    manager = TaskManager(include_defaults=False, metadata=meta)
    out = simple_evaluate(
        model=DummyLM(),
        tasks=["judge_pandalm"],
        task_manager=manager,
        log_samples=True,
        bootstrap_iters=0,
    )
    samples = out["samples"]["judge_pandalm"]
    return out["results"]["judge_pandalm"], [json.loads(s["filtered_resps"][0]) for s in samples]


@pytest.fixture(scope="module")
def pandalm_file(tmp_path_factory):
    return write(tmp_path_factory.mktemp("judge_reward"))["pandalm"]


def test_reward_judge_scores_both_responses_once(tiny_dir, pandalm_file):
    res, judgments = evaluate(tiny_dir, pandalm_file)
    assert len(judgments) == 6 and res["skipped,none"] == 3  # rows 3, 4 and 5
    used = [j for j in judgments if j["status"] != "skipped"]
    assert len(used) == 3 and res["failed,none"] == 0 and res["parse_failures,none"] == 0
    for j in used:
        s1, s2 = j["scores"]
        assert j["verdict"] == (0 if s1 == s2 else 1 if s1 > s2 else 2)
    gold = [2, 0, 1]
    expect = sum(j["verdict"] == g for j, g in zip(used, gold, strict=True)) / 3
    assert res["accuracy,none"] == pytest.approx(expect)
    assert math.isnan(res["consistency,none"])  # one order only
    # A margin wider than any gap turns every verdict into a tie.
    res, judgments = evaluate(tiny_dir, pandalm_file, judge_tie_margin=1e9)
    assert res["tie_rate,none"] == 1.0
    assert {j["verdict"] for j in judgments if j["status"] == "ok"} == {0}
