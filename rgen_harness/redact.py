"""Credentials masked out of everything the project writes (records, reports, logs, samples).

What counts as a credential:

- the value of a **credential key**: `token`, `api_key`, `apikey`, `password`, `passwd`, `secret`,
  `authorization`, `credentials`, and any key ending in `_key`, `_token`, `_secret`, `_password`
  (`hf_token`, `openai_api_key`, `access_token` ...), but not tokenizer settings such as
  `add_bos_token` (see `is_secret_key`), in mappings and in `key=value` / `"key": "value"` text;
- the **user-info of a URL** (`https://user:password@host` -> `https://***@host`);
- an HTTP **Authorization** value (`Bearer ...`, `Basic ...`);
- any literal value the caller names (e.g. the values a study config took from `${VAR}`).

Each is replaced by `MASK`. Masking is idempotent.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

MASK = "***"
_EXACT = frozenset(
    {
        "token",
        "api_key",
        "apikey",
        "password",
        "passwd",
        "secret",
        "authorization",
        "credentials",
        "auth",
    }
)
_SUFFIXES = ("_key", "_token", "_secret", "_password", "_passwd", "_credentials")
# Tokenizer and model settings that end like a credential key but hold none.
_NOT_SECRET = re.compile(
    r"^(add_|use_)?(bos|eos|pad|unk|sep|cls|mask|special|end_of_turn|stop|max_new|max)_tokens?$"
    r"|^(sort|cache|model|primary|group|dict|metric|doc|task)_key$"
)
_KEY_PATTERN = r"[A-Za-z_][A-Za-z0-9_\-]*"
# A bare `${VAR}` reference (how a study records a value taken from the environment) holds no
# secret and is kept.
_REFERENCE = re.compile(r"^\$\{[A-Za-z_][A-Za-z0-9_]*\}$")
_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)([^/\s@\"'<>]+)@")
_AUTH_VALUE = re.compile(r"(?i)\b(bearer|basic|token)\s+(?!\*\*\*)[A-Za-z0-9._~+/=\-]{6,}")
# key=value (model_args strings, command lines), "key": "value" (JSON), key: value (YAML, logs)
_PAIR = re.compile(
    r"""(?P<key>["']?(?P<name>"""
    + _KEY_PATTERN
    + r""")["']?\s*(?:=|:)\s*)(?P<value>"[^"]*"|'[^']*'|[^\s,;&}\]\)"']+)"""
)


def is_secret_key(key: object) -> bool:
    name = str(key).strip().lower().replace("-", "_")
    if _NOT_SECRET.match(name):
        return False
    return name in _EXACT or name.endswith(_SUFFIXES)


def mask_url(text: str) -> str:
    """`scheme://user:password@host` -> `scheme://***@host` everywhere in `text`."""
    return _URL_USERINFO.sub(lambda m: m.group(1) + MASK + "@", text)


def mask_text(text: str, values: Iterable[str] = ()) -> str:
    """`text` with every credential it shows replaced by `MASK` (see the module docstring)."""
    for value in sorted({v for v in values if v and len(v) >= 4}, key=len, reverse=True):
        text = text.replace(value, MASK)
    text = mask_url(text)
    text = _AUTH_VALUE.sub(lambda m: f"{m.group(1)} {MASK}", text)

    def pair(m: re.Match) -> str:
        if not is_secret_key(m.group("name")):
            return m.group(0)
        value = m.group("value")
        quote = value[0] if value[:1] in ("'", '"') else ""
        if _REFERENCE.match(value.strip("'\"")):
            return m.group(0)
        return m.group("key") + quote + MASK + quote

    return _PAIR.sub(pair, text)


def mask_data(value: Any, values: Iterable[str] = ()) -> Any:
    """A copy of a JSON-like value with credentials masked: the value of every credential key
    (unless empty, None or a bool), and every string through `mask_text`."""
    values = tuple(values)
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            secret = is_secret_key(k) and v not in (None, "", True, False)
            secret = secret and not (isinstance(v, str) and _REFERENCE.match(v))
            out[k] = MASK if secret and not isinstance(v, (dict, list)) else mask_data(v, values)
        return out
    if isinstance(value, (list, tuple)):
        return [mask_data(v, values) for v in value]
    if isinstance(value, str):
        return mask_text(value, values)
    return value


def mask_bytes(data: bytes, values: Iterable[str] = ()) -> bytes:
    """`mask_text` over UTF-8 bytes (undecodable bytes kept as they are)."""
    return mask_text(data.decode("utf-8", "surrogateescape"), values).encode(
        "utf-8", "surrogateescape"
    )
