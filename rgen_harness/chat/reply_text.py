"""A reply's text from the ids the model generated: one rule for every backend.

lmdeploy's incremental detokeniser and transformers' `decode` disagree on two things: which
tokens count as special (lmdeploy skips only `tokenizer.all_special_ids`; a token marked special
in tokenizer.json but not listed as an additional special token — Llama-3.1's header, reserved
and tool tokens — comes back as text), and a reply cut inside a multi-byte character (lmdeploy
holds the bytes back, transformers shows U+FFFD). The project therefore decodes every reply
itself, once, from the generated ids, with the tokenizer's own special-token flags:

- ids after the first stop id (EOS, the template's end of turn, single-token `until` strings,
  padding) are not part of the reply;
- `tokenizer.decode(ids, skip_special_tokens=True)`: no special token's text in a reply;
- the text is cut at the first `until` string (lm-eval's rule);
- a trailing incomplete character (decoded as U+FFFD) is dropped.

`tokens` is the number of generated ids the reply holds: before the stop id, or up to the token
that completed an `until` string.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

REPLACEMENT = "\ufffd"


@dataclass(frozen=True)
class ReplyText:
    text: str
    tokens: int
    stopped: bool  # a stop id or an `until` string ended it (else: the token limit)


def reply_from_ids(
    tokenizer, ids: Sequence[int], *, until: Iterable[str] = (), stop_ids: Iterable[int] = ()
) -> ReplyText:
    ids = list(ids)
    stops = set(stop_ids)
    stopped = False
    for i, token in enumerate(ids):
        if token in stops:
            ids, stopped = ids[:i], True
            break
    text = tokenizer.decode(ids, skip_special_tokens=True)
    cut = _first_stop(text, until)
    tokens = len(ids)
    if cut is not None:
        stop = cut[1]
        text, stopped = text[: cut[0]], True
        tokens = _tokens_through(tokenizer, ids, stop)
    return ReplyText(text.rstrip(REPLACEMENT), tokens, stopped)


def clean_text(text: str, until: Iterable[str] = ()) -> str:
    """The same rule for a backend that returns text only (a served model): cut at `until`,
    drop a trailing incomplete character."""
    cut = _first_stop(text, until)
    if cut is not None:
        text = text[: cut[0]]
    return text.rstrip(REPLACEMENT)


def _first_stop(text: str, until: Iterable[str]) -> tuple[int, str] | None:
    best = None
    for stop in until:
        if stop:
            at = text.find(stop)
            if at >= 0 and (best is None or at < best[0]):
                best = (at, stop)
    return best


def _tokens_through(tokenizer, ids: list[int], stop: str) -> int:
    """The fewest leading ids whose text holds `stop` (binary search: decoding is monotone in
    what it contains)."""
    lo, hi = 1, len(ids)
    while lo < hi:
        mid = (lo + hi) // 2
        if stop in tokenizer.decode(ids[:mid], skip_special_tokens=True):
            hi = mid
        else:
            lo = mid + 1
    return hi
