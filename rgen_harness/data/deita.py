"""Loading deita-format conversations and turning each row into an evaluation doc.

A row is ShareGPT style: `conversations` = [{"from": "human"|"gpt"|"system", "value": str}, ...]
(OpenAI-style {"role", "content"} turns are accepted too), plus optional `id` and `source`.

Each doc holds the history the model answers from (`messages`, ending in a user turn) and the
dataset's final assistant reply (`reference`), which is removed from the history.

Malformed rows are never dropped silently. With `on_bad_row="skip"` (default) they stay in the
task as docs whose `problem` says what is wrong; the model is not called for them and they are
counted in the `skipped` metric. With `on_bad_row="error"` loading stops with an error naming the
row, its id and the problem.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from rgen_harness.data.local_files import BadLine, DeitaFileError, read_json, read_jsonl

log = logging.getLogger(__name__)

DEFAULT_DATASET = "hkust-nlp/deita-6k-v0"
SAMPLE_PATH = Path(__file__).parent / "sample" / "deita_sample.jsonl"
ROLES = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "chatgpt": "assistant",
    "system": "system",
}
LOCAL_SUFFIXES = (".json", ".jsonl", ".parquet")


@dataclass(frozen=True)
class DeitaSource:
    """Where the conversations come from; built from task metadata (`--metadata`)."""

    path: Path | None = None
    dataset: str = DEFAULT_DATASET
    split: str = "train"
    on_bad_row: Literal["skip", "error"] = "skip"

    @classmethod
    def from_metadata(cls, metadata: dict[str, Any]) -> DeitaSource:
        on_bad_row = metadata.get("on_bad_row", "skip")
        if on_bad_row not in ("skip", "error"):
            raise ValueError(
                f"on_bad_row={on_bad_row!r} is not valid: use --metadata "
                '\'{"on_bad_row": "skip"}\' (count malformed rows) or "error" (stop at the first).'
            )
        raw_path = _text_option(metadata, "deita_path", "/data/deita-6k.jsonl")
        path = None
        if raw_path not in (None, ""):
            if str(raw_path) == "sample":
                path = SAMPLE_PATH
            else:
                path = Path(os.path.expanduser(str(raw_path)))
                if not path.is_file():
                    raise FileNotFoundError(
                        f"deita_path={str(raw_path)!r} is not a file. Give a local "
                        f"{'/'.join(LOCAL_SUFFIXES)} file with a 'conversations' column, e.g. "
                        '--metadata \'{"deita_path": "/data/deita-6k.jsonl"}\', or "sample" for '
                        "the bundled sample."
                    )
                if path.suffix.lower() not in LOCAL_SUFFIXES:
                    raise ValueError(
                        f"deita_path={str(raw_path)!r}: unsupported file type {path.suffix!r}; "
                        f"use one of {', '.join(LOCAL_SUFFIXES)}."
                    )
        return cls(
            path=path,
            dataset=_text_option(metadata, "deita_dataset", DEFAULT_DATASET) or DEFAULT_DATASET,
            split=_text_option(metadata, "deita_split", "train") or "train",
            on_bad_row=on_bad_row,
        )

    def describe(self) -> str:
        return str(self.path) if self.path else f"{self.dataset} [{self.split}]"


def _text_option(metadata: dict[str, Any], key: str, example: str) -> str | None:
    value = metadata.get(key)
    if value is None or isinstance(value, (str, os.PathLike)):
        return None if value is None else str(value)
    raise ValueError(
        f"metadata {key}={value!r} is a {type(value).__name__}, not a string: pass e.g. "
        f'--metadata \'{{"{key}": "{example}"}}\'.'
    )


HUB_PROBE_SECONDS = 3.0


class DataUnavailable(RuntimeError):
    """The hub dataset can be neither downloaded nor read from the local cache."""


def hub_endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def hub_reachable(endpoint: str | None = None, timeout: float = HUB_PROBE_SECONDS) -> bool:
    """Whether a TCP connection to the hub (or the HF_ENDPOINT mirror) opens within `timeout`
    seconds (datasets' own retries take a minute to give up)."""
    import socket
    from urllib.parse import urlsplit

    url = urlsplit(endpoint or hub_endpoint())
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname or "", port), timeout=timeout):
            return True
    except OSError:
        return False


def _offline_env() -> bool:
    return any(
        os.environ.get(k, "").strip().lower() in ("1", "true", "yes", "on")
        for k in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
    )


