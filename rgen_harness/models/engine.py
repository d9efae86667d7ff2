"""The inference seam between `LMDeployLM` and lmdeploy.

`InferenceEngine` is the part of lmdeploy the model class uses: token-id generation requests
(lmdeploy `Response` objects back in input order, errors as `finish_reason='error'`), exact
prompt log-probabilities, the engine's effective settings, and close / sleep / wakeup.
`LMDeployEngine` implements it over a real `lmdeploy.Pipeline`, built by `open_pipeline`.

`RGEN_HARNESS_LMDEPLOY_ENGINE=module:factory` makes `create_engine` call that factory instead
(same `EngineSpec`, same protocol). `rgen_harness.models.cpu_engine:build_cpu_engine` is the
one for machines without a GPU: the same `LMDeployEngine` over lmdeploy's real Pipeline and
AsyncEngine, with only the engine below them (the forward pass) on a transformers model.

Every engine created here is listed in a registry: `release_all()` closes them all and frees GPU
memory, e.g. before a large reward model loads in the same process.
"""

from __future__ import annotations

import gc
import importlib
import logging
import os
import sys
import threading
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

log = logging.getLogger(__name__)

ENGINE_ENV = "RGEN_HARNESS_LMDEPLOY_ENGINE"
CPU_ENGINE = "rgen_harness.models.cpu_engine:build_cpu_engine"
Prompt = str | list[dict[str, Any]]


@dataclass(frozen=True)
class EngineSpec:
    """What an engine factory needs: the model, the lmdeploy backend and its config object."""

    model_path: str
    backend: Literal["auto", "turbomind", "pytorch"]
    args: Any  # rgen_harness.models.lmdeploy_config.LMDeployArgs
    log_level: str = "WARNING"


@runtime_checkable
class InferenceEngine(Protocol):
    backend: Literal["turbomind", "pytorch"]  # the engine lmdeploy built, never "auto"
    session_len: int
    closed: bool

    def generate(
        self,
        input_ids: Sequence[list[int]],
        gen_configs: Sequence[Any],
        *,
        adapter_name: str | None = None,
        use_tqdm: bool = False,
    ) -> list[Any]:
        """Token-id prompts, all submitted at once; lmdeploy `Response`s in input order. A
        failed request is a Response with finish_reason='error'."""
        ...

    def prompt_logprobs(
        self,
        input_ids: Sequence[list[int]],
        logprob_start_lens: Sequence[int],
        *,
        top_k: int = 1,
        adapter_name: str | None = None,
        use_tqdm: bool = False,
    ) -> list[Any]:
        """Scoring-only requests (max_new_tokens=0, logprobs=top_k, logprob_start_len=N).
        `Response.logprobs[i]` is the row of input_ids[N + 1 + i]: {target id: its logprob,
        then the top-k ids: theirs} (PyTorch engine, logprobs_mode='raw_logprobs')."""
        ...

    def settings(self) -> dict[str, Any]:
        """The engine's effective settings (after lmdeploy's own adjustments)."""
        ...

    def close(self) -> None: ...

    def sleep(self, level: int = 1) -> None: ...

    def wakeup(self) -> None: ...


# -- registry of live engines -------------------------------------------------------------------
_LIVE: weakref.WeakValueDictionary[int, Any] = weakref.WeakValueDictionary()
_LOCK = threading.Lock()


def register(engine: Any) -> Any:
    with _LOCK:
        _LIVE[id(engine)] = engine
    return engine


def live_engines() -> list[Any]:
    with _LOCK:
        return [e for e in _LIVE.values() if not getattr(e, "closed", False)]


def free_memory() -> None:
    """gc plus `torch.cuda.empty_cache()` (only if torch is already loaded and sees a GPU)."""
    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.empty_cache()


