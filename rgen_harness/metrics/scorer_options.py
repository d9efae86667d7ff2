"""Reading a scorer's options from task metadata, validated once at task start.

All scorers share one metadata dict (`--metadata '{...}'`), so each scorer owns the keys that start
with its prefix (`similarity_model`, `similarity_batch_size`, ...). A prefixed key that is not a
field of the scorer's options dataclass is an error with a "did you mean" suggestion, so a typo
never silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
import difflib
from typing import Any, TypeVar

T = TypeVar("T")


def options_from_metadata(cls: type[T], metadata: dict[str, Any], prefix: str) -> T:
    """Build dataclass `cls` from the `prefix`+field keys of `metadata`.

    Values are coerced to the field's default type (k=v metadata arrives as text), so the
    dataclass's own `__post_init__` checks ranges and choices.
    """
    fields = {f.name: f for f in dataclasses.fields(cls)}
    known = [prefix + name for name in fields]
    values: dict[str, Any] = {}
    for key, value in metadata.items():
        if not key.startswith(prefix):
            continue
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ValueError(
                f"unknown metadata key {key!r}.{hint} Options of this scorer: {', '.join(known)}."
            )
        name = key[len(prefix) :]
        values[name] = _coerce(key, value, fields[name].default)
    return cls(**values)


def _coerce(key: str, value: Any, default: Any) -> Any:
    if value is None or default is None or default is dataclasses.MISSING:
        return value
    kind = type(default)
    if isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
        return value
    try:
        if kind is bool:
            text = str(value).strip().lower()
            if text in ("1", "true", "yes"):
                return True
            if text in ("0", "false", "no"):
                return False
            raise ValueError(value)
        return kind(value)
    except (TypeError, ValueError) as e:
        raise ValueError(
            f"metadata {key}={value!r} is not a valid {kind.__name__} "
            f"(default {default!r}); pass e.g. {key}={default!r}."
        ) from e
