"""The reward scorer's settings: one typed config, read once from task metadata (`reward_*` keys).

Every key that starts with `reward_` belongs to this config; an unknown one is an error with a
"did you mean" suggestion, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal

DEFAULT_MODEL = "internlm/internlm2-20b-reward"
PREFIX = "reward_"

Backend = Literal["auto", "lmdeploy", "hf", "server"]
BACKENDS = ("auto", "lmdeploy", "hf", "server")
DTYPES = ("auto", "float32", "bfloat16", "float16")


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "rgen_harness" / "reward_scores"


@dataclass(frozen=True)
class RewardConfig:
    """Metadata key = `reward_` + field name (e.g. `reward_backend`)."""

    model: str = DEFAULT_MODEL
    """Hub id or local folder of the reward model (its tokenizer renders the input)."""
    revision: str | None = None
    """Hub revision (branch, tag or commit) of `model`."""
    backend: Backend = "auto"
    """auto: lmdeploy for InternLM2/Qwen2 reward models if CUDA and lmdeploy are there, else hf."""
    tp: int = 1
    """Tensor parallel GPUs for the lmdeploy backend."""
    url: str | None = None
    """Base URL of an `lmdeploy serve api_server` reward model (server backend)."""
    server_model: str | None = None
    """Model name sent in /pooling requests (default: the server's own)."""
    batch_size: int | None = None
    """Inputs per forward pass (hf, default 8) or per engine call / request (default 64)."""
    batch_tokens: int = 65536
    """Upper bound on padded tokens per batch (hf); a longer single reply still runs alone."""
    max_length: int | None = None
    """Longest input in tokens (default: the model's max_position_embeddings)."""
    cache: str = "default"
    """Score cache folder; 'default' = ~/.cache/rgen_harness/reward_scores, 'none' disables."""
    dtype: str = "auto"
    """auto: bfloat16 on CUDA, float32 on CPU."""
    device: str = "auto"
    """hf backend device: auto (cuda if present, else cpu), cpu, cuda, cuda:1, ..."""
    trust_remote_code: bool = True
    """InternLM2 reward models ship their own code; set false to refuse custom code."""
    timeout: float = 120.0
    """Seconds per HTTP request (server backend); a wait over 30 s is announced."""
    retries: int = 2
    """Extra attempts per failed HTTP request (server backend), with a short back-off."""
    reference: bool = True
    """Also score the dataset's reference reply for the same history (`reference_reward`)."""

    @classmethod
    def from_metadata(cls, metadata: dict[str, Any]) -> RewardConfig:
        known = {f.name for f in fields(cls)}
        values: dict[str, Any] = {}
        for key, value in metadata.items():
            if not key.startswith(PREFIX):
                continue
            name = key[len(PREFIX) :]
            if name not in known:
                options = [PREFIX + k for k in sorted(known)]
                close = difflib.get_close_matches(key, options, n=1)
                hint = f" Did you mean {close[0]!r}?" if close else ""
                raise ValueError(
                    f"unknown reward setting {key!r} in --metadata.{hint} "
                    f"Known: {', '.join(options)}."
                )
            values[name] = value
        return cls.from_values(values, source="--metadata key reward_")

    @classmethod
    def from_values(cls, values: dict[str, Any], *, source: str = "") -> RewardConfig:
        """Build from plain values (strings from a command line are converted), validated."""
        converted: dict[str, Any] = {}
        for f in fields(cls):
            if f.name not in values or values[f.name] is None:
                continue
            raw = values[f.name]
            converted[f.name] = _convert(f.name, raw, f.type, source)
        config = cls(**converted)
        config.validate(source)
        return config

    def validate(self, source: str = "") -> None:
        def bad(name: str, why: str) -> ValueError:
            return ValueError(f"{source}{name}={getattr(self, name)!r}: {why}")

        if self.backend not in BACKENDS:
            raise bad("backend", f"use one of {', '.join(BACKENDS)}")
        if self.dtype not in DTYPES:
            raise bad("dtype", f"use one of {', '.join(DTYPES)}")
        if not str(self.model).strip():
            raise bad("model", "give a hub id or a local folder of a reward model")
        for name in ("tp", "batch_size", "batch_tokens"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise bad(name, "must be >= 1")
        if self.max_length is not None and self.max_length < 2:
            raise bad("max_length", "must be >= 2 tokens (or leave it unset)")
        if self.retries < 0 or self.timeout <= 0:
            raise bad("retries" if self.retries < 0 else "timeout", "must be positive")
        if self.backend == "server" and not self.url:
            raise bad(
                "url",
                "the server backend needs the reward server's address, e.g. "
                '--metadata \'{"reward_backend": "server", "reward_url": "http://host:23333"}\'',
            )
        if self.url and not str(self.url).startswith(("http://", "https://")):
            raise bad("url", "must start with http:// or https://")

    @property
    def cache_dir(self) -> Path | None:
        if str(self.cache).lower() in ("none", "off", "false", ""):
            return None
        if self.cache == "default":
            return default_cache_dir()
        return Path(self.cache).expanduser()


def _convert(name: str, raw: Any, annotation: Any, source: str) -> Any:
    kind = str(annotation)
    try:
        if kind == "bool":
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if kind in ("int", "int | None"):
            if isinstance(raw, bool) or (isinstance(raw, float) and not raw.is_integer()):
                raise ValueError(raw)
            return int(raw)
        if kind == "float":
            return float(raw)
        return str(raw)
    except (TypeError, ValueError):
        want = {"bool": "true/false", "int": "an integer", "int | None": "an integer"}.get(
            kind, "a number"
        )
        raise ValueError(f"{source}{name}={raw!r}: expected {want}") from None
