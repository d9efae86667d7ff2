"""charactereval: CharacterEval's role-play dialogues, replies scored by BaichuanCharRM.

Each example becomes ONE request of type `generate_chat_rounds` with a single round: the dialogue
as the authors build it (rgen_harness.data.charactereval), rendered in the evaluated model's own
chat template by the project's multi-round machinery (context budget, dropped turns counted, any
backend). After generation every (example, metric) pair that id2metric assigns is scored at once
by the `charrm` scorer (rgen_harness.metrics.charrm); the scores are stored in each reply's
ChatResult (`scores`: metric -> 1-5), so logged samples show them beside the role.

Metrics: the 12 metric means (lower-case names), the three dimension averages of the paper's
Table 4 and `overall` (rgen_harness.metrics.charrm.aggregate), each with a bootstrap stderr
over examples, `charrm_pairs` / `charrm_failed`
(pairs scored / not scored because their batch failed), `skipped` (malformed or unassigned
examples, too long for the model), `failed` (generation errors), `reply_chars` (the scored first
line), `dropped_turns`, `profile_dropped` (replies whose prompt lost the profile turn to the
budget).
"""

from __future__ import annotations

import math
from typing import Any

from rgen_harness.chat.protocol import ChatRequest, ChatResult
from rgen_harness.data.charactereval import PATH_KEY
from rgen_harness.metrics import reply_stats
from rgen_harness.metrics.charrm import aggregate as agg
from rgen_harness.metrics.charrm.render import first_line
from rgen_harness.run_mode import predict_only
from rgen_harness.tasks.zero_shot import ZeroShotChatTask, task_config

reply_stats.register()

SCORER = "charrm"
TASK_KEYS = (PATH_KEY, "scorers")
# name -> (aggregation, higher is better); counts are sums.
BASE_METRICS = {
    "reply_chars": ("mean", False),
    "dropped_turns": ("mean", False),
    "profile_dropped": ("sum", False),
    "skipped": ("sum", False),
    "failed": ("sum", False),
}
SCORE_COUNTS = {"charrm_pairs": ("sum", True), "charrm_failed": ("sum", False)}


def known_keys() -> list[str]:
    from dataclasses import fields

    from rgen_harness.metrics.charrm.options import PREFIX, CharRMOptions

    return [*TASK_KEYS, *(PREFIX + f.name for f in fields(CharRMOptions))]


def own_scorer_names() -> list[str]:
    return [SCORER]


def check_keys(metadata: dict[str, Any], *, task: str) -> None:
    """Keys of this task, of another rgen-harness task or of lm-eval pass; others are typos
    (rgen_harness.tasks.metadata_keys)."""
    from rgen_harness.tasks.metadata_keys import check_keys as check

    check(metadata, task=task, family="charactereval")


def read_scorers(metadata: dict[str, Any], *, task: str = "charactereval") -> bool:
    """Whether the `charrm` scorer runs: `scorers` names "charrm" (the default) or "none";
    another task's scorers (reward, rouge, similarity) are left to that task."""
    from rgen_harness.tasks.metadata_keys import own_scorers

    raw = metadata.get("scorers", SCORER)
    names = own_scorers(raw, family="charactereval", task=task)
    for name in names:
        if name != SCORER:
            raise ValueError(
                f"scorers={raw!r}: {name!r} is no scorer of any task; charactereval is scored "
                f'by "{SCORER}"; use "{SCORER}" or "none" (generate and log the replies; '
                "`rgen-harness score` scores later)."
            )
    return bool(names)


