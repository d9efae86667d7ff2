"""The `--metadata` keys and scorer names of every rgen-harness task family, in one registry.

`lm_eval --tasks deita_qr,charactereval --metadata '{...}'` hands every task the same metadata.
Each task checks the keys against its own list, lets through the keys that another registered
family reads (`charrm_model` for deita_qr, `deita_path` for charactereval) and lm-eval's own keys
(`version`, the run's `--model_args`: rgen_harness.tasks.lm_eval_keys), and stops on anything
else: a key no task reads is a typo, answered with the closest key of the task itself (or, when
none is close, of any task).

`scorers` is shared the same way: each family runs the scorers it has among the names listed
and ignores the names another family has (`"scorers": "reward,rouge,charrm"` scores deita replies
with reward and rouge, charactereval replies with charrm). A list naming none of a family's
scorers must say `none` for that family to score nothing, so a run never goes unscored by
accident.

Families are registered by "module:function" strings, imported only when a check runs (no
import circles between the task modules).
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Iterable
from typing import Any

from rgen_harness.tasks.lm_eval_keys import LM_EVAL_KEYS, model_args_keys

# family -> "module:function" returning the family's metadata keys
KEY_FAMILIES: dict[str, str] = {
    "deita": "rgen_harness.tasks.settings:known_keys",
    "charactereval": "rgen_harness.tasks.charactereval:known_keys",
    "judge": "rgen_harness.tasks.judge.keys:known_keys",
}
# family -> "module:function" returning the names `scorers` may give it
SCORER_FAMILIES: dict[str, str] = {
    "deita": "rgen_harness.tasks.settings:own_scorer_names",
    "charactereval": "rgen_harness.tasks.charactereval:own_scorer_names",
}


def _call(target: str) -> list[str]:
    module, _, attr = target.partition(":")
    return list(getattr(importlib.import_module(module), attr)())


def family_keys(family: str) -> list[str]:
    if family not in KEY_FAMILIES:
        raise KeyError(f"unknown task family {family!r}; registered: {', '.join(KEY_FAMILIES)}")
    return _call(KEY_FAMILIES[family])


def other_families_keys(family: str) -> set[str]:
    """The keys that the other registered families read (and `family` itself does not)."""
    own = set(family_keys(family))
    others: set[str] = set()
    for name in KEY_FAMILIES:
        if name != family:
            others.update(family_keys(name))
    return others - own


def check_keys(
    metadata: dict[str, Any],
    *,
    task: str,
    family: str,
    passthrough: Iterable[str] | None = None,
) -> None:
    """Stop on the first key that neither this family, another family nor lm-eval puts there.
    `passthrough`: the run's --model_args keys (default: read from the running lm-eval)."""
    known = family_keys(family)
    allowed = set(known) | LM_EVAL_KEYS
    allowed |= set(model_args_keys() if passthrough is None else passthrough)
    unknown = [key for key in metadata if key not in allowed]
    if not unknown:
        return
    others = other_families_keys(family)
    typos = [key for key in unknown if key not in others]
    if not typos:
        return
    key = typos[0]
    close = difflib.get_close_matches(str(key), known, n=1) or difflib.get_close_matches(
        str(key), sorted(others), n=1
    )
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ValueError(
        f"{task}: unknown --metadata key {key!r}.{hint} Known keys: {', '.join(known)} "
        "(lm-eval's own keys, --model_args and the keys of the other rgen-harness tasks "
        f"({', '.join(f for f in KEY_FAMILIES if f != family)}) pass through)."
    )


def scorer_list(raw: Any) -> list[str]:
    """`scorers` as a list of names: a comma-separated string or a list of strings."""
    if raw is None:
        return ["none"]
    if isinstance(raw, str):
        parts = raw.split(",")
    elif isinstance(raw, (list, tuple)) and all(isinstance(n, str) for n in raw):
        parts = list(raw)
    else:
        raise ValueError(
            f"metadata scorers={raw!r} is a {type(raw).__name__}: give scorer names as a "
            'comma-separated string, e.g. --metadata \'{"scorers": "reward,rouge"}\', or "none".'
        )
    return [n.strip() for n in parts if n.strip()]


def own_scorers(raw: Any, *, family: str, task: str) -> tuple[str, ...]:
    """The names in `scorers` that are not another family's scorers ('none' removed). Names
    of no family stay in (the family's own check names them with a suggestion). A list of
    only other families' scorers, without 'none', is an error."""
    names = scorer_list(raw)
    others: set[str] = set()
    for name, target in SCORER_FAMILIES.items():
        if name != family:
            others.update(_call(target))
    own = set(_call(SCORER_FAMILIES[family])) if family in SCORER_FAMILIES else set()
    others -= own
    kept = tuple(n for n in names if n != "none" and n not in others)
    if not kept and names and "none" not in names:
        mine = ", ".join(sorted(own)) or "none"
        raise ValueError(
            f"{task}: metadata scorers={raw!r} names only other tasks' scorers. Add this task's "
            f"({mine}) to score its replies, or add none to score them with nothing, e.g. "
            f'"scorers": "{",".join(names)},{sorted(own)[0] if own else "none"}".'
        )
    return kept
