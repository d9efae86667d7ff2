"""The study config: which models, which tasks, which data, how to score and how to report.

A YAML file (see `rgen_harness/configs/study_default.yaml`) is read ONCE into the frozen
dataclasses below. Every key is checked: an unknown key is an error that names where it is and
suggests the closest valid key; a value of the wrong type is an error that names the key, the
value and the expected type. `${VAR}` and `${VAR:-default}` in string values are replaced from
the environment (an unset variable without a default is an error). The study records and the
report show such a value as it is written in the config (`${HF_TOKEN}`), never its value, and
credentials are masked there (see `StudyConfig.recorded` and `rgen_harness.redact`).

Relative paths (model paths, data path, output folders) are relative to the working directory,
as for any command line tool.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from rgen_harness.env_refs import VAR_RE
from rgen_harness.study.judge_block import JudgeSpec, check_judge

MODEL_TYPES = ("lmdeploy", "hf")
DEITA_TASKS = ("deita_qr", "deita_qcr")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class StudyConfigError(ValueError):
    """A study config that cannot be used; the message says where and how to fix it."""


@dataclass(frozen=True)
class ModelSpec:
    """One leaderboard row: an lm-eval model type plus its model_args."""

    name: str  # row label and folder name under runs/
    model: Literal["lmdeploy", "hf"]  # lm-eval `--model`
    model_args: dict[str, Any]  # lm-eval `--model_args` (passed as JSON)
    lora: str | None = None  # label for a LoRA row (adapter name); shown in the report
    device: str | None = None  # lm-eval `--device` (overrides the study's)
    batch_size: str | None = None  # lm-eval `--batch_size` (overrides the study's)
    shards: int | None = None  # engines its conversations are split over (default: the study's)


@dataclass(frozen=True)
class DataSpec:
    """Where the deita conversations come from (task metadata `deita_*`)."""

    path: str | None = None  # local .jsonl/.json/.parquet, or "sample" (bundled 8 rows)
    dataset: str | None = None  # hub dataset id (default hkust-nlp/deita-6k-v0)
    split: str | None = None
    on_bad_row: Literal["skip", "error"] = "skip"


@dataclass(frozen=True)
class SubsetSpec:
    """A reproducible subset: `size` conversation indices drawn without replacement with
    numpy's default_rng(seed), passed to lm-eval as `--samples` (same indices for every task,
    so QR and QCR see exactly the same conversations)."""

    size: int
    seed: int = 0


@dataclass(frozen=True)
class GenerationSpec:
    """lm-eval `--gen_kwargs` (unset fields keep the task defaults: greedy, 1024 tokens)."""

    max_gen_toks: int | None = None
    do_sample: bool | None = None
    temperature: float | None = None
    top_p: float | None = None


@dataclass(frozen=True)
class BenchmarkSpec:
    """A standard lm-eval task run for every model; its score becomes a leaderboard column."""

    task: str
    label: str | None = None  # column header (default: the task name)
    metric: str | None = None  # e.g. "acc,none" (default: the first of acc/exact_match found)
    num_fewshot: int | None = None
    limit: float | None = None
    apply_chat_template: bool = False


@dataclass(frozen=True)
class ReportSpec:
    interval: float = 0.95  # bootstrap interval level
    resamples: int = 10000  # bootstrap resamples
    seed: int = 0  # bootstrap seed
    tie_margin: float = 0.0  # |QCR - QR| <= margin counts as a tie


@dataclass(frozen=True)
class TinyModelSpec:
    """A tiny random-weight model built before the study runs (offline smoke studies only)."""

    path: str
    kind: Literal["chat", "reward", "charrm"] = "chat"  # charrm: a tiny BaichuanCharRM folder
    arch: Literal["llama", "qwen2"] = "llama"
    seed: int = 0


@dataclass(frozen=True)
class CharacterEvalSpec:
    """CharacterEval role-play (task `charactereval`): one lm_eval run per model, its replies
    scored by BaichuanCharRM; checked and planned by rgen_harness.study.charactereval."""

    data: str | None = None  # folder of the authors' 3 files, or "sample"; None: pinned download
    # The charrm scorer's settings, each passed as task metadata `charrm_<key>` (model,
    # trust_remote_code, batch_size, device, dtype, cache, ...; checked by CharRMOptions).
    charrm: dict[str, Any] = field(default_factory=dict)
    limit: int | None = None  # first N examples
    subset: SubsetSpec | None = None  # or a seeded sample of examples
    max_gen_toks: int | None = None  # default: the task's 512 (the first line is scored)


@dataclass(frozen=True)
class RaySpec:
    """Runs spread over the nodes of a Ray cluster (`pip install "rgen-harness[ray]"`): each
    run is a Ray task asking for its GPUs. Every node must see `output_dir` at the same path
    (a shared file system)."""

    address: str = "auto"  # ray.init address: "auto" (a running cluster), "ray://host:10001"


@dataclass(frozen=True)
class StudyConfig:
    name: str
    models: tuple[ModelSpec, ...]
    tasks: tuple[str, ...] = DEITA_TASKS
    data: DataSpec = field(default_factory=DataSpec)
    limit: int | None = None  # first N conversations (use `subset` for a random sample)
    subset: SubsetSpec | None = None
    generation: GenerationSpec = field(default_factory=GenerationSpec)
    # Reward scorer settings, each passed as task metadata `reward_<key>` (model, backend, tp,
    # max_length, cache, ...; checked against the reward scorer's own config).
    reward: dict[str, Any] = field(default_factory=dict)
    scorers: tuple[str, ...] | None = None  # reply scorers to run (None: the tasks' defaults)
    metadata: dict[str, Any] = field(default_factory=dict)  # more task metadata, verbatim
    benchmarks: tuple[BenchmarkSpec, ...] = ()
    device: str | None = None  # lm-eval `--device` for every model (e.g. cpu, cuda)
    batch_size: str | None = None  # lm-eval `--batch_size` for every model
    output_dir: str | None = None  # runs and caches (default studies/<name>)
    report_dir: str | None = None  # tables and plots (default results/<name>)
    notice: str | None = None  # printed at the top of the report (e.g. "smoke run")
    report: ReportSpec = field(default_factory=ReportSpec)
    tiny_models: tuple[TinyModelSpec, ...] = ()
    judge: JudgeSpec | None = None  # a pairwise LLM judge of QCR vs QR (study.judge_block)
    charactereval: CharacterEvalSpec | None = None  # role-play runs beside the deita runs
    # Placement (see rgen_harness.study.placement): the GPUs the study may use (ids, or how
    # many of the visible ones; default all visible), how many runs at once at most, and each
    # GPU's memory (default: measured) against which model sizes are checked.
    gpus: int | tuple[int, ...] | None = None
    max_parallel: int | None = None
    gpu_memory_gb: float | None = None
    # auto: runs in parallel when more than one GPU is visible (or on Ray), else one at a time.
    scheduler: Literal["auto", "parallel", "sequential"] = "auto"
    # auto: the reply scorers run in one process for all runs (reward model loaded once) when
    # runs go in parallel, inline in each lm_eval run otherwise. Same numbers either way.
    scoring: Literal["auto", "inline", "separate"] = "auto"
    ray: RaySpec | None = None
    # Engines a model's deita conversations are split over, each on its own GPUs, merged before
    # scoring (rgen_harness.study.shards): auto fills the GPUs the runs leave free; 1: never.
    shards: int | Literal["auto"] = "auto"
    # Strings taken from the environment: (expanded string, the string as written, the values
    # of its variables). Set by `parse_study_config`; not a config key.
    env_refs: tuple[tuple[str, str, tuple[str, ...]], ...] = field(
        default=(), init=False, repr=False, compare=False
    )

    @property
    def study_dir(self) -> Path:
        return Path(self.output_dir or f"studies/{self.name}")

    @property
    def results_dir(self) -> Path:
        return Path(self.report_dir or f"results/{self.name}")

    def model(self, name: str) -> ModelSpec:
        for m in self.models:
            if m.name == name:
                return m
        raise StudyConfigError(_unknown("model", name, [m.name for m in self.models]))

    def task_metadata(self) -> dict[str, Any]:
        """What the deita tasks receive through `--metadata`."""
        md: dict[str, Any] = {}
        if self.data.path is not None:
            md["deita_path"] = self.data.path
        if self.data.dataset is not None:
            md["deita_dataset"] = self.data.dataset
        if self.data.split is not None:
            md["deita_split"] = self.data.split
        md["on_bad_row"] = self.data.on_bad_row
        for key, value in self.reward.items():
            md[f"reward_{key}"] = value
        if self.scorers is not None:
            md["scorers"] = ",".join(self.scorers) if self.scorers else "none"
        md.update(self.metadata)
        return md

    def gen_kwargs(self) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self.generation).items() if v is not None}

    def to_dict(self) -> dict[str, Any]:
        """The resolved config as written to study.json: see `recorded`."""
        data = dataclasses.asdict(self)
        data.pop("env_refs", None)
        return self.recorded(data)

    def secret_values(self) -> tuple[str, ...]:
        """The values this config took from environment variables (masked in any text)."""
        return tuple(sorted({v for _, _, values in self.env_refs for v in values if v}))

    def recorded(self, value: Any) -> Any:
        """A JSON-like value as the study records it: every string taken from the environment
        shown as written (`${HF_TOKEN}`), also inside longer strings (a command line), then
        credentials masked (`rgen_harness.redact.mask_data`)."""
        from rgen_harness.redact import mask_data

        return mask_data(self.written(value), self.secret_values())

    def env_vars(self) -> dict[str, str]:
        """The set environment variables the config refers to (what an lm_eval child given
        values as written needs, also on another node)."""
        found = {m.group(1) for _, w, _ in self.env_refs for m in VAR_RE.finditer(w)}
        return {name: os.environ[name] for name in sorted(found) if name in os.environ}

    def written(self, value: Any) -> Any:
        """A JSON-like value with every string taken from the environment as written in the
        config (`${HF_TOKEN}`), also inside longer strings."""
        refs = sorted(((e, w) for e, w, _ in self.env_refs if e), key=lambda r: -len(r[0]))

        def undo(v: Any) -> Any:
            if isinstance(v, dict):
                return {k: undo(x) for k, x in v.items()}
            if isinstance(v, (list, tuple)):
                return [undo(x) for x in v]
            if isinstance(v, str):
                for expanded, written in refs:
                    if v == expanded:
                        return written
                for expanded, written in refs:
                    if len(expanded) >= 4:
                        v = v.replace(expanded, written)
            return v

        return undo(value)


# -- loading ---------------------------------------------------------------------------------


def load_study_config(path: str | Path) -> StudyConfig:
    path = Path(path)
    if not path.is_file():
        raise StudyConfigError(
            f"study config {str(path)!r} not found. Give a YAML file, e.g. "
            "rgen_harness/configs/study_smoke.yaml (see study_default.yaml for every key)."
        )
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise StudyConfigError(f"{path}: not valid YAML: {e}") from e
    return parse_study_config(raw, source=str(path))


def parse_study_config(raw: Any, source: str = "study config") -> StudyConfig:
    if not isinstance(raw, dict):
        raise StudyConfigError(f"{source}: the top level must be a mapping of keys, not {raw!r}")
    refs: list[tuple[str, str, tuple[str, ...]]] = []
    config = _build(StudyConfig, _expand_env(raw, source, refs), source)
    object.__setattr__(config, "env_refs", tuple(dict.fromkeys(refs)))
    _check(config, source)
    return config


def _check(config: StudyConfig, source: str) -> None:
    def fail(msg: str) -> None:
        raise StudyConfigError(f"{source}: {msg}")

    if not _NAME_RE.match(config.name):
        fail(f"name {config.name!r} must be a folder-safe word (letters, digits, . _ -)")
    if not config.models:
        fail("'models' is empty: list at least one model (name, model, model_args)")
    names = [m.name for m in config.models]
    for m in config.models:
        if not _NAME_RE.match(m.name):
            fail(f"model name {m.name!r} must be folder-safe (letters, digits, . _ -)")
        if names.count(m.name) > 1:
            fail(f"model name {m.name!r} is used twice; names must be unique")
        if "pretrained" not in m.model_args:
            fail(f"model {m.name!r}: model_args needs 'pretrained' (a hub id or local path)")
    if not config.tasks:
        fail("'tasks' is empty: use [deita_qr, deita_qcr]")
    if config.limit is not None and config.subset is not None:
        fail("set either 'limit' (first N conversations) or 'subset' (a seeded sample), not both")
    if config.limit is not None and config.limit < 1:
        fail(f"limit={config.limit} must be >= 1")
    if config.subset is not None and config.subset.size < 1:
        fail(f"subset.size={config.subset.size} must be >= 1")
    if not 0.5 <= config.report.interval < 1:
        fail(f"report.interval={config.report.interval} must be in [0.5, 1), e.g. 0.95")
    if isinstance(config.gpus, int) and config.gpus < 1:
        fail(f"gpus={config.gpus} must be >= 1 (a count), or a list of GPU ids")
    if isinstance(config.gpus, tuple):
        if not config.gpus or any(g < 0 for g in config.gpus):
            fail(f"gpus={list(config.gpus)} must list GPU ids >= 0, e.g. [0, 1, 2, 3]")
        if len(set(config.gpus)) != len(config.gpus):
            fail(f"gpus={list(config.gpus)} names a GPU twice")
    if config.max_parallel is not None and config.max_parallel < 1:
        fail(f"max_parallel={config.max_parallel} must be >= 1")
    if config.gpu_memory_gb is not None and config.gpu_memory_gb <= 0:
        fail(f"gpu_memory_gb={config.gpu_memory_gb} must be > 0, e.g. 80")
    if config.ray is not None and config.scheduler == "sequential":
        fail("'ray' runs models in parallel on a cluster; drop 'ray' or scheduler: sequential")
    _check_shards(config, fail)
    if config.report.resamples < 100:
        fail(f"report.resamples={config.report.resamples} is too few; use >= 1000")
    typed = {"deita_path", "deita_dataset", "deita_split", "on_bad_row", "scorers"}
    clash = sorted(k for k in config.metadata if k in typed or k.startswith("reward_"))
    if clash:
        fail(
            f"metadata sets {clash}; set these through 'data', 'reward' and 'scorers' instead "
            "(metadata is for other task options)"
        )
    labels = [b.label or b.task for b in config.benchmarks]
    for b in config.benchmarks:
        if b.task in config.tasks:
            fail(f"benchmark {b.task!r} is also in 'tasks'; list it in one place")
        if labels.count(b.label or b.task) > 1:
            fail(f"benchmark label {b.label or b.task!r} is used twice")
    if config.judge is not None:
        check_judge(config.judge, source)
    available = _available_scorers()
    if config.scorers is not None and available is not None:
        for name in config.scorers:
            if name not in available:
                hint = difflib.get_close_matches(name, available, n=1)
                fail(
                    f"scorer {name!r} is not available in this install"
                    + (f" (did you mean {hint[0]!r}?)" if hint else "")
                    + f". Available: {', '.join(sorted(available)) or 'none'}."
                )
    if config.reward:
        enabled = config.scorers if config.scorers is not None else _default_scorers()
        if "reward" not in enabled:
            fail(
                f"'reward' settings are given but the reward scorer is off (scorers: "
                f"{list(enabled)}); add reward to 'scorers' or drop the 'reward' section"
            )
        _check_reward(config.reward, source)
    if config.charactereval is not None or "charactereval" in config.tasks:
        from rgen_harness.study.charactereval import check_config

        check_config(config, source)


def _check_shards(config: StudyConfig, fail) -> None:
    where = [("shards", config.shards)] + [
        (f"models[{m.name}].shards", m.shards) for m in config.models if m.shards is not None
    ]
    for key, value in where:
        if isinstance(value, int) and value < 1:
            fail(f"{key}={value} must be >= 1 (1: one engine per model), or auto")
    fixed = [key for key, value in where if isinstance(value, int) and value > 1]
    if fixed and config.scoring == "inline":
        fail(
            f"{fixed[0]} splits a model over several engines, whose replies are merged and then "
            "scored; that needs the scoring phase: set scoring: auto (or separate), or shards: 1"
        )
    if fixed and config.scheduler == "sequential":
        fail(f"{fixed[0]} runs shards side by side; drop it or set scheduler: auto")


def explicit_shards(config: StudyConfig) -> bool:
    """Whether the config asks for more than one engine for some model."""
    values = [config.shards, *(m.shards for m in config.models)]
    return any(isinstance(v, int) and v > 1 for v in values)


def _check_reward(reward: dict[str, Any], source: str) -> None:
    """Validate the reward settings with the reward scorer's own typed config."""
    try:
        from rgen_harness.metrics.reward.config import RewardConfig
    except ImportError:  # no reward scorer in this install: lm-eval will report it
        return
    known = [f.name for f in dataclasses.fields(RewardConfig)]
    for key in reward:
        if key not in known:
            raise StudyConfigError(f"{source}: reward: " + _unknown("key", key, known))
    try:
        RewardConfig.from_values(dict(reward), source="reward.")
    except (TypeError, ValueError) as e:
        raise StudyConfigError(f"{source}: {e}") from e


