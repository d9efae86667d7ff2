"""The metadata keys lm-eval itself puts into a task's metadata, which are not the task's options.

lm-eval 0.4.13 builds each task's metadata as the task YAML's `metadata`, then the run's
`--model_args` (`EvaluatorConfig.metadata = model_args | metadata`; `simple_evaluate` does the
same when it builds the TaskManager), then `--metadata`; the task factory adds `config_source`
(and `config` or `_metadata` for some configs), and `version` comes from the YAML. Model
arguments are free-form (any key a model class takes), so they cannot be listed in advance: they
are read from the `model_args` of the `simple_evaluate` call that is loading the task.
"""

from __future__ import annotations

import sys
from typing import Any

# Keys lm-eval's task factory or the task YAML put into every task's metadata.
LM_EVAL_KEYS = frozenset({"version", "config_source", "config", "_metadata"})


def model_args_keys() -> frozenset[str]:
    """Keys of the running `simple_evaluate(model_args=...)`, empty outside one (a task built
    directly from a TaskManager then sees only the metadata it was given)."""
    frame = sys._getframe(1)
    while frame is not None:
        code = frame.f_code
        if code.co_name == "simple_evaluate" and frame.f_globals.get("__name__") == (
            "lm_eval.evaluator"
        ):
            return frozenset(_parse(frame.f_locals.get("model_args")))
        frame = frame.f_back
    return frozenset()


def _parse(model_args: Any) -> dict:
    if isinstance(model_args, dict):
        return model_args
    if isinstance(model_args, str) and model_args.strip():
        from lm_eval.utils import simple_parse_args_string

        return simple_parse_args_string(model_args)
    return {}
