"""Pairs of logged deita replies for a pairwise judge: two runs' samples, one doc per
conversation.

A side (A or B) is a samples file that `lm_eval --log_samples` wrote for a deita task
(`samples_deita_qcr_<time>.jsonl`), or a folder holding one: the newest file of the side's task
in it (a folder with that task's samples of several models is an error naming them). Replies
are paired by the conversation id (`doc.id`), never by line. Nothing is dropped silently: a
conversation that cannot be judged stays as a doc whose `problem` says why (only in one run, a
reply not generated or empty, the two runs' histories differ), and is counted in `skipped`.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

_TS = re.compile(r"_(\d{4}-\d{2}-\d{2}T[\d.\-]+)\.jsonl$")


@dataclass(frozen=True)
class Side:
    """One side of the comparison: its samples file and a label for the report."""

    path: Path
    task: str
    label: str


def samples_file(where: str | Path, task: str, *, key: str) -> Path:
    """The samples file `where` names: itself, or in a folder the newest `samples_<task>_*`."""
    path = Path(where)
    if path.is_file():
        return path
    if not path.is_dir():
        raise FileNotFoundError(
            f"{key}={str(where)!r} is neither a samples file nor a folder. Give the "
            f"samples_{task}_<time>.jsonl that lm_eval --log_samples wrote, or its run folder."
        )
    found = sorted(path.rglob(f"samples_{task}_*.jsonl"))
    if not found:
        raise FileNotFoundError(
            f"{key}={str(where)!r}: no samples_{task}_*.jsonl in that folder. Run {task} there "
            "with --log_samples first, or give the samples file itself."
        )
    folders = sorted({p.parent for p in found})
    if len(folders) > 1:
        raise ValueError(
            f"{key}={str(where)!r} holds {task} samples of several runs ("
            + ", ".join(str(f) for f in folders)
            + "); give one of these folders or a samples file."
        )
    return max(found, key=lambda p: _TS.search(p.name).group(1) if _TS.search(p.name) else "")


def side(where: str | Path, task: str, *, key: str) -> Side:
    path = samples_file(where, task, key=key)
    mode = task.removeprefix("deita_").upper()
    return Side(path, task, f"{path.parent.name}/{mode}")


@dataclass
class Reply:
    """One logged reply and what the comparison needs of it."""

    conv_id: str
    source: str
    messages: list[dict]
    status: str
    reason: str
    text: str
    dropped_turns: int
    reward: float
    problem: str  # the doc's own problem (a malformed row), '' if none


def _float(value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return math.nan
    return float(value)


def read_replies(path: Path) -> dict[str, Reply]:
    """Replies of a deita samples file by conversation id. A line that is not a deita sample
    is an error naming the file and line."""
    out: dict[str, Reply] = {}
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                sample = json.loads(line)
                doc = sample["doc"]
                result = json.loads(sample["filtered_resps"][0])
                status = str(result["status"])
            except (ValueError, KeyError, IndexError, TypeError) as e:
                raise ValueError(
                    f"{where}: not a deita sample logged by lm_eval --log_samples "
                    f"({type(e).__name__}: {e}); give the samples file of a deita_qr / "
                    "deita_qcr run, unchanged."
                ) from None
            conv_id = str(doc.get("id", sample.get("doc_id")))
            if conv_id in out:
                raise ValueError(f"{where}: conversation id {conv_id!r} appears twice")
            scores = result.get("scores") or {}
            reward = sample.get("reward", scores.get("reward"))
            out[conv_id] = Reply(
                conv_id=conv_id,
                source=str(doc.get("source") or "unknown"),
                messages=[
                    {"role": str(m["role"]), "content": str(m["content"])}
                    for m in doc.get("messages") or []
                ],
                status=status,
                reason=str(result.get("reason") or ""),
                text=str(result.get("reply") or ""),
                dropped_turns=int(result.get("dropped_turns") or 0),
                reward=_float(reward),
                problem=str(doc.get("problem") or ""),
            )
    if not out:
        raise ValueError(f"{path}: no samples in this file; it is empty")
    return out


def _problem(name: str, reply: Reply | None, other: Side) -> str:
    if reply is None:
        return f"the conversation is not in {name}'s samples ({other.path})"
    if reply.problem:
        return f"{name}: malformed conversation ({reply.problem})"
    if reply.status != "ok":
        why = f": {reply.reason}" if reply.reason else ""
        return f"{name}'s reply was not generated ({reply.status}{why})"
    if not reply.text.strip():
        return f"{name}'s reply is empty"
    return ""


def pair_docs(a: Side, b: Side) -> list[dict]:
    """One doc per conversation of either side, in A's order (B's others after)."""
    ra, rb = read_replies(a.path), read_replies(b.path)
    docs = []
    for conv_id in [*ra, *(k for k in rb if k not in ra)]:
        x, y = ra.get(conv_id), rb.get(conv_id)
        problem = _problem("A", x, a) or _problem("B", y, b)
        if not problem and x.messages != y.messages:
            problem = "the two runs' histories of this conversation differ (different data?)"
        base = x or y
        docs.append(
            {
                "id": conv_id,
                "source": base.source,
                "messages": base.messages,
                "response_a": x.text if x else "",
                "response_b": y.text if y else "",
                "reward_a": x.reward if x else math.nan,
                "reward_b": y.reward if y else math.nan,
                "dropped_a": x.dropped_turns if x else 0,
                "dropped_b": y.dropped_turns if y else 0,
                "problem": problem,
            }
        )
    return docs


def features():
    import datasets

    return datasets.Features(
        {
            "id": datasets.Value("string"),
            "source": datasets.Value("string"),
            "messages": [{"role": datasets.Value("string"), "content": datasets.Value("string")}],
            "response_a": datasets.Value("string"),
            "response_b": datasets.Value("string"),
            "reward_a": datasets.Value("float64"),
            "reward_b": datasets.Value("float64"),
            "dropped_a": datasets.Value("int64"),
            "dropped_b": datasets.Value("int64"),
            "problem": datasets.Value("string"),
        }
    )


def subset(docs: list[dict], size: int | None, seed: int) -> list[dict]:
    """`size` docs drawn with numpy's default_rng(seed) (in their order), or all."""
    if size is None or size >= len(docs):
        return docs
    import numpy as np

    keep = sorted(int(i) for i in np.random.default_rng(seed).choice(len(docs), size, False))
    return [docs[i] for i in keep]
