"""The shipped study's path: generator and reward model both through lmdeploy (CPU engine).

The reward backend closes every live engine (`release_all`) before it loads the reward model;
lm-eval asks the generator for its model info after scoring. The run must finish with results
and samples written, and report the engine settings as they were built."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

pytest.importorskip("lmdeploy")

from cpu_engine_util import CPU_ENGINE


def internlm2_reward(tiny_dir, root):
    """The tiny reward model declared as lmdeploy's InternLM2ForRewardModel."""
    path = shutil.copytree(tiny_dir / "reward", root / "internlm2-like-reward")
    config = json.loads((path / "config.json").read_text())
    config["architectures"] = ["InternLM2ForRewardModel"]
    (path / "config.json").write_text(json.dumps(config))
    return path


@pytest.mark.slow
def test_lmdeploy_generator_then_lmdeploy_reward(tiny_dir, tmp_path):
    reward = internlm2_reward(tiny_dir, tmp_path)
    env = dict(os.environ, RGEN_HARNESS_LMDEPLOY_ENGINE=CPU_ENGINE)
    metadata = {
        "deita_path": "sample",
        "scorers": "reward",
        "reward_model": str(reward),
        "reward_backend": "lmdeploy",
        "reward_cache": "none",
    }
    cmd = [
        "lm_eval", "--model", "lmdeploy",
        "--model_args", f"pretrained={tiny_dir / 'chat'}",
        "--tasks", "deita_qr", "--limit", "2", "--gen_kwargs", "max_gen_toks=8",
        "--metadata", json.dumps(metadata),
        "--log_samples", "--output_path", str(tmp_path / "out"),
    ]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    [results] = (tmp_path / "out").rglob("results_*.json")
    [samples] = (tmp_path / "out").rglob("samples_deita_qr_*.jsonl")
    data = json.loads(results.read_text())
    assert data["results"]["deita_qr"]["reward_n,none"] == 2
    config = data["config"]
    assert config["lmdeploy_backend"] in ("turbomind", "pytorch")
    assert config["lmdeploy_session_len"] > 0
    assert config["lmdeploy_engine_settings"][config["lmdeploy_backend"]]["tp"] == 1
    assert len(samples.read_text().splitlines()) == 2
