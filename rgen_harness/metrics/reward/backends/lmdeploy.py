"""lmdeploy reward backend: the PyTorch engine's `Pipeline.get_reward_score` on token ids.

Memory plan: a 20B reward model needs ~40 GB in bf16 and a 7B generator with lmdeploy's default
KV cache (80% of the free memory) leaves no room for it on one 80 GB GPU. Scoring runs after all
generation, so the generator is released first (`rgen_harness.models.engine.release_all`, when
the lmdeploy generator backend is installed), then the reward engine starts with its own KV cache
share (`cache_max_entry_count`, default 0.5 here: prefill-only scoring needs little) over `tp`
GPUs. Put the reward model on other GPUs or another node with the `server` backend instead.
"""

from __future__ import annotations

import logging
from pathlib import Path

from rgen_harness.metrics.reward.backends import BackendError

log = logging.getLogger(__name__)

SUPPORTED_ARCHS = ("InternLM2ForRewardModel", "Qwen2ForRewardModel")
INSTALL_HINT = 'pip install "rgen-harness[lmdeploy]"'
KV_CACHE_SHARE = 0.5


def release_generator() -> int:
    """Close every in-process generator engine and free its GPU memory; returns how many."""
    from rgen_harness.models.engine import free_memory, release_all

    closed = release_all()
    free_memory()
    return closed


class LMDeployRewardBackend:
    name = "lmdeploy"

    def __init__(
        self,
        path: str,
        *,
        revision: str | None = None,
        tp: int = 1,
        max_length: int,
        dtype: str = "auto",
        trust_remote_code: bool = True,
        batch_size: int = 64,
    ) -> None:
        try:
            from lmdeploy import PytorchEngineConfig

            from rgen_harness.models.engine import pipeline_function

            pipeline = pipeline_function()
        except ImportError as e:
            raise ImportError(
                f"reward_backend lmdeploy needs lmdeploy: {INSTALL_HINT} "
                "(or use reward_backend hf / server)"
            ) from e
        if release_generator():
            log.info("released the generator engine before loading the reward model")
        if not Path(path).is_dir():
            from huggingface_hub import snapshot_download

            path = snapshot_download(path, revision=revision)
        engine_config = PytorchEngineConfig(
            tp=tp,
            dtype=dtype,
            session_len=max_length + 8,
            max_batch_size=batch_size,
            cache_max_entry_count=KV_CACHE_SHARE,
        )
        self.pipe = pipeline(
            path, backend_config=engine_config, trust_remote_code=trust_remote_code
        )

    def score(self, batch: list[list[int]]) -> list[float]:
        try:
            scores = self.pipe.get_reward_score([list(ids) for ids in batch])
        except Exception as e:
            raise BackendError(f"lmdeploy get_reward_score: {type(e).__name__}: {e}") from e
        if len(scores) != len(batch):
            raise BackendError(f"lmdeploy returned {len(scores)} scores for {len(batch)} inputs")
        return [float(s) for s in scores]

    def close(self) -> None:
        pipe, self.pipe = getattr(self, "pipe", None), None
        if pipe is not None:
            pipe.close()
        from rgen_harness.models.engine import free_memory

        free_memory()