def release_all() -> int:
    """Close every live engine and free the GPU memory it held. Returns how many were closed.

    Models that own a released engine build a new one if they are used again."""
    engines = live_engines()
    for engine in engines:
        try:
            engine.close()
        except Exception as e:  # closing is best effort; report, keep releasing the others
            log.warning("closing %s failed: %s: %s", type(engine).__name__, type(e).__name__, e)
    with _LOCK:
        for engine in engines:
            _LIVE.pop(id(engine), None)
    count = len(engines)
    engines = engine = None  # drop the last references before collecting
    free_memory()
    return count


def engine_factory():
    """The real lmdeploy factory, or the one named by RGEN_HARNESS_LMDEPLOY_ENGINE."""
    target = os.environ.get(ENGINE_ENV, "").strip()
    if not target:
        return build_lmdeploy_engine
    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise ValueError(f"{ENGINE_ENV}={target!r} must be 'module:factory', e.g. {CPU_ENGINE}")
    factory = getattr(importlib.import_module(module_name), attr)
    log.warning("lmdeploy inference replaced by %s (%s is set)", target, ENGINE_ENV)
    return factory


def pipeline_function():
    """`lmdeploy.pipeline`, or the `pipeline` function of the module RGEN_HARNESS_LMDEPLOY_ENGINE
    names (same signature), for code that opens a Pipeline itself (the reward backend)."""
    target = os.environ.get(ENGINE_ENV, "").strip()
    if target:
        return importlib.import_module(target.partition(":")[0]).pipeline
    import lmdeploy

    return lmdeploy.pipeline


def create_engine(spec: EngineSpec, factory=None) -> InferenceEngine:
    """Build an engine with `factory` (default: `engine_factory()`) and list it as live."""
    factory = factory or engine_factory()
    engine = factory(spec)
    for name in ("generate", "prompt_logprobs", "settings", "close", "backend", "session_len"):
        if not hasattr(engine, name):
            raise TypeError(f"engine factory {factory!r} returned an engine without {name}")
    return register(engine)


# -- the real engine ----------------------------------------------------------------------------
def resolve_backend(spec: EngineSpec) -> Literal["turbomind", "pytorch"]:
    """lmdeploy's own choice for `auto` (TurboMind when it is built and supports the model)."""
    if spec.backend != "auto":
        return spec.backend
    from lmdeploy.archs import autoget_backend

    return autoget_backend(spec.model_path, trust_remote_code=spec.args.trust_remote_code)


def build_lmdeploy_engine(spec: EngineSpec) -> LMDeployEngine:
    from rgen_harness.models.lmdeploy_config import ModelArgsError, require_lmdeploy

    require_lmdeploy()
    device = (spec.args.device or "cuda").split(":")
    if device[0] == "cpu":
        raise ModelArgsError(
            "lmdeploy runs on GPUs (cuda, ascend, maca, camb), not on the CPU: drop --device cpu "
            "(or use --model hf for CPU runs)."
        )
    if device[0] == "cuda" and len(device) > 1 and device[1] != "0":  # lm-eval's default: cuda:0
        raise ModelArgsError(
            f"--device {spec.args.device}: lmdeploy picks GPUs itself; select them with "
            f"CUDA_VISIBLE_DEVICES={device[1]} and use tp=/dp= for several."
        )
    if device[0] == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise RuntimeError(
                "--model lmdeploy found no CUDA GPU: lmdeploy's engines run on GPUs only. Run on "
                "a GPU machine, or use --model hf on the CPU. (Tests run lmdeploy's own code over "
                f"a CPU forward pass with {ENGINE_ENV}={CPU_ENGINE}.)"
            )
    return open_pipeline(spec)


def open_pipeline(spec: EngineSpec) -> LMDeployEngine:
    """`lmdeploy.pipeline(...)` with the config of the backend lmdeploy resolves, wrapped."""
    import lmdeploy

    backend = resolve_backend(spec)
    config = spec.args.engine_config(backend)
    pipe = lmdeploy.pipeline(
        spec.model_path,
        backend_config=config,
        log_level=spec.log_level,
        trust_remote_code=spec.args.trust_remote_code,
    )
    built = pipe.async_engine.backend
    if built != backend:
        log.warning("lmdeploy built its %s engine (asked for %s)", built, backend)
    return LMDeployEngine(pipe, built)


