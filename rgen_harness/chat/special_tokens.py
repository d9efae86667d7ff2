"""What a tokenizer and its chat template add around the text: read once, from the real objects.

- `auto_prefix_ids`: the tokens the tokenizer itself puts before any text (`<s>`,
  `<|begin_of_text|>`, GLM-4's `[gMASK]<sop>`, nothing for Qwen2), whatever `bos_token` says.
  `encode_prompt` adds them to a rendered prompt only when the template did not already.
- `end_of_turn`: the special token that closes an assistant turn in the chat template
  (`<|im_end|>` for ChatML families, `<|eot_id|>` for Llama-3). A base model with a chat
  template (Qwen2-1.5B: EOS `<|endoftext|>`) never emits its EOS at the end of a turn, so
  generation must also stop on this token.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

_MARKER = "Rgen7Marker"


@dataclass(frozen=True)
class TemplateTokens:
    prefix_ids: tuple[int, ...]
    prefix_text: str
    end_of_turn_id: int | None
    end_of_turn_text: str | None


def auto_prefix_ids(tokenizer) -> tuple[int, ...]:
    """Tokens the tokenizer adds in front of a text with its default special tokens (none for
    tokenizers that are not transformers tokenizers, e.g. tiktoken's)."""
    try:
        plain = tokenizer.encode("a", add_special_tokens=False)
        full = tokenizer.encode("a", add_special_tokens=True)
    except (TypeError, AttributeError):
        return ()
    for start in range(len(full) - len(plain) + 1):
        if full[start : start + len(plain)] == plain:
            return tuple(full[:start])
    return ()


def _end_of_turn(tokenizer) -> tuple[int | None, str | None]:
    chat = [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": _MARKER},
        {"role": "user", "content": "Hi"},
    ]
    try:
        text = tokenizer.apply_chat_template(chat, tokenize=False)
    except Exception:  # no template, or one that rejects this shape: nothing to add
        return None, None
    if not isinstance(text, str) or _MARKER not in text:
        return None, None
    after = text.split(_MARKER, 1)[1]
    special = set(getattr(tokenizer, "all_special_ids", [])) | {
        i for i, t in getattr(tokenizer, "added_tokens_decoder", {}).items() if t.special
    }
    for token in tokenizer.encode(after, add_special_tokens=False)[:4]:
        if token in special:
            return token, tokenizer.decode([token], skip_special_tokens=False)
        if tokenizer.decode([token]).strip():
            break  # real text follows the reply: the template closes turns without a token
    return None, None


@lru_cache(maxsize=32)
def _template_tokens(tokenizer) -> TemplateTokens:
    prefix = auto_prefix_ids(tokenizer)
    eot_id, eot_text = _end_of_turn(tokenizer)
    return TemplateTokens(
        prefix_ids=prefix,
        prefix_text=tokenizer.decode(list(prefix), skip_special_tokens=False) if prefix else "",
        end_of_turn_id=eot_id,
        end_of_turn_text=eot_text,
    )


def template_tokens(tokenizer) -> TemplateTokens:
    """Read once per tokenizer object (and chat template)."""
    return _template_tokens(_Key(tokenizer))


class _Key:
    """Hashable handle: the same tokenizer with another chat template is another key."""

    def __init__(self, tokenizer) -> None:
        self.tokenizer = tokenizer
        self.key = (id(tokenizer), getattr(tokenizer, "chat_template", None))

    def __hash__(self) -> int:
        return hash(self.key)

    def __eq__(self, other) -> bool:
        return isinstance(other, _Key) and self.key == other.key

    def __getattr__(self, name):
        return getattr(self.tokenizer, name)


def encode_prompt(tokenizer, prompt: str) -> list[int]:
    """Token ids of a rendered prompt holding the tokenizer's prefix exactly once (contents
    escaped by `special_text` give their special-token strings as ordinary text)."""
    from rgen_harness.chat.special_text import MARK, encode_marked

    prefix = list(template_tokens(tokenizer).prefix_ids)
    if MARK in prompt:
        ids = encode_marked(tokenizer, prompt)
    else:
        ids = tokenizer.encode(prompt, add_special_tokens=False)
    if prefix and ids[: len(prefix)] != prefix:
        ids = prefix + ids
    return ids
