"""The inference seam between `LMDeployLM` and lmdeploy.

`InferenceEngine` is the small part of lmdeploy's `Pipeline` surface the model class uses:
`infer` (strings or message lists, one or many `GenerationConfig`, lmdeploy `Response`
objects back in input order, errors as `finish_reason='error'`), exact prompt log-probabilities,
an optional reward score, and close / sleep / wakeup. `LMDeployEngine` is the real one, built by
`build_lmdeploy_engine` with `lmdeploy.pipeline`.

Testing seam: `RGEN_HARNESS_LMDEPLOY_ENGINE=module:factory` makes `create_engine` call that
factory instead (same `EngineSpec`, same protocol), so `lm_eval --model lmdeploy ...` runs the
real model class with only inference replaced. `rgen_harness.models.hf_standin:build_hf_standin`
is such a factory, backed by a small transformers model on CPU.

Every engine created here is listed in a registry: `release_all()` closes them all and frees GPU
memory, e.g. before a large reward model loads in the same process.
"""

from __future__ import annotations

import asyncio
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
    backend: Literal["turbomind", "pytorch"]  # resolved, never "auto"
    session_len: int
    closed: bool

    def infer(
        self,
        prompts: Sequence[Prompt],
        gen_config: Any | Sequence[Any],
        *,
        do_preprocess: bool = True,
        adapter_name: str | None = None,
        use_tqdm: bool = False,
    ) -> list[Any]:
        """lmdeploy `Pipeline.infer` on a list: every prompt submitted at once, Responses in
        input order. A failed request is a Response with finish_reason='error'."""
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
        raise ValueError(
            f"{ENGINE_ENV}={target!r} must be 'module:factory', e.g. "
            "rgen_harness.models.hf_standin:build_hf_standin"
        )
    factory = getattr(importlib.import_module(module_name), attr)
    log.warning("lmdeploy inference replaced by %s (%s is set)", target, ENGINE_ENV)
    return factory


def create_engine(spec: EngineSpec, factory=None) -> InferenceEngine:
    """Build an engine with `factory` (default: `engine_factory()`) and list it as live."""
    factory = factory or engine_factory()
    engine = factory(spec)
    for name in ("infer", "prompt_logprobs", "close", "backend", "session_len"):
        if not hasattr(engine, name):
            raise TypeError(f"engine factory {factory!r} returned an engine without {name}")
    return register(engine)


# -- the real engine ----------------------------------------------------------------------------
def resolve_backend(spec: EngineSpec) -> Literal["turbomind", "pytorch"]:
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
                "a GPU machine, or use --model hf on the CPU. (Tests replace the engine with "
                f"{ENGINE_ENV}=rgen_harness.models.hf_standin:build_hf_standin.)"
            )
    import lmdeploy

    backend = resolve_backend(spec)
    config = spec.args.engine_config(backend)
    pipe = lmdeploy.pipeline(
        spec.model_path,
        backend_config=config,
        log_level=spec.log_level,
        trust_remote_code=spec.args.trust_remote_code,
    )
    return LMDeployEngine(pipe, backend)


class LMDeployEngine:
    """`InferenceEngine` over a real `lmdeploy.Pipeline`."""

    def __init__(self, pipe, backend: Literal["turbomind", "pytorch"]) -> None:
        self.pipe = pipe
        self.backend = backend
        self.session_len = int(pipe.async_engine.session_len)
        self.closed = False

    def infer(self, prompts, gen_config, *, do_preprocess=True, adapter_name=None, use_tqdm=False):
        if not prompts:
            return []
        out = self.pipe.infer(
            list(prompts),
            gen_config=list(gen_config) if isinstance(gen_config, (list, tuple)) else gen_config,
            do_preprocess=do_preprocess,
            adapter_name=adapter_name,
            use_tqdm=use_tqdm,
        )
        return out if isinstance(out, list) else [out]

    def prompt_logprobs(
        self, input_ids, logprob_start_lens, *, top_k=1, adapter_name=None, use_tqdm=False
    ):
        """Token-id requests through AsyncEngine.preprocess/generate (Pipeline.infer only takes
        text), on the pipeline's own event loop, all submitted at once under its limiter."""
        from lmdeploy import GenerationConfig
        from lmdeploy.messages import Response
        from lmdeploy.serve.core.exceptions import ErrorCode, RequestError
        from tqdm import tqdm

        if not input_ids:
            return []
        pipe, engine = self.pipe, self.pipe.async_engine
        bar = tqdm(total=len(input_ids), desc="lmdeploy prompt logprobs", disable=not use_tqdm)

        async def one(idx: int, ids: list[int], start: int):
            gen_config = GenerationConfig(max_new_tokens=0, logprobs=top_k, logprob_start_len=start)
            async with pipe._get_limiter():
                try:
                    request = await engine.preprocess(
                        messages=None,
                        session_id=pipe.session_mgr.get(),
                        gen_config=gen_config,
                        input_ids=list(ids),
                        adapter_name=adapter_name,
                    )
                    final = None
                    async for out in engine.generate(request, stream_response=False):
                        resp = out.to_response(idx)
                        final = resp if final is None else final.extend(resp)
                    return final
                except RequestError as e:
                    code, message = e.code.value, e.message
                except Exception as e:  # the engine's own safety net does the same
                    code, message = ErrorCode.INTERNAL_ERROR.value, f"{type(e).__name__}: {e}"
                finally:
                    bar.update(1)
            return Response(
                text="",
                generate_token_len=0,
                input_token_len=len(ids),
                finish_reason="error",
                index=idx,
                error_code=code,
                error_message=message,
            )

        async def gather():
            pairs = zip(input_ids, logprob_start_lens, strict=True)
            return await asyncio.gather(*(one(i, ids, s) for i, (ids, s) in enumerate(pairs)))

        try:
            future = asyncio.run_coroutine_threadsafe(gather(), pipe.internal_thread.loop)
            return list(future.result())
        finally:
            bar.close()

    def get_reward_score(self, input_ids):
        return self.pipe.get_reward_score(input_ids)

    def sleep(self, level: int = 1) -> None:
        future = asyncio.run_coroutine_threadsafe(
            self.pipe.async_engine.sleep(level), self.pipe.internal_thread.loop
        )
        future.result()

    def wakeup(self) -> None:
        self.pipe.async_engine.wakeup()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        pipe, self.pipe = self.pipe, None
        pipe.close()
        del pipe
        free_memory()
