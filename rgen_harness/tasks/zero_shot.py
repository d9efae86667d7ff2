"""ZeroShotChatTask: the lm-eval Task surface shared by the project's chat tasks (deita,
charactereval, the judge tasks, deita_pairwise).

Each doc becomes one or more requests of type `generate_chat_rounds` (rgen_harness.chat.protocol)
whose context the task builds itself as a ChatRequest, rendered later in the evaluated model's
own chat template; so the task is zero-shot and ignores `--apply_chat_template`. A subclass says
what one doc's request is (`chat_request`) and, when it asks more than one, the others
(`request_contexts`); it keeps its own data, metrics and scoring.
"""

from __future__ import annotations

from collections.abc import Callable
from copy import deepcopy
from typing import ClassVar

from lm_eval.api.instance import Instance
from lm_eval.api.task import ConfigurableTask

from rgen_harness.chat.protocol import REQUEST_TYPE, ChatRequest, ChatResult


def task_config(config: dict | None) -> dict:
    """A copy of the config lm-eval's factory passes to a YAML `class:`, without its `class`
    key (the factory leaves it in; TaskConfig rejects it)."""
    config = dict(config or {})
    config.pop("class", None)
    return config


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


class ZeroShotChatTask(ConfigurableTask):
    # What the context is, named in the error for `--num_fewshot` ("the history"); None: unnamed.
    CONTEXT: ClassVar[str | None] = None

    # -- what a doc looks like to lm-eval -------------------------------------------------
    def doc_to_text(self, doc, doc_to_text=None) -> str:
        """The last user turn (for display and hashing; the model sees the whole history)."""
        return doc["messages"][-1]["content"] if doc["messages"] else ""

    def doc_to_target(self, doc, doc_to_target=None) -> str:
        return ""

    # -- requests ---------------------------------------------------------------------------
    def chat_request(self, doc: dict, system_instruction: str | None) -> ChatRequest:
        """The doc's (first) request, with `--system_instruction` if any."""
        raise NotImplementedError

    def history_request(self, doc: dict, system_instruction: str | None, **options) -> ChatRequest:
        """The doc's own conversation (`messages`) as the request, with `--system_instruction`
        unless the doc is skipped (`problem`); rounds record prompt hashes, not text (the
        conversation is in `doc`). `options`: ChatRequest.build's (`rounds`, ...)."""
        return ChatRequest.build(
            doc_id=doc["id"],
            messages=with_system_instruction(
                doc["messages"], None if doc["problem"] else system_instruction
            ),
            skip_reason=doc["problem"] or None,
            log_prompts=False,
            **options,
        )

    def request_contexts(self, doc: dict, ctx: ChatRequest) -> list[ChatRequest]:
        """Every request of the doc, `ctx` (from `chat_request`) first; one Instance each."""
        return [ctx]

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
            context = f" ({self.CONTEXT} is the context)" if self.CONTEXT else ""
            raise ValueError(
                f"{self.config.task} is zero-shot{context}; got num_fewshot={num_fewshot}. "
                "Drop --num_fewshot."
            )
        return self.chat_request(doc, system_instruction)

    def construct_requests(self, doc, ctx, **kwargs) -> list[Instance]:
        kwargs.pop("apply_chat_template", None)  # the model's own template renders the rounds
        kwargs.pop("chat_template", None)
        return [
            Instance(
                request_type=REQUEST_TYPE,
                doc=doc,
                arguments=(context, deepcopy(self.config.generation_kwargs)),
                idx=i,
                **kwargs,
            )
            for i, context in enumerate(self.request_contexts(doc, ctx))
        ]

    # -- metrics and results --------------------------------------------------------------
    def _clear_metrics(self) -> None:
        """No metric at all (those ConfigurableTask read from the YAML included)."""
        self._metric_fn_list, self._metric_fn_kwargs = {}, {}
        self._aggregation_list, self._higher_is_better = {}, {}

    def _set_metric(
        self, name: str, fn: Callable | None, aggregation: Callable, higher_is_better: bool
    ) -> None:
        """One metric: its per-doc function (unused: process_results gives the values), its
        aggregation and direction."""
        self._metric_fn_list[name] = fn
        self._metric_fn_kwargs[name] = {}
        self._aggregation_list[name] = aggregation
        self._higher_is_better[name] = higher_is_better

    def _drop_metric(self, name: str) -> None:
        for table in (
            self._metric_fn_list,
            self._metric_fn_kwargs,
            self._aggregation_list,
            self._higher_is_better,
        ):
            table.pop(name, None)

    def _update_results(self, update: Callable[[list[ChatResult]], None]) -> None:
        """For each filter's replies: every instance's ChatResult (in instance order), updated
        in place by `update` and stored back as the filtered response."""
        if not self._instances:
            return
        for key in self._instances[0].filtered_resps:
            results = [ChatResult.from_json(i.filtered_resps[key]) for i in self._instances]
            update(results)
            for inst, result in zip(self._instances, results, strict=True):
                inst.filtered_resps[key] = result.to_json()
