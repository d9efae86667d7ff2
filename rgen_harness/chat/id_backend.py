"""The chat-rounds machinery shared by backends that send token ids (lmdeploy, transformers).

Counting and encoding go through one `PromptEncoder`: each piece of text between special tokens
is tokenised once, in batches, and reused by every budget attempt, by QR and both QCR rounds;
the ids sent are assembled from those pieces (never tokenised again), exactly the ids
`encode_prompt` gives. Generation runs on a worker thread while the next chunk is budgeted
(`concurrent_generate`; see `rgen_harness.chat.runner._run_round`)."""

from __future__ import annotations

from rgen_harness.chat.runner import LMChatBackend
from rgen_harness.chat.special_tokens import encode_prompt


class IdChatBackend(LMChatBackend):
    concurrent_generate = True

    def __init__(self, lm, *, max_length: int, use_tqdm: bool = True) -> None:
        from rgen_harness.chat.token_counts import PromptEncoder

        super().__init__(lm)
        self.max_length = max_length
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

    def unstage(self, prompt: str):
        staged = self._staged.get(prompt)
        if staged is None:  # not staged: a caller outside run_rounds
            return encode_prompt(self.lm.tokenizer, prompt)
        staged[1] -= 1
        if not staged[1]:
            del self._staged[prompt]
        return staged[0]

    def round_done(self) -> None:
        """Every prompt of the round is staged: keep only the pieces later rounds extend."""
        self.encoder.keep_only_used()
