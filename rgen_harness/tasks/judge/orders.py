"""A judge shown two responses in both orders: the requests and verdicts shared by the judge
tasks (rgen_harness.tasks.judge.task) and deita_pairwise (rgen_harness.tasks.pairwise.task).

Each doc asks one request per order (as given, then with the responses swapped, unless the task
judges once), each of request type `generate_chat_rounds` with a single round; the reply is read
by the judge prompt's parser and the verdict mapped back to the doc's order.
"""

from __future__ import annotations

import json

from rgen_harness.chat.protocol import ChatRequest, ChatResult
from rgen_harness.metrics.judge import FLIP
from rgen_harness.prompts.judge import JudgePrompt
from rgen_harness.tasks.zero_shot import ZeroShotChatTask

ORDERS = ("original", "swapped")


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


class BothOrdersJudgeTask(ZeroShotChatTask):
    """A subclass sets `prompt` (the JudgePrompt) and says what one order's request is
    (`order_request`); `swap` False judges the given order only."""

    prompt: JudgePrompt
    swap: bool = True
    _system_instruction: str | None = None

    def order_request(self, doc: dict, order: str) -> ChatRequest:
        """The request showing the doc's responses in `order` (one of ORDERS)."""
        raise NotImplementedError

    def chat_request(self, doc: dict, system_instruction: str | None) -> ChatRequest:
        self._system_instruction = system_instruction  # for the swapped order's request too
        return self.order_request(doc, ORDERS[0])

    def request_contexts(self, doc: dict, ctx: ChatRequest) -> list[ChatRequest]:
        orders = ORDERS if self.swap else ORDERS[:1]
        return [ctx if order == ORDERS[0] else self.order_request(doc, order) for order in orders]

    def _read_verdicts(self) -> None:
        """Each filtered reply replaced by its judgment (read_judgment) as JSON."""
        for inst in self._instances:
            for key, raw in inst.filtered_resps.items():
                judgment = read_judgment(self.prompt, raw, ORDERS[inst.idx])
                inst.filtered_resps[key] = json.dumps(judgment, ensure_ascii=False)
