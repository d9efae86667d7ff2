"""Context budgeting: the prompt plus the generation must fit the model's maximum length.

Policy (the same for generation and reward scoring):
- whole turns are dropped oldest first, as (user, assistant) pairs so the history still opens with
  a user turn after any system turn (most chat templates insist on alternation);
- system turns and the last user turn are never dropped;
- if the last user turn alone does not fit, the conversation is skipped and counted
  (`ContextTooLong`), never cut in the middle and never sent over-long.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from rgen_harness.chat.protocol import Message


class ContextTooLong(Exception):
    """Even with every droppable turn dropped, the prompt does not fit."""


def split_system(messages: list[Message]) -> tuple[list[Message], list[Message]]:
    n = 0
    while n < len(messages) and messages[n]["role"] == "system":
        n += 1
    return messages[:n], messages[n:]


def droppable_turns(messages: list[Message]) -> int:
    """How many turns may go: every complete (user, assistant) pair before the last user turn."""
    _, turns = split_system(messages)
    return 2 * ((len(turns) - 1) // 2)


def drop_oldest(messages: list[Message], n_turns: int) -> list[Message]:
    """The history with its `n_turns` oldest non-system turns removed (n_turns is even)."""
    system, turns = split_system(messages)
    return system + turns[n_turns:]


@dataclass(frozen=True)
class Fitted:
    prompt: str
    prompt_tokens: int
    dropped_turns: int


def fit_prompt(
    history: list[Message],
    tail: list[Message],
    *,
    render: Callable[[list[Message]], str],
    count_tokens: Callable[[str], int],
    max_prompt_tokens: int,
    min_dropped: int = 0,
) -> Fitted:
    """Render `history[dropped:] + tail` with the fewest dropped turns (>= min_dropped) that fit.

    The prompt length falls as turns are dropped, so a binary search over the number of dropped
    pairs needs O(log n) renders: deita conversations are tens of KB, and rendering plus
    tokenising them is the expensive part.
    """
    max_pairs = droppable_turns(history) // 2
    lo = min(min_dropped // 2 + min_dropped % 2, max_pairs)

    def attempt(pairs: int) -> Fitted:
        prompt = render(drop_oldest(history, 2 * pairs) + tail)
        return Fitted(prompt, count_tokens(prompt), 2 * pairs)

    best = attempt(lo)
    if best.prompt_tokens <= max_prompt_tokens:
        return best
    last = attempt(max_pairs) if max_pairs > lo else best
    if last.prompt_tokens > max_prompt_tokens:
        raise ContextTooLong(
            f"prompt needs {last.prompt_tokens} tokens with all {2 * max_pairs} earlier turns "
            f"dropped, but only {max_prompt_tokens} fit (max length minus max_gen_toks)"
        )
    best = last
    low, high = lo + 1, max_pairs - 1  # lo does not fit, max_pairs does
    while low <= high:
        mid = (low + high) // 2
        cand = attempt(mid)
        if cand.prompt_tokens <= max_prompt_tokens:
            best, high = cand, mid - 1
        else:
            low = mid + 1
    return best
