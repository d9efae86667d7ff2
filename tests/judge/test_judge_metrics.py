"""Judge metrics on hand-computable cases and on small re-creations of the authors' formats."""

from __future__ import annotations

import math

import pytest

from rgen_harness.metrics import judge as m
from rgen_harness.tasks.judge.aggregate import metrics_for


def test_accuracy_and_three_class_macro_scores():
    gold, pred = [1, 2, 0, 1], [1, 1, 0, None]
    assert m.accuracy(gold, pred) == 0.5
    # class 0: P=R=1; class 1: tp 1, fp 1, fn 1 -> 0.5; class 2: nothing right -> 0.
    p, r, f = m.macro_prf(gold, pred, (0, 1, 2))
    assert (p, r, f) == pytest.approx((0.5, 0.5, 0.5))


def test_two_class_macro_f1_counts_a_tie_verdict_as_a_miss():
    p, r, f = m.macro_prf([1, 2], [0, 2], (1, 2))
    assert f == pytest.approx(0.5) and r == pytest.approx(0.5)


def test_order_metrics():
    first, second = [1, 2, None, 0], [1, 1, None, 0]
    assert m.consistency(first, second) == 0.5  # a pair of failures is not consistent
    assert m.positional_agreement(first, second) == 0.75  # LLMBar counts it as equal
    assert m.both_correct([1, 2, 1, 0], first, second) == 0.5
    assert m.tie_rate([0, 1, None, 2]) == pytest.approx(1 / 3)
    assert math.isnan(m.first_pick_rate([None, 0]))


def test_first_pick_rate_is_over_non_tie_verdicts():
    # As shown: 1 1 2 0 0 0 None -> of the three non-tie verdicts two pick the first shown: 2/3
    # (not 2/6 over every read verdict, which would call an unbiased judge biased by its ties).
    assert m.first_pick_rate([1, 1, 2, 0, 0, 0, None]) == pytest.approx(2 / 3)
    assert m.first_pick_rate([1, 2, 0]) == 0.5


def test_fastchat_vote_and_agreement_with_and_without_ties():
    assert m.fastchat_vote(1, 1) == 1
    assert m.fastchat_vote(1, 2) == 0  # inconsistent -> tie
    assert m.fastchat_vote(None, 1) == 0
    assert m.fastchat_vote(None, None) == "error"
    assert m.fastchat_vote(2) == 2
    judge, humans = [1, 0, "error"], [[1, 2, 0], [0, 1], [2]]
    assert m.mtbench_agreement(judge, humans, with_tie=True) == (2, 6)
    assert m.mtbench_agreement(judge, humans, with_tie=False) == (1, 3)


def test_autoj_format_slice_gives_autoj_agreement_and_consistency():
    # Auto-J: label/outputs 0 = first better, 1 = second, 2 = tie; the exchanged file answers
    # the swapped pair. By Auto-J's own rule: both-correct rows 0, 1 -> 50.0; agree rows 0, 1.
    labels, outputs, exchanged = [0, 1, 2, 0], [0, 1, 1, 1], [1, 0, 2, 1]
    ours = {0: 1, 1: 2, 2: 0}
    gold = [ours[x] for x in labels]
    first = [ours[x] for x in outputs]
    swapped = [m.FLIP[ours[x]] for x in exchanged]
    assert 100 * m.both_correct(gold, first, swapped) == 50.0
    assert 100 * m.consistency(first, swapped) == 50.0


def test_llmbar_format_slice_gives_llmbar_statistics():
    # LLMBar result.json: winners "1"/"2"/None per order, already mapped back to the given order.
    gold = [1, 2, 2, 1]
    first = [1, 2, None, 2]
    second = [1, 1, None, 1]
    assert m.accuracy(gold, first) == 0.5  # correct_False
    assert m.accuracy(gold, second) == 0.5  # correct_True
    assert m.accuracy(gold + gold, first + second) == 0.5  # correct_average (Acc)
    assert m.both_correct(gold, first, second) == 0.25  # correct_both
    assert m.positional_agreement(first, second) == 0.5  # equal


def record(gold, pred, shown, error=None, turn=0, votes=(), skipped=0):
    return {
        "gold": gold,
        "pred": pred,
        "shown": shown,
        "error": error or ["" if p is not None else "unparsed" for p in pred],
        "turn": turn,
        "votes": list(votes),
        "skipped": skipped,
    }