class CharacterEvalTask(ZeroShotChatTask):
    CONTEXT = "the dialogue"

    def __init__(self, config: dict | None = None, **kwargs) -> None:
        config = task_config(config)
        metadata = dict(config.get("metadata") or {})
        check_keys(metadata, task=str(config.get("task")))
        scoring = read_scorers(metadata, task=str(config.get("task")))
        # Built (and checked: model found, code consent) before the data is read and before
        # any generation; the model itself loads when scoring.
        self._scorer = None
        if scoring and not predict_only():
            from rgen_harness.metrics.charrm.scorer import from_metadata

            self._scorer = from_metadata(metadata)
        elif scoring:  # still a typo in a charrm_ key must not pass silently
            from rgen_harness.metrics.charrm.options import CharRMOptions

            CharRMOptions.from_metadata(metadata)
        super().__init__(config=config, **kwargs)
        self._set_metrics()

    def _set_metrics(self) -> None:
        from lm_eval.api.registry import get_aggregation

        table = dict(BASE_METRICS)
        if self._scorer is not None:
            table.update(SCORE_COUNTS)
            table.update({agg.metric_key(m): ("mean", True) for m in agg.METRIC_NAMES})
        self._clear_metrics()
        for name, (aggregation, higher) in table.items():
            self._set_metric(name, reply_stats.passthrough, get_aggregation(aggregation), higher)
        if self._scorer is not None:
            for name in agg.SUMMARY_NAMES:
                # `<name>_stderr`: lm-eval has no stderr for an aggregation of its own making,
                # so the bootstrap stderr is a metric whose value lm-eval's table shows as the
                # stderr of `<name>` (rgen_harness.metrics.charrm.aggregate).
                for metric, fn, higher in (
                    (name, agg.aggregation(name), True),
                    (agg.stderr_name(name), agg.stderr_aggregation(name), False),
                ):
                    self._set_metric(metric, reply_stats.passthrough, fn, higher)

    def override_metric(self, metric_name: str) -> None:
        """`--predict_only`: generate and log, score nothing (no model loads)."""
        if metric_name != "bypass":
            return super().override_metric(metric_name)
        self._scorer = None
        self._set_metrics()

    def chat_request(self, doc: dict, system_instruction: str | None) -> ChatRequest:
        # The dialogue starts with a user turn (rgen_harness.data.charactereval): the
        # instruction is a system turn before it.
        return self.history_request(doc, system_instruction, rounds=[[]])

    def apply_filters(self):
        """lm-eval's filters, then every assigned (example, metric) pair scored at once."""
        super().apply_filters()
        if self._scorer is not None:
            docs = [i.doc for i in self._instances]
            self._update_results(lambda results: score_results(self._scorer, docs, results))
        return self._instances

    def process_results(self, doc, results) -> dict[str, Any]:
        return doc_metrics(doc, ChatResult.from_json(results[0]), scored=self._scorer is not None)


def score_results(scorer, docs: list[dict], results: list[ChatResult]) -> None:
    """Score every assigned pair of the generated replies; scores go into `result.scores`
    (metric -> 1-5, NaN where scoring failed)."""
    from rgen_harness.metrics.charrm.scorer import Pair

    pairs, owners = [], []
    for doc, result in zip(docs, results, strict=True):
        if result.status != "ok" or doc["problem"]:
            continue
        response = first_line(result.reply)
        for metric in doc["metrics"]:
            pairs.append(Pair(doc["role_info"], doc["context"], response, metric["zh"]))
            owners.append((result, metric["en"]))
    scores = scorer.score(pairs, desc="charrm") if pairs else []
    for (result, metric), value in zip(owners, scores, strict=True):
        result.scores[metric] = value


def doc_metrics(doc: dict, result: ChatResult, *, scored: bool) -> dict[str, Any]:
    ok = result.status == "ok"
    out: dict[str, Any] = {
        "skipped": float(result.status == "skipped"),
        "failed": float(result.status == "failed"),
        "profile_dropped": float(ok and result.dropped_turns >= 2),
    }
    if ok:
        out["reply_chars"] = float(len(first_line(result.reply)))
        out["dropped_turns"] = float(result.dropped_turns)
    if not scored:
        return out
    record = {
        m: float(v)
        for m, v in result.scores.items()
        if m in agg.METRIC_NAMES and isinstance(v, (int, float)) and math.isfinite(v)
    }
    out["charrm_pairs"] = float(len(record))
    out["charrm_failed"] = float(len(doc["metrics"]) - len(record)) if ok else 0.0
    out.update({agg.metric_key(m): v for m, v in record.items()})
    for name in agg.SUMMARY_NAMES:  # each before its stderr: lm-eval fills `_stderr` after it
        out[name] = record
        out[agg.stderr_name(name)] = record
    return out
