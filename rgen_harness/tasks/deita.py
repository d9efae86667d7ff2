"""deita_qr and deita_qcr: ConfigurableTask subclasses that emit multi-round chat requests.

Each doc becomes ONE Instance of request type `generate_chat_rounds` (see rgen_harness.chat):
QR has one round (answer the history), QCR two (criteria, then the final answer). Prompts are
rendered by the evaluated model's own chat template, so no `--apply_chat_template` is needed;
with the flag, the result is the same.
"""

from __future__ import annotations

from copy import deepcopy
from typing import ClassVar

from lm_eval.api.instance import Instance
from lm_eval.api.task import ConfigurableTask

from rgen_harness.chat.protocol import REQUEST_TYPE, ChatRequest, ChatResult
from rgen_harness.metrics import reply_stats
from rgen_harness.prompts.qcr import load_qcr_prompts

reply_stats.register()


class DeitaTask(ConfigurableTask):
    MODE: ClassVar[str] = ""

    def __init__(self, config: dict | None = None, **kwargs) -> None:
        config = dict(config or {})
        config.pop("class", None)  # the factory leaves it in; TaskConfig rejects it
        super().__init__(config=config, **kwargs)

    # -- what a doc looks like to lm-eval -------------------------------------------------
    def doc_to_text(self, doc, doc_to_text=None) -> str:
        """The last user turn (for display and hashing; the model sees the whole history)."""
        return doc["messages"][-1]["content"] if doc["messages"] else ""

    def doc_to_target(self, doc, doc_to_target=None) -> str:
        return doc["reference"]

    def rounds(self) -> list[list[dict[str, str]]]:
        raise NotImplementedError

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
                f"{self.config.task} is zero-shot (the history is the context); "
                f"got num_fewshot={num_fewshot}. Drop --num_fewshot."
            )
        messages = [dict(m) for m in doc["messages"]]
        if system_instruction and not doc["problem"]:
            if messages and messages[0]["role"] == "system":
                messages[0]["content"] = f"{system_instruction}\n\n{messages[0]['content']}"
            else:
                messages.insert(0, {"role": "system", "content": system_instruction})
        return ChatRequest.build(
            doc_id=doc["id"],
            messages=messages,
            rounds=self.rounds(),
            skip_reason=doc["problem"] or None,
        )

    def construct_requests(self, doc, ctx, **kwargs) -> Instance:
        kwargs.pop("apply_chat_template", None)
        kwargs.pop("chat_template", None)
        return Instance(
            request_type=REQUEST_TYPE,
            doc=doc,
            arguments=(ctx, deepcopy(self.config.generation_kwargs)),
            idx=0,
            **kwargs,
        )

    def process_results(self, doc, results) -> dict[str, float]:
        result = ChatResult.from_json(results[0])
        return reply_stats.reply_stats(result, with_criteria=self.MODE == "qcr")


class DeitaQRTask(DeitaTask):
    """QR: the model answers the history directly."""

    MODE = "qr"

    def rounds(self):
        return [[]]


class DeitaQCRTask(DeitaTask):
    """QCR: criteria first (after an assistant placeholder turn), then the final answer."""

    MODE = "qcr"

    def rounds(self):
        name = (self.config.metadata or {}).get("qcr_prompts")
        return load_qcr_prompts(name).rounds()
