"""Checks of the generation options of chat-round requests, before any rendering or generation.

`max_gen_toks` arrives from the task YAML or `--gen_kwargs` (lm-eval turns `max_gen_toks=abc`
into the string 'abc'). Unchecked, a non-integer failed every conversation one by one, zero or a
negative number failed inside transformers after generation had started, and a value at or over
the model's maximum length skipped every conversation as too long while the run still succeeded.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

EXAMPLE = 512


def checked_max_gen_toks(value: Any) -> int:
    """`value` if it is an integer >= 1, else an error naming it and the fix."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    what = "is not a whole number" if not isinstance(value, int) or isinstance(value, bool) else ""
    raise ValueError(
        f"gen_kwargs max_gen_toks={value!r} {what or 'is below 1'}: the number of tokens to "
        f"generate must be an integer >= 1, e.g. --gen_kwargs max_gen_toks={EXAMPLE}."
    )


def check_generation_options(gen_kwargs: Iterable[dict | None], backend) -> None:
    """Every distinct `max_gen_toks` among the requests is valid and leaves room for a prompt
    within `backend.max_length` (when the backend counts tokens)."""
    seen: set[str] = set()
    for kwargs in gen_kwargs:
        kwargs = kwargs or {}
        key = repr(kwargs.get("max_gen_toks"))
        if key in seen:
            continue
        seen.add(key)
        if "max_gen_toks" in kwargs:
            checked_max_gen_toks(kwargs["max_gen_toks"])
        max_gen_toks = checked_max_gen_toks(backend.max_gen_toks(kwargs))
        max_length = backend.max_length
        if max_length is not None and max_gen_toks >= max_length:
            raise ValueError(
                f"gen_kwargs max_gen_toks={max_gen_toks} leaves no room for any prompt: the "
                f"model's maximum length is {max_length} tokens (prompt + generated). Lower it, "
                f"e.g. --gen_kwargs max_gen_toks={min(EXAMPLE, max(1, max_length // 2))}, or use "
                "a longer context (hf: --model_args max_length=N; lmdeploy: session_len=N)."
            )
