"""Token ids of rendered prompts, each piece between special tokens tokenised once and reused.

A fast (Rust) tokenizer first cuts its input at added tokens (`<|im_start|>`, `<|eot_id|>` ...),
then encodes every piece between them on its own. A chat prompt is such a sequence of pieces,
and the same piece comes back many times: in each attempt of the budget's search over dropped
turns, in QR and in both QCR rounds of the same conversation. `PromptEncoder` therefore splits a
prompt at the added tokens, encodes the pieces it has not seen in ONE batch (the Rust tokenizer
spreads a list over its threads) and concatenates their ids: the same ids as
`encode_prompt(tokenizer, prompt)`, computed once per piece.

That equality is what HF tokenizers do when:
- every added token matches its exact text (no lstrip / rstrip / single_word, not normalized), so
  the cut points are found on the raw text (leftmost-longest, as the tokenizer's matcher);
- nothing depends on a piece's position (Metaspace's `prepend_scheme="first"` marks only the
  first piece of an input).
Both are read from the tokenizer's own description and then checked on a probe text; a tokenizer
that fails either (slow tokenizers, remote-code ones) is encoded whole, one batch per call, which
is still exact.

Contents escaped by `special_text` (special-token strings a user typed) hold no added token:
a piece with a MARK is un-escaped and encoded with special-token matching off, so those strings
are ordinary text in the ids.

Ids are kept as `array` (2 or 4 bytes per id instead of a Python int object each) under a
16-byte digest of the piece, so a deita-6k run holds its pieces' ids, not their text twice.

Which special tokens the ids get follows the caller (`add_special_tokens`): the prefix exactly
once (`encode_prompt`, the lmdeploy engine and the reward model), none, or every token the
tokenizer's post-processor adds (`tokenizer.encode(text, add_special_tokens=True)`, what
lm-eval's API models send with `add_bos_token`). `StagedIds` hands the assembled ids of the
prompts about to be sent from the budgeting thread to the one that sends them.

Ids that go out as JSON (a served model's completions request) are written as text once per
piece too (`json_parts_many`): a request's `prompt` array is then a join of its pieces' texts,
not a conversion of every id on every request (QR and both QCR rounds send the same history).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import threading
from array import array
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor

from rgen_harness.chat.special_text import MARK, encode_marked, unescape
from rgen_harness.chat.special_tokens import template_tokens

log = logging.getLogger(__name__)

ENCODE_BATCH_CHARS = 1 << 20  # characters of new pieces per encode_batch call

_PROBE = (
    "{0}user\nHello  world,\t你好，世界！ naïve café 🙂 e\u0301 <b>x</b>{1}\n{0}assistant\n"
    "  spaces   and\n\nnewlines {1}{1}\n{0}user\n数学 ２＋２？{1}\n"
)


def _pre_tokenizer_blocks(node) -> Iterable[dict]:
    """Every pre-tokenizer / normalizer description below `node` (Sequences unfolded)."""
    if isinstance(node, dict):
        yield node
        for key in ("pretokenizers", "normalizers"):
            for child in node.get(key) or []:
                yield from _pre_tokenizer_blocks(child)


def piecewise_reason(tokenizer) -> str | None:
    """Why encoding piece by piece would NOT equal encoding the whole text (None: it would)."""
    if not getattr(tokenizer, "is_fast", False):
        return "not a fast tokenizer"
    try:
        desc = json.loads(tokenizer.backend_tokenizer.to_str())
    except Exception as e:  # noqa: BLE001
        return f"tokenizer description unreadable ({type(e).__name__})"
    for token in desc.get("added_tokens") or []:
        if token.get("lstrip") or token.get("rstrip") or token.get("single_word"):
            return f"added token {token.get('content')!r} strips or matches whole words"
        if token.get("normalized"):
            return f"added token {token.get('content')!r} is matched after normalization"
    for part in ("normalizer", "pre_tokenizer"):
        for block in _pre_tokenizer_blocks(desc.get(part)):
            if block.get("type") == "Metaspace" and block.get("prepend_scheme") == "first":
                return "Metaspace prepends only to the first piece"
    return None


def added_special_ids(tokenizer) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The ids `tokenizer.encode(text, add_special_tokens=True)` puts before and after the text's
    own (`<s>` ... `</s>`; nothing for Qwen2)."""
    plain = tokenizer.encode("a", add_special_tokens=False)
    full = tokenizer.encode("a", add_special_tokens=True)
    for start in range(len(full) - len(plain) + 1):
        if full[start : start + len(plain)] == plain:
            return tuple(full[:start]), tuple(full[start + len(plain) :])
    raise ValueError(
        f"tokenizer {type(tokenizer).__name__} encodes 'a' as {plain} without special tokens "
        f"and as {full} with them (not around {plain})"
    )


