"""Reading local deita files: bytes that are not UTF-8, odd Unicode, BOMs, parser limits,
empty files and broken JSON documents. Each bad row is a counted skip with its reason; only a
problem with the file as a whole stops loading, naming the file and the position."""

from __future__ import annotations

import json

import pytest

from rgen_harness.data.deita import DeitaSource, load_deita, load_docs, normalise_row
from rgen_harness.data.local_files import DeitaFileError


def row(i: int, *turns: str) -> dict:
    roles = ["human", "gpt"] * len(turns)
    return {
        "id": f"r{i}",
        "conversations": [{"from": r, "value": v} for r, v in zip(roles, turns, strict=False)],
    }


def line(obj) -> bytes:
    return json.dumps(obj, ensure_ascii=False).encode("utf-8")


def load(path, **metadata) -> list[dict]:
    """Through the task's dataset entry, so the docs also pass Arrow (`Dataset.from_list`)."""
    return load_deita(deita_path=str(path), **metadata)["test"].to_list()


def test_invalid_utf8_fails_only_its_row(tmp_path):
    path = tmp_path / "d.jsonl"
    bad = line(row(1, "q", "a")).replace(b'"q"', b'"q\xff"')
    path.write_bytes(b"\n".join([line(row(0, "q", "a")), bad, line(row(2, "q", "a"))]) + b"\n")
    docs = load(path)
    assert [d["problem"] == "" for d in docs] == [True, False, True]
    assert docs[1]["problem"].startswith("row 1 (id 'line2') line 2 is not valid UTF-8 (byte 0xff")


def test_lone_surrogate_escape_is_a_bad_row_not_an_arrow_crash(tmp_path):
    path = tmp_path / "d.jsonl"
    rows = [row(0, "q", "a"), row(1, "q\ud800", "a")]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    assert "\\ud800" in path.read_text()  # the escape as JSON writes it
    docs = load(path)
    assert docs[0]["problem"] == ""
    assert "turn 0 value holds a lone surrogate U+D800" in docs[1]["problem"]


def test_lone_surrogate_in_id_is_reported_and_the_id_escaped(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps({**row(0, "q", "a"), "id": "x\udc80"}) + "\n", encoding="utf-8")
    (doc,) = load(path)
    assert doc["id"] == "x\\udc80" and "its 'id' holds a lone surrogate" in doc["problem"]


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[" * 100_000 + "]" * 100_000, "is nested too deeply"),
        ('{"id": "big", "n": ' + "9" * 5000 + "}", "cannot be parsed"),
    ],
)
def test_parser_limits_are_counted_skips(tmp_path, text, needle):
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps(row(0, "q", "a")) + "\n" + text + "\n", encoding="utf-8")
    docs = load(path)
    assert docs[0]["problem"] == "" and f"line 2 {needle}" in docs[1]["problem"]


def test_parser_limits_with_error_policy_name_the_row(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text("[" * 5000 + "\n", encoding="utf-8")
    source = DeitaSource.from_metadata({"deita_path": str(path), "on_bad_row": "error"})
    with pytest.raises(ValueError) as err:
        load_docs(source)
    assert str(err.value).splitlines()[-1] == (
        "row 0 (id 'line1') line 1 is nested too deeply to parse"
    )


@pytest.mark.parametrize("sep", ["\u2028", "\u2029", "\u0085"])
def test_unicode_line_separators_inside_strings_do_not_split_rows(tmp_path, sep):
    path = tmp_path / "d.jsonl"
    rows = [row(0, f"a{sep}b", f"c{sep}d"), row(1, "q", "a")]
    text = "\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n"
    assert sep in text  # raw, not escaped
    path.write_text(text, encoding="utf-8")
    docs = load(path)
    assert [d["problem"] for d in docs] == ["", ""]
    assert docs[0]["reference"] == f"c{sep}d"


def test_crlf_line_ends_are_read(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_bytes(line(row(0, "q", "a")) + b"\r\n" + line(row(1, "q", "b")) + b"\r\n")
    assert [d["reference"] for d in load(path)] == ["a", "b"]


@pytest.mark.parametrize("suffix", [".jsonl", ".json"])
def test_utf8_bom_keeps_row_0(tmp_path, suffix):
    path = tmp_path / f"d{suffix}"
    rows = [row(0, "q", "first"), row(1, "q", "second")]
    body = "\n".join(json.dumps(r) for r in rows) if suffix == ".jsonl" else json.dumps(rows)
    path.write_bytes(b"\xef\xbb\xbf" + body.encode("utf-8"))
    docs = load(path)
    assert [(d["reference"], d["problem"]) for d in docs] == [("first", ""), ("second", "")]


@pytest.mark.parametrize(
    ("name", "content"),
    [("d.jsonl", b""), ("d.jsonl", b"\n \n"), ("d.jsonl", b"\xef\xbb\xbf"), ("d.json", b"[]")],
)
def test_empty_file_is_an_error_naming_it(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DeitaFileError, match=f"{path} holds no rows: give a file with at least"):
        load(path)


def test_broken_json_file_names_file_and_position(tmp_path):
    path = tmp_path / "d.json"
    path.write_text('[\n  {"id": "a"},\n  {"id": "b",,}\n]', encoding="utf-8")
    with pytest.raises(DeitaFileError) as err:
        load(path)
    message = str(err.value)
    assert message.startswith(f"{path}: not valid JSON at line 3, column 14")
    assert "convert it to JSONL" in message


def test_json_file_with_invalid_utf8_fails_only_that_row(tmp_path):
    path = tmp_path / "d.json"
    body = json.dumps([row(0, "q", "a"), row(1, "qX", "a")]).encode("utf-8")
    path.write_bytes(body.replace(b"qX", b"q\xc3"))
    docs = load(path)
    assert docs[0]["problem"] == "" and "turn 0 value holds a lone surrogate" in docs[1]["problem"]


@pytest.mark.parametrize("value", ["", " ", "\n\t "])
@pytest.mark.parametrize("turn", [0, 1, 2])
def test_empty_turns_are_malformed(value, turn):
    turns = ["q1", "a1", "q2", "a2"]
    turns[turn] = value
    doc = normalise_row(row(0, *turns), 0)
    assert doc["problem"].startswith(f"row 0 (id 'r0') turn {turn} (")
    assert doc["problem"].endswith(") is empty") and doc["messages"] == []


def test_empty_system_turn_is_malformed():
    r = {
        "id": "s",
        "conversations": [{"from": "system", "value": ""}, *row(0, "q", "a")["conversations"]],
    }
    assert normalise_row(r, 0)["problem"] == "row 0 (id 's') turn 0 ('system') is empty"


@pytest.mark.parametrize(
    ("field", "value", "needle"),
    [
        ("id", ["x"], "its 'id' is a list, not a string or integer"),
        ("id", True, "its 'id' is a bool"),
        ("source", 3, "its 'source' is a int, not a string"),
    ],
)
def test_id_and_source_types(field, value, needle):
    doc = normalise_row({**row(0, "q", "a"), field: value}, 4)
    assert needle in doc["problem"] and doc["problem"].startswith("row 4 (id ")


def test_non_string_role_is_malformed_without_printing_it():
    deep: list = []
    for _ in range(900):
        deep = [deep]
    r = {"id": "d", "conversations": [{"from": deep, "value": "q"}, {"from": "gpt", "value": "a"}]}
    assert normalise_row(r, 0)["problem"] == "row 0 (id 'd') turn 0 role is a list, not a string"
