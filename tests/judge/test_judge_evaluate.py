"""The judge tasks through lm-eval's evaluator with a rule-following stand-in judge, so that
every metric has a value worked out by hand (the CLI test's tiny model only writes noise):
the tie-allowing prompt (judge_v1, selected) and LLMBar's default forced choice."""

from __future__ import annotations

import json
import re

import pytest
from lm_eval.api.model import LM

from rgen_harness.tasks.judge.task import read_swap

ROWS = [
    {"input": "Pick", "output_1": "good good", "output_2": "bad", "label": 1},
    {"input": "Pick", "output_1": "good", "output_2": "good", "label": 2},  # judged a tie
    {"input": "GARBLE", "output_1": "a", "output_2": "b", "label": 2},  # no verdict
    {"input": "Pick", "output_1": "good", "output_2": "good good", "label": 2},
    {"input": "Pick", "output_1": "good", "label": 1},  # malformed: skipped
]
SECTIONS = re.compile(r"\[Response 1\]\n(.*?)\n\n\[Response 2\]\n(.*?)\n\nAnswer with", re.S)
FORCED = re.compile(r"# Output \(a\):\n(.*?)\n\n# Output \(b\):\n(.*?)\n\n# Which", re.S)


class KeywordJudge(LM):
    """Prefers the response with more "good"s; answers nonsense to a query saying GARBLE. On the
    forced-choice prompt, equal responses get a reply naming both outputs, (b) first."""

    def apply_chat_template(self, chat_history, add_generation_prompt=True):
        return "".join(f"<{m['role']}>{m['content']}</{m['role']}>" for m in chat_history) + "<a>"

    def generate_until(self, requests, disable_tqdm=False):
        out = []
        for req in requests:
            prompt = req.args[0]
            forced = FORCED.search(prompt)
            sections = forced or SECTIONS.search(prompt)
            one, two = (s.count("good") for s in sections.groups())
            if "GARBLE" in prompt:
                out.append("I cannot tell.")
            elif forced:
                out.append(
                    "Output (a)"
                    if one > two
                    else "Output (b)"
                    if two > one
                    else "Output (b) is close,\nOutput (a) is better"
                )
            else:
                out.append("[1]" if one > two else "[2]" if two > one else "[0]")
        return out

    def loglikelihood(self, requests):
        raise NotImplementedError

    def loglikelihood_rolling(self, requests):
        raise NotImplementedError


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    path = tmp_path_factory.mktemp("judge_eval") / "llmbar.json"
    path.write_text(json.dumps(ROWS))
    return path


@pytest.fixture(scope="module")
def both_orders(data):
    return evaluate(data, judge_prompt="judge_v1")  # the tie-allowing prompt, still selectable


def evaluate(data, **metadata):
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    # Only the package's task folder (added by the start-up hook): indexing lm-eval's own
    # thousands of tasks would take most of the test's time.
    manager = TaskManager(include_defaults=False, metadata={"judge_path": str(data), **metadata})
    return simple_evaluate(
        model=KeywordJudge(),
        tasks=["judge_llmbar_natural"],
        task_manager=manager,
        log_samples=True,
        bootstrap_iters=0,
        system_instruction="Be fair.",
    )


def test_metrics_match_hand_computed_values(both_orders):
    res = both_orders["results"]["judge_llmbar_natural"]
    get = lambda name: res[f"{name},none"]  # noqa: E731
    assert get("accuracy") == 0.5  # rows 0 and 3 right in both orders, of 4 pairs
    assert get("accuracy_original") == 0.5 and get("accuracy_swapped") == 0.5
    assert get("agreement_both") == 0.5
    assert get("consistency") == 0.75  # the unparsed pair is not consistent
    assert get("positional_agreement") == 1.0  # LLMBar counts two missing verdicts as equal
    assert get("macro_f1") == pytest.approx(0.75)  # class 1: F1 1; class 2: P 1, R 1/3
    assert get("parse_failures") == 2 and get("failed") == 0 and get("skipped") == 1
    assert get("tie_rate") == pytest.approx(1 / 3)
    # Non-tie verdicts as shown: [1], [2] (row 0), [2], [1] (row 3): 2 of 4 pick the first.
    assert get("first_pick_rate") == 0.5


def test_llmbar_default_is_forced_choice_read_as_their_evaluator(data):
    out = evaluate(data)
    res = out["results"]["judge_llmbar_natural"]
    get = lambda name: res[f"{name},none"]  # noqa: E731
    # Row 1 (equal responses) is answered "Output (b) ...\nOutput (a) ..." in both orders: read
    # as (a) = 1 as LLMBar reads it (label 1 tried first); in the dataset's order 1, then 2.
    # Pooled: row 0 2/2, row 1 1/2, row 2 (no verdict) 0/2, row 3 2/2 = 5/8.
    assert get("accuracy") == 0.625
    assert get("positional_agreement") == 0.75  # rows 0, 3 and the two missing verdicts
    assert get("tie_rate") == 0.0 and get("parse_failures") == 2
    first = json.loads(out["samples"]["judge_llmbar_natural"][0]["filtered_resps"][0])
    assert "Output (a)" in first["prompt"] and "[0]" not in first["prompt"]
    metrics = [k for k in res if k.endswith(",none") and "_stderr" not in k]
    assert metrics[:2] == ["accuracy,none", "positional_agreement,none"]  # theirs first


def test_logged_samples_keep_prompt_reply_and_verdicts(both_orders):
    samples = both_orders["samples"]["judge_llmbar_natural"]
    assert len(samples) == 5
    original, swapped = (json.loads(r) for r in samples[0]["filtered_resps"])
    assert original["order"] == "original" and swapped["order"] == "swapped"
    assert original["prompt"].startswith("<system>Be fair.</system><user>")
    assert "[Response 1]\ngood good\n" in original["prompt"]
    assert "[Response 1]\nbad\n" in swapped["prompt"]
    assert (swapped["reply"], swapped["verdict"], swapped["verdict_in_dataset_order"]) == (
        "[2]",
        2,
        1,
    )
    garbled = json.loads(samples[2]["filtered_resps"][0])
    assert garbled["status"] == "unparsed" and garbled["verdict"] is None
    assert garbled["reply"] == "I cannot tell."
    skipped = json.loads(samples[4]["filtered_resps"][0])
    assert skipped["status"] == "skipped" and "has no 'output_2' field" in skipped["reason"]


def test_swap_off_judges_each_pair_once(data):
    out = evaluate(data, judge_swap=False, judge_prompt="judge_v1")
    res = out["results"]["judge_llmbar_natural"]
    assert res["accuracy,none"] == 0.5 and res["first_pick_rate,none"] == 0.5
    assert res["consistency,none"] != res["consistency,none"]  # NaN: one order only
    assert all(len(s["filtered_resps"]) == 1 for s in out["samples"]["judge_llmbar_natural"])
    with pytest.raises(ValueError, match="judge_swap='maybe' is not a boolean"):
        read_swap("maybe")


def test_a_misspelt_metadata_key_is_an_error_with_a_suggestion(data):
    with pytest.raises(
        ValueError, match="unknown --metadata key 'judge_pth'. Did you mean 'judge_path'"
    ):
        evaluate(data, judge_pth=str(data))
