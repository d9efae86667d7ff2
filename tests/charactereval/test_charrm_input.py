"""BaichuanCharRM's input reproduces run_char_rm.py byte for byte on real rows, and its score."""

from __future__ import annotations

import json
import math

import pytest

from rgen_harness.data.charactereval import CharacterEvalSource, load_docs
from rgen_harness.metrics.charrm.options import CharRMOptions
from rgen_harness.metrics.charrm.scorer import CharRMScorer, Pair
from tests.charactereval.conftest import REAL_ROWS

REPLIES = ["（笑）这话说的，我可不敢当。\n第二行不算", "", "好。"]


def run_char_rm_inputs(tokenizer, rows, profiles, id2metric, reply):
    """run_char_rm.py's format_input and encoding, written out again, for every assigned pair."""
    out = []
    for row in rows:
        for _, zh in id2metric.get(str(row["id"]), []):
            text = (
                "<RoleInfo>\n\n"
                + str(profiles[row["role"]])
                + "\n\n<Context>\n\n"
                + row["context"]
                + "\n\n<Response>\n\n"
                + reply.split("\n")[0]
                + "\n\n<Dimension>\n\n"
                + zh
            )
            ids = tokenizer.encode(text=text, add_special_tokens=False) + [tokenizer.eos_token_id]
            if len(ids) > 4096:
                ids = ids[-4096:]
            out.append((text, ids))
    return out


@pytest.fixture
def scorer(charrm_metadata):
    return CharRMScorer(CharRMOptions.from_metadata(charrm_metadata))


def _real():
    load = lambda name: json.loads((REAL_ROWS / name).read_text(encoding="utf-8"))  # noqa: E731
    return load("test_data.jsonl"), load("character_profiles.json"), load("id2metric.jsonl")


@pytest.mark.parametrize("reply", REPLIES)
def test_text_and_ids_equal_run_char_rm(scorer, reply):
    rows, profiles, id2metric = _real()
    expected = run_char_rm_inputs(scorer.tokenizer, rows, profiles, id2metric, reply)
    docs = load_docs(CharacterEvalSource.from_metadata({"charactereval_path": str(REAL_ROWS)}))
    pairs = [
        Pair(d["role_info"], d["context"], reply.split("\n")[0], m["zh"])
        for d in docs
        if not d["problem"]
        for m in d["metrics"]
    ]
    assert len(pairs) == len(expected) == sum(len(v) for v in id2metric.values())
    assert [p.text for p in pairs] == [text for text, _ in expected]
    assert scorer.encode(pairs) == [ids for _, ids in expected]
    assert any(len(ids) == 4096 for _, ids in expected)  # the cut is exercised
    assert type(scorer.tokenizer).__name__ == "BaichuanTokenizer"  # the folder's own class


def test_score_batched_equals_one_at_a_time_and_run_char_rm(scorer):
    import torch

    rows, profiles, id2metric = _real()
    expected = run_char_rm_inputs(scorer.tokenizer, rows, profiles, id2metric, REPLIES[0])
    model = scorer.model()
    assert type(model.model).__name__ == "BaichuanCharRM"
    ids = [x for _, x in expected]
    # run_char_rm.py: base_model(input_ids=input_ids)[1].item() * 4 + 1, one at a time
    with torch.no_grad():
        reference = [model.model(input_ids=torch.tensor([x]))[1].item() * 4 + 1 for x in ids]
    batched = model.score(ids)
    assert len(set(map(len, ids))) > 1  # padding is exercised
    assert all(1 <= s <= 5 for s in reference)
    assert max(abs(a - b) for a, b in zip(batched, reference, strict=True)) < 1e-4
    assert len(set(round(s, 4) for s in reference)) > 1


def test_scores_are_cached(scorer):
    pairs = [Pair("{'姓名': '甲'}", "乙：你好", f"甲：好{i}", "对话流利度") for i in range(3)]
    first = scorer.score(pairs)
    passes = scorer.model().forward_passes
    again = CharRMScorer(scorer.options).score(pairs)
    assert again == first and scorer.model().forward_passes == passes
    assert all(math.isfinite(s) for s in first)


def test_custom_code_needs_consent(charrm_dir):
    with pytest.raises(ValueError, match='"charrm_trust_remote_code": true'):
        CharRMScorer(CharRMOptions(model=str(charrm_dir)))


def test_folder_without_its_code_is_refused(charrm_dir, tmp_path):
    import shutil

    folder = tmp_path / "nocode"
    shutil.copytree(charrm_dir, folder)
    (folder / "modeling_baichuan.py").unlink()
    cfg = json.loads((folder / "config.json").read_text())
    cfg.pop("auto_map")
    (folder / "config.json").write_text(json.dumps(cfg))
    scorer = CharRMScorer(CharRMOptions(model=str(folder), trust_remote_code=True, cache="none"))
    with pytest.raises(ValueError, match="holds no BaichuanCharRM code"):
        scorer.model()


def test_generator_is_released_before_a_gpu_load(monkeypatch):
    from rgen_harness.metrics.charrm import model
    from rgen_harness.models import engine

    class Engine:
        closed = False

        def close(self):
            self.closed = True

    e = engine.register(Engine())
    assert model.hand_off("cpu") == 0 and not e.closed
    assert model.hand_off("cuda") >= 1 and e.closed