def unavailable_message(source: DeitaSource, why: str) -> str:
    return (
        f"the deita data {source.dataset!r} (split {source.split!r}) cannot be read: {why}. "
        'Fixes: point at a local copy with --metadata \'{"deita_path": "/data/deita-6k.jsonl"}\' '
        "(study config: data: {path: /data/deita-6k.jsonl}); use the bundled sample with "
        '"deita_path": "sample" (study config: data: {path: sample}); or reach the hub '
        "through a mirror with HF_ENDPOINT=https://<mirror>."
    )


def read_hub_rows(source: DeitaSource) -> list[Any]:
    """The rows of the hub dataset; when the hub cannot be reached within a few seconds, the
    local `datasets` cache is read offline, and failing that the error names the fixes."""
    import datasets  # honours HF_ENDPOINT / HF_HUB_OFFLINE like any hub download

    offline = _offline_env() or not hub_reachable()
    saved = (datasets.config.HF_HUB_OFFLINE, datasets.config.HF_DATASETS_OFFLINE)
    try:
        if offline:
            datasets.config.HF_HUB_OFFLINE = datasets.config.HF_DATASETS_OFFLINE = True
        return datasets.load_dataset(source.dataset, split=source.split).to_list()
    except Exception as e:  # noqa: BLE001  (ConnectionError, DatasetNotFoundError, OSError ...)
        why = (
            f"{hub_endpoint()} is not reachable and no cached copy was found"
            if offline
            else f"{type(e).__name__}: {e}"
        )
        raise DataUnavailable(unavailable_message(source, why)) from e
    finally:
        datasets.config.HF_HUB_OFFLINE, datasets.config.HF_DATASETS_OFFLINE = saved


def read_rows(source: DeitaSource) -> list[Any]:
    """Raw rows (no schema inference, so one odd row cannot break the rest); a JSONL line that
    cannot be read at all is a `BadLine`. A file without rows is an error."""
    if source.path is None:
        rows = read_hub_rows(source)
    else:
        suffix = source.path.suffix.lower()
        if suffix == ".parquet":
            import pyarrow.parquet as pq

            rows = pq.read_table(source.path).to_pylist()
        elif suffix == ".json":
            rows = read_json(source.path)
        else:
            rows = read_jsonl(source.path)
    if not rows:
        raise DeitaFileError(
            f"{source.describe()} holds no rows: give a file with at least one conversation "
            '(a \'conversations\' list of {"from", "value"} turns per row).'
        )
    return rows


class _Bad(ValueError):
    pass


