"""judge_*: the evaluated model (or a reward model, see reward.py) as a pairwise judge on a
public human-labelled test set.

Each pair becomes one chat request per order (as given, then with the responses swapped, unless
`--metadata '{"judge_swap": false}'`), both of request type `generate_chat_rounds` with a single
round, so the prompt is rendered in the judge's own chat template (no `--apply_chat_template`
needed) and any lm-eval model, or lmdeploy natively, generates it greedily. The reply is read by
the prompt's parser (rgen_harness.prompts.judge); the verdict is mapped back to the dataset's
order and the per-doc record is aggregated by rgen_harness.tasks.judge.aggregate.

Logged samples (`--log_samples`) show per order: `filtered_resps` = JSON with the order, the
rendered prompt, the raw reply, the verdict as shown and in the dataset's order, status, reason.
"""

from __future__ import annotations

import functools
import json
from copy import deepcopy
from typing import Any

from lm_eval.api.instance import Instance
from lm_eval.api.task import ConfigurableTask

from rgen_harness.chat.protocol import REQUEST_TYPE, ChatRequest, ChatResult
from rgen_harness.data.judge import get_spec
from rgen_harness.metrics.judge import FLIP
from rgen_harness.prompts.judge import JudgePrompt, load_judge_prompt
from rgen_harness.tasks.judge import reward
from rgen_harness.tasks.judge.aggregate import metrics_for
from rgen_harness.tasks.judge.keys import check_keys

ORDERS = ("original", "swapped")
NOTHING_TO_GENERATE = "judged by the reward model (nothing to generate)"


def read_swap(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no"):
        return False
    raise ValueError(
        f"judge_swap={value!r} is not a boolean: use --metadata '{{\"judge_swap\": false}}' to "
        "judge each pair in the given order only, or true (the default) for both orders."
    )


def read_judgment(prompt: JudgePrompt, raw: str, order: str) -> dict:
    """One order's ChatResult JSON read with the prompt's parser: order, status, reason, the
    rendered prompt, the raw reply, the verdict as shown and mapped back to the given order
    (`verdict_in_dataset_order`; 1 <-> 2 for the swapped order). An unreadable verdict is None
    with status "unparsed", never a guess."""
    result = ChatResult.from_json(raw)
    out = {"order": order, "status": result.status, "reason": result.reason}
    out["prompt"] = result.rounds[-1].prompt if result.rounds else ""
    out["reply"] = result.reply
    out["dropped_turns"] = result.dropped_turns
    shown = prompt.parse(result.reply) if result.status == "ok" else None
    if result.status == "ok" and shown is None:
        out["status"], out["reason"] = "unparsed", f"no {prompt.parser} verdict found"
    out["verdict"] = shown
    out["verdict_in_dataset_order"] = FLIP[shown] if order == "swapped" else shown
    return out


def with_system_instruction(messages: list[dict], instruction: str | None) -> list[dict]:
    """`--system_instruction` before the prompt's own system text, or as a system turn."""
    if not instruction:
        return messages
    messages = [dict(m) for m in messages]
    if messages and messages[0]["role"] == "system":
        messages[0]["content"] = f"{instruction}\n\n{messages[0]['content']}"
    else:
        messages.insert(0, {"role": "system", "content": instruction})
    return messages


class PairwiseJudgeTask(ConfigurableTask):
    def __init__(self, config: dict | None = None, **kwargs) -> None:
        config = dict(config or {})
        config.pop("class", None)  # the factory leaves it in; TaskConfig rejects it
        # A misspelt key would otherwise run with a default: checked before the data is read.
        check_keys(dict(config.get("metadata") or {}), task=str(config.get("task")))
        super().__init__(config=config, **kwargs)
        metadata = self.config.metadata or {}
        self.spec = get_spec(metadata.get("judge_set"))
        self.prompt = load_judge_prompt(metadata.get("judge_prompt") or self.spec.default_prompt)
        self.mode = reward.read_mode(metadata)
        # A reward model scores each response alone: the order cannot matter, judge once.
        self.swap = read_swap(metadata.get("judge_swap", True)) and self.mode == "model"
        if self.mode == "reward":
            self.margin = reward.read_margin(metadata)
            self._scorer = reward.build_scorer(metadata)  # checked now, loaded when scoring
        self._system_instruction: str | None = None
        # The prompt's default length; --gen_kwargs (applied after this) still overrides it.
        self.config.generation_kwargs.setdefault("max_gen_toks", self.prompt.max_gen_toks)
        labels = (0, 1, 2) if self.spec.has_ties else (1, 2)
        self._metric_fn_list, self._metric_fn_kwargs = {}, {}
        self._aggregation_list, self._higher_is_better = {}, {}
        for name, (aggregation, higher) in metrics_for(self.spec.kind).items():
            self._metric_fn_list[name] = None
            self._metric_fn_kwargs[name] = {}
            self._aggregation_list[name] = functools.partial(aggregation, labels=labels)
            self._higher_is_better[name] = higher

    # -- what a doc looks like to lm-eval -------------------------------------------------
    def doc_to_text(self, doc, doc_to_text=None) -> str:
        return doc["query"]

    def doc_to_target(self, doc, doc_to_target=None) -> str:
        return str(doc["gold"])

    def _request(self, doc: dict, order: str) -> ChatRequest:
        first, second = doc["response_1"], doc["response_2"]
        if order == "swapped":
            first, second = second, first
        messages = with_system_instruction(
            self.prompt.messages(doc["query"], first, second), self._system_instruction
        )
        return ChatRequest.build(
            doc_id=f"{doc['id']}:{order}",
            messages=messages,
            rounds=[[]],
            skip_reason=doc["problem"] or (NOTHING_TO_GENERATE if self.mode == "reward" else None),
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
        orders = ORDERS if self.swap else ORDERS[:1]
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
            for i, order in enumerate(orders)
        ]

    # -- reading the verdicts -------------------------------------------------------------
    def judgment(self, raw: str, order: str) -> dict:
        """One order's result as logged: prompt, raw reply, verdict as shown and as given."""
        return read_judgment(self.prompt, raw, order)

    def apply_filters(self):
        super().apply_filters()
        if self.mode == "reward":
            judgments = reward.judge_docs(
                self._scorer, [i.doc for i in self._instances], self.margin
            )
            for inst, judgment in zip(self._instances, judgments, strict=True):
                for key in inst.filtered_resps:
                    inst.filtered_resps[key] = json.dumps(judgment, ensure_ascii=False)
            return self._instances
        for inst in self._instances:
            for key, raw in inst.filtered_resps.items():
                inst.filtered_resps[key] = json.dumps(
                    self.judgment(raw, ORDERS[inst.idx]), ensure_ascii=False
                )
        return self._instances

    def process_results(self, doc, results) -> dict[str, dict]:
        judgments = [json.loads(r) for r in results]
        skipped = bool(doc["problem"])
        record = {
            "gold": doc["gold"],
            "turn": doc["turn"],
            "votes": list(doc["votes"]),
            "scenario": doc["scenario"],
            "skipped": int(skipped),
            "pred": [] if skipped else [j["verdict_in_dataset_order"] for j in judgments],
            "shown": [] if skipped else [j["verdict"] for j in judgments],
            "error": []
            if skipped
            else [
                "" if j["status"] == "ok" else "unparsed" if j["status"] == "unparsed" else "failed"
                for j in judgments
            ],
        }
        return {name: record for name in self._aggregation_list}
