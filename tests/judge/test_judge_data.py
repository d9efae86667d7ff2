"""Loaders of the judge sets: each real schema, label mapping, malformed rows as counted skips."""

from __future__ import annotations

import pytest
from judge_files import write

from rgen_harness.data.judge import SETS, get_spec, load_docs, load_judge_set, sources


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return write(tmp_path_factory.mktemp("judge_sets"))


def docs_of(files, name):
    return load_docs(SETS[name], {f"judge_path_{name}": str(files[name])})


def test_pandalm_majority_gold_casts_booleans_and_skips_bad_rows(files):
    d = docs_of(files, "pandalm")
    assert [x["gold"] for x in d[:3]] == [2, 0, 1]
    assert d[0]["query"] == "Rewrite the sentence.\n\nsome input"
    assert d[1]["response_1"] == "True" and d[1]["query"] == "Rewrite the sentence."
    assert d[2]["id"] == "2" and d[2]["query"] == "Truthfulness"  # blank instruction, string labels
    assert not any(x["problem"] for x in d[:3])
    assert "no majority: [0, 1, 2]" in d[3]["problem"]
    assert d[4]["problem"] == "pandalm row 4 (id '4') 'response2' is a NoneType, not a string"
    assert "'annotator3' is 7; expected one of [0, 1, 2]" in d[5]["problem"]


def test_autoj_labels_map_onto_tie_zero_and_keys_with_spaces(files):
    d = docs_of(files, "autoj")
    assert [x["gold"] for x in d[:4]] == [1, 2, 0, 1]
    assert d[3]["query"] == "概括这段话。" and d[3]["response_2"] == "回应二"
    assert d[0]["response_1"] == " first" and d[0]["scenario"] == "post_summarization"
    assert "'label' is 3" in d[4]["problem"]
    assert "line 6 is not JSON" in d[5]["problem"]


def test_llmbar_rows_and_missing_field(files):
    d = docs_of(files, "llmbar_gptout")
    assert [x["gold"] for x in d[:3]] == [1, 2, 2]
    assert d[1]["response_2"] == "out2 1"
    assert "has no 'output_2' field" in d[3]["problem"]
    assert SETS["llmbar_gptout"].has_ties is False and SETS["autoj"].has_ties is True


def test_mtbench_groups_expert_votes_per_turn_in_name_order(files):
    d = docs_of(files, "mtbench_human")
    by_id = {x["id"]: x for x in d}
    t1 = by_id["q81:alpaca-13b-vs-gpt-4:turn1"]
    assert t1["votes"] == [2, 2, 0]  # the author's vote is not used
    assert t1["query"] == "Q1?" and t1["response_1"] == "alpaca-13b answer 1"
    t2 = by_id["q81:alpaca-13b-vs-gpt-4:turn2"]
    assert t2["votes"] == [0] and t2["turn"] == 2 and t2["gold"] == -1
    assert "[Question 2]\nQ2?" in t2["query"] and "gpt-4 answer 2" in t2["response_2"]
    assert by_id["q82:claude-v1-vs-vicuna-13b-v1.2:turn2"]["votes"] == [2]
    problems = [x["problem"] for x in d if x["problem"]]
    assert len(problems) == 2
    assert "'winner' is 'model_c'" in problems[0] and "is not JSON" in problems[1]


def test_local_path_errors_name_the_key_and_the_fix(tmp_path, files):
    spec = SETS["pandalm"]
    with pytest.raises(FileNotFoundError, match=r"judge_path_pandalm='/nope.json' is not a file"):
        sources.local_path(spec, {"judge_path_pandalm": "/nope.json"})
    odd = tmp_path / "x.csv"
    odd.write_text("a")
    with pytest.raises(ValueError, match="unsupported file type '.csv'"):
        sources.local_path(spec, {"judge_path": str(odd)})
    # The per-set key wins over the run-wide one.
    got = sources.local_path(
        spec, {"judge_path": str(odd), "judge_path_pandalm": str(files["pandalm"])}
    )
    assert got == files["pandalm"]
    with pytest.raises(ValueError, match="judge_set='nope' is not a known"):
        get_spec("nope")


def test_default_source_is_the_authors_file_pinned_to_a_commit(monkeypatch, files):
    seen = []

    def fake_download(url):
        seen.append(url)
        return str(files["llmbar_natural"])

    monkeypatch.setattr(sources, "_download", fake_download)
    docs = load_docs(SETS["llmbar_manual"], {})
    assert len(docs) == 4
    assert seen == [
        "https://raw.githubusercontent.com/princeton-nlp/LLMBar/"
        "900616bff90b6c6c8e1681f7d079250637c55992/Dataset/LLMBar/Adversarial/Manual/dataset.json"
    ]


def test_custom_dataset_entry_point(files):
    ds = load_judge_set(judge_set="autoj_zh", judge_path_autoj_zh=str(files["autoj_zh"]))["test"]
    assert ds.num_rows == 4 and ds[0]["gold"] == 1 and ds[0]["votes"] == []
