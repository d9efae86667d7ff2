"""How lm-eval was asked to run, for code that lm-eval does not tell.

`--predict_only` reaches only `simple_evaluate`, which builds the tasks first and only then
replaces their metrics; the deita tasks must know it while they are built, so they neither load
nor check a reward model that the run will not use. The start-up hook wraps `simple_evaluate`
to set the flag for the duration of the call (see `rgen_harness.plugin.extend_evaluator`).
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

_PREDICT_ONLY = contextvars.ContextVar("rgen_harness_predict_only", default=False)


def predict_only() -> bool:
    """True inside a `simple_evaluate(..., predict_only=True)` call (`lm_eval --predict_only`)."""
    return _PREDICT_ONLY.get()


@contextlib.contextmanager
def predict_only_run(flag: bool) -> Iterator[None]:
    token = _PREDICT_ONLY.set(bool(flag))
    try:
        yield
    finally:
        _PREDICT_ONLY.reset(token)
