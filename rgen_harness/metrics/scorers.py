"""Reply scorers: metrics computed over ALL replies of a task at once (batched model passes).

lm-eval calls `process_results` one doc at a time, which would force one reward-model forward per
reply. Instead the deita tasks run every enabled scorer in `apply_filters` (after all generation
is done, before per-doc processing), store each reply's scores in its ChatResult (`scores`), and
`process_results` only reads them back, so the values also appear per sample in `--log_samples`.

Scorers are chosen with task metadata, e.g. `--metadata '{"scorers": "reward,rouge"}'`; each
factory reads and validates its own keys from the same metadata. The metrics a scorer declares
are added to the task's metric list only when it is enabled.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from rgen_harness.chat.protocol import ChatResult, Message

# name -> "module:factory"; factory(metadata: dict) -> ReplyScorer
SCORER_FACTORIES: dict[str, str] = {
    "rouge": "rgen_harness.metrics.rouge:build",
    "reward": "rgen_harness.metrics.reward.scorer:from_metadata",
    "similarity": "rgen_harness.metrics.similarity:build",
}
DEFAULT_SCORERS: tuple[str, ...] = ("rouge", "reward")


@dataclass(frozen=True)
class MetricSpec:
    name: str
    aggregation: Literal["nanmean", "sum", "mean"]
    higher_is_better: bool

    @property
    def lm_eval_aggregation(self) -> str:
        """The aggregation lm-eval runs. NaN values (not applicable) are dropped before it, so
        `nanmean` becomes `mean`, which also keeps lm-eval's closed-form stderr (`nanmean` is
        bootstrapped with 100k resamples in Python: minutes per metric on 6k docs)."""
        return "mean" if self.aggregation == "nanmean" else self.aggregation


@dataclass
class ScoredItem:
    """One reply to score. `history` is the conversation's complete history, without QCR's
    placeholder and criteria turns and WITHOUT the turns generation had to drop: the reward
    model reads the same input for QR and QCR (fitted only to its own maximum length).
    `reply` is '' unless status is ok."""

    task: str
    doc: dict
    result: ChatResult
    history: list[Message]

    @property
    def reply(self) -> str:
        return self.result.reply

    @property
    def reference(self) -> str:
        return self.doc["reference"]


class ReplyScorer(Protocol):
    name: str
    metrics: Sequence[MetricSpec]

    def score(self, items: list[ScoredItem]) -> list[dict[str, float]]:
        """One dict per item with a value (NaN when not scored) for every declared metric."""
        ...


def parse_scorer_names(metadata: dict[str, Any]) -> list[str]:
    raw = metadata.get("scorers", ",".join(DEFAULT_SCORERS))
    if raw is None or raw in ("", "none"):
        return []
    names = raw.split(",") if isinstance(raw, str) else list(raw)
    names = [str(n).strip() for n in names if str(n).strip()]
    for name in names:
        if name not in SCORER_FACTORIES:
            close = difflib.get_close_matches(name, SCORER_FACTORIES, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ValueError(
                f"unknown scorer {name!r} in metadata 'scorers'.{hint} Available: "
                f"{', '.join(sorted(SCORER_FACTORIES)) or 'none'}; 'none' disables scoring."
            )
    return names


def build_scorers(metadata: dict[str, Any]) -> list[ReplyScorer]:
    scorers = []
    for name in parse_scorer_names(metadata):
        module, _, attr = SCORER_FACTORIES[name].partition(":")
        scorers.append(getattr(importlib.import_module(module), attr)(metadata))
    return scorers
