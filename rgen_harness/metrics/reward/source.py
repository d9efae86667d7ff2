"""Where the reward model comes from, checked cheaply at task start (before any generation).

A local folder is used as is; a hub id is looked up in the Hugging Face cache first and only
then on the hub (HF_ENDPOINT mirrors apply). The `key` names the exact weights for the score
cache: the commit hash for hub models, the folder and the newest file time for local ones.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from rgen_harness.metrics.reward.config import RewardConfig

NOT_FOUND_FIX = (
    'Point at a local copy with --metadata \'{{"reward_model": "/path/to/{name}"}}\' '
    "(e.g. after `huggingface-cli download {model}` on a machine with access), set HF_ENDPOINT "
    'to a reachable mirror, or disable reward scoring with --metadata \'{{"scorers": "none"}}\'.'
)


class RewardModelUnavailable(RuntimeError):
    """The reward model can be found neither locally, in the HF cache, nor on the hub."""


@dataclass(frozen=True)
class ModelSource:
    name: str  # what the user gave
    path: str  # local folder, or the hub id when not yet downloaded
    key: str  # identifies the exact weights (cache key)
    config: dict  # config.json (empty when not downloaded yet)

    @property
    def architectures(self) -> list[str]:
        return list(self.config.get("architectures") or [])


def resolve(config: RewardConfig, *, check_hub: bool = True) -> ModelSource:
    local = Path(config.model).expanduser()
    if local.is_dir():
        return _local(config.model, local)
    if local.is_absolute() or config.model.startswith((".", "~")):
        raise RewardModelUnavailable(
            f"reward_model={config.model!r} is not a folder. Give an existing local folder or a "
            'hub id, or disable reward scoring with --metadata \'{"scorers": "none"}\'.'
        )
    return _hub(config, check_hub=check_hub)


def _local(name: str, folder: Path) -> ModelSource:
    folder = folder.resolve()
    config_file = folder / "config.json"
    if not config_file.is_file():
        raise RewardModelUnavailable(
            f"reward_model={name!r}: {folder} has no config.json; give the folder that holds the "
            "reward model's config, weights and tokenizer."
        )
    newest = max(p.stat().st_mtime_ns for p in folder.iterdir() if p.is_file())
    return ModelSource(name, str(folder), f"local:{folder}@{newest}", _read_json(config_file))


def _hub(config: RewardConfig, *, check_hub: bool) -> ModelSource:
    from huggingface_hub import constants, snapshot_download

    name = config.model
    fix = NOT_FOUND_FIX.format(name=name.rsplit("/", 1)[-1], model=name)
    try:
        cached = Path(
            snapshot_download(
                name,
                revision=config.revision,
                local_files_only=True,
                allow_patterns=["config.json"],
            )
        )
    except Exception:
        cached = None
    if cached is not None and (cached / "config.json").is_file():
        return ModelSource(
            name, name, f"hub:{name}@{cached.name}", _read_json(cached / "config.json")
        )
    if constants.HF_HUB_OFFLINE:
        raise RewardModelUnavailable(
            f"reward model {name!r} is not in the Hugging Face cache and HF_HUB_OFFLINE is set. "
            + fix
        )
    if not check_hub:
        return ModelSource(name, name, f"hub:{name}@{config.revision or 'main'}", {})
    try:
        from huggingface_hub import HfApi

        info = HfApi().model_info(name, revision=config.revision, timeout=20)
    except Exception as e:
        raise RewardModelUnavailable(
            f"reward model {name!r} could not be reached on the hub "
            f"({type(e).__name__}: {str(e)[:200]}). " + fix
        ) from e
    return ModelSource(name, name, f"hub:{name}@{info.sha}", {})


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise RewardModelUnavailable(f"cannot read {path}: {e}") from e
