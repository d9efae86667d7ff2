"""The `reward` reply scorer: the references of a task, then its replies, scored in batched passes.

Per reply it reports `reward` (NaN when not scored), `reference_reward` (the dataset's reply for
the same history), `reward_failed` (1: empty reply, NaN/inf score, engine or HTTP error),
`reward_too_long` (1: even the last user turn and the reply exceed the reward model's length),
`reward_dropped_turns` and `reward_n` (1 when scored). Replies whose generation was skipped or
failed are not scored and not counted here (the `skipped` / `failed` metrics count them).
"""

from __future__ import annotations

import importlib.util
import logging
import math
from collections import Counter
from dataclasses import dataclass, replace
from typing import Any

from rgen_harness.metrics.model_kind import check_reward_model
from rgen_harness.metrics.reward.backends import BackendError, RewardBackend
from rgen_harness.metrics.reward.cache import ids_digest
from rgen_harness.metrics.reward.cached_scoring import score_cached
from rgen_harness.metrics.reward.config import RewardConfig
from rgen_harness.metrics.reward.render import (
    ContextTooLong,
    RewardRenderer,
    load_model_config,
    load_tokenizer,
)
from rgen_harness.metrics.reward.source import ModelSource, resolve
from rgen_harness.metrics.scorers import MetricSpec, ScoredItem

log = logging.getLogger(__name__)
NAN = math.nan

REPLY_METRICS = (
    MetricSpec("reward", "nanmean", True),
    MetricSpec("reward_n", "sum", True),
    MetricSpec("reward_failed", "sum", False),
    MetricSpec("reward_too_long", "sum", False),
    MetricSpec("reward_dropped_turns", "nanmean", False),
)
REFERENCE_METRIC = MetricSpec("reference_reward", "nanmean", True)
DEFAULT_BATCH_SIZE = {"hf": 8, "lmdeploy": 64, "server": 64}

# Loaded models are shared by every scorer of the process (deita_qr and deita_qcr load once).
_LOADED: dict[tuple, Any] = {}


@dataclass
class _Job:
    ids: list[int]
    digest: str


def from_metadata(metadata: dict[str, Any]) -> RewardScorer:
    """Factory named in SCORER_FACTORIES: validates the `reward_*` keys and checks, cheaply,
    that the model and backend can be reached, so a bad setting fails before generation."""
    config = RewardConfig.from_metadata(metadata)
    return RewardScorer(preflight(config))


def preflight(config: RewardConfig) -> RewardConfig:
    """The config with `backend` resolved, the model's location and the cache folder checked."""
    from rgen_harness.metrics.reward.cache import check_folder

    check_folder(config.cache_dir)
    source = resolve(config)
    backend = config.backend
    if backend == "server":
        from rgen_harness.metrics.reward.backends.server import check_reachable

        check_reachable(config.url)
        return config
    model_config = source.config or load_model_config(source.path, revision=config.revision)
    check_reward_model("reward_model", config.model, model_config)
    archs = model_config.get("architectures") or []
    from rgen_harness.metrics.reward.backends.lmdeploy import INSTALL_HINT, SUPPORTED_ARCHS

    if backend == "auto":
        backend = "lmdeploy" if set(archs) & set(SUPPORTED_ARCHS) and _lmdeploy_usable() else "hf"
    if backend == "lmdeploy":
        if not set(archs) & set(SUPPORTED_ARCHS):
            raise ValueError(
                f"reward_backend lmdeploy supports {', '.join(SUPPORTED_ARCHS)}; "
                f"{config.model} is {archs or 'of unknown architecture'}. Use reward_backend hf."
            )
        if importlib.util.find_spec("lmdeploy") is None:
            raise ImportError(f"reward_backend lmdeploy needs lmdeploy: {INSTALL_HINT}")
        if not _cuda() and not _engine_replaced():
            raise RuntimeError(
                "reward_backend lmdeploy needs a CUDA GPU (lmdeploy cannot run on the CPU); "
                "use reward_backend hf, or server with a reward server elsewhere."
            )
        if config.dtype == "float32":
            raise ValueError("lmdeploy runs bfloat16/float16 only: set reward_dtype auto.")
    if backend == "hf" and config.device.startswith("cuda") and not _cuda():
        raise RuntimeError(f"reward_device={config.device!r} but CUDA is not available.")
    return replace(config, backend=backend)


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _engine_replaced() -> bool:
    """lmdeploy's engine is replaced (RGEN_HARNESS_LMDEPLOY_ENGINE, e.g. the CPU engine)."""
    import os

    from rgen_harness.models.engine import ENGINE_ENV

    return bool(os.environ.get(ENGINE_ENV, "").strip())