def _text_problem(text: str) -> str | None:
    """Why `text` cannot be stored (Arrow needs valid UTF-8), or None."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        return (
            f"holds a lone surrogate U+{ord(text[e.start]):04X} at character {e.start} (an "
            "invalid UTF-8 byte, or an escape such as \\ud800 that is not valid Unicode)"
        )
    return None


def _short(value: str, limit: int = 60) -> str:
    return repr(value if len(value) <= limit else value[:limit] + "...")


def _turns(row: dict) -> Iterable[tuple[str, str]]:
    conv = row.get("conversations", row.get("messages"))
    if not isinstance(conv, list):
        raise _Bad("has no 'conversations' list")
    if not conv:
        raise _Bad("'conversations' is empty")
    for i, turn in enumerate(conv):
        if not isinstance(turn, dict):
            raise _Bad(f"turn {i} is a {type(turn).__name__}, not a {{'from', 'value'}} object")
        role = turn.get("from", turn.get("role"))
        value = turn.get("value", turn.get("content"))
        if role is None:
            raise _Bad(f"turn {i} has no 'from' role")
        if not isinstance(role, str):
            raise _Bad(f"turn {i} role is a {type(role).__name__}, not a string")
        if not isinstance(value, str):
            raise _Bad(f"turn {i} value is {type(value).__name__}, not a string")
        if not value.strip():
            # Some chat templates (GLM-4's) drop empty messages, silently changing the dialogue.
            raise _Bad(f"turn {i} ({_short(role)}) is empty")
        problem = _text_problem(value)
        if problem:
            raise _Bad(f"turn {i} value {problem}")
        yield role, value


def _row_label(row: Any, index: int) -> tuple[str, str, str | None]:
    """(doc id, source, what is wrong with them) of a row. An id is a string or an integer, a
    source a string; both are stored with any lone surrogate escaped, so the doc stays storable."""
    if isinstance(row, BadLine):
        return row.id, "", None
    if not isinstance(row, dict):
        return f"row{index}", "", None
    problems = []
    raw_id, raw_source = row.get("id"), row.get("source")
    doc_id, source = f"row{index}", ""
    if isinstance(raw_id, bool) or not isinstance(raw_id, (str, int, type(None))):
        problems.append(f"its 'id' is a {type(raw_id).__name__}, not a string or integer")
    elif raw_id is not None:
        doc_id = str(raw_id)
    if not isinstance(raw_source, (str, type(None))):
        problems.append(f"its 'source' is a {type(raw_source).__name__}, not a string")
    elif raw_source is not None:
        source = raw_source
    for name, text in (("id", doc_id), ("source", source)):
        problem = _text_problem(text)
        if problem:
            problems.append(f"its '{name}' {problem}")
    return _escaped(doc_id), _escaped(source), problems[0] if problems else None


def _escaped(text: str) -> str:
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def normalise_row(row: Any, index: int) -> dict:
    """One doc per row; `problem` is '' for a usable row, else what is wrong with it."""
    doc_id, source, label_problem = _row_label(row, index)
    doc = {
        "id": doc_id,
        "source": source,
        "row": index,
        "messages": [],
        "reference": "",
        "problem": "",
    }
    try:
        if isinstance(row, BadLine):
            raise _Bad(row.reason)
        if not isinstance(row, dict):
            raise _Bad(f"is a {type(row).__name__}, not an object")
        if label_problem:
            raise _Bad(label_problem)
        messages = []
        for i, (raw_role, value) in enumerate(_turns(row)):
            role = ROLES.get(raw_role.strip().lower())
            if role is None:
                raise _Bad(
                    f"turn {i} has unknown role {_short(raw_role)}; expected one of {sorted(ROLES)}"
                )
            if role == "system" and any(m["role"] != "system" for m in messages):
                raise _Bad(f"turn {i} is a system turn after the conversation started")
            if role != "system":
                prev = next((m["role"] for m in reversed(messages) if m["role"] != "system"), None)
                expected = "user" if prev in (None, "assistant") else "assistant"
                if role != expected:
                    raise _Bad(
                        f"turn {i} is '{role}' but '{expected}' was expected (turns must "
                        "alternate user/assistant, starting with user)"
                    )
            messages.append({"role": role, "content": value})
        if not messages or messages[-1]["role"] != "assistant":
            raise _Bad("does not end in an assistant turn (there is no reference reply to remove)")
        doc["messages"], doc["reference"] = messages[:-1], messages[-1]["content"]
    except _Bad as e:
        doc["problem"] = f"row {index} (id {doc_id!r}) {e}"
    return doc


def load_docs(source: DeitaSource) -> list[dict]:
    rows = read_rows(source)
    docs = [normalise_row(row, i) for i, row in enumerate(rows)]
    bad = [d for d in docs if d["problem"]]
    if bad and source.on_bad_row == "error":
        raise ValueError(
            f"{len(bad)} of {len(docs)} rows in {source.describe()} are malformed. Fix them, or "
            'pass --metadata \'{"on_bad_row": "skip"}\' to skip and count them.\n'
            + "\n".join(d["problem"] for d in bad[:20])
        )
    if bad:
        log.warning(
            "deita: %d of %d rows in %s are malformed; they are skipped and counted in the "
            "'skipped' metric. First: %s",
            len(bad),
            len(docs),
            source.describe(),
            bad[0]["problem"],
        )
    return docs


def load_deita(**metadata: Any):
    """`custom_dataset` entry of the deita task YAMLs: lm-eval passes the run's metadata.
    (The deita task classes call `load_source` with their already checked source instead.)"""
    return load_source(DeitaSource.from_metadata(metadata))


def load_source(source: DeitaSource, **_lm_eval_kwargs: Any):
    """The docs of `source` as the one-split DatasetDict lm-eval expects."""
    import datasets

    docs = load_docs(source)
    features = datasets.Features(
        {
            "id": datasets.Value("string"),
            "source": datasets.Value("string"),
            "row": datasets.Value("int64"),
            "messages": [{"role": datasets.Value("string"), "content": datasets.Value("string")}],
            "reference": datasets.Value("string"),
            "problem": datasets.Value("string"),
        }
    )
    return datasets.DatasetDict({"test": datasets.Dataset.from_list(docs, features=features)})