def aggregate(kind, records, labels=(0, 1, 2)):
    return {name: fn(records, labels) for name, (fn, _) in metrics_for(kind).items()}


def test_records_aggregate_into_task_metrics():
    records = [
        record(1, [1, 1], [1, 2]),
        record(2, [1, 2], [1, 1]),  # first-position pick both times
        record(0, [None, 0], [None, 0], error=["failed", ""]),
        record(-1, [], [], error=[], skipped=1),
    ]
    got = aggregate("pandalm", records)
    assert got["accuracy"] == pytest.approx(4 / 6)
    assert got["accuracy_original"] == pytest.approx(1 / 3)
    assert got["accuracy_swapped"] == 1.0
    assert got["agreement_both"] == pytest.approx(1 / 3)
    assert got["consistency"] == pytest.approx(1 / 3)
    assert got["failed"] == 1 and got["parse_failures"] == 0 and got["skipped"] == 1
    assert got["tie_rate"] == pytest.approx(1 / 5)
    assert got["first_pick_rate"] == 0.75  # shown 1 2 1 1 (the tie and the failure left out)
    assert set(got) >= {"macro_precision", "macro_recall", "macro_f1"}
    assert "positional_agreement" in aggregate("llmbar", records, (1, 2))


def test_pandalm_figures_judge_the_given_order_and_read_a_missing_verdict_as_a_tie():
    # Given order gold 1 2 0 / verdict 1 None 0 (the swapped verdicts are not used):
    # PandaLM reads None as a tie -> 2/3 right; per class (0, 1, 2) TP 1 1 0, predicted 2 1 0,
    # gold 1 1 1: precision (1/2 + 1 + 0)/3, recall (1 + 1 + 0)/3, F1 (2/3 + 1 + 0)/3.
    records = [
        record(1, [1, 2], [1, 1]),
        record(2, [None, 1], [None, 2]),
        record(0, [0, 2], [0, 1]),
    ]
    got = aggregate("pandalm", records)
    assert list(got)[:4] == [
        "pandalm_accuracy",
        "pandalm_macro_precision",
        "pandalm_macro_recall",
        "pandalm_macro_f1",
    ]
    assert got["pandalm_accuracy"] == pytest.approx(2 / 3)
    assert got["pandalm_macro_precision"] == pytest.approx(0.5)
    assert got["pandalm_macro_recall"] == pytest.approx(2 / 3)
    assert got["pandalm_macro_f1"] == pytest.approx((2 / 3 + 1) / 3)
    # The project's rule, pooled over both orders, a missing verdict wrong: 2 of 6.
    assert got["accuracy"] == pytest.approx(2 / 6)


def test_authors_figures_lead_each_kind():
    assert list(aggregate("autoj", [record(1, [1, 1], [1, 2])]))[:3] == [
        "agreement_both",
        "consistency",
        "accuracy_original",
    ]
    assert list(aggregate("llmbar", [record(1, [1, 1], [1, 2])], (1, 2)))[:2] == [
        "accuracy",
        "positional_agreement",
    ]


def test_single_order_leaves_order_metrics_undefined():
    got = aggregate("autoj", [record(1, [1], [1]), record(2, [0], [0])])
    assert got["accuracy"] == 0.5 and math.isnan(got["consistency"])
    assert math.isnan(got["agreement_both"]) and math.isnan(got["accuracy_swapped"])


def test_mtbench_records_use_fastchat_votes_per_turn():
    records = [
        record(-1, [2, 2], [2, 1], turn=1, votes=[2, 2, 0]),
        record(-1, [1, 2], [1, 1], turn=1, votes=[1]),  # inconsistent -> tie
        record(-1, [None, None], [None, None], turn=2, votes=[0, 1]),  # error
    ]
    got = aggregate("mtbench", records)
    assert "accuracy" not in got
    assert got["agreement_turn1_tie"] == pytest.approx(2 / 4)
    assert got["agreement_turn1_notie"] == 1.0  # the tie vote and the tie group left out
    assert got["agreement_turn2_tie"] == 0.0 and got["agreement_turn2_notie"] == 0.0
    assert got["parse_failures"] == 2
