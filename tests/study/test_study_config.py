"""The study config: shipped configs load; bad keys and values fail with the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from rgen_harness.study.config import StudyConfigError, load_study_config, parse_study_config

CONFIGS = Path(__file__).resolve().parents[2] / "rgen_harness" / "configs"
MINIMAL = {"name": "t", "models": [{"name": "m", "model": "hf", "model_args": {"pretrained": "x"}}]}


def test_default_config_has_the_six_models_on_lmdeploy():
    config = load_study_config(CONFIGS / "study_default.yaml")
    pretrained = [m.model_args["pretrained"] for m in config.models]
    assert pretrained == [
        "internlm/internlm2_5-7b-chat",
        "internlm/internlm2_5-20b-chat",
        "meta-llama/Llama-3.1-8B-Instruct",
        "Qwen/Qwen2-1.5B",
        "Qwen/Qwen2-7B-Instruct",
        "THUDM/glm-4-9b-chat",
    ]
    assert {m.model for m in config.models} == {"lmdeploy"}
    remote = {
        m.model_args["pretrained"] for m in config.models if m.model_args.get("trust_remote_code")
    }
    assert remote == {
        "internlm/internlm2_5-7b-chat",
        "internlm/internlm2_5-20b-chat",
        "THUDM/glm-4-9b-chat",
    }
    assert all(m.model_args.get("session_len") and m.model_args.get("tp") for m in config.models)
    md = config.task_metadata()
    assert md["reward_model"] == "internlm/internlm2-20b-reward"
    assert "reward" in md["scorers"].split(",")
    assert config.subset is not None and config.subset.size == 300


def test_smoke_config_loads():
    config = load_study_config(CONFIGS / "study_smoke.yaml")
    assert [m.model for m in config.models] == ["hf", "hf"]
    assert config.device == "cpu" and config.task_metadata()["deita_path"] == "sample"
    assert "random" in (config.notice or "").lower()


def test_unknown_key_suggests_the_right_one():
    with pytest.raises(StudyConfigError, match=r"unknown key 'modles'.*Did you mean 'models'"):
        parse_study_config({"name": "t", "modles": []})
    raw = {**MINIMAL, "generation": {"max_gen_tokens": 8}}
    with pytest.raises(StudyConfigError, match=r"generation.*Did you mean 'max_gen_toks'"):
        parse_study_config(raw)


def test_wrong_types_and_conflicts_name_the_key():
    with pytest.raises(StudyConfigError, match=r"models\[0\]\.model: 'vllm' is not one of"):
        parse_study_config(
            {
                "name": "t",
                "models": [{"name": "m", "model": "vllm", "model_args": {"pretrained": "x"}}],
            }
        )
    with pytest.raises(StudyConfigError, match=r"limit.*expected an integer"):
        parse_study_config({**MINIMAL, "limit": "ten"})
    with pytest.raises(StudyConfigError, match="either 'limit'"):
        parse_study_config({**MINIMAL, "limit": 3, "subset": {"size": 3}})
    with pytest.raises(StudyConfigError, match="through 'data'"):
        parse_study_config({**MINIMAL, "metadata": {"deita_path": "sample"}})
    with pytest.raises(StudyConfigError, match="needs 'pretrained'"):
        parse_study_config(
            {"name": "t", "models": [{"name": "m", "model": "hf", "model_args": {}}]}
        )


def test_reward_settings_are_checked_by_the_reward_config():
    with pytest.raises(StudyConfigError, match=r"reward: unknown key 'bakend'.*'backend'"):
        parse_study_config({**MINIMAL, "reward": {"model": "x", "bakend": "hf"}})
    with pytest.raises(StudyConfigError, match="reward scorer is off"):
        parse_study_config({**MINIMAL, "reward": {"model": "x"}, "scorers": ["rouge"]})
    with pytest.raises(StudyConfigError, match=r"scorer 'rogue'.*did you mean 'rouge'"):
        parse_study_config({**MINIMAL, "scorers": ["rogue"]})


def test_environment_variables_expand(monkeypatch):
    monkeypatch.setenv("TINY", "/models/tiny")
    raw = {
        "name": "t",
        "models": [{"name": "m", "model": "hf", "model_args": {"pretrained": "${TINY}/chat"}}],
        "output_dir": "${OUT:-studies/x}",
    }
    config = parse_study_config(raw)
    assert config.models[0].model_args["pretrained"] == "/models/tiny/chat"
    assert config.study_dir == Path("studies/x")
    monkeypatch.delenv("TINY")
    with pytest.raises(StudyConfigError, match="TINY is not set"):
        parse_study_config(raw)
