"""What rgen-harness adds to lm-eval: the `lmdeploy` model name, the task folder, and the
multi-round request type. Called by the start-up hook; with the hook disabled
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
    """Give every lm-eval model the default implementation of the multi-round request type."""
    from rgen_harness.chat.protocol import REQUEST_TYPE
    from rgen_harness.chat.runner import generate_chat_rounds

    if not hasattr(lm_cls, REQUEST_TYPE):
        setattr(lm_cls, REQUEST_TYPE, generate_chat_rounds)


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


def apply() -> None:
    """Apply everything now (imports lm-eval)."""
    import lm_eval.api.model
    import lm_eval.models  # noqa: F401  (fills the registry with the built-ins first)
    import lm_eval.models.api_models
    import lm_eval.tasks.manager

    register_models()
    extend_task_manager(lm_eval.tasks.manager.TaskManager)
    extend_lm_base(lm_eval.api.model.LM)
    extend_api_models(lm_eval.models.api_models.TemplateAPI)
