"""Shared fixtures: tiny random-weight models built once per test session."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

# The commands under test (`lm_eval`, `rgen-harness`) are the ones installed beside this Python,
# as in an activated environment, also when pytest runs as `.venv/bin/python -m pytest`.
os.environ["PATH"] = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session", autouse=True)
def lm_eval_tasks_indexed_once(tmp_path_factory):
    """lm-eval's own task folder is indexed once for the session, in this process and in the
    processes it starts (`lm_eval` commands, study runs): tests/subprocess_site/."""
    from lm_eval.tasks._index import TaskIndex
    from subprocess_site.task_index_once import INDEX_ENV, build_and_save, once_per_root

    kept = build_and_save(tmp_path_factory.getbasetemp() / "lm_eval_task_index.pickle")
    original = TaskIndex.build
    TaskIndex.build = staticmethod(once_per_root(original, kept))
    saved = {name: os.environ.get(name) for name in (INDEX_ENV, "PYTHONPATH")}
    os.environ[INDEX_ENV] = str(tmp_path_factory.getbasetemp() / "lm_eval_task_index.pickle")
    site = str(Path(__file__).parent / "subprocess_site")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (site, saved["PYTHONPATH"]) if p)
    yield
    TaskIndex.build = staticmethod(original)
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory):
    """A folder with `chat/` (tiny llama chat model, ChatML template) and `reward/` (tiny
    sequence-classification reward model), both random weights with a real BPE tokenizer."""
    from rgen_harness.smoke.tiny_models import build_chat_model, build_reward_model

    root = tmp_path_factory.mktemp("tiny")
    build_chat_model(root / "chat")
    build_reward_model(root / "reward")
    return root


# The longest files (each over a minute on 2 CPUs) start first, so that parallel workers
# (pytest-xdist, one file per worker at a time) do not end waiting on one of them.
LONG_FILES = (
    "study/test_shipped_configs.py",
    "models/test_families.py",
    "study/test_study_scoring_phase.py",
    "served/test_served_deita.py",
)


def _long_first(item) -> int:
    path = Path(str(item.fspath)).as_posix()
    for rank, name in enumerate(LONG_FILES):
        if path.endswith("/tests/" + name):
            return rank
    return len(LONG_FILES)


def pytest_collection_modifyitems(config, items):
    items.sort(key=_long_first)  # stable: the order within a file and among the rest is kept
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:
        has_cuda = False
    if has_cuda:
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (runs on GPU machines)")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


CPU_ENGINE = "rgen_harness.models.cpu_engine:build_cpu_engine"


@pytest.fixture(scope="session")
def lmdeploy_task_dir(tmp_path_factory):
    """tests/data/tasks/*.yaml with @DATA@ replaced by that folder's absolute path."""
    from pathlib import Path

    src = Path(__file__).parent / "data" / "tasks"
    out = tmp_path_factory.mktemp("lmdeploy_tasks")
    for path in src.glob("*.yaml"):
        (out / path.name).write_text(path.read_text().replace("@DATA@", str(src.resolve())))
    return out


@pytest.fixture(scope="session")
def lmdeploy_standin(tiny_dir):
    """LMDeployLM on the tiny chat model: lmdeploy's Pipeline over the CPU engine."""
    from rgen_harness.models.lmdeploy_lm import LMDeployLM

    old = os.environ.get("RGEN_HARNESS_LMDEPLOY_ENGINE")
    os.environ["RGEN_HARNESS_LMDEPLOY_ENGINE"] = CPU_ENGINE
    try:
        return LMDeployLM(pretrained=str(tiny_dir / "chat"))
    finally:
        if old is None:
            os.environ.pop("RGEN_HARNESS_LMDEPLOY_ENGINE", None)
        else:
            os.environ["RGEN_HARNESS_LMDEPLOY_ENGINE"] = old


@pytest.fixture
def engine_calls(monkeypatch):
    """`record(lm)` -> a list that gets (method, number of requests) per engine call."""

    def record(lm):
        calls = []
        engine = lm.engine
        for name in ("generate", "prompt_logprobs"):
            original = getattr(engine, name)

            def wrapper(input_ids, *args, _name=name, _original=original, **kwargs):
                calls.append((_name, len(input_ids)))
                return _original(input_ids, *args, **kwargs)

            monkeypatch.setattr(engine, name, wrapper)
        return calls

    return record
