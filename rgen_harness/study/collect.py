"""Reading lm-eval output folders back: results_*.json and samples_<task>_*.jsonl.

Works on a study folder (models named by `study.json` and `runs/<model>/`) and on any folder of
plain `lm_eval --output_path` runs (models grouped by the results' model name and model_args).
The newest results file wins for each task. Missing or garbled files (not UTF-8, not JSON, not
lm-eval's layout), unreadable lines and missing keys never crash the report: each is listed in
`problems` with the file (and line) and what to do, and the affected numbers show as n/a.
"""

from __future__ import annotations

import json
import logging
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

DEITA_MODES = {"deita_qr": "qr", "deita_qcr": "qcr"}
ROLEPLAY_TASK = "charactereval"  # its samples: rgen_harness.study.roleplay
SAMPLE_FIELDS = (
    "reward",
    "reference_reward",
    "reward_failed",
    "reply_chars",
    "reply_tokens",
    "criteria_chars",
    "dropped_turns",
    "skipped",
    "failed",
    "special_text_rows",
    "rouge1_f",
    "rouge2_f",
    "rougeL_f",
    "similarity",
)
_TS_RE = re.compile(r"results_(.+)\.json$")
GENERATED_DIR = "generated"  # predict-only output awaiting the study's scorer (study.scoring)


@dataclass
class SampleRow:
    """The per-reply numbers of one logged sample (NaN where the key is missing)."""

    doc_id: int
    conv_id: str
    status: str  # ok | skipped | failed | unknown
    values: dict[str, float]
    gen_tokens: float  # tokens generated over all rounds (NaN when unknown)

    def get(self, key: str) -> float:
        return self.values.get(key, math.nan)


@dataclass
class TaskResult:
    task: str
    metrics: dict[str, Any]  # results[task] from the results JSON
    results_file: Path
    run_info: dict[str, Any]  # top-level keys of the results JSON (config, timing, env ...)
    samples: list[SampleRow] | None = None  # deita tasks only
    samples_file: Path | None = None  # the samples JSONL the rows came from
    max_gen_toks: int | None = None  # the task's generation limit, from the results JSON

    @property
    def wall_s(self) -> float:
        return _num(self.run_info.get("total_evaluation_time_seconds"))


@dataclass
class ModelResults:
    name: str
    lora: str | None = None
    model_type: str | None = None
    model_args: dict[str, Any] = field(default_factory=dict)
    tasks: dict[str, TaskResult] = field(default_factory=dict)

    def mode(self, mode: str) -> TaskResult | None:
        for task, m in DEITA_MODES.items():
            if m == mode and task in self.tasks:
                return self.tasks[task]
        return None


@dataclass
class Collection:
    root: Path
    models: list[ModelResults]
    study: dict[str, Any] | None  # study.json when the folder is a study
    subset: dict[str, Any] | None
    problems: list[str] = field(default_factory=list)


def _num(value: Any) -> float:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return math.nan
    return math.nan


RERUN_STUDY = (
    "run `rgen-harness study` with the study's config again: it redoes that run (reusing the "
    "cached generations)"
)
RERUN_LM_EVAL = "run lm_eval again for that model, or delete the file"


def _read_json(path: Path, problems: list[str], fix: str) -> dict | None:
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, ValueError) as e:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        problems.append(f"{path}: unreadable ({type(e).__name__}: {e}); left out: {fix}")
        return None
    if not isinstance(data, dict):
        problems.append(f"{path}: a JSON {type(data).__name__}, not an object; left out: {fix}")
        return None
    return data


def _read_results(path: Path, problems: list[str], fix: str) -> dict | None:
    from rgen_harness.study.finished import UnreadableResults, read_results

    try:
        data = read_results(path)
    except UnreadableResults as e:
        problems.append(f"{e}; left out: {fix}")
        return None
    bad = [t for t, v in data["results"].items() if not isinstance(v, dict)]
    for task in bad:
        problems.append(f"{path}: results[{task!r}] is not a mapping; {task} left out: {fix}")
        del data["results"][task]
    return data


def _timestamp(path: Path) -> str:
    m = _TS_RE.search(path.name)
    return m.group(1) if m else ""


def lora_label(model_args: dict[str, Any]) -> str | None:
    """A LoRA label from lm-eval model_args: hf `peft=<path>`, lmdeploy `adapters=...`."""
    for key in ("peft", "lora", "adapters", "adapter"):
        value = model_args.get(key)
        if value:
            if isinstance(value, dict):
                return ",".join(str(k) for k in value)
            return Path(str(value).rstrip("/")).name or str(value)
    return None


def read_samples(path: Path, problems: list[str]) -> list[SampleRow]:
    """Rows of a samples file; a line that is not UTF-8 JSON of a sample is listed in
    `problems` (file:line) and left out, and the other lines are read."""
    rows = []
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            try:
                data = json.loads(raw.decode("utf-8"))
                if not isinstance(data, dict):
                    raise ValueError(f"a JSON {type(data).__name__}, not a sample object")
                rows.append(_sample_row(data))
            except (TypeError, ValueError, KeyError, AttributeError) as e:
                problems.append(
                    f"{path}:{lineno}: unreadable sample ({type(e).__name__}: {e}); left out "
                    "(the file is damaged: rerun that model to rewrite it)"
                )
    return rows


def _sample_row(data: dict) -> SampleRow:
    doc = data.get("doc")
    doc = doc if isinstance(doc, dict) else {}
    conv_id = str(doc.get("id", data.get("doc_id")))
    values = {k: _num(data[k]) for k in SAMPLE_FIELDS if k in data}
    status, gen_tokens = "unknown", math.nan
    chat = chat_result(data)
    if chat is not None:
        status = str(chat.get("status", "unknown"))
        toks = [r.get("reply_tokens") for r in chat.get("rounds", []) if isinstance(r, dict)]
        if toks and all(isinstance(t, (int, float)) for t in toks):
            gen_tokens = float(sum(toks))
    return SampleRow(int(data.get("doc_id", -1)), conv_id, status, values, gen_tokens)


