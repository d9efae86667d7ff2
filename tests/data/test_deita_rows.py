"""Row normalisation and the bad-row policy of the deita loader."""

from __future__ import annotations

import json

import pytest

from rgen_harness.data.deita import DeitaSource, load_deita, load_docs, normalise_row


def conv(*turns):
    return {"id": "x", "source": "t", "conversations": [{"from": r, "value": v} for r, v in turns]}


def test_roles_are_normalised_and_last_reply_becomes_reference():
    doc = normalise_row(
        conv(("system", "S"), ("human", "q1"), ("gpt", "a1"), ("user", "q2"), ("assistant", "a2")),
        0,
    )
    assert doc["problem"] == ""
    assert [m["role"] for m in doc["messages"]] == ["system", "user", "assistant", "user"]
    assert doc["messages"][-1]["content"] == "q2"
    assert doc["reference"] == "a2"


def test_openai_style_turns_are_accepted():
    row = {
        "id": 7,
        "messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}],
    }
    doc = normalise_row(row, 3)
    assert doc["problem"] == "" and doc["id"] == "7" and doc["reference"] == "a"


@pytest.mark.parametrize(
    ("row", "needle"),
    [
        ({"id": "e", "conversations": []}, "is empty"),
        ({"id": "n"}, "no 'conversations' list"),
        (conv(("gpt", "hello")), "'assistant' but 'user' was expected"),
        (conv(("human", "q"), ("bot", "a")), "unknown role 'bot'"),
        ({"id": "v", "conversations": [{"from": "human", "value": 3}]}, "not a string"),
        ({"id": "m", "conversations": [{"from": "human"}]}, "not a string"),
        (conv(("human", "q"), ("gpt", "a"), ("human", "q2")), "does not end in an assistant"),
        (conv(("human", "q"), ("human", "q2"), ("gpt", "a")), "turns must alternate"),
        (
            conv(("human", "q"), ("gpt", "a"), ("system", "s"), ("human", "q"), ("gpt", "a")),
            "system turn after",
        ),
        (conv(("human", "q"), ("gpt", "  ")), "turn 1 ('gpt') is empty"),
        ("just a string", "not an object"),
    ],
)
def test_bad_rows_name_row_id_and_problem(row, needle):
    doc = normalise_row(row, 5)
    assert needle in doc["problem"]
    assert doc["problem"].startswith("row 5 (id ")
    assert doc["messages"] == [] and doc["reference"] == ""


def _write_mixed(path):
    good = conv(("human", "q"), ("gpt", "a"))
    lines = [json.dumps(good), "{not json", json.dumps(conv(("human", "q"), ("robot", "a")))]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_skip_policy_keeps_bad_rows_as_counted_docs(tmp_path):
    ds = load_deita(deita_path=str(_write_mixed(tmp_path / "mixed.jsonl")))["test"]
    problems = [row["problem"] for row in ds]
    assert problems[0] == ""
    assert "line 2 is not JSON" in problems[1]
    assert "unknown role 'robot'" in problems[2]


def test_error_policy_names_row_and_fix(tmp_path):
    path = _write_mixed(tmp_path / "mixed.jsonl")
    with pytest.raises(ValueError) as err:
        load_docs(DeitaSource.from_metadata({"deita_path": str(path), "on_bad_row": "error"}))
    message = str(err.value)
    assert "2 of 3 rows" in message and "on_bad_row" in message
    assert message.splitlines()[-1].startswith("row 2 (id 'x') turn 1 has unknown role 'robot'")


def test_json_and_parquet_files_load_the_same_docs(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [conv(("human", "你好"), ("gpt", "你好！")), conv(("human", "q"), ("gpt", "a"))]
    (tmp_path / "d.json").write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "d.parquet")
    a = load_deita(deita_path=str(tmp_path / "d.json"))["test"].to_list()
    b = load_deita(deita_path=str(tmp_path / "d.parquet"))["test"].to_list()
    assert a == b and a[0]["reference"] == "你好！"


def test_bundled_sample_is_clean_and_bilingual():
    docs = load_docs(DeitaSource.from_metadata({"deita_path": "sample"}))
    assert len(docs) >= 8 and all(d["problem"] == "" for d in docs)
    assert any(d["messages"][0]["role"] == "system" for d in docs)
    assert any(len(d["messages"]) >= 3 for d in docs)
    assert any(any("\u4e00" <= ch <= "\u9fff" for ch in d["reference"]) for d in docs)


@pytest.mark.parametrize(
    ("metadata", "needle"),
    [
        ({"deita_path": "/nonexistent/file.jsonl"}, "is not a file"),
        ({"on_bad_row": "ignore"}, "on_bad_row='ignore' is not valid"),
    ],
)
def test_bad_metadata_says_the_fix(metadata, needle):
    with pytest.raises((ValueError, FileNotFoundError), match=needle):
        DeitaSource.from_metadata(metadata)


def test_unsupported_suffix(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("a,b\n")
    with pytest.raises(ValueError, match="unsupported file type '.csv'"):
        DeitaSource.from_metadata({"deita_path": str(path)})
