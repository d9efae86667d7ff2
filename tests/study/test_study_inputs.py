"""What a run reads is in its fingerprint: data edited in place (same path, same rows), another
QCR prompts text, other reward weights or another tiny-model seed stop the study with the
changed input named, instead of mixing old and new results in one leaderboard."""

from __future__ import annotations

import json
import os
import shutil

import pytest
from study_fakes import FakeLmEval, base_config, study

from rgen_harness.prompts.qcr import PROMPTS_DIR
from rgen_harness.study.config import StudyConfigError


def _second_model(raw: dict) -> dict:
    model = {"name": "second", "model": "hf", "model_args": {"pretrained": "org/second"}}
    return {**raw, "models": [*raw["models"], model]}


def _refused(raw: dict, changed: str, **kwargs) -> str:
    with pytest.raises(StudyConfigError) as e:
        study(raw, **kwargs)
    message = str(e.value)
    assert "runs/first/deita was run with different settings" in message
    assert f"changed: {changed}" in message
    return message


def test_data_edited_in_place_stops_the_study(tmp_path, monkeypatch):
    fake = FakeLmEval(monkeypatch)
    raw = base_config(tmp_path)
    study(raw)
    data = tmp_path / "data.jsonl"
    lines = data.read_text(encoding="utf-8").splitlines(keepends=True)
    row = json.loads(lines[0])
    row["conversations"][0]["value"] += " Answer briefly."
    data.write_text(json.dumps(row, ensure_ascii=False) + "\n" + "".join(lines[1:]))
    assert len(data.read_text().splitlines()) == len(lines)

    bigger = _second_model(raw)  # a model added after the edit must not run on the new data
    _refused(bigger, "inputs.data_sha256")
    _refused(bigger, "inputs.data_sha256", only=["second"])
    assert fake.calls == ["first/deita"]


def test_qcr_prompts_file_content_is_an_input(tmp_path, monkeypatch):
    FakeLmEval(monkeypatch)
    prompts = tmp_path / "prompts.yaml"
    shutil.copy(PROMPTS_DIR / "qcr_v1.yaml", prompts)
    raw = base_config(tmp_path, metadata={"qcr_prompts": str(prompts)})
    study(raw)
    prompts.write_text(prompts.read_text() + "\n# reworded\n")
    _refused(raw, "inputs.qcr_prompts_sha256")


def test_reward_weights_are_an_input(tmp_path, monkeypatch):
    FakeLmEval(monkeypatch)
    reward = tmp_path / "reward"
    reward.mkdir()
    (reward / "config.json").write_text('{"architectures": ["LlamaForSequenceClassification"]}')
    settings = {"model": str(reward), "cache": str(tmp_path / "rc"), "device": "cpu"}
    raw = base_config(tmp_path, scorers=["reward"], reward=settings)
    study(raw)
    weights = reward / "model.safetensors"
    weights.write_bytes(b"new weights")
    os.utime(weights, ns=(1, 4_000_000_000_000_000_000))
    _refused(raw, "inputs.reward_model")


def test_a_new_tiny_model_seed_rebuilds_it_and_is_an_input(tmp_path, monkeypatch):
    from safetensors.numpy import load_file

    FakeLmEval(monkeypatch)
    chat = tmp_path / "tiny-chat"
    raw = base_config(tmp_path, tiny_models=[{"path": str(chat), "kind": "chat", "seed": 0}])
    raw["models"][0]["model_args"]["pretrained"] = str(chat)
    study(raw)
    before = load_file(chat / "model.safetensors")
    raw["tiny_models"][0]["seed"] = 1
    _refused(raw, "inputs.tiny_models")
    after = load_file(chat / "model.safetensors")
    assert json.loads((chat / "rgen_tiny.json").read_text())["seed"] == 1
    assert any((before[k] != after[k]).any() for k in before)


def test_run_recorded_without_input_hashes_is_not_trusted(tmp_path, monkeypatch):
    FakeLmEval(monkeypatch)
    raw = base_config(tmp_path)
    study(raw)
    record = tmp_path / "study/runs/first/deita/run.json"
    saved = json.loads(record.read_text())
    del saved["settings"]["inputs"]
    saved["fingerprint"] = "older"
    record.write_text(json.dumps(saved))
    with pytest.raises(StudyConfigError, match="does not record the hashes of the run's inputs"):
        study(raw)


def test_file_hash_streams_and_matches_hashlib(tmp_path):
    import hashlib

    from rgen_harness.study.inputs import file_sha256

    path = tmp_path / "big.bin"
    block = os.urandom(1 << 16)
    path.write_bytes(block * 40)  # 2.5 MiB: several read chunks
    assert file_sha256(path) == hashlib.sha256(block * 40).hexdigest()