class LMDeployEngine:
    """`InferenceEngine` over a real `lmdeploy.Pipeline`.

    Requests go in as token ids through the Pipeline's own request machinery (`_infer`: its
    concurrency limiter, `AsyncEngine.preprocess/generate`, errors as `Response` objects), so
    the prompt is tokenised once, by the caller, and lmdeploy adds no second BOS.
    """

    def __init__(self, pipe, backend: Literal["turbomind", "pytorch"]) -> None:
        self.pipe = pipe
        self.backend = backend
        self.session_len = int(pipe.async_engine.session_len)
        self.closed = False
        if not hasattr(pipe, "_infer"):
            raise RuntimeError(
                "this lmdeploy version has no Pipeline._infer; install the supported one: "
                'pip install "lmdeploy>=0.18,<0.19"'
            )

    def settings(self) -> dict[str, Any]:
        config = self.pipe.async_engine.backend_config
        names = ("tp", "dp", "session_len", "max_batch_size", "cache_max_entry_count")
        out = {name: getattr(config, name, None) for name in names}
        out["enable_prefix_caching"] = getattr(config, "enable_prefix_caching", None)
        out["backend"] = self.backend
        return out

    def _check_awake(self) -> None:
        if self.closed:
            raise RuntimeError("the lmdeploy engine was closed")
        if self.pipe.async_engine.is_sleeping:
            raise RuntimeError("the lmdeploy engine is asleep: call wakeup() first")

    def _run(self, input_ids, gen_configs, adapter_name, use_tqdm: bool, desc: str) -> list[Any]:
        from tqdm import tqdm

        self._check_awake()
        if not input_ids:
            return []
        requests = (
            {
                "session_id": self.pipe.session_mgr.get(),
                "messages": None,
                "input_ids": list(ids),
                "gen_config": config,
                "adapter_name": adapter_name,
                "stream_response": False,
            }
            for ids, config in zip(input_ids, gen_configs, strict=True)
        )
        bar = tqdm(total=len(input_ids), desc=desc) if use_tqdm else None
        out = []
        try:
            for parts in self.pipe._infer(requests, multiplex=False, pbar=bar):
                resp = None
                for part in parts:
                    resp = resp.extend(part) if resp is not None else part
                out.append(resp)
        finally:
            if bar is not None:
                bar.close()
        return out

    def generate(self, input_ids, gen_configs, *, adapter_name=None, use_tqdm=False):
        return self._run(input_ids, gen_configs, adapter_name, use_tqdm, "lmdeploy generate")

    def prompt_logprobs(
        self, input_ids, logprob_start_lens, *, top_k=1, adapter_name=None, use_tqdm=False
    ):
        from lmdeploy import GenerationConfig

        configs = [
            GenerationConfig(max_new_tokens=0, logprobs=top_k, logprob_start_len=start)
            for start in logprob_start_lens
        ]
        return self._run(input_ids, configs, adapter_name, use_tqdm, "lmdeploy prompt logprobs")

    def get_reward_score(self, input_ids):
        return self.pipe.get_reward_score(input_ids)

    def sleep(self, level: int = 1) -> None:
        """lmdeploy's level-1 sleep: weights offloaded, KV cache dropped, both restored by
        `wakeup`. Level 2 discards the weights, which `wakeup` does not reload: refused."""
        if level != 1:
            raise ValueError(
                f"sleep(level={level}): only level 1 is restored by wakeup() (level 2 discards "
                "the weights); use release() to free everything."
            )
        self.pipe._run(coro=self.pipe.async_engine.sleep(level)).result()

    def wakeup(self) -> None:
        """On the engine's own event loop, as lmdeploy's server calls it."""
        self.pipe._run(fn=self.pipe.async_engine.wakeup).result()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        pipe, self.pipe = self.pipe, None
        pipe.close()
        del pipe
        free_memory()
