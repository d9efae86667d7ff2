"""One generated reply, as every chat backend returns it."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_MAX_GEN_TOKS = 256


@dataclass(frozen=True)
class Generation:
    """One generated reply. `error` set means the request failed (the text is not a reply)."""

    text: str
    finish_reason: str | None = None
    tokens: int | None = None
    error: str | None = None
    cached_tokens: int | None = None  # prompt tokens the engine's prefix cache served
    prompt_tokens: int | None = None  # as the server counted them (its `usage`), when known
