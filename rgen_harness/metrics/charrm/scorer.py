"""The `charrm` scorer: every (example, metric) pair of a run scored by BaichuanCharRM at once.

A pair is the example's profile text and context, the reply's first line and one metric's
Chinese name (render.py). Inputs are tokenised once, looked up in the reward score cache
(SQLite, keyed by the model's exact weights and the sha256 of the ids: a rerun or a rescoring
never scores an input twice), and the rest scored in length-sorted batches, written to the
cache after each batch. A batch that fails gives NaN for its pairs (counted as failed).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

from rgen_harness.metrics.charrm.model import CharRMModel, ScoringError, consent_error
from rgen_harness.metrics.charrm.options import CharRMOptions
from rgen_harness.metrics.charrm.render import encode_many, input_text

log = logging.getLogger(__name__)
NAN = math.nan

# Loaded tokenizers and models, shared by every scorer of the process.
_LOADED: dict[tuple, Any] = {}


@dataclass(frozen=True)
class Pair:
    role_info: str
    context: str
    response: str  # the reply's first line
    dimension_zh: str

    @property
    def text(self) -> str:
        return input_text(self.role_info, self.context, self.response, self.dimension_zh)


def from_metadata(metadata: dict[str, Any]) -> CharRMScorer:
    """Reads the `charrm_*` keys and checks, before any generation, that the model can be
    found and that loading its code was consented to."""
    return CharRMScorer(CharRMOptions.from_metadata(metadata))


class CharRMScorer:
    name = "charrm"

    def __init__(self, options: CharRMOptions, *, check: bool = True) -> None:
        from rgen_harness.metrics.reward.config import RewardConfig
        from rgen_harness.metrics.reward.source import resolve

        self.options = options
        self.revision = options.revision or None
        where = RewardConfig(model=options.model, revision=self.revision)
        self.source = resolve(where, check_hub=check)
        if not options.trust_remote_code:
            raise consent_error(options.model, "modeling_baichuan.py")
        self.stats = {"cache_hits": 0, "scored": 0, "batches": 0}

    # -- lazy loading ---------------------------------------------------------------------
    @property
    def tokenizer(self):
        key = ("tokenizer", self.source.key)
        if key not in _LOADED:
            from rgen_harness.metrics.charrm.model import load_tokenizer

            _LOADED[key] = load_tokenizer(
                self.source.path, revision=self.revision, trust_remote_code=True
            )
        return _LOADED[key]

    @property
    def cache_key(self) -> str:
        from rgen_harness.metrics.charrm.model import resolve_device, resolve_dtype

        device = resolve_device(self.options.device)
        numerics = f"{resolve_dtype(self.options.dtype, device)}@{device.split(':')[0]}"
        return f"charrm|{self.source.key}|{numerics}"

    def model(self) -> CharRMModel:
        opts = self.options
        key = ("model", self.cache_key, opts.device)
        if key not in _LOADED:
            _LOADED[key] = CharRMModel(
                self.source.path,
                revision=self.revision,
                trust_remote_code=opts.trust_remote_code,
                dtype=opts.dtype,
                device=opts.device,
            )
        return _LOADED[key]

    # -- scoring --------------------------------------------------------------------------
    def encode(self, pairs: list[Pair]) -> list[list[int]]:
        return encode_many(
            self.tokenizer, [p.text for p in pairs], max_length=self.options.max_length
        )

    def score(self, pairs: list[Pair], *, desc: str = "charrm") -> list[float]:
        """One 1-5 score per pair, NaN where its batch failed."""
        from rgen_harness.metrics.reward.cache import ids_digest

        ids = self.encode(pairs)
        digests = [ids_digest(x) for x in ids]
        jobs = dict(zip(digests, ids, strict=True))
        scores = self.score_ids(jobs, desc=desc)
        return [scores.get(d, NAN) for d in digests]

    def score_ids(self, jobs: dict[str, list[int]], *, desc: str) -> dict[str, float]:
        from rgen_harness.metrics.reward.cached_scoring import score_cached

        return score_cached(
            jobs,
            cache_dir=self.options.cache_dir,
            cache_key=self.cache_key,
            load=self.model,
            failure=ScoringError,
            batch_size=self.options.batch_size,
            batch_tokens=self.options.batch_tokens,
            stats=self.stats,
            scored_stat="scored",
            name="charrm",
            desc=desc,
        )
