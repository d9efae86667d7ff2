"""Reading judge runs back: `results_*.json` and `samples_judge_<set>_*.jsonl` of lm-eval
`--output_path` folders (any depth below the folders given).

A judge is what produced the verdicts: the evaluated model (its name, LoRA adapter and prompt)
or, for `"judge_with": "reward"` runs, the reward model named in the task metadata. The newest
results file wins for each (judge, set). Files that cannot be read (not UTF-8, not JSON, not
lm-eval's layout), bad sample lines and missing samples files never crash the report: each is
listed in `problems` with the file (and line) and what to do.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rgen_harness.data.judge.sources import SETS
from rgen_harness.study.collect import lora_label

TASK_PREFIX = "judge_"
DEFAULT_PROMPT = "judge_v1"
_TS_RE = re.compile(r"results_(.+)\.json$")
RERUN = "run that judge's lm_eval command again (with --log_samples), or delete the file"


@dataclass(frozen=True)
class Judge:
    name: str  # model name, or the reward model for reward-model judges
    kind: str  # "model" | "reward model"
    lora: str | None = None
    prompt: str | None = None  # judge prompt when not the default
    tie_margin: float | None = None  # reward-model judges: score gap counted as a tie
    lm_eval_model: str | None = None  # lm-eval --model (hf, lmdeploy, dummy, ...)

    @property
    def label(self) -> str:
        text = self.name
        if self.kind == "reward model":
            text += " (reward model)"
        if self.lora:
            text += f" + LoRA {self.lora}"
        if self.prompt:
            text += f" [{self.prompt}]"
        if self.tie_margin:
            text += f" [tie margin {self.tie_margin:g}]"
        return text


@dataclass
class SetRun:
    """One judge on one test set: lm-eval's metrics and the per-pair records of the samples."""

    set_name: str
    task: str
    metrics: dict[str, Any]  # results[task] from the results JSON
    results_file: Path
    n_samples: int | None  # lm-eval's n-samples "effective"
    limit: Any = None
    samples_file: Path | None = None
    records: list[dict] | None = None  # None: no samples file


@dataclass
class JudgeRuns:
    judge: Judge
    sets: dict[str, SetRun] = field(default_factory=dict)


@dataclass
class JudgeCollection:
    roots: list[Path]
    judges: list[JudgeRuns]
    problems: list[str] = field(default_factory=list)


def set_of_task(task: str) -> str | None:
    name = task[len(TASK_PREFIX) :] if task.startswith(TASK_PREFIX) else None
    return name if name in SETS else None


def parse_model_args(raw: Any) -> dict[str, Any]:
    """lm-eval model_args as a dict (results files hold a dict, or the `k=v,...` string)."""
    if isinstance(raw, dict):
        return raw
    if not isinstance(raw, str):
        return {}
    out = {}
    for part in raw.split(","):
        key, sep, value = part.partition("=")
        if sep and key.strip():
            out[key.strip()] = value.strip()
    return out


def judge_of(data: dict, task: str) -> Judge:
    config = data.get("config") if isinstance(data.get("config"), dict) else {}
    configs = data.get("configs") if isinstance(data.get("configs"), dict) else {}
    task_config = configs.get(task) if isinstance(configs.get(task), dict) else {}
    meta = task_config.get("metadata") if isinstance(task_config.get("metadata"), dict) else {}
    model = config.get("model") if isinstance(config.get("model"), str) else None
    prompt = meta.get("judge_prompt")
    spec = SETS.get(set_of_task(task) or "")
    default = spec.default_prompt if spec is not None else DEFAULT_PROMPT
    prompt = str(prompt) if prompt not in (None, "", default) else None
    if meta.get("judge_with") == "reward":
        margin = meta.get("judge_tie_margin", 0.0)
        try:
            margin = float(margin)
        except (TypeError, ValueError):
            margin = None
        name = str(meta.get("reward_model") or "reward model (unnamed)")
        return Judge(name, "reward model", tie_margin=margin or None, lm_eval_model=model)
    args = parse_model_args(config.get("model_args"))
    lora = lora_label(args) or (str(config["lora_adapter"]) if config.get("lora_adapter") else None)
    name = str(data.get("model_name") or args.get("pretrained") or model or "unknown model")
    return Judge(name, "model", lora=lora, prompt=prompt, lm_eval_model=model)


def _timestamp(path: Path) -> str:
    m = _TS_RE.search(path.name)
    return m.group(1) if m else ""


