"""The judge runs' browser: per pair, the question, both replies, the gold label, and for every
judge both orders' raw replies and verdicts against it."""

from __future__ import annotations

import json
from pathlib import Path

from rgen_harness.report_page.writer import write_page

VERDICT = {0: "tie", 1: "reply 1", 2: "reply 2", None: "none"}


def _judgments(line: dict) -> list:
    """Each order's logged judgment (a dict when it is JSON, else the raw text)."""
    out = []
    value = line.get("filtered_resps")
    for item in value if isinstance(value, list) else []:
        while isinstance(item, list) and item:
            item = item[0]
        try:
            out.append(json.loads(item) if isinstance(item, str) else item)
        except json.JSONDecodeError:
            out.append(item)
    return out


def write_judge_page(collection, path: Path, *, notice: str | None = None) -> Path:
    """`collection`: a `rgen_harness.judge_report.collect.JudgeCollection`."""
    judges = [j.judge.label for j in collection.judges]
    order: dict[tuple[str, str], int] = {}
    items: list[dict] = []
    details: list[dict] = []
    for ji, runs in enumerate(collection.judges):
        for set_name, run in runs.sets.items():
            if run.samples_file is None:
                continue
            with open(run.samples_file, "rb") as f:
                for raw in f:
                    try:
                        line = json.loads(raw.decode("utf-8"))
                    except (UnicodeDecodeError, ValueError):
                        continue
                    if not isinstance(line, dict):
                        continue
                    doc = line.get("doc") if isinstance(line.get("doc"), dict) else {}
                    record = line.get("skipped") if isinstance(line.get("skipped"), dict) else {}
                    key = (set_name, f"{doc.get('id', line.get('doc_id'))}/{doc.get('turn', 0)}")
                    if key not in order:
                        order[key] = len(items)
                        gold = record.get("gold", doc.get("gold"))
                        items.append({"set": set_name, "id": key[1], "gold": gold, "j": {}})
                        details.append(
                            {
                                "query": str(doc.get("query") or ""),
                                "response_1": str(doc.get("response_1") or ""),
                                "response_2": str(doc.get("response_2") or ""),
                                "gold": gold,
                                "judges": {},
                            }
                        )
                    i = order[key]
                    pred = record.get("pred") or []
                    gold = items[i]["gold"]
                    correct = [p == gold if p is not None else None for p in pred]
                    items[i]["j"][str(ji)] = {"pred": pred, "correct": correct}
                    details[i]["judges"][str(ji)] = {
                        "pred": pred,
                        "error": record.get("error") or [],
                        "judgments": _judgments(line),
                    }
    index = {"judges": judges, "verdicts": {str(k): v for k, v in VERDICT.items()}, "items": items}
    return write_page(
        path, kind="judge", title="Judge runs: pairs", index=index, details=details, notice=notice
    )
