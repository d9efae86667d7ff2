"""What the reward model reads: history + reply as the last assistant turn, in the REWARD model's
own chat template, as token ids.

The text comes from `apply_chat_template(..., tokenize=False, add_generation_prompt=False)` and is
encoded with the tokenizer's prefix (BOS) exactly once: the template's copy when it has one, else
the tokenizer's, which is how both the InternLM2 reward code and sequence-classification reward
models such as Skywork-Reward build their input. InternLM2 reward models score the hidden state
at a reward token (id 92527) that must end the input exactly once: their HF code appends it,
lmdeploy's `get_reward_score` and the `/pooling` endpoint do not, so it is appended here for every
backend.

The history is the conversation's complete history (the turns generation dropped are back), so
QR and QCR replies and the reference reply are scored on identical inputs. Only what exceeds the
reward model's own maximum length loses whole turns, oldest first, with the same `fit_prompt` as
generation (counted per sample in `reward_dropped_turns`). Each piece of text between special
tokens is tokenised once per scoring pass (`rgen_harness.chat.token_counts`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from rgen_harness.chat.budget import ContextTooLong, FitJob, fit_prompts
from rgen_harness.chat.protocol import Message
from rgen_harness.chat.special_tokens import encode_prompt

INTERNLM2_REWARD_ARCH = "InternLM2ForRewardModel"
INTERNLM2_REWARD_TOKEN_ID = 92527
REWARD_TOKEN = "<|reward|>"
DEFAULT_MAX_LENGTH = 4096


@dataclass(frozen=True)
class Rendered:
    ids: list[int]
    dropped_turns: int


def reward_token_id(tokenizer, model_config: dict) -> int | None:
    """The token that must end the input, or None for models that pool the last token as is."""
    if INTERNLM2_REWARD_ARCH not in (model_config.get("architectures") or []):
        return None
    if isinstance(model_config.get("reward_token_id"), int):
        return model_config["reward_token_id"]
    vocab_id = tokenizer.convert_tokens_to_ids(REWARD_TOKEN)
    if isinstance(vocab_id, int) and vocab_id != tokenizer.unk_token_id and vocab_id >= 0:
        return vocab_id
    return INTERNLM2_REWARD_TOKEN_ID


class RewardRenderer:
    def __init__(self, tokenizer, model_config: dict, *, max_length: int | None = None) -> None:
        if not getattr(tokenizer, "chat_template", None):
            raise ValueError(
                f"the reward model's tokenizer ({getattr(tokenizer, 'name_or_path', '?')}) has no "
                "chat_template; reward models must be given their conversation in their own "
                "template. Use a reward model that ships one (tokenizer_config.json)."
            )
        self.tokenizer = tokenizer
        self.reward_token_id = reward_token_id(tokenizer, model_config)
        self.max_length = max_length or _max_length(model_config)

    def render_text(self, messages: list[Message]) -> str:
        return self.tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=False
        )

    def encode(self, text: str) -> list[int]:
        ids = encode_prompt(self.tokenizer, text)
        if self.reward_token_id is not None and (not ids or ids[-1] != self.reward_token_id):
            ids.append(self.reward_token_id)
        return ids

    def render(self, history: list[Message], reply: str) -> Rendered:
        """Token ids of `history` + `reply`; raises ContextTooLong when even the last user turn
        and the reply alone exceed `max_length`."""
        (outcome,) = self.render_many([(history, reply)])
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def render_many(self, pairs: list[tuple[list[Message], str]]) -> list[Rendered | Exception]:
        """`render` for many (history, reply) pairs: the budget's attempts counted a step at a
        time for all pairs, each piece of text between special tokens tokenised once (the same
        history comes with the QR reply, the QCR reply and the reference), and the ids of the
        fitted text assembled from those pieces, not tokenised again. A pair that cannot be
        rendered gets its exception (ContextTooLong, or the template's error)."""
        from rgen_harness.chat.token_counts import PromptEncoder

        encoder = PromptEncoder(self.tokenizer)
        jobs = [
            FitJob(history, [{"role": "assistant", "content": reply}], self.max_length)
            for history, reply in pairs
        ]
        outcomes = fit_prompts(
            jobs,
            render=self.render_text,
            count_many=lambda texts: encoder.count_many(texts, end_id=self.reward_token_id),
        )
        out: list[Rendered | Exception] = []
        for outcome in outcomes:
            if isinstance(outcome, Exception):
                out.append(outcome)
                continue
            (ids,) = encoder.encode_many([outcome.prompt], end_id=self.reward_token_id)
            out.append(Rendered(ids.tolist(), outcome.dropped_turns))
        return out


def _max_length(model_config: dict) -> int:
    for key in ("max_position_embeddings", "n_positions", "seq_length"):
        value = model_config.get(key)
        if isinstance(value, int) and value > 0:
            return value
    return DEFAULT_MAX_LENGTH


def load_tokenizer(path: str, *, revision: str | None, trust_remote_code: bool):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(
            path, revision=revision, trust_remote_code=trust_remote_code
        )
    except ValueError as e:
        if "trust_remote_code" in str(e) and not trust_remote_code:
            raise ValueError(
                f"the tokenizer of reward model {path!r} needs its own code: add "
                '"reward_trust_remote_code": true to --metadata.'
            ) from e
        raise


def load_model_config(path: str, *, revision: str | None) -> dict:
    from transformers.utils import cached_file

    config_file = cached_file(path, "config.json", revision=revision)
    with open(config_file, encoding="utf-8") as f:
        return json.load(f)


__all__ = ["ContextTooLong", "Rendered", "RewardRenderer", "reward_token_id"]
