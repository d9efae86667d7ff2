"""What rgen-harness adds to lm-eval: the `lmdeploy` model name, the task folder, the
multi-round request type, and what its run modes need (API models' max_length, predict-only,
data-parallel padding by request type). Called by the start-up hook; with the hook disabled
(`RGEN_HARNESS_DISABLE_HOOK=1`), call `rgen_harness.plugin.apply()` before using lm-eval."""

from __future__ import annotations

import functools
from pathlib import Path

TASKS_DIR = Path(__file__).parent / "tasks"
LMDEPLOY_TARGET = "rgen_harness.models.lmdeploy_lm:LMDeployLM"


def register_models() -> None:
    from lm_eval.api.registry import model_registry

    if "lmdeploy" not in model_registry:
        model_registry.register("lmdeploy", target=LMDEPLOY_TARGET)


def extend_task_manager(task_manager_cls) -> None:
    """Make every TaskManager index the deita task folder next to the user's include_path."""
    if getattr(task_manager_cls.__init__, "_rgen_harness", False):
        return
    original_init = task_manager_cls.__init__

    @functools.wraps(original_init)
    def __init__(self, *args, include_path=None, **kwargs):
        if len(args) >= 2:  # TaskManager(verbosity, include_path, ...)
            include_path, args = args[1], (args[0], *args[2:])
        if include_path is None:
            paths = []
        elif isinstance(include_path, (list, tuple)):
            paths = list(include_path)
        else:
            paths = [include_path]
        if not any(Path(p).resolve() == TASKS_DIR.resolve() for p in paths):
            # Our folder first: the user's own include_path still wins on a name clash.
            paths.insert(0, str(TASKS_DIR))
        original_init(self, *args, include_path=paths, **kwargs)

    __init__._rgen_harness = True
    task_manager_cls.__init__ = __init__


def extend_lm_base(lm_cls) -> None:
    """Give every lm-eval model the default implementation of the multi-round request type, and
    build it with `${VAR}`s in its arguments read from the environment (`rgen_harness.env_refs`)."""
    from rgen_harness.chat.protocol import REQUEST_TYPE
    from rgen_harness.chat.runner import generate_chat_rounds

    if not hasattr(lm_cls, REQUEST_TYPE):
        setattr(lm_cls, REQUEST_TYPE, generate_chat_rounds)
    from_obj = lm_cls.create_from_arg_obj.__func__
    if getattr(from_obj, "_rgen_harness", False):
        return
    from_string = lm_cls.create_from_arg_string.__func__

    def create_from_arg_obj(cls, arg_dict, additional_config=None):
        from rgen_harness.env_refs import expand

        return from_obj(cls, expand(dict(arg_dict), "--model_args"), additional_config)

    def create_from_arg_string(cls, arg_string, additional_config=None):
        if "${" not in str(arg_string):
            return from_string(cls, arg_string, additional_config)
        from lm_eval.utils import simple_parse_args_string

        return cls.create_from_arg_obj(simple_parse_args_string(arg_string), additional_config)

    create_from_arg_obj._rgen_harness = True
    lm_cls.create_from_arg_obj = classmethod(create_from_arg_obj)
    lm_cls.create_from_arg_string = classmethod(create_from_arg_string)


def extend_api_models(template_api_cls) -> None:
    """Make every lm-eval API model record whether `max_length` was given: lm-eval defaults it
    to 2048 without a word, and the deita tasks' context budget must be the server's."""
    from rgen_harness.chat.api_backend import MAX_LENGTH_GIVEN_ATTR

    if getattr(template_api_cls.__init__, "_rgen_harness", False):
        return
    original_init = template_api_cls.__init__

    @functools.wraps(original_init)
    def __init__(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        setattr(self, MAX_LENGTH_GIVEN_ATTR, kwargs.get("max_length") is not None)

    __init__._rgen_harness = True
    template_api_cls.__init__ = __init__


def extend_evaluator(evaluator_module) -> None:
    """`simple_evaluate` tells the tasks built during the call whether it runs predict-only
    (`rgen_harness.run_mode.predict_only`); lm-eval itself tells them only afterwards."""
    original = evaluator_module.simple_evaluate
    if getattr(original, "_rgen_harness", False):
        return
    import inspect

    from rgen_harness.run_mode import predict_only_run

    signature = inspect.signature(original)

    @functools.wraps(original)
    def simple_evaluate(*args, **kwargs):
        bound = signature.bind_partial(*args, **kwargs)
        flag = bound.arguments.get("predict_only", False)
        if isinstance(bound.arguments.get("metadata"), dict):
            from rgen_harness.env_refs import expand  # `${VAR}` in task metadata

            bound.arguments["metadata"] = expand(bound.arguments["metadata"], "--metadata")
        with predict_only_run(bool(flag)):
            return original(*bound.args, **bound.kwargs)

    simple_evaluate._rgen_harness = True
    evaluator_module.simple_evaluate = simple_evaluate

    original_evaluate = evaluator_module.evaluate
    if getattr(original_evaluate, "_rgen_harness", False):
        return

    @functools.wraps(original_evaluate)
    def evaluate(lm, task_dict, *args, **kwargs):
        """A model that can check the run's request types up front (`check_request_types`)
        refuses what it cannot serve before the first request."""
        check = getattr(lm, "check_request_types", None)
        if callable(check):
            check({getattr(t, "OUTPUT_TYPE", None) for t in _tasks_of(task_dict)} - {None})
        return original_evaluate(lm, task_dict, *args, **kwargs)

    evaluate._rgen_harness = True
    evaluator_module.evaluate = evaluate


def _tasks_of(task_dict) -> list:
    """The Task objects of lm-eval's task dict (`{"tasks": ...}` or the nested legacy form)."""
    if isinstance(task_dict, dict) and "tasks" in task_dict:
        return list(task_dict["tasks"].values())
    out = []
    for value in (task_dict or {}).values():
        out.extend(_tasks_of(value) if isinstance(value, dict) else [value])
    return out


def extend_task_base(task_cls) -> None:
    """Data parallel: lm-eval pads each rank's requests up to the longest rank's, keyed by the
    task's `OUTPUT_TYPE`, not by the request type its instances carry. A task that emits only
    requests of another type (the deita and judge tasks: `generate_chat_rounds`) takes that
    type as its `OUTPUT_TYPE` once its requests are built, so its ranks are padded with its own
    requests, as built-in tasks are, instead of with another task's `generate_until` ones."""
    original = task_cls.build_all_requests
    if getattr(original, "_rgen_harness", False):
        return

    @functools.wraps(original)
    def build_all_requests(self, *args, **kwargs):
        out = original(self, *args, **kwargs)
        emitted = {inst.request_type for inst in (self._instances or [])}
        if len(emitted) == 1 and self.OUTPUT_TYPE not in ("multiple_choice", *emitted):
            (self.OUTPUT_TYPE,) = emitted
        return out

    build_all_requests._rgen_harness = True
    task_cls.build_all_requests = build_all_requests


def apply() -> None:
    """Apply everything now (imports lm-eval)."""
    import lm_eval.api.model
    import lm_eval.api.task
    import lm_eval.evaluator
    import lm_eval.models  # noqa: F401  (fills the registry with the built-ins first)
    import lm_eval.models.api_models
    import lm_eval.tasks.manager

    register_models()
    extend_task_manager(lm_eval.tasks.manager.TaskManager)
    extend_lm_base(lm_eval.api.model.LM)
    extend_api_models(lm_eval.models.api_models.TemplateAPI)
    extend_evaluator(lm_eval.evaluator)
    extend_task_base(lm_eval.api.task.Task)
