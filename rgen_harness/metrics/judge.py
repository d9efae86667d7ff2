"""Pairwise judge metrics, computed the way each source computes them.

Labels: 0 = tie, 1 = response 1 better, 2 = response 2 better, always in the dataset's own order
(a verdict given on the swapped pair is mapped back: 1 <-> 2). None = no verdict (unparsable
reply, or the judgment failed): it is wrong wherever a verdict is compared with a label, and is
never replaced by a guess.

- accuracy: share of judgments equal to the gold label, over both orders pooled (= LLMBar's
  "Acc", the mean of the two per-order accuracies); `accuracy_original` / `accuracy_swapped`
  per order (LLMBar's correct_False / correct_True; Auto-J's "single" agreement is the first).
- macro_f1 / macro_precision / macro_recall: scikit-learn macro averages over the set's classes
  (3 with ties: PandaLM, Auto-J; 2 without: LLMBar, where a tie verdict is simply wrong), pooled
  over both orders. PandaLM reports them single-order against the annotators' majority.
- agreement_both: right in both orders (Auto-J's pairwise "agreement", LLMBar's correct_both).
- consistency: same verdict in both orders, both read (Auto-J's consistency).
- positional_agreement: LLMBar's "equal": same verdict in both orders, where two missing
  verdicts also count as the same (as `LLMEvaluator/evaluate.py` counts them).
- MT-Bench agreement (FastChat `compute_agreement.py`, judge vs. human): the judge's vote per
  (question, pair, turn) is compared with every expert vote of that group; "with tie" counts
  all, "without tie" leaves out a group whose judge vote is a tie and every tie vote of an
  expert. The two orders give one vote as in FastChat's pairwise judge: the same verdict, else
  "inconsistent", which FastChat counts as a tie; two failed verdicts are an error (a vote that
  agrees with nothing).
- tie_rate: share of read verdicts that are ties.
- first_pick_rate: share of the non-tie verdicts (1 or 2, as the judge saw the pair) that pick
  the response shown first; 0.5 is unbiased on balanced data (ties and missing verdicts are
  left out of both counts).

The authors' own conventions, reported beside the pooled figures above under their own names:

- PandaLM (`pandalm_accuracy`, `pandalm_macro_precision/recall/f1`): the given order only,
  against the annotators' majority, a missing verdict counted as a tie
  (`parse_pandalm_response` in WeOpenML/PandaLM `pandalm/utils/pandalm_inference.py` returns 0
  for any reply it cannot read); 3-class scikit-learn macro averages.
- Auto-J: `agreement_both` is their pairwise "Agreement" (`codes/leaderboard/pairwise_eval.py`,
  type "pairwise"), `consistency` their consistency, `accuracy_original` their "single" type.
- LLMBar: `accuracy` is their "Acc" (correct_average), `positional_agreement` their "equal"
  (`LLMEvaluator/evaluate.py`); verdicts come from a forced-choice prompt (no tie).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

Label = int | None
NAN = math.nan
FLIP = {0: 0, 1: 2, 2: 1, None: None}


def _mean(flags: Sequence[bool]) -> float:
    return sum(flags) / len(flags) if flags else NAN


def accuracy(gold: Sequence[int], pred: Sequence[Label]) -> float:
    return _mean([p == g for g, p in zip(gold, pred, strict=True)])


def macro_prf(
    gold: Sequence[int], pred: Sequence[Label], labels: Sequence[int]
) -> tuple[float, float, float]:
    """(precision, recall, F1), scikit-learn's macro averages over `labels`; a missing
    verdict is a prediction of no class (a miss for its gold class)."""
    if not gold:
        return NAN, NAN, NAN
    from sklearn.metrics import precision_recall_fscore_support

    p, r, f, _ = precision_recall_fscore_support(
        list(gold),
        [-1 if x is None else x for x in pred],
        labels=list(labels),
        average="macro",
        zero_division=0,
    )
    return float(p), float(r), float(f)


def both_correct(gold: Sequence[int], first: Sequence[Label], second: Sequence[Label]) -> float:
    return _mean([a == g and b == g for g, a, b in zip(gold, first, second, strict=True)])


def consistency(first: Sequence[Label], second: Sequence[Label]) -> float:
    return _mean([a is not None and a == b for a, b in zip(first, second, strict=True)])


def positional_agreement(first: Sequence[Label], second: Sequence[Label]) -> float:
    return _mean([a == b for a, b in zip(first, second, strict=True)])


def tie_rate(pred: Sequence[Label]) -> float:
    return _mean([p == 0 for p in pred if p is not None])


def first_pick_rate(shown: Sequence[Label]) -> float:
    """Share of the non-tie verdicts that pick the response shown first. `shown`: verdicts in
    the order the judge saw the pair (1 = the first one shown); ties and None are left out."""
    return _mean([p == 1 for p in shown if p in (1, 2)])


def missing_as_tie(pred: Sequence[Label]) -> list[int]:
    """PandaLM's reading: a verdict that could not be read counts as a tie (0)."""
    return [0 if p is None else p for p in pred]


def fastchat_vote(first: Label, second: Label | str = "single") -> Label | str:
    """One vote from the two orders (FastChat: equal -> it, else 'inconsistent' = tie);
    'error' for no verdict. `second="single"` when only one order was judged."""
    if second == "single":
        return "error" if first is None else first
    if first == second:
        return "error" if first is None else first
    return 0


def mtbench_agreement(
    judge: Sequence[Label | str], humans: Sequence[Sequence[int]], *, with_tie: bool
) -> tuple[int, int]:
    """(agreeing, compared) judge-vs-expert vote pairs, as FastChat counts them."""
    agree = total = 0
    for vote, votes in zip(judge, humans, strict=True):
        if not with_tie and vote == 0:
            continue
        for human in votes:
            if not with_tie and human == 0:
                continue
            total += 1
            agree += vote == human
    return agree, total
