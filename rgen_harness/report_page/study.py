"""The study's results browser: per conversation, the history, each model's QR reply and QCR
criteria + reply, rewards, the reference reply and its reward, finish reasons, dropped turns."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from rgen_harness.report_page.writer import write_page
from rgen_harness.study.collect import Collection, chat_result
from rgen_harness.study.summary import MODES


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _lines(path: Path | None):
    if path is None:
        return
    with open(path, "rb") as f:
        for raw in f:
            try:
                line = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, ValueError):
                continue  # listed under Problems by the report's own reader
            if isinstance(line, dict):
                yield line


def _reply(line: dict, mode: str) -> dict:
    chat = chat_result(line) or {}
    rounds = [r for r in chat.get("rounds") or [] if isinstance(r, dict)]
    out = {
        "status": str(chat.get("status", "unknown")),
        "reason": chat.get("reason"),
        "reply": chat.get("reply") if isinstance(chat.get("reply"), str) else "",
        "reward": _num(line.get("reward")),
        "dropped": _num(chat.get("dropped_turns")),
        "finish": [r.get("finish_reason") for r in rounds],
        "tokens": [r.get("reply_tokens") for r in rounds],
    }
    if mode == "qcr":
        out["criteria"] = rounds[0].get("reply", "") if len(rounds) > 1 else ""
    return out


def _summary(reply: dict) -> list:
    """The list's view of one reply: [status, reward, dropped turns, last finish reason]."""
    finish = reply["finish"][-1] if reply["finish"] else None
    return [reply["status"], reply["reward"], reply["dropped"], finish]


def write_study_page(
    collection: Collection, rows: list[dict], path: Path, *, notice: str | None = None
) -> Path:
    study = collection.study or {}
    models = [m.name for m in collection.models]
    order: dict[str, int] = {}
    items: list[dict] = []
    details: list[dict] = []
    for mi, model in enumerate(collection.models):
        for mode in MODES:
            result = model.mode(mode)
            seen: dict[str, int] = {}
            for line in _lines(result.samples_file if result is not None else None):
                doc = line.get("doc") if isinstance(line.get("doc"), dict) else {}
                conv = str(doc.get("id", line.get("doc_id")))
                seen[conv] = seen.get(conv, 0) + 1
                key = conv if seen[conv] == 1 else f"{conv}#{seen[conv]}"
                if key not in order:
                    order[key] = len(items)
                    messages = doc.get("messages") if isinstance(doc.get("messages"), list) else []
                    items.append(
                        {"id": key, "source": str(doc.get("source") or ""), "ref": None, "m": {}}
                    )
                    details.append(
                        {
                            "id": key,
                            "history": messages,
                            "reference": str(doc.get("reference") or line.get("target") or ""),
                            "problem": doc.get("problem") or "",
                            "models": {},
                        }
                    )
                i = order[key]
                reply = _reply(line, mode)
                ref = _num(line.get("reference_reward"))
                if ref is not None:
                    items[i]["ref"] = ref
                items[i]["m"].setdefault(str(mi), {})[mode] = _summary(reply)
                details[i]["models"].setdefault(str(mi), {})[mode] = reply
    for item in items:
        for entry in item["m"].values():
            qr, qcr = entry.get("qr"), entry.get("qcr")
            gap = None
            if qr and qcr and qr[1] is not None and qcr[1] is not None:
                gap = qcr[1] - qr[1]
            entry["gap"] = gap
    index = {
        "models": models,
        "modes": list(MODES),
        "rows": [
            {"model": r["model"], "same_history": r.get("same_history"), "paired": r["paired"]}
            for r in rows
        ],
        "items": items,
    }
    title = f"Replies: {study.get('name') or collection.root.name}"
    return write_page(path, kind="study", title=title, index=index, details=details, notice=notice)
