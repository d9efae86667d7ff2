"""Deita rows as the source files hold them (ShareGPT `conversations`), written as JSON lines."""

from __future__ import annotations

import json
from pathlib import Path


def conversation(row_id: str, *turns: tuple[str, str]) -> dict:
    """One row: `turns` are (from, value) pairs, e.g. ("human", "Name a prime.")."""
    return {"id": row_id, "conversations": [{"from": r, "value": v} for r, v in turns]}


def write_rows(path: Path, rows: list[dict]) -> Path:
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", "utf-8")
    return path
