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
from typing import Any

from rgen_harness.chat.protocol import ChatRequest
from rgen_harness.data.judge import get_spec
from rgen_harness.prompts.judge import load_judge_prompt
from rgen_harness.tasks.judge import reward
from rgen_harness.tasks.judge.aggregate import metrics_for
from rgen_harness.tasks.judge.keys import check_keys
from rgen_harness.tasks.judge.orders import BothOrdersJudgeTask
from rgen_harness.tasks.zero_shot import task_config, with_system_instruction

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


class PairwiseJudgeTask(BothOrdersJudgeTask):
    def __init__(self, config: dict | None = None, **kwargs) -> None:
        config = task_config(config)
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
        # The prompt's default length; --gen_kwargs (applied after this) still overrides it.
        self.config.generation_kwargs.setdefault("max_gen_toks", self.prompt.max_gen_toks)
        labels = (0, 1, 2) if self.spec.has_ties else (1, 2)
        self._clear_metrics()
        for name, (aggregation, higher) in metrics_for(self.spec.kind).items():
            self._set_metric(name, None, functools.partial(aggregation, labels=labels), higher)

    # -- what a doc looks like to lm-eval -------------------------------------------------
    def doc_to_text(self, doc, doc_to_text=None) -> str:
        return doc["query"]

    def doc_to_target(self, doc, doc_to_target=None) -> str:
        return str(doc["gold"])

    def order_request(self, doc: dict, order: str) -> ChatRequest:
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

    # -- reading the verdicts -------------------------------------------------------------
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
        self._read_verdicts()
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