def encode_workers() -> int:
    """Threads that encode pieces (the CPUs this process may use, at most 8)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    return max(1, min(8, cpus))


_POOL: ThreadPoolExecutor | None = None


def _encode_pool(workers: int) -> ThreadPoolExecutor:
    global _POOL
    if _POOL is None or _POOL._max_workers != workers:
        _POOL = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="rgen-tokenize")
    return _POOL


def _batches(todo: dict[bytes, str]) -> Iterator[dict[bytes, str]]:
    """The pieces in batches of about ENCODE_BATCH_CHARS characters."""
    batch: dict[bytes, str] = {}
    size = 0
    for key, piece in todo.items():
        batch[key] = piece
        size += len(piece)
        if size >= ENCODE_BATCH_CHARS:
            yield batch
            batch, size = {}, 0
    if batch:
        yield batch


class PromptEncoder:
    """`encode_prompt` for many prompts, every piece between added tokens encoded once.

    `add_special_tokens`: None (default) gives `encode_prompt(tokenizer, p)`: the tokenizer's
    prefix exactly once, whether the template wrote it or not; False and True give
    `tokenizer.encode(p, add_special_tokens=...)`: no special tokens added, or every one the
    tokenizer adds (its prefix and suffix, even where the prompt holds them already)."""

    def __init__(self, tokenizer, *, add_special_tokens: bool | None = None) -> None:
        self.tokenizer = tokenizer
        self.add_special_tokens = add_special_tokens
        self.prefix: tuple[int, ...] = ()
        self.suffix: tuple[int, ...] = ()
        reason = None
        if add_special_tokens is None:
            self.prefix = tuple(template_tokens(tokenizer).prefix_ids)
        elif add_special_tokens:
            try:
                self.prefix, self.suffix = added_special_ids(tokenizer)
            except ValueError as e:
                reason = str(e)
        # the prefix goes in front of every prompt, or only of those that lack it
        self._prefix_always = bool(add_special_tokens)
        self.typecode = "H" if len(tokenizer) <= 1 << 16 else "I"
        self._pieces: dict[bytes, array] = {}
        self._texts: dict[bytes, str] = {}  # a piece's ids as JSON text, once it was sent so
        self._id_texts: list[str] | None = None
        self._used: set[bytes] = set()
        reason = reason or piecewise_reason(tokenizer)
        if reason is None:
            added = {t.content: i for i, t in tokenizer.added_tokens_decoder.items()}
            self._added = added
            # Longest first: Python's regex takes the first alternative that matches at the
            # leftmost position, which then is the longest (the tokenizer's rule).
            alternatives = sorted(added, key=len, reverse=True)
            if alternatives:
                self._split = re.compile("(" + "|".join(map(re.escape, alternatives)) + ")").split
            else:
                self._split = lambda text: [text]
            reason = self._probe_mismatch()
        self.piecewise = reason is None
        if not self.piecewise:
            log.info("prompts are tokenised whole: %s", reason)

    def _probe_mismatch(self) -> str | None:
        specials = sorted(self._added) or [""]
        text = _PROBE.format(specials[0], specials[-1]) + "".join(specials)
        mine = list(self._assemble(self._parts(text)))
        self._pieces.clear()
        self._used.clear()
        return None if self._reference(text) == mine else "piecewise encoding differs on a probe"

    def _reference(self, text: str) -> list[int]:
        """The ids this encoder must give for `text`, from the tokenizer itself."""
        if self.add_special_tokens is None:
            from rgen_harness.chat.special_tokens import encode_prompt

            return encode_prompt(self.tokenizer, text)
        return self.tokenizer.encode(text, add_special_tokens=self.add_special_tokens)

    # -- pieces -----------------------------------------------------------------------------
    @staticmethod
    def _key(piece: str) -> bytes:
        data = piece.encode("utf-8", "surrogatepass")
        return len(data).to_bytes(8, "little") + hashlib.blake2b(data, digest_size=16).digest()

    def _parts(self, prompt: str) -> list[int | bytes]:
        """The prompt as added-token ids (int) and piece keys (bytes), encoding new pieces."""
        return self._parts_many([prompt])[0]

    def _parts_many(self, prompts: list[str]) -> list[list[int | bytes]]:
        out, todo = [], {}
        for prompt in prompts:
            parts: list[int | bytes] = []
            for i, piece in enumerate(self._split(prompt)):
                if i % 2:
                    parts.append(self._added[piece])
                elif piece:
                    key = self._key(piece)
                    if key not in self._pieces:
                        todo[key] = piece
                    parts.append(key)
            out.append(parts)
        if todo:
            self._encode_pieces(todo)
        return out

    def _encode_pieces(self, todo: dict[bytes, str]) -> None:
        """Encode new pieces in batches of at most ENCODE_BATCH_CHARS characters, several
        batches at once on `encode_workers()` threads (the Rust tokenizer releases the GIL, and
        lm-eval turns its own threads off with TOKENIZERS_PARALLELISM=false). Bounded batches,
        and a bounded number in flight: the Rust result for a piece (tokens, offsets, masks)
        takes ~100 bytes per token until its ids are copied out, so one batch of a whole
        chunk's pieces would hold gigabytes."""
        marked = {k: unescape(v) for k, v in todo.items() if MARK in v}
        if marked:  # escaped contents: special-token strings encoded as text
            todo = {k: v for k, v in todo.items() if k not in marked}
            text_encode = self._text_encoder()
            for batch in _batches(marked):
                self._store(batch, text_encode(list(batch.values()), add_special_tokens=False))
        backend = self.tokenizer.backend_tokenizer
        # Ids only (offsets are not computed); the same ids as `encode_batch`.
        encode = getattr(backend, "encode_batch_fast", backend.encode_batch)
        workers = encode_workers()
        if workers == 1:
            for batch in _batches(todo):
                self._store(batch, encode(list(batch.values()), add_special_tokens=False))
            return
        pool = _encode_pool(workers)
        pending: deque = deque()
        for batch in _batches(todo):
            texts = list(batch.values())
            pending.append((batch, pool.submit(encode, texts, add_special_tokens=False)))
            if len(pending) >= 2 * workers:
                done, future = pending.popleft()
                self._store(done, future.result())
        while pending:
            done, future = pending.popleft()
            self._store(done, future.result())

    def _text_encoder(self):
        """`encode_batch` of a copy of the tokenizer that matches no special token (what
        transformers' `split_special_tokens=True` does)."""
        if getattr(self, "_text_backend", None) is None:
            from tokenizers import Tokenizer

            backend = Tokenizer.from_str(self.tokenizer.backend_tokenizer.to_str())
            backend.encode_special_tokens = True
            self._text_backend = backend
        return getattr(self._text_backend, "encode_batch_fast", self._text_backend.encode_batch)

    def _store(self, batch: dict[bytes, str], encoded) -> None:
        for key, enc in zip(batch, encoded, strict=True):
            self._pieces[key] = array(self.typecode, enc.ids)

    def _adds_prefix(self, parts: list[int | bytes]) -> bool:
        return bool(self.prefix) and (self._prefix_always or not self._head_is_prefix(parts))

    def _assemble(self, parts: list[int | bytes]) -> array:
        """The ids of a prompt from its parts; marks its pieces used."""
        ids = array(self.typecode)
        if self._adds_prefix(parts):
            ids.extend(self.prefix)
        for part in parts:
            if isinstance(part, int):
                ids.append(part)
            else:
                ids.extend(self._pieces[part])
                self._used.add(part)
        ids.extend(self.suffix)
        return ids

    def _head_is_prefix(self, parts: list[int | bytes]) -> bool:
        n = len(self.prefix)
        head: list[int] = []
        for part in parts:
            if len(head) >= n:
                break
            if isinstance(part, int):
                head.append(part)
            else:
                head.extend(self._pieces[part][: n - len(head)])
        return tuple(head[:n]) == self.prefix

    def _last_id(self, parts: list[int | bytes]) -> int | None:
        if self.suffix:
            return self.suffix[-1]
        for part in reversed(parts):
            if isinstance(part, int):
                return part
            if len(self._pieces[part]):
                return self._pieces[part][-1]
        return self.prefix[-1] if self.prefix else None

    # -- public ---------------------------------------------------------------------------
    def count_many(self, prompts: list[str], *, end_id: int | None = None) -> list[int]:
        """Token counts of `encode_prompt(tokenizer, p)` per prompt (new pieces in one batch);
        with `end_id`, of those ids ending in `end_id` (appended unless already last)."""
        if not self.piecewise:
            return [len(ids) for ids in self._whole(prompts, end_id)]
        counts = []
        for parts in self._parts_many(prompts):
            n = sum(1 if isinstance(p, int) else len(self._pieces[p]) for p in parts)
            n += len(self.suffix)
            if self._adds_prefix(parts):
                n += len(self.prefix)
            if end_id is not None and self._last_id(parts) != end_id:
                n += 1
            counts.append(n)
        return counts

    def encode_many(self, prompts: list[str], *, end_id: int | None = None) -> list[array]:
        """Token ids of `encode_prompt(tokenizer, p)` for each prompt, as arrays (ending in
        `end_id` if given). The pieces used are kept by the next `keep_only_used()`."""
        if not self.piecewise:
            return self._whole(prompts, end_id)
        out = []
        for parts in self._parts_many(prompts):
            ids = self._assemble(parts)
            if end_id is not None and (not ids or ids[-1] != end_id):
                ids.append(end_id)
            out.append(ids)
        return out

    def json_parts_many(self, prompts: list[str]) -> list[list[str]]:
        """The ids of `encode_many` as JSON text: `"[" + ", ".join(parts) + "]"` is
        `json.dumps(list(ids))`. Each piece's text is made once and kept with its ids (until
        `keep_only_used` forgets the piece); the pieces used are kept by the next call."""
        if not self.piecewise:
            return [[self._ids_text(ids)] if ids else [] for ids in self._whole(prompts)]
        out = []
        for parts in self._parts_many(prompts):
            texts = [self._ids_text(self.prefix)] if self._adds_prefix(parts) else []
            for part in parts:
                if isinstance(part, int):
                    texts.append(str(part))
                    continue
                self._used.add(part)
                text = self._texts.get(part)
                if text is None:
                    text = self._texts[part] = self._ids_text(self._pieces[part])
                if text:
                    texts.append(text)
            if self.suffix:
                texts.append(self._ids_text(self.suffix))
            out.append(texts)
        return out

    def _ids_text(self, ids) -> str:
        """`json.dumps(list(ids))[1:-1]`, from a table of the vocabulary's ids as text."""
        table = self._id_texts
        if table is None:
            table = self._id_texts = [str(i) for i in range(len(self.tokenizer))]
        try:
            return ", ".join(map(table.__getitem__, ids))
        except IndexError:  # an id past len(tokenizer): a model's padded embedding
            return ", ".join(map(str, ids))

    def keep(self, prompts: list[str]) -> None:
        """Keep the pieces of `prompts` at the next `keep_only_used()` without assembling their
        ids (prompts sent as text, e.g. as chat messages, whose counts later rounds extend)."""
        if not self.piecewise:
            return
        for parts in self._parts_many(prompts):
            self._used.update(p for p in parts if not isinstance(p, int))

    def keep_only_used(self) -> None:
        """Forget every piece not in a prompt encoded (or kept) since the last call
        (conversations that ended, attempts the budget rejected): later rounds extend the
        prompts sent before."""
        self._pieces = {k: v for k, v in self._pieces.items() if k in self._used}
        self._texts = {k: v for k, v in self._texts.items() if k in self._used}
        self._used = set()

    def _whole(self, prompts: list[str], end_id: int | None = None) -> list[array]:
        if not prompts:
            return []
        specials = bool(self.add_special_tokens)
        plain = [p for p in prompts if MARK not in p]
        encoded = self.tokenizer(plain, add_special_tokens=specials)["input_ids"] if plain else []
        encoded.reverse()
        out = []
        for prompt in prompts:
            if MARK not in prompt:
                ids = encoded.pop()
            else:  # special-token strings of the contents encoded as text (chat.special_text)
                ids = encode_marked(self.tokenizer, prompt)
                if specials:
                    ids = self.tokenizer.build_inputs_with_special_tokens(ids)
            if self.add_special_tokens is None and tuple(ids[: len(self.prefix)]) != self.prefix:
                ids = list(self.prefix) + ids
            if end_id is not None and (not ids or ids[-1] != end_id):
                ids = [*ids, end_id]
            out.append(array(self.typecode, ids))
        return out


class StagedIds:
    """The ids of prompts about to be sent, assembled on the budgeting thread (`stage`) and taken
    by the thread that sends them (`take`): arrays (`encode_many`), or with `as_json` the JSON
    text parts of `json_parts_many`. The same prompt staged twice (duplicate rows) is taken
    twice."""

    def __init__(self, encoder: PromptEncoder, *, as_json: bool = False) -> None:
        self.encoder = encoder
        self.as_json = as_json
        self._staged: dict[str, list] = {}  # prompt -> [its ids, times staged], until taken
        self._lock = threading.Lock()

    def stage(self, prompts: list[str]) -> None:
        if self.as_json:
            encoded = self.encoder.json_parts_many(prompts)
        else:
            encoded = self.encoder.encode_many(prompts)
        with self._lock:
            for prompt, ids in zip(prompts, encoded, strict=True):
                self._staged.setdefault(prompt, [ids, 0])[1] += 1

    def take(self, prompt: str) -> array | list[str] | None:
        """The staged ids of `prompt`, None if it was not staged."""
        with self._lock:
            staged = self._staged.get(prompt)
            if staged is None:
                return None
            staged[1] -= 1
            if not staged[1]:
                del self._staged[prompt]
            return staged[0]
