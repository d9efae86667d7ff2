"""What the tokenizer and its chat template add around a prompt, read from the real objects."""

from __future__ import annotations

import pytest
from family_util import family_tokenizer

from rgen_harness.chat.special_tokens import encode_prompt, template_tokens

EXPECTED = {  # family: (prefix the tokenizer adds, token that closes an assistant turn)
    "internlm2_5-chat": (["<s>"], "<|im_end|>"),
    "qwen2-instruct": ([], "<|im_end|>"),
    "qwen2-base": ([], "<|im_end|>"),
    "llama-3.1-instruct": (["<|begin_of_text|>"], "<|eot_id|>"),
    "glm-4-chat": (["[gMASK]", "<sop>"], "<|user|>"),
}


@pytest.mark.parametrize("family", list(EXPECTED))
def test_prefix_and_end_of_turn_of_each_family(family, tmp_path):
    tokenizer = family_tokenizer(tmp_path, family)
    prefix, end_of_turn = EXPECTED[family]
    tokens = template_tokens(tokenizer)
    assert tokenizer.convert_ids_to_tokens(list(tokens.prefix_ids)) == prefix
    assert tokens.end_of_turn_text == end_of_turn
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Hi"}], tokenize=False, add_generation_prompt=True
    )
    ids = encode_prompt(tokenizer, prompt)
    n = len(prefix)
    assert ids[:n] == list(tokens.prefix_ids) and (n == 0 or ids[n : 2 * n] != ids[:n])
    bare = prompt[len(tokens.prefix_text) :]  # a template that does not write the prefix itself
    assert encode_prompt(tokenizer, bare) == ids


def test_tokenizers_without_transformers_api_add_nothing():
    class Tiktokenish:
        def encode(self, text):
            return [len(text)]

    tokens = template_tokens(Tiktokenish())
    assert tokens.prefix_ids == () and tokens.end_of_turn_id is None
