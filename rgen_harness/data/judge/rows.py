"""One evaluation doc per pair, from each set's own schema.

Every doc has the same fields: `id`, `set`, `row`, `query`, `response_1`, `response_2`,
`gold` (0 = tie, 1 = response 1 better, 2 = response 2 better; -1 when the set has no single
gold, as in MT-Bench), `turn` (MT-Bench: 1 or 2, else 0), `votes` (MT-Bench: the expert votes,
same label scheme), `scenario` (Auto-J) and `problem` ('' for a usable pair, else what is wrong;
such docs are counted in `skipped` and never sent to the model).

Label conventions of the sources, mapped onto the one above:
- PandaLM `annotator1..3`: 0 tie, 1, 2; gold = the majority of the three.
- Auto-J `label`: 0 first better, 1 second better, 2 tie.
- LLMBar `label`: 1 or 2 (no ties).
- MT-Bench `winner`: model_a / model_b / tie (any value containing "tie", as FastChat counts it).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from rgen_harness.data.judge.sources import BadLine, SetSpec


class Bad(ValueError):
    pass


def empty_doc(spec: SetSpec, index: int, doc_id: str) -> dict:
    return {
        "id": doc_id,
        "set": spec.name,
        "row": index,
        "query": "",
        "response_1": "",
        "response_2": "",
        "gold": -1,
        "turn": 0,
        "votes": [],
        "scenario": "",
        "problem": "",
    }


def check_text(key: str, value: str) -> str:
    """`value`, if it can be stored (Arrow needs valid UTF-8): a lone surrogate (an escape such
    as \\ud800, or a byte that was not UTF-8 in a .json file) is a malformed row."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as e:
        raise Bad(
            f"{key!r} holds a lone surrogate U+{ord(value[e.start]):04X} at character {e.start} "
            "(not valid Unicode: fix the escape or the file's encoding)"
        ) from None
    return value


def row_id(value: Any) -> str:
    """A row's own id (`idx`) as text: a string or an integer."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise Bad(f"'idx' is {value!r}; expected a string or an integer")
    return check_text("idx", str(value))


def text_field(row: dict, key: str, *, cast_scalars: bool = False, allow_empty: bool = False):
    if key not in row:
        raise Bad(f"has no {key!r} field (fields: {sorted(row)})")
    value = row[key]
    if cast_scalars and isinstance(value, (bool, int, float)):
        value = str(value)  # PandaLM: a few responses are JSON booleans
    if not isinstance(value, str):
        raise Bad(f"{key!r} is a {type(value).__name__}, not a string")
    if not allow_empty and not value.strip():
        raise Bad(f"{key!r} is empty")
    return check_text(key, value)


def int_label(row: dict, key: str, allowed: tuple[int, ...]) -> int:
    value = row.get(key)
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or value not in allowed:
        raise Bad(f"{key!r} is {value!r}; expected one of {list(allowed)}")
    return value


def majority(labels: list[int]) -> int | None:
    """The label most annotators chose, None without a strict majority."""
    (top, n), *rest = Counter(labels).most_common()
    return top if n > len(labels) / 2 else None


def pandalm(spec: SetSpec, row: dict, doc: dict) -> None:
    if "idx" in row:
        doc["id"] = row_id(row["idx"])
    # Some rows leave `input` empty, one leaves `instruction` blank: the query is what is there.
    parts = [text_field(row, "instruction", allow_empty=True)]
    parts.append(text_field(row, "input", allow_empty=True) if "input" in row else "")
    doc["query"] = "\n\n".join(p.strip() for p in parts if p.strip())
    if not doc["query"]:
        raise Bad("has an empty 'instruction' and 'input'")
    doc["response_1"] = text_field(row, "response1", cast_scalars=True, allow_empty=True)
    doc["response_2"] = text_field(row, "response2", cast_scalars=True, allow_empty=True)
    votes = [int_label(row, f"annotator{i}", (0, 1, 2)) for i in (1, 2, 3)]
    gold = majority(votes)
    if gold is None:
        raise Bad(f"annotators disagree with no majority: {votes}")
    doc["gold"] = gold


_AUTOJ_TO_GOLD = {0: 1, 1: 2, 2: 0}


def autoj(spec: SetSpec, row: dict, doc: dict) -> None:
    doc["query"] = text_field(row, "prompt")
    doc["response_1"] = text_field(row, "response 1", allow_empty=True)
    doc["response_2"] = text_field(row, "response 2", allow_empty=True)
    doc["gold"] = _AUTOJ_TO_GOLD[int_label(row, "label", (0, 1, 2))]
    scenario = row.get("scenario", "")
    if not isinstance(scenario, str):
        raise Bad(f"'scenario' is {scenario!r}, not a string")
    doc["scenario"] = check_text("scenario", scenario)


def llmbar(spec: SetSpec, row: dict, doc: dict) -> None:
    doc["query"] = text_field(row, "input")
    doc["response_1"] = text_field(row, "output_1", allow_empty=True)
    doc["response_2"] = text_field(row, "output_2", allow_empty=True)
    doc["gold"] = int_label(row, "label", (1, 2))


NORMALISERS = {"pandalm": pandalm, "autoj": autoj, "llmbar": llmbar}


def normalise_row(spec: SetSpec, row: Any, index: int) -> dict:
    """One doc per row of a PandaLM / Auto-J / LLMBar file."""
    doc = empty_doc(spec, index, f"row{index}")
    try:
        if isinstance(row, BadLine):
            raise Bad(row.reason)
        if not isinstance(row, dict):
            raise Bad(f"is a {type(row).__name__}, not an object")
        NORMALISERS[spec.kind](spec, row, doc)
    except Bad as e:
        doc["problem"] = f"{spec.name} row {index} (id {doc['id']!r}) {e}"
    return doc