def _lmdeploy_usable() -> bool:
    return importlib.util.find_spec("lmdeploy") is not None and _cuda()


class RewardScorer:
    name = "reward"

    def __init__(self, config: RewardConfig, *, backend: RewardBackend | None = None) -> None:
        """`config.backend` must be resolved (see `preflight`); `backend` overrides the one the
        config names (same interface), e.g. to reuse a loaded model."""
        if config.backend == "auto":
            raise ValueError("RewardScorer needs a resolved backend: pass preflight(config)")
        self.config = config
        self._backend = backend
        self._source: ModelSource | None = None
        self._renderer: RewardRenderer | None = None
        self.stats: Counter = Counter()

    @property
    def metrics(self) -> tuple[MetricSpec, ...]:
        return REPLY_METRICS + ((REFERENCE_METRIC,) if self.config.reference else ())

    # -- lazy loading ---------------------------------------------------------------------
    @property
    def source(self) -> ModelSource:
        if self._source is None:
            self._source = resolve(self.config, check_hub=False)
        return self._source

    @property
    def renderer(self) -> RewardRenderer:
        if self._renderer is None:
            cfg, src = self.config, self.source
            key = ("renderer", src.key, cfg.max_length)
            if key not in _LOADED:
                tokenizer = load_tokenizer(
                    src.path, revision=cfg.revision, trust_remote_code=cfg.trust_remote_code
                )
                model_config = src.config or load_model_config(src.path, revision=cfg.revision)
                _LOADED[key] = RewardRenderer(tokenizer, model_config, max_length=cfg.max_length)
            self._renderer = _LOADED[key]
        return self._renderer

    @property
    def batch_size(self) -> int:
        return self.config.batch_size or DEFAULT_BATCH_SIZE[self.config.backend]

    @property
    def cache_key(self) -> str:
        cfg = self.config
        if cfg.backend == "hf":
            from rgen_harness.metrics.reward.backends.hf import resolve_device, resolve_dtype

            device = resolve_device(cfg.device)
            numerics = f"{str(resolve_dtype(cfg.dtype, device))}@{device.split(':')[0]}"
        else:
            numerics = cfg.dtype
        return f"{self.source.key}|{cfg.backend}|{numerics}"

    def backend(self) -> RewardBackend:
        if self._backend is None:
            cfg = self.config
            key = ("backend", self.cache_key, cfg.tp, cfg.url, cfg.server_model, cfg.device)
            if key not in _LOADED:
                _LOADED[key] = self._load_backend()
            self._backend = _LOADED[key]
        return self._backend

    def _load_backend(self) -> RewardBackend:
        cfg, src = self.config, self.source
        if cfg.backend == "server":
            from rgen_harness.metrics.reward.backends.server import ServerRewardBackend

            return ServerRewardBackend(
                cfg.url, model=cfg.server_model, timeout=cfg.timeout, retries=cfg.retries
            )
        if cfg.backend == "lmdeploy":
            from rgen_harness.metrics.reward.backends.lmdeploy import LMDeployRewardBackend

            return LMDeployRewardBackend(
                src.path,
                revision=cfg.revision,
                tp=cfg.tp,
                max_length=self.renderer.max_length,
                dtype=cfg.dtype,
                trust_remote_code=cfg.trust_remote_code,
                batch_size=self.batch_size,
            )
        from rgen_harness.metrics.reward.backends.hf import HFRewardBackend

        return HFRewardBackend(
            src.path,
            model_config=src.config or load_model_config(src.path, revision=cfg.revision),
            revision=cfg.revision,
            dtype=cfg.dtype,
            device=cfg.device,
            trust_remote_code=cfg.trust_remote_code,
        )

    # -- scoring --------------------------------------------------------------------------
    def score(self, items: list[ScoredItem]) -> list[dict[str, float]]:
        rows: list[dict[str, float]] = []
        reply_jobs: list[_Job | None] = []
        ref_jobs: list[_Job | None] = []
        reasons: Counter = Counter()
        rendered = self._render_all(items)
        for i, item in enumerate(items):
            row = {spec.name: NAN for spec in self.metrics}
            row.update(reward_n=0.0, reward_failed=0.0, reward_too_long=0.0)
            job = None
            if item.result.status == "ok":
                job = self._reply_job(item, row, reasons, rendered.get(("reply", i)))
            reply_jobs.append(job)
            ref = rendered.get(("reference", i))
            ref_jobs.append(
                self._reference_job(item, reasons, ref) if self.config.reference else None
            )
            rows.append(row)

        task = items[0].task if items else ""
        # References in batches of their own, before the replies: which batch an input lands in
        # changes the last bits of its score (padding, kernel shapes), and every run of a study
        # shares the references through the cache. Scored apart, a reply's batch holds only its
        # run's replies, whichever run scored the references first (one at a time, or side by
        # side in any order), so a study's numbers do not depend on its layout.
        refs = {j.digest: j.ids for j in ref_jobs if j is not None}
        replies = {j.digest: j.ids for j in reply_jobs if j is not None and j.digest not in refs}
        scores = self.score_ids(refs, desc=f"reward {task} references".strip()) if refs else {}
        scores.update(self.score_ids(replies, desc=f"reward {task}".strip()))

        for row, reply, ref in zip(rows, reply_jobs, ref_jobs, strict=True):
            if reply is not None:
                value = scores.get(reply.digest, NAN)
                if math.isfinite(value):
                    row["reward"], row["reward_n"] = value, 1.0
                else:
                    row["reward_failed"], row["reward_dropped_turns"] = 1.0, NAN
                    reasons["no finite score (engine/HTTP error or NaN/inf)"] += 1
            if ref is not None:
                value = scores.get(ref.digest, NAN)
                row["reference_reward"] = value if math.isfinite(value) else NAN
                if not math.isfinite(value):
                    reasons["reference reply not scored"] += 1
        self._log_summary(task, rows, reasons)
        return rows

    def _render_all(self, items: list[ScoredItem]) -> dict[tuple[str, int], Any]:
        """Every input the scorer will score, rendered in one pass (`render_many`): the same
        history comes with several replies, and its text is tokenised once.
        (kind, item index) -> Rendered, or the exception that rendering raised."""
        keys, pairs = [], []
        for i, item in enumerate(items):
            if item.result.status == "ok" and item.reply.strip():
                keys.append(("reply", i))
                pairs.append((item.history, item.reply))
            reference = item.doc.get("reference")
            if (
                self.config.reference
                and isinstance(reference, str)
                and reference.strip()
                and item.history
            ):
                keys.append(("reference", i))
                pairs.append((item.history, reference))
        if not pairs:
            return {}
        return dict(zip(keys, self.renderer.render_many(pairs), strict=True))

    def _reply_job(self, item: ScoredItem, row: dict, reasons: Counter, rendered) -> _Job | None:
        if rendered is None:  # not rendered: an empty reply
            row["reward_failed"] = 1.0
            reasons["empty reply"] += 1
            return None
        if isinstance(rendered, ContextTooLong):
            row["reward_too_long"] = 1.0
            reasons["too long for the reward model"] += 1
            return None
        if isinstance(rendered, Exception):  # a template that rejects this conversation
            row["reward_failed"] = 1.0
            reasons[f"render error: {type(rendered).__name__}"] += 1
            log.warning("reward: cannot render doc %s: %s", item.doc.get("id"), rendered)
            return None
        row["reward_dropped_turns"] = float(rendered.dropped_turns)
        return _Job(rendered.ids, ids_digest(rendered.ids))

    def _reference_job(self, item: ScoredItem, reasons: Counter, rendered) -> _Job | None:
        if rendered is None:  # no reference reply, or no history
            return None
        if isinstance(rendered, Exception):
            reasons["reference reply not scored"] += 1
            return None
        return _Job(rendered.ids, ids_digest(rendered.ids))

    def score_ids(self, jobs: dict[str, list[int]], *, desc: str = "reward") -> dict[str, float]:
        """digest -> score for every input: cached ones read back, the rest scored in
        length-sorted batches (written to the cache after each batch); NaN when a batch fails."""
        return score_cached(
            jobs,
            cache_dir=self.config.cache_dir,
            cache_key=self.cache_key,
            load=self.backend,
            failure=BackendError,
            batch_size=self.batch_size,
            batch_tokens=self.config.batch_tokens,
            stats=self.stats,
            scored_stat="inputs_scored",
            name="reward",
            desc=desc,
        )

    def _log_summary(self, task: str, rows: list[dict], reasons: Counter) -> None:
        scored = int(sum(r["reward_n"] for r in rows))
        log.info("reward %s: %d of %d replies scored", task, scored, len(rows))
        for reason, count in reasons.items():
            log.warning("reward %s: %d x %s", task, count, reason)
