"""The start-up hook: names resolve with no flags, built-ins stay, and it can be switched off."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

PROBE = """
import lm_eval.api.model, lm_eval.models
from lm_eval.api.registry import model_registry
from lm_eval.tasks.manager import TaskManager
import inspect
print("lmdeploy" in model_registry, "hf" in model_registry, "vllm" in model_registry)
print(hasattr(lm_eval.api.model.LM, "generate_chat_rounds"))
print(getattr(TaskManager.__init__, "_rgen_harness", False))
"""


def run_probe(**env):
    out = subprocess.run(
        [sys.executable, "-c", PROBE],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **env},
    )
    return out.stdout.split()


def test_hook_registers_everything_and_keeps_builtins():
    assert run_probe() == ["True", "True", "True", "True", "True"]


def test_hook_can_be_disabled_and_applied_by_hand():
    assert run_probe(RGEN_HARNESS_DISABLE_HOOK="1") == ["False", "True", "True", "False", "False"]
    out = subprocess.run(
        [sys.executable, "-c", "import rgen_harness.plugin as p; p.apply()\n" + PROBE],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "RGEN_HARNESS_DISABLE_HOOK": "1"},
    ).stdout.split()
    assert out == ["True", "True", "True", "True", "True"]


def test_task_manager_indexes_deita_tasks_beside_builtins_and_user_paths(tmp_path):
    from lm_eval.tasks.manager import TaskManager

    (tmp_path / "mine.yaml").write_text(
        "task: my_local_task\ndataset_path: json\noutput_type: generate_until\n"
        "doc_to_text: q\ndoc_to_target: a\n"
    )
    tm = TaskManager(include_path=str(tmp_path))
    names = set(tm.all_tasks)
    assert {"deita_qr", "deita_qcr", "deita", "my_local_task", "gsm8k", "mmlu"} <= names


def test_lmdeploy_model_name_resolves_to_the_backend_class():
    from lm_eval.api.registry import get_model

    cls = get_model("lmdeploy")
    assert cls.__module__ == "rgen_harness.models.lmdeploy_lm"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            str(ROOT),
        ],
        check=True,
    )
    (path,) = out.glob("rgen_harness-*.whl")
    return zipfile.ZipFile(path)


def test_wheel_installs_the_hook_and_entry_points(wheel):
    names = wheel.namelist()
    assert "rgen_harness.pth" in names  # at the top of site-packages
    line = wheel.read("rgen_harness.pth").decode().strip()
    assert line.startswith("import os;") and "RGEN_HARNESS_DISABLE_HOOK" in line
    assert line.endswith("__import__('rgen_harness._hook')")
    assert "rgen_harness/tasks/deita_qr.yaml" in names
    assert "rgen_harness/prompts/qcr_v1.yaml" in names
    assert "rgen_harness/data/sample/deita_sample.jsonl" in names
    (ep,) = [n for n in names if n.endswith("entry_points.txt")]
    text = wheel.read(ep).decode()
    assert "[lm_eval.models]" in text and "rgen_harness.models.lmdeploy_lm:LMDeployLM" in text
    assert "rgen-harness = rgen_harness.cli:main" in text
