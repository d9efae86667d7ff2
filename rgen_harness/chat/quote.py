"""A conversation quoted inside one message: what a judge reads.

A ChatRequest may carry a `quote`: its `messages` are then not sent as turns but shown as text
inside a frame, the frame's `parts` joined with the quoted history (`{"system": str, "parts":
[before, after]}` puts the history between `before` and `after` in one user message, after an
optional system turn). The context budget treats the quoted history as any history
(`rgen_harness.chat.budget`): the oldest (user, assistant) pairs go first, system turns and the
last user turn stay, and a conversation whose last user turn alone does not fit is skipped.
The quoted text says how many earlier turns are left out.
"""

from __future__ import annotations

from rgen_harness.chat.protocol import Message

ROLE_LABELS = {"system": "System", "user": "User", "assistant": "Assistant"}


def check_quote(quote: dict) -> dict:
    """`quote` if it is a frame (system text, at least two parts), else a ValueError."""
    parts = quote.get("parts") if isinstance(quote, dict) else None
    system = quote.get("system", "") if isinstance(quote, dict) else None
    if (
        not isinstance(parts, list)
        or len(parts) < 2
        or not all(isinstance(p, str) for p in parts)
        or not isinstance(system, str)
    ):
        raise ValueError(
            f"quote={quote!r} is not a frame: expected {{'system': str, 'parts': [str, str, ...]}} "
            "(the history is placed between consecutive parts)"
        )
    return quote


def history_text(messages: list[Message], dropped: int = 0) -> str:
    """The history as text: a lone user turn as it is; several turns each under a role label,
    with a note on the turns left out and on which turn the responses answer."""
    if len(messages) == 1 and messages[0]["role"] == "user" and not dropped:
        return messages[0]["content"]
    blocks = []
    if dropped:
        blocks.append(f"({dropped} earlier turns of this conversation are not shown.)")
    for m in messages:
        blocks.append(f"[{ROLE_LABELS.get(m['role'], m['role'])}]\n{m['content']}")
    blocks.append("(The responses answer the last user turn above.)")
    return "\n\n".join(blocks)


def framed(quote: dict, messages: list[Message], dropped: int = 0) -> list[Message]:
    """The messages sent for `messages` (the kept history) quoted in the frame `quote`."""
    text = history_text(messages, dropped).join(quote["parts"])
    system = quote.get("system") or ""
    return [*([{"role": "system", "content": system}] if system.strip() else [])] + [
        {"role": "user", "content": text}
    ]
