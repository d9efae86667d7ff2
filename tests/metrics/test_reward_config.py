"""Reward settings: validated once, unknown keys suggested, missing models fail before use."""

from __future__ import annotations

import json

import pytest

from rgen_harness.metrics.reward.config import RewardConfig
from rgen_harness.metrics.reward.scorer import from_metadata, preflight
from rgen_harness.metrics.reward.source import RewardModelUnavailable
from rgen_harness.metrics.scorers import build_scorers


def test_values_are_converted_and_checked():
    cfg = RewardConfig.from_metadata(
        {"reward_batch_size": "4", "reward_reference": "false", "reward_tp": 2, "pretrained": "x"}
    )
    assert (cfg.batch_size, cfg.reference, cfg.tp) == (4, False, 2)
    with pytest.raises(ValueError, match="reward_batch_size='four': expected an integer"):
        RewardConfig.from_metadata({"reward_batch_size": "four"})
    with pytest.raises(ValueError, match="backend='vllm': use one of auto, lmdeploy, hf, server"):
        RewardConfig.from_metadata({"reward_backend": "vllm"})


def test_unknown_key_gets_a_suggestion():
    with pytest.raises(ValueError, match="Did you mean 'reward_model'"):
        RewardConfig.from_metadata({"reward_modle": "x"})


def test_server_needs_an_address():
    with pytest.raises(ValueError, match="reward_url"):
        RewardConfig.from_metadata({"reward_backend": "server"})


def test_default_model_offline_fails_at_task_init_with_the_fix(monkeypatch, tmp_path):
    # conftest sets HF_HUB_OFFLINE=1 and the HF cache is empty: the default reward model cannot
    # be found, and building the scorers (task init, before generation) says how to fix it.
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    import huggingface_hub.constants as c

    monkeypatch.setattr(c, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(RewardModelUnavailable) as e:
        build_scorers({"scorers": "reward"})
    text = str(e.value)
    assert "internlm/internlm2-20b-reward" in text
    assert '"reward_model": "/path/to/' in text and '{"scorers": "none"}' in text


def test_missing_local_folder_and_lmdeploy_on_cpu(tiny_dir):
    with pytest.raises(RewardModelUnavailable, match="is not a folder"):
        from_metadata({"reward_model": "/nonexistent/rm"})
    # the tiny model is a sequence-classification model: lmdeploy cannot serve it
    with pytest.raises(ValueError, match="supports InternLM2ForRewardModel"):
        preflight(RewardConfig(model=str(tiny_dir / "reward"), backend="lmdeploy"))
    auto = preflight(RewardConfig(model=str(tiny_dir / "reward")))
    assert auto.backend == "hf"


def test_server_unreachable_fails_fast(tiny_dir):
    with pytest.raises(ConnectionError, match="does not answer"):
        from_metadata(
            {
                "reward_model": str(tiny_dir / "reward"),
                "reward_backend": "server",
                "reward_url": "http://127.0.0.1:9",
            }
        )


def test_model_kind_is_checked_from_config_json(tiny_dir, tmp_path):
    from rgen_harness.metrics.model_kind import WrongModelKind, check_reward_config_model

    check_reward_config_model(preflight(RewardConfig(model=str(tiny_dir / "reward"))))
    chat = str(tiny_dir / "chat")
    with pytest.raises(WrongModelKind, match=r"declares architectures \['LlamaForCausalLM'\]"):
        check_reward_config_model(preflight(RewardConfig(model=chat, backend="hf")))
    for archs, ok in ((["InternLM2ForRewardModel"], True), ([], False)):
        folder = tmp_path / str(ok)
        folder.mkdir()
        (folder / "config.json").write_text(json.dumps({"architectures": archs}))
        config = RewardConfig(model=str(folder), backend="hf")
        if ok:
            check_reward_config_model(config)
        else:
            with pytest.raises(WrongModelKind, match="declares no architectures"):
                check_reward_config_model(config)
