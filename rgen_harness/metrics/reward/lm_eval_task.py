"""Reward scoring for ANY lm-eval generate_until task, from its YAML.

A filter scores all replies of the task at once (lm-eval hands a filter every response and doc),
replacing each doc's responses with its scores; the metric functions below read them back, so
each doc's scores appear in `--log_samples` and the usual aggregations apply:

    filter_list:
      - name: reward
        filter:
          - function: !function rgen_harness.metrics.reward.lm_eval_task.RewardFilter
            prompt: "{{question}}"          # the history: one user turn
            reward_model: /path/to/rm       # any reward_* setting
            reward_backend: hf
    metric_list:
      - metric: !function rgen_harness.metrics.reward.lm_eval_task.reward
        aggregation: nanmean
        higher_is_better: true
      - metric: !function rgen_harness.metrics.reward.lm_eval_task.reward_failed
        aggregation: sum
        higher_is_better: false

The history is the task's prompt as one user turn (`prompt`: a Jinja template over the doc,
as in `doc_to_text`); the first response of each doc is scored. `reward_*` kwargs are the same
settings as the deita tasks' metadata. The settings are checked when the filter runs (lm-eval
builds filters after generation); `reference` (a Jinja template too, optional) is scored as
`reference_reward`.
"""

from __future__ import annotations

import math
from typing import Any

from lm_eval.api.filter import Filter

from rgen_harness.chat.protocol import ChatResult, RoundRecord
from rgen_harness.metrics import reply_stats
from rgen_harness.metrics.scorers import ScoredItem

reply_stats.register()  # the `sum` aggregation, before the task's metric list is read


class RewardFilter(Filter):
    def __init__(self, prompt: str, reference: str | None = None, **settings: Any) -> None:
        from rgen_harness.metrics.reward.config import RewardConfig

        self.prompt = prompt
        self.reference = reference
        if reference is None:
            settings.setdefault("reward_reference", False)
        self.config = RewardConfig.from_metadata(settings)

    def apply(self, resps, docs):
        from lm_eval.utils import apply_template

        from rgen_harness.metrics.reward.scorer import RewardScorer, preflight

        items = []
        for doc, responses in zip(docs, resps, strict=True):
            reply = responses[0] if responses else ""
            scored_doc = dict(doc)
            if self.reference is not None:
                scored_doc["reference"] = apply_template(self.reference, doc)
            items.append(
                ScoredItem(
                    task="",
                    doc=scored_doc,
                    result=ChatResult(status="ok", rounds=[RoundRecord(prompt="", reply=reply)]),
                    history=[{"role": "user", "content": apply_template(self.prompt, doc)}],
                )
            )
        rows = RewardScorer(preflight(self.config)).score(items)
        return [[row] for row in rows]


def _value(predictions, name: str) -> float:
    row = predictions[0][0] if isinstance(predictions[0], list) else predictions[0]
    if not isinstance(row, dict):
        raise ValueError(
            f"metric {name!r} needs the RewardFilter in the same filter pipeline "
            f"(got {type(row).__name__} responses)"
        )
    return float(row.get(name, math.nan))


def reward(references, predictions, **kwargs) -> float:
    return _value(predictions, "reward")


def reward_failed(references, predictions, **kwargs) -> float:
    return _value(predictions, "reward_failed")


def reward_n(references, predictions, **kwargs) -> float:
    return _value(predictions, "reward_n")


def reference_reward(references, predictions, **kwargs) -> float:
    return _value(predictions, "reference_reward")
