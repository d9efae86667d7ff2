"""The `charrm` scorer's settings: `--metadata` keys `charrm_<field>`, checked at task load."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rgen_harness.metrics.scorer_options import options_from_metadata

PREFIX = "charrm_"
DEFAULT_MODEL = "morecry/BaichuanCharRM"
DTYPES = ("auto", "float32", "bfloat16", "float16")


@dataclass(frozen=True)
class CharRMOptions:
    model: str = DEFAULT_MODEL
    """Local folder or hub id of BaichuanCharRM (its own model code and tokenizer inside)."""
    revision: str = ""
    """Hub revision of `model` (branch, tag or commit); '' for the default branch."""
    trust_remote_code: bool = False
    """Consent to run the model folder's own code (BaichuanCharRM is custom code)."""
    batch_size: int = 8
    """Inputs per forward pass."""
    batch_tokens: int = 32768
    """Upper bound on padded tokens per batch; a longer single input runs alone."""
    max_length: int = 4096
    """Inputs are cut to their last `max_length` tokens (run_char_rm.py: 4096)."""
    dtype: str = "auto"
    """auto: bfloat16 on CUDA (as run_char_rm.py), float32 on CPU."""
    device: str = "auto"
    """auto (cuda if present, else cpu), cpu, cuda, cuda:1, ..."""
    cache: str = "default"
    """Score cache folder: 'default' = the reward scores' cache folder, 'none' disables."""

    def __post_init__(self) -> None:
        def bad(name: str, why: str) -> ValueError:
            return ValueError(f"{PREFIX}{name}={getattr(self, name)!r}: {why}")

        if not str(self.model).strip():
            raise bad("model", "give a local BaichuanCharRM folder or a hub id")
        for name in ("batch_size", "batch_tokens"):
            if getattr(self, name) < 1:
                raise bad(name, "must be >= 1")
        if self.max_length < 2:
            raise bad("max_length", "must be >= 2 tokens")
        if self.dtype not in DTYPES:
            raise bad("dtype", f"use one of {', '.join(DTYPES)}")

    @classmethod
    def from_metadata(cls, metadata: dict[str, Any]) -> CharRMOptions:
        return options_from_metadata(cls, metadata, PREFIX)

    @property
    def cache_dir(self):
        from pathlib import Path

        from rgen_harness.metrics.reward.config import default_cache_dir

        if str(self.cache).lower() in ("none", "off", "false", ""):
            return None
        return default_cache_dir() if self.cache == "default" else Path(self.cache).expanduser()
