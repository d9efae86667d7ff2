"""The judge tasks' metadata keys, checked when a task loads, before the data is read.

Every key must be one the judge tasks read (`judge_*`, the reward backends' `reward_*` keys for
`"judge_with": "reward"`), one lm-eval put there itself (`version`, the run's `--model_args`;
rgen_harness.tasks.lm_eval_keys) or one another rgen-harness task reads
(rgen_harness.tasks.metadata_keys). Anything else is a typo (`judge_pth`, `judge_prompts`) that
would otherwise silently run with a default, so it is an error with a "did you mean" suggestion,
as for the deita tasks (rgen_harness.tasks.settings).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from rgen_harness.data.judge.sources import SETS

JUDGE_KEYS = (
    "judge_set",
    "judge_prompt",
    "judge_swap",
    "judge_with",
    "judge_tie_margin",
    "judge_path",
)


def known_keys() -> list[str]:
    from rgen_harness.metrics.reward.config import PREFIX, RewardConfig

    reward = [PREFIX + f.name for f in dataclasses.fields(RewardConfig)]
    return [*JUDGE_KEYS, *(spec.path_key for spec in SETS.values()), *reward]


def check_keys(metadata: dict[str, Any], *, task: str) -> None:
    from rgen_harness.tasks.metadata_keys import check_keys as check

    check(metadata, task=task, family="judge")
