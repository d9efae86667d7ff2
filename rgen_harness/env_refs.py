"""`${VAR}` and `${VAR:-default}` in lm_eval's `--model_args` and `--metadata` values, read from
the environment by the lm_eval process itself.

A study passes values it took from the environment (a token, a server password) to lm_eval as
written, so they never stand on a command line (`ps` shows every user's), and lm-eval records
the model arguments as written in its results JSON. The process that uses them expands them:
the model's arguments when lm-eval builds the model, the task metadata when `simple_evaluate`
starts (`rgen_harness.plugin`). The same works for a plain `lm_eval` command (single quotes keep
the shell from expanding them first). An unset variable without a default is an error that
names it.
"""

from __future__ import annotations

import os
import re
from typing import Any

VAR_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class UnsetVariable(ValueError):
    """A `${VAR}` whose variable is not set and has no default."""


def names(value: Any) -> set[str]:
    """The variables `value` (a string, or strings in lists and mappings) refers to."""
    if isinstance(value, dict):
        return set().union(*(names(v) for v in value.values())) if value else set()
    if isinstance(value, (list, tuple)):
        return set().union(*(names(v) for v in value)) if value else set()
    return {m.group(1) for m in VAR_RE.finditer(value)} if isinstance(value, str) else set()


def substitute(text: str, where: str, place: str = "the environment of lm_eval") -> tuple:
    """`text` with its `${VAR}`s replaced, and the values of the variables it read; an unset
    variable without a default raises UnsetVariable naming `where` and `place` (where to set
    it)."""
    values: list[str] = []

    def sub(match: re.Match) -> str:
        name, default = match.group(1), match.group(2)
        if name in os.environ:
            values.append(os.environ[name])
            return os.environ[name]
        if default is not None:
            return default
        raise UnsetVariable(
            f"{where}: environment variable {name} is not set; set it in {place}, or write "
            f"${{{name}:-<default>}}"
        )

    return VAR_RE.sub(sub, text), tuple(values)


def expand(value: Any, where: str) -> Any:
    """`value` with every `${VAR}` replaced from the environment (a copy; strings in lists and
    mappings too). `where` names the argument in the error for an unset variable."""
    if isinstance(value, dict):
        return {k: expand(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [expand(v, where) for v in value]
    if not isinstance(value, str) or "${" not in value:
        return value
    return substitute(value, where)[0]
