"""From per-doc judge records to the metrics of rgen_harness.metrics.judge.

`process_results` returns the same small record for every metric of a doc:
`{"gold": int, "pred": [original, swapped], "shown": [...], "error": [...], "votes": [...],
"turn": int, "scenario": str, "skipped": 0|1}` (`pred` in the dataset's order, `shown` as the
judge saw each order, `error` '' / 'unparsed' / 'failed' per order). lm-eval hands each
metric's aggregation the list of all records; the functions here pick what they need. A skipped
doc counts only in `skipped`; a failed or unparsed judgment is a missing verdict everywhere else.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from rgen_harness.metrics import judge as m

Record = dict
NAN = m.NAN


def _used(records: list[Record]) -> list[Record]:
    return [r for r in records if not r["skipped"]]


def _gold(records: list[Record]) -> list[Record]:
    return [r for r in _used(records) if r["gold"] >= 0]


def _both(records: list[Record]) -> list[Record]:
    return [r for r in _gold(records) if len(r["pred"]) == 2]


def _pooled(records: list[Record]) -> tuple[list[int], list]:
    gold, pred = [], []
    for r in _gold(records):
        gold += [r["gold"]] * len(r["pred"])
        pred += r["pred"]
    return gold, pred


def accuracy(records, labels):
    return m.accuracy(*_pooled(records))


def _order(records, index):
    rs = [r for r in _gold(records) if len(r["pred"]) > index]
    return m.accuracy([r["gold"] for r in rs], [r["pred"][index] for r in rs]) if rs else NAN


def _prf(records, labels, which):
    return m.macro_prf(*_pooled(records), labels)[which]


def _pandalm(records, labels, which):
    """PandaLM's way: the given order only, a missing verdict read as a tie."""
    rs = _gold(records)
    gold = [r["gold"] for r in rs]
    pred = m.missing_as_tie([r["pred"][0] for r in rs])
    if which == "accuracy":
        return m.accuracy(gold, pred)
    return m.macro_prf(gold, pred, labels)[("precision", "recall", "f1").index(which)]


def agreement_both(records, labels):
    rs = _both(records)
    return m.both_correct([r["gold"] for r in rs], *_orders(rs))


def _orders(rs):
    return [r["pred"][0] for r in rs], [r["pred"][1] for r in rs]


def consistency(records, labels):
    rs = [r for r in _used(records) if len(r["pred"]) == 2]
    return m.consistency(*_orders(rs))


def positional_agreement(records, labels):
    return m.positional_agreement(*_orders(_both(records)))


def tie_rate(records, labels):
    return m.tie_rate([p for r in _used(records) for p in r["pred"]])


def first_pick_rate(records, labels):
    return m.first_pick_rate([p for r in _used(records) for p in r["shown"]])


def _count(records, labels, what):
    return float(sum(e == what for r in _used(records) for e in r["error"]))


def skipped(records, labels):
    return float(sum(r["skipped"] for r in records))


def mtbench(records, labels, *, turn, with_tie):
    rs = [r for r in _used(records) if r["turn"] == turn]
    votes = [m.fastchat_vote(*r["pred"]) for r in rs]
    agree, total = m.mtbench_agreement(votes, [r["votes"] for r in rs], with_tie=with_tie)
    return agree / total if total else NAN


Aggregation = Callable[[list[Record], tuple[int, ...]], float]
# name -> (aggregation, higher is better)
COMMON: dict[str, tuple[Aggregation, bool]] = {
    "consistency": (consistency, True),
    "tie_rate": (tie_rate, False),
    "first_pick_rate": (first_pick_rate, False),
    "parse_failures": (functools.partial(_count, what="unparsed"), False),
    "failed": (functools.partial(_count, what="failed"), False),
    "skipped": (skipped, False),
}
GOLD: dict[str, tuple[Aggregation, bool]] = {
    "accuracy": (accuracy, True),
    "macro_f1": (functools.partial(_prf, which=2), True),
    "accuracy_original": (lambda rs, labels: _order(rs, 0), True),
    "accuracy_swapped": (lambda rs, labels: _order(rs, 1), True),
    "agreement_both": (agreement_both, True),
}
EXTRA: dict[str, dict[str, tuple[Aggregation, bool]]] = {
    "pandalm": {
        "macro_precision": (functools.partial(_prf, which=0), True),
        "macro_recall": (functools.partial(_prf, which=1), True),
    },
    "autoj": {},
    "llmbar": {"positional_agreement": (positional_agreement, True)},
    "mtbench": {
        f"agreement_turn{turn}_{'tie' if tie else 'notie'}": (
            functools.partial(mtbench, turn=turn, with_tie=tie),
            True,
        )
        for turn in (1, 2)
        for tie in (True, False)
    },
}
# The figures each set's authors report, computed their way (see rgen_harness.metrics.judge);
# they lead each set's metrics. Auto-J's and LLMBar's are project metrics under their names.
AUTHORS: dict[str, tuple[str, ...]] = {
    "pandalm": (
        "pandalm_accuracy",
        "pandalm_macro_precision",
        "pandalm_macro_recall",
        "pandalm_macro_f1",
    ),
    "autoj": ("agreement_both", "consistency", "accuracy_original"),
    "llmbar": ("accuracy", "positional_agreement"),
    "mtbench": ("agreement_turn1_notie", "agreement_turn2_notie"),
}
PANDALM: dict[str, tuple[Aggregation, bool]] = {
    "pandalm_accuracy": (functools.partial(_pandalm, which="accuracy"), True),
    "pandalm_macro_precision": (functools.partial(_pandalm, which="precision"), True),
    "pandalm_macro_recall": (functools.partial(_pandalm, which="recall"), True),
    "pandalm_macro_f1": (functools.partial(_pandalm, which="f1"), True),
}


def metrics_for(kind: str) -> dict[str, tuple[Aggregation, bool]]:
    """Every metric of a set kind, the authors' figures first."""
    gold = {} if kind == "mtbench" else GOLD
    every = {**(PANDALM if kind == "pandalm" else {}), **gold, **EXTRA[kind], **COMMON}
    return {**{name: every[name] for name in AUTHORS[kind]}, **every}
