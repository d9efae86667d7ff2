"""A ROUGE tokenizer for mixed Chinese/English text.

rouge_score's default tokenizer keeps only `[a-z0-9]` runs, so a Chinese reply becomes no tokens
at all (every score 0) and Chinese text joined by spaces would be one token per phrase. Chinese
ROUGE is commonly computed over characters, which needs no segmentation model and gives the same
result whatever segmenter a reader would have chosen. This tokenizer therefore makes:

- every CJK ideograph and Japanese kana a token of its own;
- every other run of letters or digits (Latin, Cyrillic, Greek, Hangul, ...) one lowercased word;
- nothing of punctuation, symbols and whitespace (full-width punctuation included).

It meets rouge_score's tokenizer interface (a `tokenize(text) -> list[str]` method), so it is
passed as `RougeScorer(tokenizer=CJKTokenizer())`.
"""

from __future__ import annotations

import re

# CJK ideographs (unified, extension A, compatibility, extensions B and later), kana, and the
# iteration mark 々. Each becomes one token.
_CJK_CHARS = (
    "\u3005"
    "\u3040-\u309f"  # hiragana
    "\u30a0-\u30ff"  # katakana
    "\u31f0-\u31ff"  # katakana phonetic extensions
    "\u3400-\u4dbf"  # extension A
    "\u4e00-\u9fff"  # unified ideographs
    "\uf900-\ufaff"  # compatibility ideographs
    "\U00020000-\U0003134f"  # extensions B..G and compatibility supplement
)
_TOKEN = re.compile(rf"[{_CJK_CHARS}]|(?:(?![{_CJK_CHARS}])[^\W_])+")


class CJKTokenizer:
    """Single-character CJK tokens, lowercased words for everything else."""

    def tokenize(self, text: str) -> list[str]:
        return _TOKEN.findall(text.lower())
