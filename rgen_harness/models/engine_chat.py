"""The chat-rounds backend of `--model lmdeploy`: the deita rounds as direct engine calls."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rgen_harness.chat.generation import Generation
from rgen_harness.chat.id_backend import IdChatBackend
from rgen_harness.chat.protocol import REQUEST_TYPE
from rgen_harness.chat.reply_text import reply_from_ids
from rgen_harness.models.id_lists import IdLists
from rgen_harness.models.responses import (
    FAILED,
    check_engine_alive,
    describe_failure,
)

if TYPE_CHECKING:
    from rgen_harness.models.lmdeploy_lm import LMDeployLM


class EngineChatBackend(IdChatBackend):
    """The chat-rounds backend on the engine: the model's chat template, token counts and ids
    from its tokenizer (`IdChatBackend`), generation as engine calls; every reply decoded from
    its generated ids by `rgen_harness.chat.reply_text` (the rule every backend follows)."""

    def __init__(self, lm: LMDeployLM, *, use_tqdm: bool = True) -> None:
        super().__init__(lm, max_length=lm.max_length, use_tqdm=use_tqdm)
        # Conversations run in waves sized to the prefix cache (see chat.runner._waves).
        self.prefix_cache_tokens = lm.engine.prefix_cache_tokens()

    def generate(self, prompts: list[str], gen_kwargs: list[dict]) -> list[Generation]:
        lm: LMDeployLM = self.lm
        plans = [lm.plan(kwargs) for kwargs in gen_kwargs]
        ids = IdLists([self.unstage(p) for p in prompts])
        responses = lm._engine_generate(ids, [p[1] for p in plans], use_tqdm=self.use_tqdm)
        check_engine_alive(responses, "the chat rounds")
        lm.backends_used[REQUEST_TYPE] = lm.engine.backend
        lm.throughput.record(
            REQUEST_TYPE,
            samples=0,
            responses=responses,
            engine_calls=1,
            wall_s=0.0,  # the conversation-level wall time is added by generate_chat_rounds
        )
        out = []
        for resp, (until, _, _) in zip(responses, plans, strict=True):
            if resp.finish_reason in FAILED:
                error = describe_failure(resp)
                out.append(Generation(text="", finish_reason=resp.finish_reason, error=error))
                continue
            reply = reply_from_ids(lm.tokenizer, resp.token_ids or [], until=until)
            out.append(
                Generation(
                    text=reply.text,
                    finish_reason="stop" if reply.stopped else resp.finish_reason,
                    tokens=reply.tokens,
                    cached_tokens=getattr(resp, "cached_tokens", None),
                )
            )
        return out
