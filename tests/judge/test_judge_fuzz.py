"""Hostile rows, generated with a fixed seed, through the judge loaders (file bytes to the Arrow
dataset the task uses), the counterpart of tests/data/test_deita_fuzz.py: no exception escapes,
every bad row is a counted malformed row with a reason, and every good row (odd but valid
Unicode included) loads with its own query."""

from __future__ import annotations

import json
import random
from collections import Counter

from rgen_harness.data.judge import load_judge_set

N_ROWS = 600
ODD_TEXT = ["\u2028", "\u2029", "\u0085", "\x00", "\ufeff", "\u200b", "你好", "😀", "\\n", '"']
WRONG_TYPES = [None, 1, 2.5, True, [], ["x"], {}, {"v": "x"}]


def dumps(obj) -> bytes:
    try:
        return json.dumps(obj, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates only as JSON escapes (they have no UTF-8)
        return json.dumps(obj).encode("utf-8")


def odd(rng: random.Random, text: str) -> str:
    return text + rng.choice(ODD_TEXT)


def autoj_row(rng: random.Random, i: int) -> dict:
    return {
        "scenario": odd(rng, "post_summarization"),
        "label": rng.choice([0, 1, 2, "1"]),
        "prompt": odd(rng, f"query {i} "),
        "response 1": odd(rng, "one"),
        "response 2": rng.choice(["", odd(rng, "two")]),
    }


def hostile_line(rng: random.Random, i: int) -> tuple[str, bytes]:
    kind = rng.choice(KINDS)
    r = autoj_row(rng, i)
    if kind == "missing_key":
        del r[rng.choice(["prompt", "response 1", "response 2", "label"])]
    elif kind == "wrong_type":
        r[rng.choice(["prompt", "response 1", "response 2", "scenario"])] = rng.choice(WRONG_TYPES)
    elif kind == "bad_label":
        r["label"] = rng.choice([3, -1, "tie", None, True, 1.5, [0]])
    elif kind == "empty_prompt":
        r["prompt"] = rng.choice(["", " ", "\n\t\u3000"])
    elif kind == "lone_surrogate":
        r[rng.choice(["prompt", "response 1", "scenario"])] = "x" + rng.choice(
            ["\ud800", "\udfff", "\udc80"]
        )
        return kind, json.dumps(r).encode()
    elif kind == "invalid_utf8":
        line = dumps(r)
        at = line.index(b'"prompt": "') + len(b'"prompt": "')
        return kind, line[:at] + rng.choice([b"\xff", b"\xc3", b"\xed\xa0\x80"]) + line[at:]
    elif kind == "not_a_dict":
        return kind, dumps(rng.choice([[r], "row", 42, None, True, []]))
    elif kind == "not_json":
        line = dumps(r)
        return kind, rng.choice([line[: rng.randrange(1, len(line) - 1)], b"{'a': 1}", b"NaN]"])
    elif kind == "deep_nesting":
        depth = rng.choice([1000, 100_000])
        return kind, (b"[" * depth + b"1" + b"]" * depth)
    elif kind == "huge_int":
        return kind, dumps(r)[:-1] + b', "n": ' + b"7" * 5000 + b"}"
    elif kind == "mid_file_bom":
        return kind, b"\xef\xbb\xbf" + dumps(r)
    return kind, dumps(r)


KINDS = [
    "missing_key", "wrong_type", "bad_label", "empty_prompt", "lone_surrogate", "invalid_utf8",
    "not_a_dict", "not_json", "deep_nesting", "huge_int", "mid_file_bom",
]  # fmt: skip


def test_hostile_autoj_rows_are_counted_with_a_reason(tmp_path):
    rng = random.Random(20240611)
    lines, expected, kinds = [], [], Counter()
    for i in range(N_ROWS):
        if rng.random() < 0.3:
            row = autoj_row(rng, i)
            lines.append(dumps(row))
            expected.append(row["prompt"])
        else:
            kind, line = hostile_line(rng, i)
            kinds[kind] += 1
            lines.append(line)
            expected.append(None)
        if rng.random() < 0.05:
            lines.append(rng.choice([b"", b"   ", b"\t", b"\r"]))  # blank lines are not rows
    assert set(kinds) == set(KINDS) and sum(kinds.values()) >= 350
    path = tmp_path / "hostile.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + b"\r\n".join(lines) + b"\n")

    docs = load_judge_set(judge_set="autoj", judge_path=str(path))["test"].to_list()

    assert len(docs) == len(expected)
    for doc, query in zip(docs, expected, strict=True):
        if query is None:
            assert doc["problem"].startswith(f"autoj row {doc['row']} (id "), doc
        else:
            assert doc["problem"] == "", doc["problem"]
            assert doc["query"] == query and doc["gold"] in (0, 1, 2)
