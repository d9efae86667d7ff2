"""MT-Bench human judgments (`lmsys/mt_bench_human_judgments`, split `human`) as judge docs.

A row is one vote: `question_id`, `model_a`, `model_b`, `winner` (model_a / model_b / tie),
`judge`, `conversation_a`, `conversation_b` (two user/assistant turns each) and `turn` (1 or 2).
As FastChat's `compute_agreement.py` does, votes are grouped per (question, model pair, turn)
with the pair in name order (`model_a < model_b`, the winner flipped to match), and only the
experts' votes (`judge` starting with "expert") are compared with the judge model; the authors'
own votes are not used. Each group is ONE doc, judged once per order; its `votes` are the
expert votes. Turn 2 docs show both turns of each conversation and ask about the second answer.
"""

from __future__ import annotations

import logging
from typing import Any

from rgen_harness.data.judge.rows import Bad, check_text, empty_doc
from rgen_harness.data.judge.sources import BadLine, SetSpec

log = logging.getLogger(__name__)

_WINNERS = {"model_a": 1, "model_b": 2}


def vote_label(winner: str) -> int:
    """model_a -> 1, model_b -> 2, anything containing "tie" -> 0 (FastChat's convertvote)."""
    if "tie" in winner:
        return 0
    if winner not in _WINNERS:
        raise Bad(f"'winner' is {winner!r}; expected model_a, model_b or tie")
    return _WINNERS[winner]


def _conversation(row: dict, key: str, turn: int) -> list[str]:
    conv = row.get(key)
    if not isinstance(conv, list) or len(conv) < 2 * turn:
        raise Bad(f"{key!r} does not hold {2 * turn} turns for turn {turn}")
    texts = []
    for i, msg in enumerate(conv[: 2 * turn]):
        role = msg.get("role") if isinstance(msg, dict) else None
        expected = "user" if i % 2 == 0 else "assistant"
        if role != expected or not isinstance(msg.get("content"), str):
            raise Bad(f"{key!r} turn {i} is not a {expected} message with string content")
        texts.append(check_text(f"{key} turn {i}", msg["content"]))
    return texts


def _vote(row: Any) -> tuple[tuple, int, list[str], list[str]] | None:
    """(key, label, conversation of the first model, of the second) or None for a non-expert."""
    if isinstance(row, BadLine):
        raise Bad(row.reason)
    if not isinstance(row, dict):
        raise Bad(f"is a {type(row).__name__}, not an object")
    for field in ("question_id", "model_a", "model_b", "winner", "judge", "turn"):
        if field not in row:
            raise Bad(f"has no {field!r} field (fields: {sorted(row)})")
    judge, turn = row["judge"], row["turn"]
    if not isinstance(judge, str):
        raise Bad(f"'judge' is {judge!r}, not a string")
    if not judge.startswith("expert"):
        return None
    if type(turn) is not int or turn not in (1, 2):  # not 1.0, not True
        raise Bad(f"'turn' is {turn!r}; expected the integer 1 or 2")
    qid = row["question_id"]
    if type(qid) is not int and not isinstance(qid, str):
        raise Bad(f"'question_id' is {qid!r}; expected an integer or a string")
    a, b, winner = row["model_a"], row["model_b"], row["winner"]
    if not (isinstance(a, str) and isinstance(b, str) and a != b):
        raise Bad(f"'model_a'/'model_b' must be two different names, got {a!r}/{b!r}")
    for key, value in (("question_id", str(qid)), ("model_a", a), ("model_b", b)):
        check_text(key, value)
    if not isinstance(winner, str):
        raise Bad(f"'winner' is {winner!r}, not a string")
    label = vote_label(winner)
    conv_a = _conversation(row, "conversation_a", turn)
    conv_b = _conversation(row, "conversation_b", turn)
    if a > b:  # name order, as FastChat keys its votes
        a, b, conv_a, conv_b = b, a, conv_b, conv_a
        label = {1: 2, 2: 1, 0: 0}[label]
    return (qid, a, b, turn), label, conv_a, conv_b


def _render(doc: dict, turn: int, conv_1: list[str], conv_2: list[str]) -> None:
    if turn == 1:
        doc["query"], doc["response_1"], doc["response_2"] = conv_1[0], conv_1[1], conv_2[1]
        return
    doc["query"] = (
        f"[Question 1]\n{conv_1[0]}\n\n[Question 2]\n{conv_1[2]}\n\n"
        "Judge the answers to question 2; each response also shows its answer to question 1."
    )
    for key, conv in (("response_1", conv_1), ("response_2", conv_2)):
        doc[key] = f"[Answer to question 1]\n{conv[1]}\n\n[Answer to question 2]\n{conv[3]}"


def mtbench_docs(spec: SetSpec, rows: list[Any]) -> list[dict]:
    docs: dict[tuple, dict] = {}
    bad: list[dict] = []
    ignored = 0
    for index, row in enumerate(rows):
        try:
            vote = _vote(row)
        except Bad as e:
            doc = empty_doc(spec, index, f"row{index}")
            doc["problem"] = f"{spec.name} row {index} {e}"
            bad.append(doc)
            continue
        if vote is None:
            ignored += 1
            continue
        key, label, conv_1, conv_2 = vote
        if key not in docs:
            qid, a, b, turn = key
            doc = empty_doc(spec, index, f"q{qid}:{a}-vs-{b}:turn{turn}")
            doc["turn"] = turn
            _render(doc, turn, conv_1, conv_2)
            docs[key] = doc
        docs[key]["votes"].append(label)
    if ignored:
        log.info(
            "%s: %d non-expert votes not used (as in FastChat's agreement)", spec.name, ignored
        )
    return list(docs.values()) + bad