def _n_samples(data: dict, task: str) -> int | None:
    n = data.get("n-samples")
    n = n.get(task) if isinstance(n, dict) else None
    value = n.get("effective") if isinstance(n, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _record(line: dict) -> dict:
    """The per-pair record the judge task logs under every metric name (see tasks/judge)."""
    record = line.get("skipped")
    if not isinstance(record, dict):
        raise ValueError("no judge record under 'skipped' (not a judge task's sample)")
    pred = record.get("pred")
    if not isinstance(pred, list) or len(pred) > 2:
        raise ValueError(f"'pred' is {pred!r}, not a list of up to two verdicts")
    if any(p not in (None, 0, 1, 2) or isinstance(p, bool) for p in pred):
        raise ValueError(f"'pred' is {pred!r}; verdicts are 0, 1, 2 or null")
    for key in ("gold", "turn", "skipped"):
        if not isinstance(record.get(key), int) or isinstance(record.get(key), bool):
            raise ValueError(f"{key!r} is {record.get(key)!r}, not an integer")
    votes = record.get("votes", [])
    if not isinstance(votes, list) or any(v not in (0, 1, 2) for v in votes):
        raise ValueError(f"'votes' is {votes!r}, not a list of 0/1/2 labels")
    if not record["skipped"] and not pred:
        raise ValueError("a judged pair without verdicts ('pred' is empty)")
    scenario = record.setdefault("scenario", "")  # samples from before it was logged
    if not isinstance(scenario, str):
        raise ValueError(f"'scenario' is {scenario!r}, not a string")
    return record


def read_records(path: Path, problems: list[str]) -> list[dict]:
    records = []
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            try:
                line = json.loads(raw.decode("utf-8"))
                if not isinstance(line, dict):
                    raise ValueError(f"a JSON {type(line).__name__}, not a sample object")
                records.append(_record(line))
            except ValueError as e:
                problems.append(
                    f"{path}:{lineno}: unreadable judge sample ({type(e).__name__}: {e}); left "
                    f"out of the intervals: {RERUN}"
                )
    return records


def collect(roots: list[str | Path]) -> JudgeCollection:
    from rgen_harness.study.finished import UnreadableResults, read_results

    paths = [Path(r) for r in roots]
    missing = [str(p) for p in paths if not p.is_dir()]
    if missing:
        raise FileNotFoundError(
            f"not a folder: {', '.join(missing)}. Give lm_eval --output_path folders of judge "
            "runs (e.g. results/judge)."
        )
    problems: list[str] = []
    newest: dict[tuple[Judge, str], tuple[str, Path, dict]] = {}
    for path in sorted({p for root in paths for p in root.rglob("results_*.json")}):
        try:
            data = read_results(path)
        except UnreadableResults as e:
            problems.append(f"{e}; left out: {RERUN}")
            continue
        for task, metrics in data["results"].items():
            if set_of_task(task) is None:
                continue  # groups (judge_pairwise) and other tasks
            if not isinstance(metrics, dict):
                problems.append(f"{path}: results[{task!r}] is not a mapping; left out: {RERUN}")
                continue
            key = (judge_of(data, task), task)
            ts = _timestamp(path)
            if key not in newest or ts > newest[key][0]:
                newest[key] = (ts, path, data)
    judges: dict[Judge, JudgeRuns] = {}
    for (judge, task), (ts, path, data) in newest.items():
        set_name = set_of_task(task)
        config = data.get("config") if isinstance(data.get("config"), dict) else {}
        run = SetRun(
            set_name,
            task,
            data["results"][task],
            path,
            _n_samples(data, task),
            limit=config.get("limit"),
        )
        samples = path.parent / f"samples_{task}_{ts}.jsonl"
        if samples.is_file():
            run.samples_file = samples
            run.records = read_records(samples, problems)
            if run.n_samples is not None and len(run.records) != run.n_samples:
                problems.append(
                    f"{samples}: {len(run.records)} readable samples, but the results file says "
                    f"{run.n_samples}; intervals use the readable ones: {RERUN}"
                )
        else:
            problems.append(
                f"{path}: no {samples.name} beside it (run without --log_samples, or stopped "
                f"before writing it); {judge.label} / {set_name} shows the results file's values "
                f"without intervals: {RERUN}"
            )
        judges.setdefault(judge, JudgeRuns(judge)).sets[set_name] = run
    order = list(SETS)
    for runs in judges.values():
        runs.sets = dict(sorted(runs.sets.items(), key=lambda kv: order.index(kv[0])))
    ranked = sorted(judges.values(), key=lambda r: (r.judge.kind != "model", r.judge.label))
    return JudgeCollection(paths, ranked, problems)
