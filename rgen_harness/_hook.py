"""Start-up hook that plugs rgen-harness into lm-eval 0.4.13, which has no plugin discovery.

`rgen_harness.pth` (installed into site-packages) imports this module at every interpreter
start. It costs well under a millisecond: it only puts a finder at the front of `sys.meta_path`
and imports nothing heavy. The finder reacts to six lm-eval modules, once each, after their
own code has run:

- `lm_eval.models`       -> register the lazy model name `lmdeploy` (built-ins are already in
                            the registry then, so the empty-registry lazy import still happens);
- `lm_eval.tasks.manager` -> every `TaskManager` also indexes `rgen_harness/tasks/`, so
                            `--tasks deita_qr,deita_qcr` resolves without `--include_path`;
- `lm_eval.api.model`    -> every `LM` gains a default `generate_chat_rounds` method, the
                            multi-round request type of the deita tasks (see `rgen_harness.chat`);
- `lm_eval.models.api_models` -> API models (`local-chat-completions` ...) record whether
                            `--model_args` gave `max_length` (the deita context budget needs it);
- `lm_eval.evaluator`    -> `simple_evaluate` tells the tasks it builds about `--predict_only`;
- `lm_eval.api.task`     -> a task emitting only `generate_chat_rounds` requests is padded by
                            that request type on data-parallel ranks.

Set `RGEN_HARNESS_DISABLE_HOOK=1` to switch it off (the .pth line then imports nothing);
`rgen_harness.plugin.apply()` does the same work by hand. Imports here are kept to modules
Python has already loaded at start-up; `benchmarks/startup_cost.py` measures the cost.
"""

import os
import sys

DISABLE_ENV = "RGEN_HARNESS_DISABLE_HOOK"


def _after_models(module) -> None:
    from rgen_harness.plugin import register_models

    register_models()


def _after_manager(module) -> None:
    from rgen_harness.plugin import extend_task_manager

    extend_task_manager(module.TaskManager)


def _after_api_model(module) -> None:
    from rgen_harness.plugin import extend_lm_base

    extend_lm_base(module.LM)


def _after_api_models(module) -> None:
    from rgen_harness.plugin import extend_api_models

    extend_api_models(module.TemplateAPI)


def _after_evaluator(module) -> None:
    from rgen_harness.plugin import extend_evaluator

    extend_evaluator(module)


def _after_api_task(module) -> None:
    from rgen_harness.plugin import extend_task_base

    extend_task_base(module.Task)


_CALLBACKS = {
    "lm_eval.models": _after_models,
    "lm_eval.tasks.manager": _after_manager,
    "lm_eval.api.model": _after_api_model,
    "lm_eval.models.api_models": _after_api_models,
    "lm_eval.evaluator": _after_evaluator,
    "lm_eval.api.task": _after_api_task,
}


class _LmEvalFinder:
    """A meta-path finder (duck-typed: importlib.abc costs ~5 ms of imports) that finds nothing
    itself and wraps the real loader of the watched modules."""

    def find_spec(self, fullname, path=None, target=None):
        callback = _CALLBACKS.get(fullname)
        if callback is None:
            return None
        del _CALLBACKS[fullname]
        if not _CALLBACKS and self in sys.meta_path:
            sys.meta_path.remove(self)
        from importlib.machinery import PathFinder

        spec = PathFinder.find_spec(fullname, path, target)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        loader = spec.loader
        original_exec = loader.exec_module

        def exec_module(module, _original=original_exec, _callback=callback):
            _original(module)
            _callback(module)

        loader.exec_module = exec_module
        return spec


def install() -> None:
    if os.environ.get(DISABLE_ENV, "").strip() not in ("", "0"):
        return
    if any(isinstance(f, _LmEvalFinder) for f in sys.meta_path):
        return
    # Modules imported before the hook (rare: only in odd start-up orders) are patched now.
    for name in list(_CALLBACKS):
        module = sys.modules.get(name)
        if module is not None:
            _CALLBACKS.pop(name)(module)
    if _CALLBACKS:
        sys.meta_path.insert(0, _LmEvalFinder())


install()
