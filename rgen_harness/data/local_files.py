"""Reading rows from a local JSONL or JSON file without letting one bad row break the rest.

JSONL is split on `\\n` only (`str.splitlines` would also split on U+2028, U+2029, U+0085 and
other characters that are valid, unescaped, inside a JSON string). Each line is decoded and
parsed on its own: a line that is not UTF-8, not JSON, nested too deeply for Python's parser
(`RecursionError`) or holding an integer too long to convert (`ValueError`) becomes a `BadLine`,
which the loader counts (or reports) like any other malformed row.

A JSON file is one document, so a syntax error stops loading with the file name and the line and
column. Bytes that are not UTF-8 inside one of its strings are kept as lone surrogates
(`surrogateescape`), which the row check then reports for that row only.

A UTF-8 byte order mark at the start of either kind of file is ignored.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class BadLine:
    """A JSONL line that could not be read as a row; `reason` says why."""

    line: int
    reason: str

    @property
    def id(self) -> str:
        return f"line{self.line}"


class DeitaFileError(ValueError):
    """The file as a whole cannot be read (not a row-level problem)."""


def read_jsonl(path: Path) -> list[Any]:
    data = path.read_bytes()
    if data.startswith(BOM):
        data = data[len(BOM) :]
    rows: list[Any] = []
    for lineno, raw in enumerate(data.split(b"\n"), start=1):
        if not raw.strip():
            continue
        rows.append(_parse_line(raw.removesuffix(b"\r"), lineno))
    return rows


def _parse_line(raw: bytes, lineno: int) -> Any:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        bad = raw[e.start : e.start + 1].hex()
        return BadLine(lineno, f"line {lineno} is not valid UTF-8 (byte 0x{bad} at byte {e.start})")
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        return BadLine(lineno, f"line {lineno} is not JSON: {e}")
    except RecursionError:
        return BadLine(lineno, f"line {lineno} is nested too deeply to parse")
    except ValueError as e:  # e.g. an integer over Python's 4,300-digit conversion limit
        return BadLine(lineno, f"line {lineno} cannot be parsed: {str(e)[:200]}")


def read_json(path: Path) -> list[Any]:
    data = path.read_bytes()
    if data.startswith(BOM):
        data = data[len(BOM) :]
    text = data.decode("utf-8", errors="surrogateescape")
    fix = "convert it to JSONL (one row per line) so that bad rows are skipped"
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise DeitaFileError(
            f"{path}: not valid JSON at line {e.lineno}, column {e.colno} (character {e.pos}): "
            f"{e.msg}. Fix the file, or {fix}."
        ) from None
    except RecursionError:
        raise DeitaFileError(
            f"{path}: JSON nested too deeply to parse; fix the file, or {fix}."
        ) from None
    except ValueError as e:
        raise DeitaFileError(
            f"{path}: cannot be parsed ({str(e)[:200]}); fix the file, or {fix}."
        ) from None
    if isinstance(doc, dict) and isinstance(doc.get("data"), list):
        doc = doc["data"]
    if not isinstance(doc, list):
        raise DeitaFileError(
            f'{path}: a .json file must hold a list of rows (or {{"data": [rows]}}), '
            f"not a {type(doc).__name__}."
        )
    return doc
