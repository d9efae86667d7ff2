"""What a run reads besides its settings, recorded in its fingerprint so a changed input is seen.

Settings name the inputs (a data path, a prompts version, a reward model id); the numbers depend
on what is in them. So every deita run's fingerprint also holds:

- `data_sha256`: the content hash of a local data file (streamed: files can be hundreds of MB);
  a file edited in place, same path and same number of rows, changes it;
- `qcr_prompts_sha256`: the content hash of the QCR prompts file (bundled or given by path);
- `reward_model`: the exact reward weights, as the score cache names them (hub commit, or local
  folder and newest file time);
- `tiny_models`: the build settings (seed included) of any tiny model the run uses.

A hub dataset is recorded by id and split only: pin its content by downloading it to a file.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

from rgen_harness.study.config import ModelSpec, StudyConfig, StudyConfigError

_CHUNK = 1 << 20
_HASHES: dict[tuple, str] = {}  # (path, size, mtime) -> sha256, so a study hashes a file once


def file_sha256(path: Path) -> str:
    """sha256 of the file's bytes, read in 1 MiB chunks."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _HASHES:
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            while chunk := f.read(_CHUNK):
                digest.update(chunk)
        _HASHES[key] = digest.hexdigest()
    return _HASHES[key]


log = logging.getLogger(__name__)
_WARNED: set[str] = set()


def deita_inputs(config: StudyConfig, model: ModelSpec, *, dry_run: bool = False) -> dict[str, Any]:
    """The `inputs` entry of a deita run's settings (see the module docstring). In a dry run,
    a reward model the hub cannot be asked about is recorded as unknown instead of failing."""
    metadata = config.task_metadata()
    out: dict[str, Any] = {}
    out.update(_data(metadata))
    if "deita_qcr" in config.tasks:
        out["qcr_prompts_sha256"] = file_sha256(_qcr_prompts_file(metadata.get("qcr_prompts")))
    reward_path = None
    if _reward_enabled(config):
        try:
            key, reward_path = _reward_model(metadata)
        except StudyConfigError as e:
            if not dry_run:
                raise
            key = "unknown (dry run: the hub cannot be asked)"
            if str(e) not in _WARNED:
                _WARNED.add(str(e))
                log.warning("dry run: the reward model's revision is unknown (%s)", e)
        out["reward_model"] = key
    tiny = _tiny_models(config, [model.model_args.get("pretrained"), reward_path])
    if tiny:
        out["tiny_models"] = tiny
    return out


def _data(metadata: dict) -> dict[str, Any]:
    from rgen_harness.data.deita import DeitaSource

    try:
        source = DeitaSource.from_metadata(metadata)
    except (OSError, ValueError) as e:
        raise StudyConfigError(f"data: {e}") from e
    if source.path is None:
        return {"data": source.describe()}
    return {"data": str(source.path), "data_sha256": file_sha256(source.path)}


def _qcr_prompts_file(name: str | None) -> Path:
    from rgen_harness.prompts.qcr import DEFAULT_VERSION, PROMPTS_DIR

    name = str(name or DEFAULT_VERSION)
    path = Path(name) if name.endswith((".yaml", ".yml")) else PROMPTS_DIR / f"{name}.yaml"
    if not path.is_file():
        raise StudyConfigError(
            f"metadata.qcr_prompts={name!r}: no such file ({path}). Give a bundled version "
            "(e.g. qcr_v1) or the path of a .yaml prompts file."
        )
    return path


def _reward_enabled(config: StudyConfig) -> bool:
    if config.scorers is not None:
        return "reward" in config.scorers
    try:
        from rgen_harness.metrics import scorers
    except ImportError:
        return False
    return "reward" in getattr(scorers, "DEFAULT_SCORERS", ())


def _reward_model(metadata: dict) -> tuple[str, str | None]:
    """The reward weights' identity and, for a local folder, its path."""
    from rgen_harness.metrics.reward.config import RewardConfig
    from rgen_harness.metrics.reward.source import RewardModelUnavailable, resolve

    config = RewardConfig.from_metadata(metadata)
    try:
        source = resolve(config)
    except RewardModelUnavailable as e:
        raise StudyConfigError(f"reward: {e}") from e
    local = source.key.startswith("local:")
    return source.key, source.path if local else None


def reward_cache_dir(config: StudyConfig) -> Path | None:
    """The reward score cache folder the deita runs will use (None: off or no reward)."""
    if not _reward_enabled(config):
        return None
    from rgen_harness.metrics.reward.config import RewardConfig

    return RewardConfig.from_metadata(config.task_metadata()).cache_dir


def _tiny_models(config: StudyConfig, used: list) -> list[dict[str, Any]]:
    paths = {str(Path(str(p)).expanduser().resolve()) for p in used if p}
    return [
        {"path": t.path, "kind": t.kind, "arch": t.arch, "seed": t.seed}
        for t in config.tiny_models
        if str(Path(t.path).expanduser().resolve()) in paths
    ]


def model_inputs(config: StudyConfig, model: ModelSpec) -> dict[str, Any]:
    """The `inputs` entry of a benchmark run: only the tiny generator's build settings."""
    tiny = _tiny_models(config, [model.model_args.get("pretrained")])
    return {"tiny_models": tiny} if tiny else {}