def _available_scorers() -> list[str] | None:
    try:
        from rgen_harness.metrics import scorers
    except ImportError:  # an install without reply scorers: lm-eval will say what is missing
        return None
    return list(getattr(scorers, "SCORER_FACTORIES", {}))


def _default_scorers() -> tuple[str, ...]:
    try:
        from rgen_harness.metrics import scorers
    except ImportError:
        return ()
    return tuple(getattr(scorers, "DEFAULT_SCORERS", ()))


# -- generic typed construction ----------------------------------------------------------------


def _unknown(kind: str, name: str, valid: list[str]) -> str:
    close = difflib.get_close_matches(name, valid, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return f"unknown {kind} {name!r}.{hint} Valid: {', '.join(valid)}."


def _build(cls: type, data: Any, where: str):
    if not isinstance(data, dict):
        raise StudyConfigError(f"{where}: expected a mapping for {cls.__name__}, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in data:
        if key not in fields or not fields[key].init:
            raise StudyConfigError(f"{where}: " + _unknown("key", str(key), list(fields)))
    kwargs = {}
    for name, f in fields.items():
        if not f.init:
            continue
        if name in data:
            kwargs[name] = _coerce(hints[name], data[name], f"{where}.{name}")
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise StudyConfigError(f"{where}: missing required key {name!r}")
    return cls(**kwargs)


def _coerce(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(arg, value, where)
            except StudyConfigError as e:
                errors.append(str(e))
        raise StudyConfigError(errors[0] if len(errors) == 1 else f"{where}: bad value {value!r}")
    if origin is Literal:
        if value not in args:
            close = difflib.get_close_matches(str(value), [str(a) for a in args], n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise StudyConfigError(
                f"{where}: {value!r} is not one of {', '.join(map(str, args))}.{hint}"
            )
        return value
    if origin is tuple:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list):
            raise StudyConfigError(f"{where}: expected a list, got {value!r}")
        return tuple(_coerce(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise StudyConfigError(f"{where}: expected a mapping, got {value!r}")
        return {str(k): v for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, where)
    if tp is bool:
        if not isinstance(value, bool):
            raise StudyConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise StudyConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise StudyConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise StudyConfigError(f"{where}: expected a string, got {value!r}")
        return str(value)
    raise StudyConfigError(f"{where}: unsupported type {tp!r}")  # a bug in this module


def _expand_env(value: Any, where: str, refs: list) -> Any:
    """`value` with `${VAR}`s replaced; each expanded string is added to `refs` as
    (expanded, as written, the values of its variables)."""
    if isinstance(value, dict):
        return {k: _expand_env(v, f"{where}.{k}", refs) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand_env(v, where, refs) for v in value]
    if not isinstance(value, str) or "${" not in value:
        return value
    from rgen_harness.env_refs import UnsetVariable, substitute

    try:
        expanded, values = substitute(value, where, "the environment")
    except UnsetVariable as e:
        raise StudyConfigError(f"{e} in the config") from None
    refs.append((expanded, value, values))
    return expanded