def chat_result(data: dict) -> dict | None:
    """The ChatResult JSON of a logged sample line, in filtered_resps (or resps) however
    lm-eval nested it; None when there is none."""
    for key in ("filtered_resps", "resps"):
        value = data.get(key)
        while isinstance(value, list) and value:
            value = value[0]
        if isinstance(value, str):
            try:
                parsed = json.loads(value)
            except json.JSONDecodeError:
                continue
            if isinstance(parsed, dict) and "status" in parsed:
                return parsed
    return None


def collect(root: str | Path) -> Collection:
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(
            f"{root} is not a folder. Give a study folder (e.g. studies/<name>) or an "
            "lm_eval --output_path folder."
        )
    problems: list[str] = []
    rewrite = "rerun `rgen-harness study` with the study's config to rewrite it"
    study, subset = None, None
    if (root / "study.json").is_file():
        study = _read_json(root / "study.json", problems, rewrite)
    if (root / "subset.json").is_file():
        subset = _read_json(root / "subset.json", problems, rewrite)
    models: dict[str, ModelResults] = {}
    if study is not None:
        _study_models(study, models, problems, root / "study.json")
    fix = RERUN_STUDY if study is not None else RERUN_LM_EVAL
    newest: dict[tuple[str, str], tuple[str, Path]] = {}
    generated: set[tuple[str, ...]] = set()  # (model, run) generated for separate scoring
    for path in sorted(root.rglob("results_*.json")):
        data = _read_results(path, problems, fix)
        if data is None:
            continue
        if study is not None and path.relative_to(root).parts[0] == GENERATED_DIR:
            generated.add(path.relative_to(root).parts[1:3])
            continue
        model = _model_for(path, root, data, models, study is not None)
        if model is None:
            problems.append(f"{path}: not under runs/<model>/ of a study model; left out")
            continue
        for task in data.get("results", {}):
            key = (model.name, task)
            ts = _timestamp(path)
            if key not in newest or ts > newest[key][0]:
                newest[key] = (ts, path)
    cache: dict[Path, dict] = {}
    for (model_name, task), (ts, path) in sorted(newest.items()):
        data = cache.setdefault(path, _read_results(path, [], fix) or {"results": {}})
        info = {k: v for k, v in data.items() if k not in ("results", "configs", "samples")}
        if task not in data["results"]:  # the file changed while being read
            problems.append(f"{path}: {task} vanished while the report read it; left out")
            continue
        result = TaskResult(task, data["results"][task], path, info)
        result.max_gen_toks = _max_gen_toks(data, task)
        if task in DEITA_MODES or task == ROLEPLAY_TASK:
            samples_path = path.parent / f"samples_{task}_{ts}.jsonl"
            if samples_path.is_file():
                # charactereval samples are read by rgen_harness.study.roleplay
                if task in DEITA_MODES:
                    result.samples = read_samples(samples_path, problems)
                result.samples_file = samples_path
            else:
                problems.append(
                    f"{path}: no {samples_path.name} beside it (the run was stopped before "
                    "writing it, or ran without --log_samples); per-conversation statistics "
                    f"for {model_name}/{task} are n/a: {fix}"
                )
        models[model_name].tasks[task] = result
    for model_name, run in sorted(generated):
        model = models.get(model_name)
        if model is not None and not any(t in model.tasks for t in DEITA_MODES):
            problems.append(
                f"{root / GENERATED_DIR / model_name / run}: generated but not scored yet "
                f"(the study was stopped, or scoring failed: see {root / 'scoring.log'}); "
                f"{model_name} is left out: {RERUN_STUDY}"
            )
    return Collection(root, list(models.values()), study, subset, problems)


def _max_gen_toks(data: dict, task: str) -> int | None:
    """`max_gen_toks` of the task's generation kwargs as lm-eval recorded them (None: unknown)."""
    configs = data.get("configs")
    config = configs.get(task) if isinstance(configs, dict) else None
    gen = config.get("generation_kwargs") if isinstance(config, dict) else None
    value = gen.get("max_gen_toks") if isinstance(gen, dict) else None
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _study_models(study: dict, models: dict, problems: list[str], path: Path) -> None:
    specs = study.get("models")
    for i, spec in enumerate(specs if isinstance(specs, list) else []):
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            problems.append(
                f"{path}: models[{i}] has no name; left out (rerun `rgen-harness study` with "
                "the study's config to rewrite study.json)"
            )
            continue
        args = spec.get("model_args")
        args = args if isinstance(args, dict) else {}
        models[spec["name"]] = ModelResults(
            name=spec["name"],
            lora=spec.get("lora") or lora_label(args),
            model_type=spec.get("model"),
            model_args=args,
        )


def _model_for(path, root, data, models, is_study) -> ModelResults | None:
    config = data.get("config")
    config = config if isinstance(config, dict) else {}
    args = config.get("model_args")
    args = args if isinstance(args, dict) else {}
    if is_study:
        parts = path.relative_to(root).parts
        if len(parts) >= 2 and parts[0] == "runs" and parts[1] in models:
            return models[parts[1]]
        return None
    name = str(data.get("model_name") or args.get("pretrained") or path.parent.name)
    lora = lora_label(args)
    key = f"{name} + {lora}" if lora else name
    if key not in models:
        models[key] = ModelResults(key, lora, config.get("model"), args)
    return models[key]
