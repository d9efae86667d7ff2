"""deita_pairwise: the evaluated lm-eval model as a pairwise judge of two runs' deita replies.

Each conversation with a reply on both sides (A, B; see rgen_harness.data.pairwise) is judged
twice, A shown first ("original") and B shown first ("swapped"), with one of the project's judge
prompts (rgen_harness.prompts.judge). Requests and verdicts are those of the judge tasks
(rgen_harness.tasks.judge.task): request type `generate_chat_rounds` with one round, rendered in
the judge's own chat template, greedy; the reply read by the prompt's parser and mapped back to
A/B. The conversation is quoted as text in the prompt's `{query}` (rgen_harness.chat.quote),
under the judge's own context budget: oldest turn pairs dropped first, the last user turn kept,
a pair that does not fit even then is counted (`too_long`), never cut.

Metrics: rgen_harness.metrics.pairwise (both-orders rule, win_rate_adjusted with a bootstrap
interval over conversations, consistency, first-pick rate, per source, agreement with the
reward difference, close-length pairs). Logged samples hold per order the raw reply, the verdict
as shown and in A/B terms, status and the judge's dropped turns.
"""

from __future__ import annotations

import functools
import json

from rgen_harness.chat.protocol import ChatRequest
from rgen_harness.metrics import pairwise
from rgen_harness.prompts.judge import load_judge_prompt
from rgen_harness.tasks.judge.orders import BothOrdersJudgeTask
from rgen_harness.tasks.pairwise.settings import PairwiseSettings
from rgen_harness.tasks.zero_shot import task_config

# Figures reported for every run (per-source figures are added for the sources in the data).
METRICS = {
    "n": True,
    "wins": True,
    "ties": True,
    "losses": False,
    "win_rate": True,
    "tie_rate": True,
    "loss_rate": False,
    "win_rate_adjusted": True,
    "win_rate_adjusted_low": True,
    "win_rate_adjusted_high": True,
    "macro_win_rate_adjusted": True,
    "macro_win_rate_adjusted_low": True,
    "macro_win_rate_adjusted_high": True,
    "consistency": True,
    "first_pick_rate": True,
    "reward_agreement": True,
    "reward_agreement_low": True,
    "reward_agreement_high": True,
    "reward_agreement_n": True,
    "reward_agreement_no_ties": True,
    "reward_agreement_no_ties_n": True,
    "reward_win_rate_adjusted": True,
    "close_length_win_rate_adjusted": True,
    "close_length_win_rate_adjusted_low": True,
    "close_length_win_rate_adjusted_high": True,
    "close_length_n": True,
    "pairs": True,
    "skipped": False,
    "too_long": False,
    "failed": False,
    "unreadable": False,
    "unreadable_verdicts": False,
    "history_differs": False,
    "judge_dropped_turns": False,
}
SOURCE_METRICS = {"n": True, "wins": True, "ties": True, "losses": False, "win_rate_adjusted": True}


class _Summaries:
    """lm-eval aggregates each metric separately over the same per-pair records: the summary
    is computed once per list of records."""

    def __init__(self, settings: PairwiseSettings) -> None:
        self.settings = settings
        self._key: tuple | None = None
        self._value: dict = {}

    def get(self, records: list[dict]) -> dict[str, float]:
        key = tuple(id(r) for r in records)
        if key != self._key:
            s = self.settings
            self._value = pairwise.summary(
                records,
                length_ratio=s.length_ratio,
                level=s.interval,
                resamples=s.resamples,
                seed=s.seed,
            )
            self._key = key
        return self._value

    def metric(self, records: list[dict], *, name: str) -> float:
        return self.get(records).get(name, float("nan"))


def load_pairs(settings: PairwiseSettings, **lm_eval_kwargs):
    import datasets

    from rgen_harness.data.pairwise import features, pair_docs, subset

    docs = subset(pair_docs(settings.a, settings.b), settings.subset, settings.seed)
    return datasets.DatasetDict({"test": datasets.Dataset.from_list(docs, features=features())})


class DeitaPairwiseTask(BothOrdersJudgeTask):
    def __init__(self, config: dict | None = None, **kwargs) -> None:
        config = task_config(config)
        metadata = dict(config.get("metadata") or {})
        self.settings = PairwiseSettings.from_metadata(metadata, task=str(config.get("task")))
        judge_prompt = load_judge_prompt(self.settings.prompt)  # checked before the data
        config["custom_dataset"] = functools.partial(load_pairs, self.settings)
        super().__init__(config=config, **kwargs)
        self.prompt = judge_prompt  # ConfigurableTask.__init__ sets its own `prompt`
        self.config.generation_kwargs.setdefault("max_gen_toks", self.prompt.max_gen_toks)
        self._summaries = _Summaries(self.settings)
        names = dict(METRICS)
        for source in sorted({d["source"] for d in self.dataset["test"]}):
            for name, higher in SOURCE_METRICS.items():
                names[f"source_{pairwise.slug(source)}_{name}"] = higher
        self._clear_metrics()
        for name, higher in names.items():
            self._set_metric(
                name, None, functools.partial(self._summaries.metric, name=name), higher
            )

    # -- requests -------------------------------------------------------------------------
    def order_request(self, doc: dict, order: str) -> ChatRequest:
        first, second = doc["response_a"], doc["response_b"]
        if order == "swapped":
            first, second = second, first
        return ChatRequest.build(
            doc_id=f"{doc['id']}:{order}",
            messages=[dict(m) for m in doc["messages"]],
            rounds=[[]],
            skip_reason=doc["problem"] or None,
            log_prompts=False,  # the history is in `doc`; rounds record the prompt's hash
            quote=self.prompt.frame(first, second, system_instruction=self._system_instruction),
        )

    # -- reading the verdicts -------------------------------------------------------------
    def apply_filters(self):
        super().apply_filters()
        self._read_verdicts()
        return self._instances

    def process_results(self, doc, results) -> dict[str, dict]:
        judgments = [json.loads(r) for r in results]
        skipped = bool(doc["problem"])
        dropped = [j["dropped_turns"] for j in judgments if j["status"] in ("ok", "unparsed")]
        record = {
            "id": doc["id"],
            "source": doc["source"],
            "skipped": int(skipped),
            "verdicts": [] if skipped else [j["verdict_in_dataset_order"] for j in judgments],
            "shown": [] if skipped else [j["verdict"] for j in judgments],
            "status": [] if skipped else [j["status"] for j in judgments],
            "reward_a": doc["reward_a"],
            "reward_b": doc["reward_b"],
            "chars_a": len(doc["response_a"]),
            "chars_b": len(doc["response_b"]),
            "history_differs": int(not skipped and doc["dropped_a"] != doc["dropped_b"]),
            "judge_dropped": max(dropped) if dropped else None,
        }
        return {name: record for name in self._aggregation_list}
