"""What BaichuanCharRM reads, exactly as the authors' run_char_rm.py builds it.

Text: `<RoleInfo>`, the profile (Python's str() of the profile dict), `<Context>`, the example's
context as published, `<Response>`, the reply's first line (transform_format.py keeps only the
first line), `<Dimension>`, the metric's Chinese name, separated by blank lines. Ids: the text
encoded without special tokens, then the EOS id; an input longer than `max_length` keeps its
last `max_length` tokens.
"""

from __future__ import annotations


def first_line(reply: str) -> str:
    """The part of a reply that is scored (transform_format.py: `split("\\n")[0]`)."""
    return reply.split("\n")[0]


def input_text(role_info: str, context: str, response: str, dimension_zh: str) -> str:
    return (
        "<RoleInfo>\n\n"
        + role_info
        + "\n\n<Context>\n\n"
        + context
        + "\n\n<Response>\n\n"
        + response
        + "\n\n<Dimension>\n\n"
        + dimension_zh
    )


def encode_many(tokenizer, texts: list[str], *, max_length: int) -> list[list[int]]:
    """`tokenizer.encode(text, add_special_tokens=False) + [eos]`, cut to the last max_length."""
    eos = tokenizer.eos_token_id
    if not isinstance(eos, int):
        raise ValueError(
            f"the reward model's tokenizer ({getattr(tokenizer, 'name_or_path', '?')}) has no "
            "eos_token_id; BaichuanCharRM reads the EOS id at the end of every input."
        )
    if not texts:
        return []
    encoded = tokenizer(texts, add_special_tokens=False)["input_ids"]
    out = []
    for ids in encoded:
        ids = list(ids) + [eos]
        out.append(ids[-max_length:] if len(ids) > max_length else ids)
    return out
