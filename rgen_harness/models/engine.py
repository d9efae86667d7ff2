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


def check_turbomind_supports(spec: EngineSpec) -> None:
    """Refuse backend=turbomind for an architecture TurboMind does not run. lmdeploy itself
    would convert the config to a PyTorch one copying only shared fields
    (`archs.autoget_backend_config`): `logprobs_mode` is lost, so prompt log-probabilities
    come back as raw logits, and TurboMind-only settings are dropped."""
    from lmdeploy.turbomind.supported_models import is_supported

    from rgen_harness.models.lmdeploy_config import ModelArgsError

    if not is_supported(spec.model_path, trust_remote_code=spec.args.trust_remote_code):
        from lmdeploy.archs import get_model_arch

        arch, _ = get_model_arch(spec.model_path, trust_remote_code=spec.args.trust_remote_code)
        raise ModelArgsError(
            f"backend=turbomind: lmdeploy's TurboMind engine does not support {arch} "
            f"({spec.model_path}). Use backend=pytorch, or backend=auto (PyTorch for this model)."
        )


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
    if backend == "turbomind":
        check_turbomind_supports(spec)
    config = spec.args.engine_config(backend)
    try:
        pipe = lmdeploy.pipeline(
            spec.model_path,
            backend_config=config,
            log_level=spec.log_level,
            trust_remote_code=spec.args.trust_remote_code,
        )
    except AssertionError as e:
        if "parallel config" not in str(e):
            raise
        from rgen_harness.models.lmdeploy_config import ModelArgsError

        raise ModelArgsError(
            f"lmdeploy cannot lay tp={spec.args.tp}, dp={spec.args.dp} over the visible GPUs "
            f"({e}). Lower tp/dp to fit, or make more GPUs visible (CUDA_VISIBLE_DEVICES)."
        ) from None
    built = pipe.async_engine.backend
    if built != backend:
        log.warning("lmdeploy built its %s engine (asked for %s)", built, backend)
    engine = LMDeployEngine(pipe, built)
    layout = engine.settings()
    if layout.get("device_num") and layout["device_num"] != spec.args.tp * spec.args.dp:
        log.warning(
            "lmdeploy laid tp=%d, dp=%d over %d GPU(s) (attention tp %s x dp %s): the layout "
            "differs from the request; it is reported in the results as it ran",
            spec.args.tp,
            spec.args.dp,
            layout["device_num"],
            layout.get("attn_tp_size"),
            layout.get("attn_dp_size"),
        )
    return engine


class LMDeployEngine:
    """`InferenceEngine` over a real `lmdeploy.Pipeline`.

    Requests go in as token ids through the Pipeline's own request machinery (`_infer`: its
    concurrency limiter, `AsyncEngine.preprocess/generate`, errors as `Response` objects), so
    the prompt is tokenised once, by the caller, and lmdeploy adds no second BOS.
    """

    def __init__(self, pipe, backend: Literal["turbomind", "pytorch"]) -> None:
        self.pipe = pipe
        self.backend = backend
        engine = pipe.async_engine.engine
        # The longest input the engine accepts: the PyTorch engine caps it at the KV pool minus
        # one block (`Engine._get_max_session_len`) and rejects longer inputs.
        limits = [int(pipe.async_engine.session_len)]
        if getattr(engine, "max_session_len", None):
            limits.append(int(engine.max_session_len))
        self.session_len = min(limits)
        self.closed = False
        if not hasattr(pipe, "_infer"):
            raise RuntimeError(
                "this lmdeploy version has no Pipeline._infer; install the supported one: "
                'pip install "lmdeploy>=0.18,<0.19"'
            )

    def settings(self) -> dict[str, Any]:
        """The engine's own config (after lmdeploy's adjustments: TurboMind's parallel layout,
        the PyTorch engine's ConfigBuilder), read from the engine lmdeploy built."""
        config = getattr(self.pipe.async_engine.engine, "engine_config", None)
        config = config or self.pipe.async_engine.backend_config
        names = (
            "tp",
            "dp",
            "max_batch_size",
            "cache_max_entry_count",
            "enable_prefix_caching",
            "device_num",
            "attn_tp_size",
            "attn_dp_size",
            "outer_dp_size",
            "logprobs_mode",
            "hf_overrides",
        )
        out = {name: getattr(config, name, None) for name in names}
        out = {k: v for k, v in out.items() if v is not None}
        out["session_len"] = self.session_len
        out["backend"] = self.backend
        return out

    def prefix_cache_tokens(self) -> int | None:
        """Tokens the KV cache holds for prefix caching: 0 when it is off, None when the engine
        does not say (TurboMind); the PyTorch engine's `cache_config` blocks x block size."""
        if not self.settings().get("enable_prefix_caching"):
            return 0
        cache = getattr(self.pipe.async_engine.engine, "cache_config", None)
        blocks = getattr(cache, "num_gpu_blocks", None)
        size = getattr(cache, "block_size", None)
        return int(blocks) * int(size) if blocks and size else None

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

    def last_position_logits(self, input_ids) -> list[tuple[Any, str | None]]:
        """Per input, (every position's output, None) or (None, the engine's error): the
        requests `Pipeline.get_reward_score` sends (`AsyncEngine.async_get_logits`:
        `output_logits='all'`, one session each, on the engine's event loop), each standing
        alone. lmdeploy's own loop indexes a failed request's missing logits, which fails the
        whole batch; here one over-long or failed input is one error."""
        self._check_awake()
        if not input_ids:
            return []
        return self.pipe._run(coro=self._logits_all([list(ids) for ids in input_ids])).result()

    async def _logits_all(self, input_ids: list[list[int]]):
        import asyncio

        from lmdeploy import GenerationConfig

        async_engine = self.pipe.async_engine
        max_new = 1 if self.backend == "turbomind" else 0  # as async_get_logits
        config = GenerationConfig(max_new_tokens=max_new, output_logits="all", top_k=1)

        async def one(ids: list[int]):
            session = async_engine.session_mgr.get()
            outputs = None
            try:
                async with session.request_handle() as handle:
                    run = async_engine.safe_run(
                        handle, session=session, input_ids=ids, gen_config=config,
                        stream_output=False,
                    )  # fmt: skip
                    async with run as gen:
                        async for step in gen:
                            outputs = step
            except Exception as e:  # noqa: BLE001  (this input's failure, reported with it)
                return None, f"{type(e).__name__}: {e}"
            finally:
                async_engine.session_mgr.remove(session)
            logits = getattr(outputs, "logits", None)
            if logits is None:
                status = getattr(getattr(outputs, "status", None), "name", "no output")
                return None, f"[{status}] the engine returned no logits"
            return logits[: len(ids)], None

        return await asyncio.gather(*(one(ids) for ids in input_ids))

    def sleep(self, level: int = 1) -> None:
        """lmdeploy's level-1 sleep: weights offloaded, KV cache dropped, both restored by
        `wakeup`. Level 2 discards the weights, which `wakeup` does not reload: refused. With
        prefix caching on, refused too: 0.18's PyTorch engine keeps its block trie across sleep
        while the KV cache comes back empty (lmdeploy issue 4917), so a later prompt sharing a
        prefix would read KV that is not its own."""
        if self.settings().get("enable_prefix_caching"):
            raise ValueError(
                "sleep() with prefix caching on would leave lmdeploy 0.18 serving prefixes from "
                "an emptied KV cache (its block trie survives sleep): use release() to free the "
                "GPU (the next request builds the engine again), or enable_prefix_caching=False."
            )
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
