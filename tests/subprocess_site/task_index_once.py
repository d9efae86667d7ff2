"""lm-eval's built-in task folder indexed once per test session instead of once per
`TaskManager` (every `simple_evaluate` and every `lm_eval` command builds one; walking the
~15,000 YAML files takes about 5 s). The index is lm-eval's own (`TaskIndex.build` of that
folder), built by the test session and handed to the processes it starts in a pickle file named
by RGEN_TEST_LM_EVAL_INDEX. Every other folder (rgen_harness/tasks/, a test's include_path) is
indexed on each call, as lm-eval does."""

from __future__ import annotations

import os
import pickle
import sys
from pathlib import Path

INDEX_ENV = "RGEN_TEST_LM_EVAL_INDEX"


def once_per_root(original, kept: dict):
    """`TaskIndex.build` that takes a folder's index from `kept` ({(folder, resolve_includes):
    index}) when there, else builds it. Later folders win on a name clash, as in lm-eval."""

    def build(paths, *, resolve_includes=True):
        index = {}
        for root in paths:
            key = (Path(root).resolve(), resolve_includes)
            part = kept.get(key)
            if part is None:
                part = original([root], resolve_includes=resolve_includes)
            index.update(part)  # entries are only read (TaskFactory copies their cfg)
        return index

    return build


def lm_eval_task_folder() -> Path:
    import lm_eval.tasks

    return Path(lm_eval.tasks.__file__).parent.resolve()


def build_and_save(path: Path) -> dict:
    """Index lm-eval's task folder, write it to `path`; {(folder, True): index}."""
    from lm_eval.tasks._index import TaskIndex

    folder = lm_eval_task_folder()
    index = TaskIndex.build([folder])
    path.write_bytes(pickle.dumps({"folder": str(folder), "index": index}, protocol=5))
    return {(folder, True): index}


class _IndexFinder:
    """Patches `lm_eval.tasks._index` when the process imports it (a meta-path finder that
    finds nothing itself, as rgen_harness/_hook.py does for lm-eval's other modules)."""

    name = "lm_eval.tasks._index"

    def __init__(self, path: str) -> None:
        self.path = path

    def find_spec(self, fullname, path=None, target=None):
        if fullname != self.name:
            return None
        sys.meta_path.remove(self)
        from importlib.machinery import PathFinder

        spec = PathFinder.find_spec(fullname, path, target)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        original_exec = spec.loader.exec_module

        def exec_module(module):
            original_exec(module)
            self.patch(module)

        spec.loader.exec_module = exec_module
        return spec

    def patch(self, module) -> None:
        saved = pickle.loads(Path(self.path).read_bytes())
        kept = {(Path(saved["folder"]), True): saved["index"]}
        original = module.TaskIndex.build
        module.TaskIndex.build = staticmethod(once_per_root(original, kept))


def install_in_subprocess() -> None:
    path = os.environ.get(INDEX_ENV, "")
    if path and os.path.isfile(path) and "lm_eval.tasks._index" not in sys.modules:
        sys.meta_path.insert(0, _IndexFinder(path))
