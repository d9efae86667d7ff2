"""Reading judge files that are odd at the byte level: every one is a named error or a counted
malformed row (with the file and line), never a traceback, and no valid row is lost."""

from __future__ import annotations

import json

import pytest
from judge_files import autoj_rows, llmbar_rows, mtbench_rows

from rgen_harness.data.judge import SETS, load_docs, load_judge_set


def jsonl(rows) -> bytes:
    return b"".join(json.dumps(r, ensure_ascii=False).encode("utf-8") + b"\n" for r in rows)


def docs_of(path, set_name="autoj"):
    # load_judge_set also builds the Arrow dataset the task reads: a row it cannot store fails.
    return load_judge_set(judge_set=set_name, judge_path=str(path))["test"].to_list()


@pytest.mark.parametrize("separator", ["\u2028", "\u2029", "\u0085"])
def test_a_line_separator_inside_a_text_stays_in_its_row(tmp_path, separator):
    rows = autoj_rows()[:3]
    rows[1]["prompt"] = f"first line{separator}second line"
    path = tmp_path / "autoj.jsonl"
    path.write_bytes(jsonl(rows))
    docs = docs_of(path)
    assert [d["problem"] for d in docs] == ["", "", ""]
    assert docs[1]["query"] == f"first line{separator}second line"


def test_invalid_utf8_is_a_counted_row_with_file_and_line(tmp_path):
    path = tmp_path / "autoj.jsonl"
    good = jsonl(autoj_rows()[:2])
    path.write_bytes(good + b'{"prompt": "\xff\xfe"}\n' + jsonl(autoj_rows()[2:3]))
    docs = docs_of(path)
    assert [bool(d["problem"]) for d in docs] == [False, False, True, False]
    assert f"{path} line 3 is not valid UTF-8" in docs[2]["problem"]


def test_a_bom_is_accepted_in_jsonl_and_json(tmp_path):
    jl = tmp_path / "autoj.jsonl"
    jl.write_bytes(b"\xef\xbb\xbf" + jsonl(autoj_rows()[:2]))
    assert [d["problem"] for d in docs_of(jl)] == ["", ""]  # the first row is kept
    js = tmp_path / "llmbar.json"
    js.write_bytes(b"\xef\xbb\xbf" + json.dumps(llmbar_rows()[:3]).encode())
    assert [d["problem"] for d in docs_of(js, "llmbar_natural")] == ["", "", ""]


@pytest.mark.parametrize("name, content", [("a.jsonl", b""), ("a.jsonl", b"\n \n"),
                                           ("a.json", b""), ("a.json", b"\xef\xbb\xbf\n"),
                                           ("a.json", b"[]")])  # fmt: skip
def test_an_empty_file_is_a_named_error(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ValueError, match=f"{path} holds no rows: give a autoj file"):
        load_docs(SETS["autoj"], {"judge_path": str(path)})


def test_a_lone_surrogate_is_a_counted_row(tmp_path):
    rows = autoj_rows()[:3]
    rows[0]["response 1"] = "bad \ud800 text"
    rows[2]["scenario"] = "\udfff"
    path = tmp_path / "autoj.jsonl"
    path.write_bytes(b"".join(json.dumps(r).encode() + b"\n" for r in rows))  # as \ud800
    docs = docs_of(path)
    assert "'response 1' holds a lone surrogate U+D800" in docs[0]["problem"]
    assert docs[1]["problem"] == ""
    assert "'scenario' holds a lone surrogate U+DFFF" in docs[2]["problem"]


def test_invalid_utf8_inside_a_json_string_is_that_rows_problem(tmp_path):
    path = tmp_path / "llmbar.json"
    text = json.dumps(llmbar_rows()[:2]).encode().replace(b"out1 0", b"out1 \xff")
    path.write_bytes(text)
    docs = docs_of(path, "llmbar_natural")
    assert "'output_1' holds a lone surrogate" in docs[0]["problem"]
    assert docs[1]["problem"] == ""


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("turn", 1.0, "'turn' is 1.0; expected the integer 1 or 2"),
        ("turn", True, "'turn' is True"),
        ("question_id", [81], "'question_id' is [81]; expected an integer or a string"),
        ("question_id", {"q": 1}, "'question_id' is {'q': 1}"),
        ("model_a", "gpt-\ud800", "'model_a' holds a lone surrogate"),
    ],
)
def test_mtbench_fields_are_checked(tmp_path, field, value, message):
    rows = mtbench_rows()[:3]
    rows[1][field] = value
    path = tmp_path / "mtbench.jsonl"
    path.write_bytes(b"".join(json.dumps(r).encode() + b"\n" for r in rows))
    docs = docs_of(path, "mtbench_human")
    bad = [d for d in docs if d["problem"]]
    assert len(bad) == 1 and message in bad[0]["problem"], [d["problem"] for d in docs]
    assert sum(len(d["votes"]) for d in docs) == 2  # the other two votes still count
