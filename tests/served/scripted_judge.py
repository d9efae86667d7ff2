"""A judge whose verdict is a known function of the prompt (the test server's `--scripted-judge`).

Reads the two responses of a `judge_v1` prompt ("[Response 1]\\n...\\n\\n[Response 2]\\n...
\\n\\nAnswer with") and answers:
- "I cannot decide." (no verdict) when either response holds UNREADABLE;
- "[1]" (the first shown, whichever it is) when either holds FIRST_BIAS;
- else by the `quality=<n>` each response holds (0 without one): "[1]" / "[2]" for the higher,
  "[0]" when equal.
"""

from __future__ import annotations

import re

_PAIR = re.compile(r"\[Response 1\]\n(.*?)\n\n\[Response 2\]\n(.*?)\n\nAnswer with", re.S)
_QUALITY = re.compile(r"quality=(\d+)")


def quality(text: str) -> int:
    m = _QUALITY.search(text)
    return int(m.group(1)) if m else 0


def verdict(prompt: str) -> str:
    m = _PAIR.search(prompt)
    if m is None:
        return "There is no pair of responses in this prompt."
    first, second = m.group(1), m.group(2)
    if "UNREADABLE" in first + second:
        return "I cannot decide."
    if "FIRST_BIAS" in first + second:
        return "[1]"
    q1, q2 = quality(first), quality(second)
    return "[1]" if q1 > q2 else "[2]" if q2 > q1 else "[0]"
