"""The chat-rounds backend of `--model lmdeploy`: the deita rounds as direct engine calls."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rgen_harness.chat.generation import Generation
from rgen_harness.chat.protocol import REQUEST_TYPE
from rgen_harness.chat.runner import LMChatBackend
from rgen_harness.models.id_lists import IdLists
from rgen_harness.models.responses import (
    FAILED,
    check_engine_alive,
    cut_at_stops,
    describe_failure,
)

if TYPE_CHECKING:
    from rgen_harness.models.lmdeploy_lm import LMDeployLM


class EngineChatBackend(LMChatBackend):
    """The chat-rounds backend on the engine: rendering with the model's chat template, token
    counting with its tokenizer, generation as engine calls that run while the next prompts are
    budgeted (`concurrent_generate`; see `rgen_harness.chat.runner._run_round`).

    Counting and encoding go through one `PromptEncoder`: each piece of text between special
    tokens is tokenised once, in batches, and reused by every budget attempt, by QR and both QCR
    rounds; the ids sent are assembled from those pieces (never tokenised again), exactly the
    ids `encode_prompt` gives."""

    concurrent_generate = True

    def __init__(self, lm: LMDeployLM, *, use_tqdm: bool = True) -> None:
        from rgen_harness.chat.token_counts import PromptEncoder

        super().__init__(lm)
        self.max_length = lm.max_length
        self.use_tqdm = use_tqdm
        self.encoder = PromptEncoder(lm.tokenizer)
        self._staged: dict[str, list] = {}  # prompt -> [its ids, times staged], until sent

    def count_tokens(self, text: str) -> int:
        return self.encoder.count_many([text])[0]

    def count_many(self, prompts: list[str]) -> list[int]:
        return self.encoder.count_many(prompts)

    def stage(self, prompts: list[str]) -> None:
        """Assemble the ids of prompts about to be generated (on the budgeting thread)."""
        for prompt, ids in zip(prompts, self.encoder.encode_many(prompts), strict=True):
            staged = self._staged.setdefault(prompt, [ids, 0])
            staged[1] += 1  # the same prompt twice (duplicate rows) is sent twice

    def _unstage(self, prompt: str):
        staged = self._staged.get(prompt)
        if staged is None:  # not staged: a caller outside run_rounds
            return self.lm.encode_prompt(prompt)
        staged[1] -= 1
        if not staged[1]:
            del self._staged[prompt]
        return staged[0]

    def round_done(self) -> None:
        """Every prompt of the round is staged: keep only the pieces later rounds extend."""
        self.encoder.keep_only_used()

    def generate(self, prompts: list[str], gen_kwargs: list[dict]) -> list[Generation]:
        lm: LMDeployLM = self.lm
        plans = [lm.plan(kwargs) for kwargs in gen_kwargs]
        ids = IdLists([self._unstage(p) for p in prompts])
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
            text = cut_at_stops(resp.text, until)
            out.append(
                Generation(
                    text=text,
                    finish_reason=resp.finish_reason,
                    tokens=lm.reply_tokens(resp, text),
                    cached_tokens=getattr(resp, "cached_tokens", None),
                )
            )
        return out
