"""Hostile rows, generated with a fixed seed, through the whole loader (file bytes to the Arrow
dataset the task uses): no exception escapes, every bad row is a counted skip with a reason,
and every good row (odd but valid Unicode included) loads with its reference reply."""

from __future__ import annotations

import json
import random
from collections import Counter

from rgen_harness.data.deita import load_deita

N_ROWS = 1500
ODD_TEXT = ["\u2028", "\u2029", "\u0085", "\x00", "\ufeff", "\u200b", "你好", "😀", "\\n", '"']


def good_row(rng: random.Random, i: int) -> dict:
    turns = []
    if rng.random() < 0.3:
        turns.append({"from": "system", "value": "sys" + rng.choice(ODD_TEXT)})
    for k in range(rng.randint(1, 3)):
        turns.append(
            {"from": rng.choice(["human", "user"]), "value": f"q{k}{rng.choice(ODD_TEXT)}"}
        )
        turns.append(
            {"from": rng.choice(["gpt", "assistant"]), "value": f"a{k}{rng.choice(ODD_TEXT)}"}
        )
    return {"id": rng.choice([f"id{i}", i]), "source": "fuzz", "conversations": turns}


def dumps(obj) -> bytes:
    """Raw UTF-8 where possible; lone surrogates only as JSON escapes (they have no UTF-8)."""
    try:
        return json.dumps(obj, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(obj).encode("utf-8")


def _turn_edit(rng, i, edit):
    r = good_row(rng, i)
    edit(r["conversations"][rng.randrange(len(r["conversations"]))])
    return dumps(r)


def _bad_value(rng, i, value):
    return _turn_edit(rng, i, lambda t: t.__setitem__("value", value))


WRONG_TYPES = [None, 1, 2.5, True, [], ["x"], {}, {"v": "x"}]


def hostile_line(rng: random.Random, i: int) -> tuple[str, bytes]:
    """(kind, one JSONL line) that the loader must count as a bad row."""
    kind = rng.choice(HOSTILE_KINDS)
    r = good_row(rng, i)
    conv = r["conversations"]
    if kind == "conversations_type":
        r["conversations"] = rng.choice(WRONG_TYPES[:4] + ["text", {"from": "human"}])
        return kind, dumps(r)
    if kind == "missing_key":
        del r[rng.choice(["conversations"])]
        return kind, dumps(r)
    if kind == "turn_type":
        conv[rng.randrange(len(conv))] = rng.choice(["turn", 3, None, ["human", "q"]])
        return kind, dumps(r)
    if kind == "missing_turn_key":
        return kind, _turn_edit(rng, i, lambda t: t.pop(rng.choice(["from", "value"])))
    if kind == "value_type":
        return kind, _bad_value(rng, i, rng.choice(WRONG_TYPES))
    if kind == "role_type":
        return kind, _turn_edit(
            rng, i, lambda t: t.__setitem__("from", rng.choice(WRONG_TYPES[1:]))
        )
    if kind == "bad_role":
        role = rng.choice(["bot", "", "model", "humans", "gpt4", "\ud800", "x" * 500])
        return kind, _turn_edit(rng, i, lambda t: t.__setitem__("from", role))
    if kind == "order":
        conv.append({"from": rng.choice(["human", "system"]), "value": "extra"})
        return kind, dumps(r)
    if kind == "empty_value":
        return kind, _bad_value(rng, i, rng.choice(["", " ", "\n", "\t \u3000"]))
    if kind == "deep_nesting":
        depth = rng.choice([999, 1000, 1500, 100_000])
        inner = rng.choice(["[", '{"a":'])
        close = "]" if inner == "[" else "}"
        return kind, (inner * depth + "1" + close * depth).encode()
    if kind == "huge_int":
        return kind, dumps(r)[:-1] + b', "n": ' + b"7" * rng.randint(4301, 20_000) + b"}"
    if kind == "invalid_utf8":
        line = dumps(r)
        at = line.index(b'"value": "') + len(b'"value": "')
        return kind, line[:at] + rng.choice(
            [b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x80\x80"]
        ) + line[at:]
    if kind == "lone_surrogate":
        where = rng.choice(["value", "id", "source"])
        if where == "value":
            return kind, _bad_value(rng, i, "q" + rng.choice(["\ud800", "\udfff", "\udc80"]))
        r[where] = "x\udbff"
        return kind, json.dumps(r).encode()  # \udbff as an ASCII escape, as JSON writes it
    if kind == "id_type":
        r[rng.choice(["id", "source"])] = rng.choice([[1], {"a": 1}, 1.5, False])
        return kind, dumps(r)
    if kind == "not_a_dict":
        return kind, dumps(rng.choice([[r], "row", 42, None, True, [], 1.5]))
    if kind == "not_json":
        line = dumps(r)
        return kind, rng.choice(
            [line[: rng.randrange(1, len(line) - 1)], b"{'single': 'quotes'}", b"NaN]"]
        )
    if kind == "mid_file_bom":
        return kind, b"\xef\xbb\xbf" + dumps(r)
    if kind == "final_empty":
        conv[-1]["value"] = ""
        return kind, dumps(r)
    raise AssertionError(kind)


HOSTILE_KINDS = [
    "conversations_type", "missing_key", "turn_type", "missing_turn_key", "value_type",
    "role_type", "bad_role", "order", "empty_value", "deep_nesting", "huge_int",
    "invalid_utf8", "lone_surrogate", "id_type", "not_a_dict", "not_json", "mid_file_bom",
    "final_empty",
]  # fmt: skip


def test_hostile_rows_are_counted_with_a_reason(tmp_path):
    rng = random.Random(20240611)
    lines, expected, kinds = [], [], Counter()
    for i in range(N_ROWS):
        if rng.random() < 0.25:
            row = good_row(rng, i)
            lines.append(dumps(row))
            expected.append(row["conversations"][-1]["value"])
        else:
            kind, line = hostile_line(rng, i)
            kinds[kind] += 1
            lines.append(line)
            expected.append(None)
        if rng.random() < 0.05:
            lines.append(rng.choice([b"", b"   ", b"\t"]))  # blank lines are not rows
            expected.append(...)
    assert set(kinds) == set(HOSTILE_KINDS) and sum(kinds.values()) >= 1000
    path = tmp_path / "hostile.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + b"\n".join(lines) + b"\n")

    docs = load_deita(deita_path=str(path))["test"].to_list()

    expected = [e for e in expected if e is not ...]
    assert len(docs) == len(expected)
    for doc, reference in zip(docs, expected, strict=True):
        if reference is None:
            assert doc["problem"].startswith(f"row {doc['row']} (id "), doc
            assert doc["messages"] == [] and doc["reference"] == ""
        else:
            assert doc["problem"] == "", doc["problem"]
            assert doc["reference"] == reference and doc["messages"][-1]["role"] == "user"
