"""The files the project ships run end to end through the path a GPU user takes: the default
study config (generator and reward model both through lmdeploy, here over the CPU engine) and
the README's lmdeploy commands, on tiny models of the study's five families.

Only what a CPU cannot hold is changed in the copy of `study_default.yaml`: model locations
(tiny models of each family; GLM-4 declared as its real `ChatGLMModel` architecture, which
TurboMind does not run), the data (the bundled sample), the subset size and the token limit.
Every other key — backends, tp, session_len, trust_remote_code, scorers, reward backend — is
the shipped one."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytest.importorskip("lmdeploy")

pytestmark = pytest.mark.slow

CONFIGS = Path(__file__).parents[2] / "rgen_harness" / "configs"
CPU_ENGINE = "rgen_harness.models.cpu_engine:build_cpu_engine"
FAMILY_OF = {  # the shipped model -> the tiny family that behaves like it
    "internlm/internlm2_5-7b-chat": "internlm2_5-chat",
    "internlm/internlm2_5-20b-chat": "internlm2_5-chat",
    "meta-llama/Llama-3.1-8B-Instruct": "llama-3.1-instruct",
    "Qwen/Qwen2-1.5B": "qwen2-base",
    "Qwen/Qwen2-7B-Instruct": "qwen2-instruct",
    "THUDM/glm-4-9b-chat": "glm-4-chat",
}


def _env():
    return dict(
        os.environ,
        RGEN_HARNESS_LMDEPLOY_ENGINE=CPU_ENGINE,
        HF_HUB_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
    )


@pytest.fixture(scope="module")
def tiny_study_models(tiny_dir, tmp_path_factory):
    from rgen_harness.smoke.families import build_family_model

    root = tmp_path_factory.mktemp("shipped")
    paths = {}
    for family in sorted(set(FAMILY_OF.values())):
        path = build_family_model(root / family, family)
        if family == "glm-4-chat":
            config = json.loads((path / "config.json").read_text())
            config["architectures"] = ["ChatGLMModel"]
            (path / "config.json").write_text(json.dumps(config))
        paths[family] = str(path)
    reward = shutil.copytree(tiny_dir / "reward", root / "internlm2-reward")
    config = json.loads((reward / "config.json").read_text())
    config["architectures"] = ["InternLM2ForRewardModel"]
    (reward / "config.json").write_text(json.dumps(config))
    return root, paths, str(reward)


def test_default_study_config_runs_end_to_end_and_resumes(tiny_study_models, tmp_path):
    _, paths, reward = tiny_study_models
    config = yaml.safe_load((CONFIGS / "study_default.yaml").read_text())
    for model in config["models"]:
        pretrained = model["model_args"]["pretrained"]
        model["model_args"]["pretrained"] = paths[FAMILY_OF[pretrained]]
        assert model["model"] == "lmdeploy"
    config["reward"]["model"] = reward
    assert config["reward"]["backend"] == "lmdeploy"
    config["data"] = {"path": "sample", "on_bad_row": config["data"]["on_bad_row"]}
    config["subset"] = {"size": 2, "seed": 0}
    config["generation"]["max_gen_toks"] = 6
    config["output_dir"], config["report_dir"] = "studies/default", "results/default"
    # The node the study's users have: 8 GPUs (ids handed out and pinned by the scheduler; the
    # CPU engine runs whatever CUDA_VISIBLE_DEVICES says), so the default there is theirs: runs
    # side by side, the scoring phase with the reward model on lmdeploy, shards where GPUs are
    # left free.
    assert config["gpus"] is None and config["scheduler"] == "auto"
    config["gpus"] = list(range(8))
    cfg = tmp_path / "study_default.yaml"
    cfg.write_text(yaml.safe_dump(config))

    def study():
        return subprocess.run(
            [sys.executable, "-m", "rgen_harness.cli", "study", str(cfg)],
            cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=1800,
        )  # fmt: skip

    first = study()
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    report = tmp_path / "results/default/leaderboard.json"
    assert report.is_file()
    rows = json.loads(report.read_text())
    text = json.dumps(rows)
    for model in config["models"]:
        assert model["name"] in text
    printed = first.stdout
    assert "[study] scoring: reward model loaded 1 time(s)" in printed, printed[-3000:]
    assert "shards merged" in printed and "generating (scored later) on GPU" in printed
    results = sorted((tmp_path / "studies/default/runs").rglob("results_*.json"))
    assert len(results) == len(config["models"])
    for path in results:
        data = json.loads(path.read_text())
        assert data["results"]["deita_qcr"]["reward_n,none"] > 0
        backend = data["config"]["lmdeploy_backend"]
        glm = "glm" in str(data["config"].get("model_args"))
        assert backend == ("pytorch" if glm else "turbomind")
    again = study()
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.count("finished earlier, skipped") == len(config["models"])


def test_readme_lmdeploy_commands_run_on_tiny_models(tiny_study_models, tmp_path):
    """The README's GPU commands as typed, with tiny models for the hub ids (and a local
    multiple-choice task for `mmlu`, whose data needs the hub)."""
    _, paths, _ = tiny_study_models
    tasks = Path(__file__).parents[1] / "data" / "tasks"
    include = tmp_path / "tasks"
    include.mkdir()
    for path in tasks.glob("*.yaml"):
        (include / path.name).write_text(path.read_text().replace("@DATA@", str(tasks.resolve())))
    model = paths["internlm2_5-chat"]
    commands = [
        ["lm_eval", "--model", "lmdeploy",
         "--model_args", f"pretrained={model},backend=pytorch,tp=1,session_len=16384",
         "--tasks", "deita_qr,deita_qcr,rgen_test_mc", "--include_path", str(include),
         "--limit", "2", "--gen_kwargs", "max_gen_toks=6",
         "--metadata", json.dumps({"deita_path": "sample", "scorers": "rouge"}),
         "--log_samples", "--output_path", str(tmp_path / "runs")],
        ["lm_eval", "--model", "lmdeploy",
         "--model_args", f"pretrained={paths['glm-4-chat']},trust_remote_code=True",
         "--tasks", "judge_pairwise", "--limit", "1",
         "--metadata", json.dumps({"judge_path": "sample"}),
         "--log_samples", "--output_path", str(tmp_path / "judge")],
    ]  # fmt: skip
    for cmd in commands:
        proc = subprocess.run(
            cmd, cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=1200
        )
        assert proc.returncode == 0, " ".join(cmd[:6]) + "\n" + proc.stderr[-3000:]
    [results] = (tmp_path / "runs").rglob("results_*.json")
    data = json.loads(results.read_text())["results"]
    assert {"deita_qr", "deita_qcr", "rgen_test_mc"} <= set(data)
    assert any((tmp_path / "judge").rglob("results_*.json"))
