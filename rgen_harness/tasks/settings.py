"""The deita tasks' settings: one typed config, read and checked once from the task metadata
when the task loads, before the data is read and before any generation.

Every key of the metadata must be one the tasks know: the deita keys, the scorers' own keys
(`reward_*`, `similarity_*`, `rouge_*`), one lm-eval put there itself (`version`, the run's
`--model_args`, see `lm_eval_keys`) or one another rgen-harness task reads (`charrm_*`,
`judge_*`: `metadata_keys`, so one lm_eval call can run several tasks). Anything else is a typo
(`on_bad_rows`, `qcr_prompt`, `deita_pth`) that would otherwise silently run with a default, so
it is an error with a "did you mean" suggestion.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from rgen_harness.chat.special_text import check_mode
from rgen_harness.data.deita import DeitaSource
from rgen_harness.prompts.qcr import QCRPrompts, load_qcr_prompts
from rgen_harness.tasks.lm_eval_keys import model_args_keys

DEITA_KEYS = (
    "deita_path",
    "deita_dataset",
    "deita_split",
    "on_bad_row",
    "qcr_prompts",
    "scorers",
    "same_history",
    "special_text",
)


def scorer_keys() -> list[str]:
    """The keys each scorer reads: its prefix + each field of its options dataclass."""
    from rgen_harness.metrics.reward.config import PREFIX, RewardConfig
    from rgen_harness.metrics.rouge import RougeOptions
    from rgen_harness.metrics.similarity import SimilarityOptions

    options = ((PREFIX, RewardConfig), ("rouge_", RougeOptions))
    options += (("similarity_", SimilarityOptions),)
    return [prefix + f.name for prefix, cls in options for f in dataclasses.fields(cls)]


def known_keys() -> list[str]:
    return [*DEITA_KEYS, *scorer_keys()]


def check_keys(metadata: dict[str, Any], *, task: str, passthrough: Iterable[str] = ()) -> None:
    from rgen_harness.tasks.metadata_keys import check_keys as check

    check(metadata, task=task, family="deita", passthrough=passthrough)


def own_scorer_names() -> list[str]:
    from rgen_harness.metrics.scorers import SCORER_FACTORIES

    return list(SCORER_FACTORIES)


def scorer_names(metadata: dict[str, Any], *, task: str = "deita") -> tuple[str, ...]:
    """`scorers` as names: a comma-separated string or a list of strings; 'none' for none.
    Names of another task's scorers (`charrm`) are left to that task
    (rgen_harness.tasks.metadata_keys)."""
    from rgen_harness.metrics.scorers import DEFAULT_SCORERS
    from rgen_harness.tasks.metadata_keys import own_scorers

    if "scorers" not in metadata:
        return tuple(DEFAULT_SCORERS)
    return own_scorers(metadata["scorers"], family="deita", task=task)


@dataclass(frozen=True)
class DeitaSettings:
    source: DeitaSource
    qcr_prompts: QCRPrompts
    scorers: tuple[str, ...]
    # True: QR and QCR prompts of a conversation keep the same turns (QCR's need decides);
    # False: each mode drops only what its own prompts need.
    same_history: bool = True
    # "text": special-token strings in message contents are encoded as text (default);
    # "control": as control tokens, what serving stacks do (rgen_harness.chat.special_text).
    special_text: str = "text"

    @classmethod
    def from_metadata(cls, metadata: dict[str, Any], *, task: str) -> DeitaSettings:
        check_keys(metadata, task=task, passthrough=model_args_keys())
        return cls(
            source=DeitaSource.from_metadata(metadata),
            qcr_prompts=load_qcr_prompts(metadata.get("qcr_prompts")),
            scorers=scorer_names(metadata, task=task),
            same_history=_same_history(metadata),
            special_text=check_mode(metadata.get("special_text", "text")),
        )

    def scorer_metadata(self, metadata: dict[str, Any]) -> dict[str, Any]:
        """The metadata the scorer factories read, with `scorers` in its checked form."""
        return {**metadata, "scorers": ",".join(self.scorers) or "none"}


def _same_history(metadata: dict[str, Any]) -> bool:
    value = metadata.get("same_history", True)
    if isinstance(value, str) and value.lower() in ("true", "false"):
        value = value.lower() == "true"
    if not isinstance(value, bool):
        raise ValueError(
            f"metadata same_history={value!r}: give true (the default: QR and QCR prompts keep "
            "the same turns) or false (each mode drops only what it needs), e.g. --metadata "
            "'{\"same_history\": false}'."
        )
    return value
