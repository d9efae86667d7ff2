"""deita_pairwise's `--metadata` options, read and checked once when the task loads.

Which replies: `"pairwise_run": "<run folder>"` compares that run's QCR replies (A) with its
QR replies (B); or `"pairwise_a"` and `"pairwise_b"` (each a samples file or a run folder) with
`"pairwise_a_task"` / `"pairwise_b_task"` (default deita_qcr / deita_qr), e.g. one model's
QCR against a baseline model's QR or QCR. A misspelt key is an error with a suggestion.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

from rgen_harness.data.pairwise import Side, side
from rgen_harness.tasks.lm_eval_keys import LM_EVAL_KEYS, model_args_keys

KEYS = {
    "pairwise_run": "run folder: its deita_qcr (A) vs deita_qr (B) replies",
    "pairwise_a": "samples file or run folder of side A",
    "pairwise_b": "samples file or run folder of side B",
    "pairwise_a_task": "A's deita task (default deita_qcr)",
    "pairwise_b_task": "B's deita task (default deita_qr)",
    "pairwise_subset": "judge this many conversations, drawn with pairwise_seed (default all)",
    "pairwise_seed": "seed of the subset and of the bootstrap (default 0)",
    "pairwise_length_ratio": "close-length pairs: longer / shorter below this (default 1.25)",
    "pairwise_interval": "bootstrap interval level (default 0.95)",
    "pairwise_resamples": "bootstrap resamples (default 2000)",
    "judge_prompt": "judge_v1 (default), judge_autoj_v1, judge_forced_v1, or a YAML path",
}
TASKS = ("deita_qr", "deita_qcr")


def _int(metadata: dict, key: str, default: int | None, low: int) -> int | None:
    value = metadata.get(key, default)
    if value is None:
        return None
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{key}={value!r}: expected an integer >= {low}")
    return value


def _float(metadata: dict, key: str, default: float, low: float, high: float) -> float:
    value = metadata.get(key, default)
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if isinstance(value, bool) or not low < number < high:
        raise ValueError(f"{key}={value!r}: expected a number between {low} and {high}")
    return number


def _task(metadata: dict, key: str, default: str) -> str:
    value = str(metadata.get(key, default))
    if value not in TASKS:
        raise ValueError(f"{key}={value!r}: expected one of {', '.join(TASKS)}")
    return value


@dataclass(frozen=True)
class PairwiseSettings:
    a: Side
    b: Side
    prompt: str | None
    subset: int | None
    seed: int
    length_ratio: float
    interval: float
    resamples: int

    @classmethod
    def from_metadata(cls, metadata: dict[str, Any], *, task: str) -> PairwiseSettings:
        check_keys(metadata, task=task)
        run = metadata.get("pairwise_run")
        if run is not None and ("pairwise_a" in metadata or "pairwise_b" in metadata):
            raise ValueError(
                f"{task}: give either pairwise_run (QCR vs QR of one run) or pairwise_a and "
                "pairwise_b, not both."
            )
        if run is not None:
            a = side(run, "deita_qcr", key="pairwise_run")
            b = side(run, "deita_qr", key="pairwise_run")
        elif "pairwise_a" in metadata and "pairwise_b" in metadata:
            a_task = _task(metadata, "pairwise_a_task", "deita_qcr")
            b_task = _task(metadata, "pairwise_b_task", "deita_qr")
            a = side(metadata["pairwise_a"], a_task, key="pairwise_a")
            b = side(metadata["pairwise_b"], b_task, key="pairwise_b")
        else:
            raise ValueError(
                f"{task}: say which replies to compare: --metadata "
                '\'{"pairwise_run": "<lm_eval --output_path folder of a deita_qr,deita_qcr '
                'run>"}\' (its QCR vs its QR), or {"pairwise_a": ..., "pairwise_b": ...} '
                "(samples files or run folders; pairwise_a_task / pairwise_b_task pick the "
                "deita task, default deita_qcr / deita_qr)."
            )
        if a.path.resolve() == b.path.resolve():
            raise ValueError(f"{task}: A and B are the same samples file {a.path}")
        return cls(
            a=a,
            b=b,
            prompt=metadata.get("judge_prompt"),
            subset=_int(metadata, "pairwise_subset", None, 1),
            seed=_int(metadata, "pairwise_seed", 0, 0),
            length_ratio=_float(metadata, "pairwise_length_ratio", 1.25, 1.0, float("inf")),
            interval=_float(metadata, "pairwise_interval", 0.95, 0.0, 1.0),
            resamples=_int(metadata, "pairwise_resamples", 2000, 100),
        )


def check_keys(metadata: dict[str, Any], *, task: str) -> None:
    allowed = set(KEYS) | LM_EVAL_KEYS | model_args_keys()
    unknown = [k for k in metadata if k not in allowed]
    if not unknown:
        return
    key = unknown[0]
    close = difflib.get_close_matches(str(key), list(KEYS), n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ValueError(
        f"{task}: unknown --metadata key {key!r}.{hint} Known keys: "
        + "; ".join(f"{k} ({v})" for k, v in KEYS.items())
        + " (lm-eval's own keys and --model_args pass through)."
    )
