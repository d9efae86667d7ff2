"""deita_pairwise's inputs without a model: which samples are read, how pairs are formed, how
the history is quoted, and the errors for bad settings."""

from __future__ import annotations

import json
import math

import pytest
from pairwise_files import SCENARIO, TS, write_scenario

from rgen_harness.chat.quote import framed, history_text
from rgen_harness.data.pairwise import pair_docs, side
from rgen_harness.prompts.judge import load_judge_prompt
from rgen_harness.tasks.pairwise.settings import PairwiseSettings


def test_pairs_follow_the_conversation_id_and_say_why_one_is_not_judged(tmp_path):
    folder = write_scenario(tmp_path)
    a, b = side(folder, "deita_qcr", key="a"), side(folder, "deita_qr", key="b")
    assert a.path.name == f"samples_deita_qcr_{TS}.jsonl" and a.label == "tiny-model/QCR"
    docs = {d["id"]: d for d in pair_docs(a, b)}
    assert list(docs) == list(SCENARIO)  # A's order; the QR file is reversed
    assert docs["c0"]["response_a"].startswith("quality=3") and len(docs["c0"]["response_b"]) == 90
    assert (docs["c0"]["reward_a"], docs["c0"]["reward_b"]) == (2.0, 1.0)
    assert math.isnan(docs["c8"]["reward_a"])
    assert docs["c7"]["problem"].startswith("B's reply was not generated (skipped")
    assert (docs["c9"]["dropped_a"], docs["c9"]["dropped_b"]) == (2, 0)
    assert all(not d["problem"] for k, d in docs.items() if k != "c7")


def test_a_conversation_in_one_run_only_or_with_another_history_is_a_counted_problem(tmp_path):
    folder = write_scenario(tmp_path)
    qr = folder / f"samples_deita_qr_{TS}.jsonl"
    lines = [json.loads(x) for x in qr.read_text().splitlines()]
    lines = [x for x in lines if x["doc"]["id"] != "c0"]
    for x in lines:
        if x["doc"]["id"] == "c1":
            x["doc"]["messages"][-1]["content"] = "another question"
    qr.write_text("".join(json.dumps(x) + "\n" for x in lines))
    a, b = side(folder, "deita_qcr", key="a"), side(qr, "deita_qr", key="b")
    docs = {d["id"]: d for d in pair_docs(a, b)}
    assert docs["c0"]["problem"].startswith("the conversation is not in B's samples")
    assert "histories of this conversation differ" in docs["c1"]["problem"]


def test_history_is_quoted_with_roles_and_a_note_on_dropped_turns():
    one = [{"role": "user", "content": "What is 2+2?"}]
    assert history_text(one) == "What is 2+2?"  # a lone question reads as the judge sets do
    turns = [
        {"role": "user", "content": "q1"},
        {"role": "assistant", "content": "a1"},
        {"role": "user", "content": "q2"},
    ]
    text = history_text(turns, dropped=2)
    assert text.startswith("(2 earlier turns of this conversation are not shown.)")
    assert "[User]\nq1\n\n[Assistant]\na1\n\n[User]\nq2" in text
    assert text.endswith("(The responses answer the last user turn above.)")


def test_frame_leaves_a_response_that_mentions_the_query_placeholder_alone():
    prompt = load_judge_prompt("judge_v1")
    frame = prompt.frame("says {query} and {response_2}", "two", system_instruction="Be fair.")
    (system, user) = framed(frame, [{"role": "user", "content": "Q?"}])
    assert system == {"role": "system", "content": "Be fair."}
    assert "[Query]\nQ?\n\n" in user["content"]
    assert "[Response 1]\nsays {query} and {response_2}\n\n[Response 2]\ntwo" in user["content"]
    assert (
        user["content"]
        == prompt.messages("Q?", "says {query} and {response_2}", "two")[0]["content"]
    )


def test_settings_errors_name_the_fix(tmp_path):
    folder = write_scenario(tmp_path)
    with pytest.raises(ValueError, match="Did you mean 'pairwise_run'"):
        PairwiseSettings.from_metadata({"pairwise_rnu": str(folder)}, task="deita_pairwise")
    with pytest.raises(ValueError, match="say which replies to compare"):
        PairwiseSettings.from_metadata({}, task="deita_pairwise")
    with pytest.raises(ValueError, match="not both"):
        PairwiseSettings.from_metadata(
            {"pairwise_run": str(folder), "pairwise_a": str(folder)}, task="deita_pairwise"
        )
    with pytest.raises(FileNotFoundError, match="neither a samples file nor a folder"):
        PairwiseSettings.from_metadata({"pairwise_run": str(tmp_path / "x")}, task="t")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no samples_deita_qcr_"):
        PairwiseSettings.from_metadata({"pairwise_run": str(tmp_path / "empty")}, task="t")
    with pytest.raises(ValueError, match="pairwise_length_ratio=0.5"):
        PairwiseSettings.from_metadata(
            {"pairwise_run": str(folder), "pairwise_length_ratio": 0.5}, task="t"
        )
    both = {"pairwise_a": str(folder), "pairwise_b": str(folder)}
    s = PairwiseSettings.from_metadata(
        both | {"pairwise_a_task": "deita_qr", "pairwise_b_task": "deita_qcr"}, task="t"
    )
    assert (s.a.task, s.b.task) == ("deita_qr", "deita_qcr") and s.length_ratio == 1.25
    with pytest.raises(ValueError, match="same samples file"):
        PairwiseSettings.from_metadata(both | {"pairwise_b_task": "deita_qcr"}, task="t")


def test_nothing_judged_gives_counts_and_no_numbers():
    from rgen_harness.metrics.pairwise import summary

    skipped = {"id": "x", "source": "s", "skipped": 1, "verdicts": [], "shown": [], "status": []}
    skipped |= {"reward_a": 1.0, "reward_b": 0.0, "chars_a": 1, "chars_b": 1}
    unreadable = skipped | {"skipped": 0, "verdicts": [1, None], "shown": [1, None]}
    unreadable["status"] = ["ok", "unparsed"]
    out = summary([skipped, unreadable], resamples=100)
    assert (out["pairs"], out["n"], out["skipped"], out["unreadable"]) == (2, 0, 1, 1)
    assert out["unreadable_verdicts"] == 1
    assert math.isnan(out["win_rate_adjusted"]) and math.isnan(out["reward_agreement"])
    assert out["first_pick_rate"] == 1.0  # the one read non-tie verdict picked the first shown
