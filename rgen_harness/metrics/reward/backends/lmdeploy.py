"""lmdeploy reward backend: the PyTorch engine's value head at the last position, on token ids.

Each input is its own prefill-only request through the Pipeline's request machinery (what
`Pipeline.get_reward_score` sends, `output_logits='all'`), so an input the engine rejects (over
its KV-cache-bounded length) or fails scores NaN alone, counted as a scoring failure, instead of
failing its whole batch; the architecture is checked as `get_reward_score` checks it.

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
        arch = self.pipe.async_engine.arch
        if arch not in SUPPORTED_ARCHS:  # as Pipeline.get_reward_score refuses it
            self.close()
            raise BackendError(
                f"{path} is a {arch}; lmdeploy scores only {', '.join(SUPPORTED_ARCHS)}. "
                "Use reward_backend hf for other reward models."
            )
        from rgen_harness.models.engine import LMDeployEngine

        self.engine = LMDeployEngine(self.pipe, self.pipe.async_engine.backend)
        self.failures: list[str] = []  # engine messages of inputs that scored NaN

    def score(self, batch: list[list[int]]) -> list[float]:
        try:
            outputs = self.engine.last_position_logits(batch)
        except Exception as e:
            raise BackendError(f"lmdeploy reward scoring: {type(e).__name__}: {e}") from e
        if len(outputs) != len(batch):
            raise BackendError(f"lmdeploy returned {len(outputs)} scores for {len(batch)} inputs")
        scores = []
        for ids, (logits, error) in zip(batch, outputs, strict=True):
            if error is not None:
                log.warning("reward input of %d tokens not scored: %s", len(ids), error)
                self.failures.append(error)
                scores.append(float("nan"))
                continue
            scores.append(float(logits.squeeze()[-1]))  # the value head at the last position
        return scores

    def close(self) -> None:
        pipe, self.pipe = getattr(self, "pipe", None), None
        if pipe is not None:
            pipe.close()
        from rgen_harness.models.engine import free_memory

        free_memory()
