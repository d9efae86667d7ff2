"""The dialogue as the authors build it, on real rows; malformed rows counted with reasons."""

from __future__ import annotations

import json

import pytest

from rgen_harness.data.charactereval import CharacterEvalSource, load_docs
from tests.charactereval.conftest import REAL_ROWS


def authors_messages(row: dict, profile) -> list[dict]:
    """get_response.py's make_inputs + concat_messages + final query, written out again."""
    role = row["role"]
    convs = []
    for line in row["context"].split("\n"):
        convs.append({"from": line.split("：")[0], "value": "：".join(line.split("：")[1:])})
    first = f"好的！现在我来扮演{role}。"
    if convs[0]["from"] == role:
        first = first + "我首先发话：" + convs[0]["value"]
    system = f"""{profile}
现在请你扮演一个角色扮演专家。请你根据上述信息扮演{role}进行对话。
"""
    history = [{"role": "user", "content": system}, {"role": "assistant", "content": first}]
    for i, c in enumerate(convs):
        if c["from"] == role and i > 0:
            history.append(
                {"role": "user", "content": f"{convs[i - 1]['from']}：" + convs[i - 1]["value"]}
            )
            history.append({"role": "assistant", "content": f"{c['from']}：" + c["value"]})
    history.append({"role": "user", "content": f"{convs[-1]['from']}：" + convs[-1]["value"]})
    return history


def test_real_rows_build_as_the_authors_do():
    rows = json.loads((REAL_ROWS / "test_data.jsonl").read_text(encoding="utf-8"))
    profiles = json.loads((REAL_ROWS / "character_profiles.json").read_text(encoding="utf-8"))
    docs = {
        d["id"]: d
        for d in load_docs(
            CharacterEvalSource.from_metadata({"charactereval_path": str(REAL_ROWS)})
        )
    }
    assert len(docs) == 5
    for row in rows:
        doc = docs[str(row["id"])]
        assert doc["messages"] == authors_messages(row, profiles[row["role"]])
        assert doc["role_info"] == str(profiles[row["role"]])
    assert docs["5611"]["problem"] == "example 5611: id2metric assigns no metric (not scored)"
    assert [d["id"] for d in docs.values() if not d["problem"]] == ["342", "8761", "10858", "3800"]
    assert docs["342"]["messages"][1]["content"].startswith(
        "好的！现在我来扮演祝无双。我首先发话："
    )
    assert len(docs["8761"]["messages"]) == 3  # the role never speaks: profile, ack, last line
    id2metric = json.loads((REAL_ROWS / "id2metric.jsonl").read_text(encoding="utf-8"))
    assert [[m["en"], m["zh"]] for m in docs["342"]["metrics"]] == id2metric["342"]


def _write(folder, rows, profiles, id2metric):
    folder.mkdir()
    for name, value in (
        ("test_data.jsonl", rows),
        ("character_profiles.json", profiles),
        ("id2metric.jsonl", id2metric),
    ):
        (folder / name).write_text(json.dumps(value, ensure_ascii=False), encoding="utf-8")
    return folder


def test_malformed_rows_are_skipped_with_reasons(tmp_path):
    rows = [
        {"id": 1, "role": "甲", "context": "乙：你好\n甲：好\n乙：再见"},
        {"id": 2, "role": "丙", "context": "乙：你好"},
        {"id": 3, "role": "甲", "context": "乙：你好\n没有说话人的一行"},
        {"id": 4, "role": "甲", "context": "乙：你好\n甲：我说完了"},
        {"id": 5, "role": "甲", "context": "乙：你好\n甲：一\n甲：二\n乙：嗯"},
        {"id": 6, "role": "甲", "context": "乙：你好"},
        "not an object",
        {"id": 8, "role": "甲"},
    ]
    id2metric = {str(i): [["Fluency", "对话流利度"]] for i in range(1, 9) if i != 6}
    folder = _write(tmp_path / "d", rows, {"甲": {"姓名": "甲"}}, id2metric)
    docs = load_docs(CharacterEvalSource.from_metadata({"charactereval_path": str(folder)}))
    problems = [d["problem"] for d in docs]
    assert problems[0] == ""
    assert "no profile for role '丙'" in problems[1]
    assert "context line 2 has no speaker" in problems[2]
    assert "ends on the role's own line" in problems[3]
    assert "lines 2 and 3 are both the role's" in problems[4]
    assert "id2metric assigns no metric" in problems[5]
    assert "row 6 is a str" in problems[6]
    assert "has no 'context'" in problems[7]


def test_missing_files_and_wrong_shapes_are_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="lacks test_data.jsonl"):
        CharacterEvalSource.from_metadata({"charactereval_path": str(tmp_path)})
    folder = _write(tmp_path / "d", {"not": "a list"}, {}, {})
    with pytest.raises(ValueError, match="holds a dict, not a list"):
        load_docs(CharacterEvalSource.from_metadata({"charactereval_path": str(folder)}))


def test_bundled_sample_loads():
    docs = load_docs(CharacterEvalSource.from_metadata({"charactereval_path": "sample"}))
    assert len(docs) == 5 and sum(bool(d["problem"]) for d in docs) == 1
