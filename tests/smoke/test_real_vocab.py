"""The real Qwen2 and Llama-3.1 tokenizers rebuilt from published ranks give published ids."""

from __future__ import annotations

import json
import unicodedata

import pytest
from family_util import family_tokenizer

from rgen_harness.data.deita import SAMPLE_PATH
from rgen_harness.smoke.families import FAMILIES

# Token ids published by users of the real tokenizers (model cards, engine tests, issue logs).
GOLDEN = {
    "qwen2-instruct": [
        ("Hello, world!", [9707, 11, 1879, 0]),
        ("The quick brown fox.", [785, 3974, 13876, 38835, 13]),
        ("Describe this image in detail.", [74785, 419, 2168, 304, 7716, 13]),
        ("你好", [108386]),
    ],
    "llama-3.1-instruct": [
        ("Hello, world!", [128000, 9906, 11, 1917, 0]),
        ("The quick brown fox", [128000, 791, 4062, 14198, 39935]),
        ("hello", [128000, 15339]),
        (" hi\n", [128000, 15960, 198]),
        ("1234567890", [128000, 4513, 10961, 16474, 15]),
        ("I'm WE'RE can't", [128000, 40, 2846, 20255, 95253, 649, 956]),
        ("</w>", [128000, 524, 86, 29]),
        ("\r\n  \t ", [128000, 319, 79199]),
        ("<|begin_of_text|>hello<|eot_id|>", [128000, 128000, 15339, 128009]),
    ],
}
# The chat template rendered and encoded, as published.
CHAT_GOLDEN = {
    "qwen2-instruct": (
        "What is 2 plus 2?",
        [151644, 8948, 198, 2610, 525, 264, 10950, 17847, 13, 151645, 198, 151644, 872, 198]
        + [3838, 374, 220, 17, 5519, 220, 17, 30, 151645, 198, 151644, 77091, 198],
    ),
    "llama-3.1-instruct": (
        "Hello world!",
        [128000, 128006, 9125, 128007, 271, 38766, 1303, 33025, 2696, 25, 6790, 220, 2366]
        + [18, 198, 15724, 2696, 25, 220, 1627, 10263, 220, 2366, 19, 271, 128009, 128006]
        + [882, 128007, 271, 9906, 1917, 0, 128009, 128006, 78191, 128007, 271],
    ),
}
SPECIAL_IDS = {
    "qwen2-instruct": {"<|endoftext|>": 151643, "<|im_start|>": 151644, "<|im_end|>": 151645},
    "qwen2-base": {"<|endoftext|>": 151643, "<|im_start|>": 151644, "<|im_end|>": 151645},
    "llama-3.1-instruct": {
        "<|begin_of_text|>": 128000,
        "<|end_of_text|>": 128001,
        "<|start_header_id|>": 128006,
        "<|end_header_id|>": 128007,
        "<|eom_id|>": 128008,
        "<|eot_id|>": 128009,
        "<|reserved_special_token_247|>": 128255,
    },
}
REAL = [name for name, spec in FAMILIES.items() if spec.vocabulary]


@pytest.fixture(scope="module", params=REAL)
def tokenizer(request, tmp_path_factory):
    tok = family_tokenizer(tmp_path_factory.mktemp(request.param), request.param)
    tok.family = request.param
    return tok


def test_real_families_are_the_three_published_ones():
    assert REAL == ["qwen2-instruct", "qwen2-base", "llama-3.1-instruct"]


def test_published_ids(tokenizer):
    family = _family(tokenizer)
    for text, ids in GOLDEN.get(family, []):
        assert tokenizer.encode(text) == ids, text
        assert tokenizer.decode(ids, skip_special_tokens=True) == text.replace(
            "<|begin_of_text|>", ""
        ).replace("<|eot_id|>", "")
    for text, i in SPECIAL_IDS[family].items():
        assert tokenizer.convert_tokens_to_ids(text) == i


def test_published_chat_template_ids(tokenizer):
    family = _family(tokenizer)
    if family not in CHAT_GOLDEN:
        pytest.skip(f"no published chat encoding for {family}")
    content, ids = CHAT_GOLDEN[family]
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": content}], tokenize=False, add_generation_prompt=True
    )
    assert tokenizer.encode(prompt, add_special_tokens=False) == ids


def test_special_tokens_and_vocabulary_size(tokenizer):
    family = _family(tokenizer)
    special = {t.content for t in tokenizer.added_tokens_decoder.values() if t.special}
    if family.startswith("qwen2"):
        assert len(tokenizer) == 151646 and special == set(SPECIAL_IDS[family])
        assert tokenizer.extra_special_tokens == ["<|im_start|>", "<|im_end|>"]
        assert tokenizer.eos_token == FAMILIES[family].eos and tokenizer.bos_token is None
    else:  # 256 special tokens, none of them "additional"
        assert len(tokenizer) == 128256 and len(special) == 256
        assert tokenizer.extra_special_tokens == []
        assert (tokenizer.bos_token, tokenizer.eos_token) == ("<|begin_of_text|>", "<|eot_id|>")


def test_equals_tiktoken_over_the_sample(tokenizer):
    """Every text of the bundled deita sample encodes as tiktoken encodes the same ranks."""
    from rgen_harness.smoke.real_vocab import tiktoken_reference

    family = _family(tokenizer)
    reference = tiktoken_reference(FAMILIES[family].vocabulary)
    texts = [
        turn["value"]
        for line in SAMPLE_PATH.read_text(encoding="utf-8").splitlines()
        for turn in json.loads(line)["conversations"]
    ]
    assert len(texts) > 20
    mine = tokenizer(texts, add_special_tokens=False)["input_ids"]
    for text, ids in zip(texts, mine, strict=True):
        # Qwen normalises to NFC before tiktoken (its tokenizer.json has an NFC normalizer)
        if family.startswith("qwen2"):
            text = unicodedata.normalize("NFC", text)
        assert ids == reference.encode_ordinary(text)


def _family(tokenizer) -> str:
    return tokenizer.family
