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
from copy import deepcopy

from lm_eval.api.instance import Instance
from lm_eval.api.task import ConfigurableTask

from rgen_harness.chat.protocol import REQUEST_TYPE, ChatRequest
from rgen_harness.metrics import pairwise
from rgen_harness.prompts.judge import load_judge_prompt
from rgen_harness.tasks.judge.task import ORDERS, read_judgment
from rgen_harness.tasks.pairwise.settings import PairwiseSettings

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


class DeitaPairwiseTask(ConfigurableTask):
    def __init__(self, config: dict | None = None, **kwargs) -> None:
        config = dict(config or {})
        config.pop("class", None)  # the factory leaves it in; TaskConfig rejects it
        metadata = dict(config.get("metadata") or {})
        self.settings = PairwiseSettings.from_metadata(metadata, task=str(config.get("task")))
        judge_prompt = load_judge_prompt(self.settings.prompt)  # checked before the data
        config["custom_dataset"] = functools.partial(load_pairs, self.settings)
        super().__init__(config=config, **kwargs)
        self.prompt = judge_prompt  # ConfigurableTask.__init__ sets its own `prompt`
        self._system_instruction: str | None = None
        self.config.generation_kwargs.setdefault("max_gen_toks", self.prompt.max_gen_toks)
        self._summaries = _Summaries(self.settings)
        names = dict(METRICS)
        for source in sorted({d["source"] for d in self.dataset["test"]}):
            for name, higher in SOURCE_METRICS.items():
                names[f"source_{pairwise.slug(source)}_{name}"] = higher
        self._metric_fn_list, self._metric_fn_kwargs = {}, {}
        self._aggregation_list, self._higher_is_better = {}, {}
        for name, higher in names.items():
            self._metric_fn_list[name] = None
            self._metric_fn_kwargs[name] = {}
            self._aggregation_list[name] = functools.partial(self._summaries.metric, name=name)
            self._higher_is_better[name] = higher

    # -- what a doc looks like to lm-eval -------------------------------------------------
    def doc_to_text(self, doc, doc_to_text=None) -> str:
        return doc["messages"][-1]["content"] if doc["messages"] else ""

    def doc_to_target(self, doc, doc_to_target=None) -> str:
        return ""

    def _request(self, doc: dict, order: str) -> ChatRequest:
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

    def fewshot_context(
        self,
        doc,
        num_fewshot,
        system_instruction=None,
        apply_chat_template=False,
        fewshot_as_multiturn=False,
        chat_template=None,
        gen_prefix=None,
    ) -> ChatRequest:
        if num_fewshot:
            raise ValueError(
                f"{self.config.task} is zero-shot; got num_fewshot={num_fewshot}. "
                "Drop --num_fewshot."
            )
        self._system_instruction = system_instruction
        return self._request(doc, "original")

    def construct_requests(self, doc, ctx, **kwargs) -> list[Instance]:
        kwargs.pop("apply_chat_template", None)
        kwargs.pop("chat_template", None)
        return [
            Instance(
                request_type=REQUEST_TYPE,
                doc=doc,
                arguments=(
                    ctx if order == "original" else self._request(doc, order),
                    deepcopy(self.config.generation_kwargs),
                ),
                idx=i,
                **kwargs,
            )
            for i, order in enumerate(ORDERS)
        ]

    # -- reading the verdicts -------------------------------------------------------------
    def apply_filters(self):
        super().apply_filters()
        for inst in self._instances:
            for key, raw in inst.filtered_resps.items():
                judgment = read_judgment(self.prompt, raw, ORDERS[inst.idx])
                inst.filtered_resps[key] = json.dumps(judgment, ensure_ascii=False)
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
