"""What kind of model a scorer was given, read from its config.json (no weights are loaded).

A causal LM given as the reward model would load with a random score head (every reply then
scores noise or fails); one given as the similarity model would embed text with a generator.
Both are caught when the task loads, before any generation, from the architectures the model's
config.json declares:

- reward models: `InternLM2ForRewardModel` (and other `*ForRewardModel`) or
  `*ForSequenceClassification`;
- similarity models: a sentence-transformers folder (`modules.json`), or an encoder whose
  architectures are not a generation, reward or classification head (`BertModel`,
  `XLMRobertaModel`, ...; what the similarity scorer loads with `AutoModel`).
"""

from __future__ import annotations

import json
from pathlib import Path

REWARD_SUFFIXES = ("ForRewardModel", "ForSequenceClassification")
NOT_ENCODER_SUFFIXES = (
    "ForCausalLM",
    "LMHeadModel",
    "ForConditionalGeneration",
    "ForRewardModel",
    "ForSequenceClassification",
)


class WrongModelKind(ValueError):
    """A model of the wrong kind for the setting it was given to."""


def architectures(config: dict) -> list[str]:
    archs = config.get("architectures") or []
    return [str(a) for a in archs] if isinstance(archs, list) else [str(archs)]


def check_reward_model(key: str, model: str, config: dict) -> None:
    """Raise unless `config` (the model's config.json) declares a reward-model architecture."""
    archs = architectures(config)
    if any(a.endswith(REWARD_SUFFIXES) for a in archs):
        return
    what = (
        f"declares architectures {archs}, which are not a reward model"
        if archs
        else "declares no architectures in its config.json, so it cannot be told apart from a "
        "language model"
    )
    raise WrongModelKind(
        f"{key}={model!r} {what}. Give a reward model (architecture InternLM2ForRewardModel "
        "or *ForSequenceClassification), e.g. --metadata "
        '\'{"reward_model": "internlm/internlm2-20b-reward"}\', or score without it: '
        '--metadata \'{"scorers": "rouge"}\'.'
    )


def check_similarity_model(key: str, model: str, config: dict, *, sentence_transformers: bool):
    """Raise if the model is a generator or a classifier rather than a text encoder."""
    archs = architectures(config)
    if sentence_transformers or not any(a.endswith(NOT_ENCODER_SUFFIXES) for a in archs):
        return
    raise WrongModelKind(
        f"{key}={model!r} declares architectures {archs}: a generation or classification "
        "model, not a sentence-embedding model. Give a text encoder, e.g. --metadata "
        '\'{"similarity_model": "BAAI/bge-m3"}\' (any sentence-transformers model or '
        "transformers encoder works)."
    )


class ModelUnreachable(OSError):
    """The model's config.json can be found neither locally, in the HF cache, nor on the hub."""


def read_config(key: str, model: str, *, revision: str | None = None) -> tuple[dict, bool]:
    """(config.json, whether the model is a sentence-transformers model), fetching only those
    small files (from a local folder, the HF cache, or the hub when online)."""
    from transformers.utils import cached_file

    folder = Path(model).expanduser()
    if folder.is_dir():
        if not (folder / "config.json").is_file():
            raise ModelUnreachable(
                f"{key}={model!r}: {folder} has no config.json; give the folder that holds the "
                "model's config, weights and tokenizer."
            )
        return _read_json(key, model, folder / "config.json"), (folder / "modules.json").is_file()
    try:
        path = cached_file(model, "config.json", revision=revision)
        modules = cached_file(
            model,
            "modules.json",
            revision=revision,
            _raise_exceptions_for_missing_entries=False,
            _raise_exceptions_for_connection_errors=False,
        )
    except (OSError, ValueError) as e:
        name = model.rstrip("/").rsplit("/", 1)[-1]
        raise ModelUnreachable(
            f"{key}={model!r} cannot be reached ({str(e).splitlines()[0][:300]}). Give a local "
            f'folder holding its config.json (--metadata \'{{"{key}": "/path/to/{name}"}}\', '
            f"e.g. after `hf download {model}` on a machine with access), or set HF_ENDPOINT to "
            "a reachable mirror."
        ) from e
    if path is None:
        raise ModelUnreachable(f"{key}={model!r}: the model has no config.json.")
    return _read_json(key, model, Path(path)), modules is not None


def _read_json(key: str, model: str, path: Path) -> dict:
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelUnreachable(f"{key}={model!r}: cannot read {path}: {e}") from e
    if not isinstance(config, dict):
        raise ModelUnreachable(f"{key}={model!r}: {path} does not hold a JSON object")
    return config


def check_reward_config_model(config) -> None:
    """`check_reward_model` for a preflighted `RewardConfig` (its model already located, so its
    config.json is local or cached). A served reward model (`reward_backend: server`) is
    whatever the server runs; it is not checked here."""
    from rgen_harness.metrics.reward.render import load_model_config
    from rgen_harness.metrics.reward.source import resolve

    if config.backend == "server":
        return
    source = resolve(config, check_hub=False)
    model_config = source.config or load_model_config(source.path, revision=config.revision)
    check_reward_model("reward_model", config.model, model_config)
