"""Reward models as pairwise judges: `--metadata '{"judge_with": "reward", "reward_model": ...}'`.

Each response is scored on its own (the query as the user turn, the response as the reply, in
the reward model's chat template) by the project's reward backends (`reward_*` keys: hf,
lmdeploy or server; see rgen_harness.metrics.reward). The verdict is the higher score; a tie
when the gap is at most `judge_tie_margin` (default 0: a tie only for equal scores; Auto-J
tuned such a threshold for reward models). Scores do not depend on the order, so each pair is
judged once. Nothing is generated: run with `--model dummy`. An input too long for the reward
model, or a failed score, is a failed judgment (counted in `failed`).
"""

from __future__ import annotations

import math
from typing import Any

MODES = ("model", "reward")


def read_mode(metadata: dict[str, Any]) -> str:
    mode = metadata.get("judge_with", "model")
    if mode not in MODES:
        raise ValueError(
            f'judge_with={mode!r} is not valid: use "model" (the evaluated model judges, the '
            'default) or "reward" (a reward model scores both responses; --model dummy).'
        )
    return mode


def read_margin(metadata: dict[str, Any]) -> float:
    raw = metadata.get("judge_tie_margin", 0.0)
    try:
        margin = float(raw)
    except (TypeError, ValueError):
        margin = math.nan
    if isinstance(raw, bool) or not math.isfinite(margin) or margin < 0:
        raise ValueError(
            f"judge_tie_margin={raw!r} must be a number >= 0 (score gap counted as a tie), "
            "e.g. --metadata '{\"judge_tie_margin\": 0.1}'."
        )
    return margin


def verdict(score_1: float, score_2: float, margin: float) -> int | None:
    if not (math.isfinite(score_1) and math.isfinite(score_2)):
        return None
    if abs(score_1 - score_2) <= margin:
        return 0
    return 1 if score_1 > score_2 else 2


def build_scorer(metadata: dict[str, Any]):
    from rgen_harness.metrics.reward.scorer import from_metadata

    return from_metadata(metadata)


def judge_docs(scorer, docs: list[dict], margin: float) -> list[dict]:
    """One logged judgment per doc: both scores, the margin, the verdict (or why none)."""
    from rgen_harness.metrics.reward.cache import ids_digest
    from rgen_harness.metrics.reward.render import ContextTooLong

    out: list[dict] = []
    jobs: dict[str, list[int]] = {}
    for doc in docs:
        judgment = {"order": "original", "status": "ok", "reason": None, "prompt": "", "reply": ""}
        judgment.update(scores=[None, None], margin=margin, digests=[])
        if doc["problem"]:
            judgment.update(status="skipped", reason=doc["problem"])
        else:
            history = [{"role": "user", "content": doc["query"]}]
            try:
                for response in (doc["response_1"], doc["response_2"]):
                    ids = scorer.renderer.render(history, response).ids
                    jobs[ids_digest(ids)] = ids
                    judgment["digests"].append(ids_digest(ids))
            except ContextTooLong as e:
                judgment.update(status="failed", reason=f"too long for the reward model: {e}")
        out.append(judgment)
    scores = scorer.score_ids(jobs, desc="reward judge") if jobs else {}
    for judgment in out:
        digests = judgment.pop("digests")
        if judgment["status"] != "ok":
            judgment["verdict"] = judgment["verdict_in_dataset_order"] = None
            continue
        s1, s2 = (scores.get(d, math.nan) for d in digests)
        judgment["scores"] = [s1 if math.isfinite(s1) else None, s2 if math.isfinite(s2) else None]
        judgment["verdict"] = judgment["verdict_in_dataset_order"] = verdict(s1, s2, margin)
        if judgment["verdict"] is None:
            judgment.update(status="failed", reason="no finite reward score")
    return out
