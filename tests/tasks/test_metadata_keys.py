"""One --metadata for several rgen-harness tasks: each task lets another task's keys and
scorers through and still stops on a typo."""

from __future__ import annotations

import pytest

from rgen_harness.tasks import metadata_keys
from rgen_harness.tasks.charactereval import check_keys as charactereval_keys
from rgen_harness.tasks.charactereval import read_scorers
from rgen_harness.tasks.judge.keys import check_keys as judge_keys
from rgen_harness.tasks.settings import check_keys as deita_keys
from rgen_harness.tasks.settings import scorer_names

COMBINED = {
    "deita_path": "sample",
    "on_bad_row": "skip",
    "reward_model": "/models/reward",
    "charactereval_path": "sample",
    "charrm_model": "/models/charrm",
    "charrm_trust_remote_code": True,
    "judge_swap": False,
    "scorers": "reward,rouge,charrm",
    "version": 1.0,
}


@pytest.mark.parametrize(
    "check, task",
    [(deita_keys, "deita_qr"), (charactereval_keys, "charactereval"), (judge_keys, "judge_autoj")],
)
def test_every_task_accepts_the_other_tasks_keys(check, task):
    check(dict(COMBINED), task=task)  # no error


@pytest.mark.parametrize(
    "check, task, typo, hint",
    [
        (deita_keys, "deita_qr", "charrm_modle", "charrm_model"),
        (deita_keys, "deita_qr", "deita_pth", "deita_path"),
        (charactereval_keys, "charactereval", "deita_pth", "deita_path"),
        (charactereval_keys, "charactereval", "charactereval_pth", "charactereval_path"),
        (judge_keys, "judge_autoj", "judge_pth", "judge_path"),
    ],
)
def test_a_key_no_task_reads_is_still_a_typo(check, task, typo, hint):
    with pytest.raises(ValueError) as err:
        check({**COMBINED, typo: "x"}, task=task)
    message = str(err.value)
    assert message.startswith(f"{task}: unknown --metadata key {typo!r}. Did you mean {hint!r}?")


def test_the_registry_names_each_familys_keys():
    assert "charrm_model" in metadata_keys.other_families_keys("deita")
    assert "deita_path" in metadata_keys.other_families_keys("charactereval")
    assert "charrm_model" not in metadata_keys.other_families_keys("charactereval")
    with pytest.raises(KeyError, match="unknown task family 'deta'"):
        metadata_keys.family_keys("deta")


def test_scorers_split_between_the_tasks():
    md = {"scorers": "reward,rouge,charrm"}
    assert scorer_names(md) == ("reward", "rouge") and read_scorers(md) is True
    md = {"scorers": "reward,none"}  # deita scored by reward, charactereval generates only
    assert scorer_names(md) == ("reward",) and read_scorers(md) is False
    assert read_scorers({}) is True and scorer_names({"scorers": "charrm,none"}) == ()


def test_a_scorer_list_without_this_tasks_scorers_or_none_is_an_error():
    with pytest.raises(ValueError, match=r"charactereval: .*names only other tasks' scorers"):
        read_scorers({"scorers": "reward,rouge"}, task="charactereval")
    with pytest.raises(ValueError, match=r"deita_qr: .*names only other tasks' scorers"):
        scorer_names({"scorers": "charrm"}, task="deita_qr")
    with pytest.raises(ValueError, match="'rogue' is no scorer of any task"):
        read_scorers({"scorers": "rogue,charrm"})
