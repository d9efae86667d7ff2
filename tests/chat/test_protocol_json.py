"""ChatResult JSON is strict JSON: scores that do not apply are null (not NaN), readable by any
JSON tool, and read back as NaN so every consumer treats them as before."""

from __future__ import annotations

import json
import math

from rgen_harness.chat.protocol import ChatResult, RoundRecord


def _strict(text: str):
    def refuse(name):
        raise ValueError(f"non-standard JSON constant {name}")

    return json.loads(text, parse_constant=refuse)


def test_scores_that_do_not_apply_are_null_and_read_back_as_nan():
    result = ChatResult(
        status="ok",
        rounds=[RoundRecord(prompt="p", reply="r", prompt_tokens=3, reply_tokens=1)],
        scores={"reward": math.nan, "reference_reward": 0.25, "similarity": math.inf, "n": 1},
    )
    text = result.to_json()
    data = _strict(text)  # what jq or JavaScript's JSON.parse accept
    assert data["scores"] == {"reward": None, "reference_reward": 0.25, "similarity": None, "n": 1}
    back = ChatResult.from_json(text)
    assert math.isnan(back.scores["reward"]) and math.isnan(back.scores["similarity"])
    assert back.scores["reference_reward"] == 0.25 and back.scores["n"] == 1
    assert back.reply == "r" and back.rounds == result.rounds


def test_old_json_with_nan_still_reads():
    old = '{"status": "ok", "reason": null, "dropped_turns": 0, "rounds": [], "scores": '
    old += '{"reward": NaN}, "reply": ""}'
    assert math.isnan(ChatResult.from_json(old).scores["reward"])
