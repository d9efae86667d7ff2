"""Whether a run is finished: everything it must write is on disk, whole.

lm-eval writes `results_<ts>.json` first and then one `samples_<task>_<ts>.jsonl` per task, so a
run killed in between leaves a results file whose samples are missing or cut short. A task
counts as finished only when a readable results file covers it AND the samples file of every
task that file logs is complete: it exists, ends with a whole JSON line, and has as many lines
as the results' `n-samples` says (lm-eval's own count of the samples it evaluated). A group
(e.g. `mmlu`) is finished when all its subtasks are. Anything less is an unfinished run: the
study starts it again, reusing the cached generations.

A results file that cannot be read (not UTF-8, not JSON, not lm-eval's layout) is reported as
`broken`; the study sets it aside (`.broken-<time>`) and runs the model again.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

_TS_RE = re.compile(r"^results_(.+)\.json$")
_CHUNK = 1 << 20


class UnreadableResults(ValueError):
    """A results JSON that is not lm-eval's; the message names the file and what is wrong."""


@dataclass
class Completion:
    done: set[str] = field(default_factory=set)  # finished task and group names
    problems: list[str] = field(default_factory=list)  # why other tasks are not finished
    broken: list[Path] = field(default_factory=list)  # unreadable results files


def read_results(path: Path) -> dict:
    """The results JSON as a dict; UnreadableResults (naming the file) when it is not one."""
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, ValueError) as e:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise UnreadableResults(f"{path}: unreadable ({type(e).__name__}: {e})") from None
    if not isinstance(data, dict):
        raise UnreadableResults(f"{path}: a JSON {type(data).__name__}, not lm-eval's results")
    if not isinstance(data.get("results"), dict):
        raise UnreadableResults(f"{path}: no 'results' mapping, not lm-eval's results")
    return data


def samples_problem(path: Path, expected: int | None) -> str | None:
    """Why the samples file is not complete (None when it is). Streams the file."""
    if not path.is_file():
        return f"{path.name} is missing"
    lines, tail = 0, b""
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            lines += chunk.count(b"\n")
            tail = (tail + chunk)[-_CHUNK:]
    if not tail.endswith(b"\n"):
        return f"{path.name} ends in the middle of a line (cut short)"
    last = tail.rstrip(b"\n").rsplit(b"\n", 1)[-1]
    try:
        if not isinstance(json.loads(last.decode("utf-8")), dict):
            raise ValueError("not a JSON object")
    except ValueError as e:
        return f"{path.name}: its last line is not a sample ({e})"
    if expected is not None and lines != expected:
        return f"{path.name} has {lines} samples, the results file counts {expected}"
    return None


def _leaf_counts(data: dict) -> dict[str, int | None]:
    """Tasks whose samples lm-eval logs, with the count it evaluated (None when unknown)."""
    counts = data.get("n-samples")
    if isinstance(counts, dict) and counts:
        out = {}
        for task, entry in counts.items():
            n = entry.get("effective") if isinstance(entry, dict) else None
            out[task] = n if isinstance(n, int) else None
        return out
    groups = _groups(data)
    return {task: None for task in data["results"] if task not in groups}


def _groups(data: dict) -> dict[str, list[str]]:
    subtasks = data.get("group_subtasks")
    if not isinstance(subtasks, dict):
        return {}
    return {g: list(s) for g, s in subtasks.items() if isinstance(s, list) and s}


def completion(out_dir: Path) -> Completion:
    """Finished tasks over every results file under `out_dir`, and why the others are not."""
    result = Completion()
    for path in sorted(out_dir.rglob("results_*.json")):
        try:
            data = read_results(path)
        except UnreadableResults as e:
            result.problems.append(str(e))
            result.broken.append(path)
            continue
        match = _TS_RE.match(path.name)
        ts = match.group(1) if match else ""
        complete = set()
        for task, expected in _leaf_counts(data).items():
            why = samples_problem(path.parent / f"samples_{task}_{ts}.jsonl", expected)
            if why is None:
                complete.add(task)
            else:
                result.problems.append(f"{path}: {why}")
        groups = _groups(data)
        names = (*data["results"], *groups)
        result.done |= {t for t in names if _finished(t, groups, complete, ())}
    return result


def _finished(task: str, groups: dict, complete: set, seen: tuple) -> bool:
    if task in groups and task not in seen:
        return all(_finished(t, groups, complete, (*seen, task)) for t in groups[task])
    return task in complete
