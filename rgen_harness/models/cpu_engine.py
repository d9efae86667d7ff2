"""lmdeploy on a CPU: its real Pipeline and AsyncEngine over a transformers forward pass.

lmdeploy's engines (TurboMind, the PyTorch engine) need a GPU. Everything above them runs on a
CPU: `lmdeploy.pipeline`, `Pipeline._infer`, `AsyncEngine.preprocess/generate` (chat template,
lmdeploy's `Tokenizer`, the stop ids it reads from `generation_config.json`, stop-word
conversion, detokenisation, `Response` assembly, the session manager and its event-loop
thread), backend resolution (`autoget_backend`) and `get_reward_score`. This module replaces
only what `AsyncEngine._build_turbomind` / `_build_pytorch` return: an engine object whose
request handles stream lmdeploy `EngineOutput`s, computed by a small transformers model.

Select it with `RGEN_HARNESS_LMDEPLOY_ENGINE=rgen_harness.models.cpu_engine:build_cpu_engine`
(tests and machines without a GPU; never for real runs). What stays different from a GPU run:
- the forward pass, sampling and KV cache are transformers' (`generate` with the stop ids
  lmdeploy resolved), run to the end before the outputs (one per decoding step) are sent;
  prefix caching is accounted (`cached_tokens`) but saves no compute;
- TurboMind counts as built (`turbomind.is_available()`), so `backend=auto` resolves as on a
  CUDA machine; `max_batch_size` defaults to 128, lmdeploy's value for an unlisted GPU;
- tensor / data parallelism, CUDA graphs, quantised weights and KV-cache quantisation are not
  executed (their settings are validated by lmdeploy's config classes and the PyTorch engine's
  own `ConfigBuilder`, whose effective values are reported).

Where results or crashes depend on it, the CPU engine is as strict as the real engines (each
behaviour names the lmdeploy 0.18 function it follows):
- a finite KV block pool (`RGEN_HARNESS_CPU_ENGINE_KV_BLOCKS`, default 1024 blocks of the
  engine's block size, 64 tokens) holding the prefix cache, evicted oldest first, so
  `cached_tokens` is earned; inputs longer than min(session_len, pool - one block) are
  rejected with INPUT_LENGTH_ERROR (`pytorch.engine.Engine._get_max_session_len`,
  `EngineInstance.async_stream_infer`);
- prompt log-probabilities as `logprobs_mode` says (raw logits when it is None:
  `BaseModelAgent._get_outputs_with_logprobs`), through a bf16 (fp16 with dtype=float16) LM
  head unless `hf_overrides={'fp32_lm_head': True}` (`ModelConfig.from_pretrained`);
- `sleep()` keeps the prefix trie while the KV cache is rebuilt empty, as 0.18's PyTorch engine
  does (lmdeploy issue 4917): a later hit on a pre-sleep block reads KV that is not the
  prompt's (modelled by attending to pad ids in its place);
- TurboMind's parallel layout derived by `turbomind.update_parallel_config` for
  `RGEN_HARNESS_CPU_ENGINE_GPUS` GPUs (default 1);
- `RGEN_HARNESS_CPU_ENGINE_STOP_AFTER=N`: after N requests every request answers
  ENGINE_STOP_ERROR, as after an engine-wide failure (OOM, NCCL).

`RGEN_HARNESS_CPU_ENGINE_FAIL=<regex>` makes every request whose decoded prompt matches it fail
inside the engine (an engine error status), to test that failures are reported.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import os
import re
import threading
from collections import OrderedDict
from typing import Any

from rgen_harness.models.engine import EngineSpec, LMDeployEngine, open_pipeline

FAIL_ENV = "RGEN_HARNESS_CPU_ENGINE_FAIL"
KV_BLOCKS_ENV = "RGEN_HARNESS_CPU_ENGINE_KV_BLOCKS"
GPUS_ENV = "RGEN_HARNESS_CPU_ENGINE_GPUS"
STOP_AFTER_ENV = "RGEN_HARNESS_CPU_ENGINE_STOP_AFTER"
DEFAULT_KV_BLOCKS = 1024
UNLISTED_GPU_MAX_BATCH = 128  # lmdeploy.utils.get_max_batch_size for a GPU not in its table
REWARD_ARCHS = ("InternLM2ForRewardModel", "Qwen2ForRewardModel")
_PATCH_LOCK = threading.Lock()


def build_cpu_engine(spec: EngineSpec) -> LMDeployEngine:
    """`LMDeployEngine` over a real lmdeploy Pipeline whose engine runs on the CPU."""
    with _engines_on_cpu():
        return open_pipeline(spec)


def pipeline(model_path: str, backend_config=None, **kwargs):
    """`lmdeploy.pipeline(...)` with the CPU engine (same signature; the reward backend)."""
    import lmdeploy

    with _engines_on_cpu():
        return lmdeploy.pipeline(model_path, backend_config=backend_config, **kwargs)


@contextlib.contextmanager
def _engines_on_cpu():
    """While lmdeploy builds a pipeline: TurboMind counts as built and both engine builders
    return a `CPUEngine`. Restored afterwards; a lock keeps concurrent builds apart."""
    from lmdeploy import turbomind
    from lmdeploy.serve.core.async_engine import AsyncEngine

    def build_turbomind(self, model_path, backend_config=None, trust_remote_code=False, **_):
        return CPUEngine(model_path, backend_config, "turbomind", trust_remote_code)

    def build_pytorch(self, model_path, backend_config=None, trust_remote_code=False, **_):
        return CPUEngine(model_path, backend_config, "pytorch", trust_remote_code)

    with _PATCH_LOCK:
        saved = (turbomind.is_available, AsyncEngine._build_turbomind, AsyncEngine._build_pytorch)
        turbomind.is_available = lambda: True
        AsyncEngine._build_turbomind = build_turbomind
        AsyncEngine._build_pytorch = build_pytorch
        try:
            yield
        finally:
            turbomind.is_available, AsyncEngine._build_turbomind, AsyncEngine._build_pytorch = saved


def effective_config(backend: str, config):
    """The engine config as lmdeploy's engine would hold it after its own adjustments."""
    config = copy.deepcopy(config)
    if config.max_batch_size is None:
        config.max_batch_size = UNLISTED_GPU_MAX_BATCH
    if backend == "pytorch":
        from lmdeploy.pytorch.engine.config_builder import ConfigBuilder

        config = ConfigBuilder.update_engine_config(config)
    else:
        _turbomind_layout(config)
    return config


def _turbomind_layout(config) -> None:
    """The layout step of `lmdeploy.turbomind.turbomind.update_parallel_config` (that module
    loads TurboMind's CUDA extension, so its few lines are followed here) on
    `RGEN_HARNESS_CPU_ENGINE_GPUS` simulated GPUs, with lmdeploy's own
    `turbomind.parallel_config.derive_parallel_config`: with fewer GPUs than tp x dp it picks
    another layout or refuses, as on a real node. Layouts given explicitly are kept."""
    from lmdeploy.turbomind.parallel_config import derive_parallel_config

    nnodes = getattr(config, "nnodes", 1) or 1
    if config.devices:
        config.device_num = len(config.devices) * nnodes
    if any(getattr(config, name, None) for name in ("attn_dp_size", "attn_tp_size", "mlp_tp_size")):
        return
    available = int(os.environ.get(GPUS_ENV, "1")) * nnodes
    parallel = derive_parallel_config(
        config.dp, config.tp, config.ep, config.cp, config.device_num, available
    )
    for name in (
        "device_num",
        "outer_dp_size",
        "attn_dp_size",
        "attn_tp_size",
        "attn_cp_size",
        "mlp_dp_size",
        "mlp_tp_size",
    ):
        setattr(config, name, getattr(parallel, name))
    config.devices = config.devices or list(range(config.device_num // nnodes))


def logits_dtype(config):
    """The precision of the LM head's logits on a GPU: fp32 with `fp32_lm_head`, else the
    engine's half precision (lmdeploy's dtypes are auto / float16 / bfloat16; auto runs bf16
    for these models)."""
    import torch

    overrides = getattr(config, "hf_overrides", None) or {}
    if overrides.get("fp32_lm_head"):
        return torch.float32
    return torch.float16 if getattr(config, "dtype", "auto") == "float16" else torch.bfloat16


class CPUEngine:
    """What lmdeploy's TurboMind / PyTorch `Engine` is to `AsyncEngine`, on a transformers model."""

    def __init__(self, model_path: str, config, backend: str, trust_remote_code: bool) -> None:
        import torch
        from lmdeploy.archs import get_model_arch

        self.backend = backend
        self.engine_config = effective_config(backend, config)
        self.arch, _ = get_model_arch(model_path, trust_remote_code=trust_remote_code)
        self.is_reward = self.arch in REWARD_ARCHS
        if self.is_reward:
            from transformers import AutoModelForSequenceClassification as Auto
        else:
            from transformers import AutoModelForCausalLM as Auto
        model = Auto.from_pretrained(
            model_path, dtype=torch.float32, trust_remote_code=trust_remote_code
        )
        adapters = dict(getattr(self.engine_config, "adapters", None) or {})
        if adapters:
            from peft import PeftModel

            names = list(adapters)
            model = PeftModel.from_pretrained(model, adapters[names[0]], adapter_name=names[0])
            for name in names[1:]:
                model.load_adapter(adapters[name], adapter_name=name)
        self.adapters = adapters
        self.model = model.eval()
        self.block_size = int(
            getattr(self.engine_config, "block_size", None)
            or getattr(self.engine_config, "cache_block_seq_len", None)
            or 64
        )
        self.num_blocks = int(os.environ.get(KV_BLOCKS_ENV, DEFAULT_KV_BLOCKS))
        # pytorch.engine.Engine._get_max_session_len: the pool minus one block bounds a session
        pool_tokens = self.num_blocks * self.block_size - self.block_size
        self.max_input_len = min(int(self.engine_config.session_len), pool_tokens)
        self.max_session_len = self.max_input_len  # the PyTorch Engine's attribute name
        if backend == "pytorch":  # pytorch.engine.Engine.cache_config (TurboMind has none)
            from types import SimpleNamespace

            self.cache_config = SimpleNamespace(
                num_gpu_blocks=self.num_blocks, block_size=self.block_size
            )
        self.prefix_caching = bool(getattr(self.engine_config, "enable_prefix_caching", False))
        # block key -> stale (True once a sleep rebuilt the KV cache under it), oldest first
        self.cached_blocks: OrderedDict[Any, bool] = OrderedDict()
        self.stats = {"requests": 0, "prompt_tokens": 0, "cached_tokens": 0, "evicted_blocks": 0}
        self.sleeping_level = 0
        pattern = os.environ.get(FAIL_ENV) or None
        self.fail = re.compile(pattern) if pattern else None
        stop_after = os.environ.get(STOP_AFTER_ENV)
        self.stop_after = int(stop_after) if stop_after else None
        self.tokenizer = None  # loaded on first use of the failure pattern
        self.model_path = model_path
        self.trust_remote_code = trust_remote_code

    # -- what AsyncEngine calls ---------------------------------------------------------------
    def create_instance(self, *args, **kwargs) -> CPUEngineInstance:
        return CPUEngineInstance(self)

    async def sleep(self, level: int = 1) -> None:
        """0.18's PyTorch engine rebuilds the KV cache but keeps the scheduler's block trie:
        every cached block stays findable, its contents gone."""
        self.sleeping_level = level
        for key in self.cached_blocks:
            self.cached_blocks[key] = True
        if level >= 2:  # the weights are discarded; lmdeploy expects them to be loaded again
            self.model = None

    def wakeup(self, tags: list[str] | None = None) -> None:
        if self.model is None:
            raise RuntimeError("the weights were discarded by sleep(level=2); reload them")
        self.sleeping_level = 0

    def end_session(self, session_id: int) -> bool:
        return True

    def close(self) -> None:
        self.model = None
        self.cached_blocks.clear()

    # -- the computation ----------------------------------------------------------------------
    def _injected_failure(self, input_ids: list[int]) -> bool:
        if self.fail is None:
            return False
        if self.tokenizer is None:
            from transformers import AutoTokenizer

            self.tokenizer = AutoTokenizer.from_pretrained(
                self.model_path, trust_remote_code=self.trust_remote_code
            )
        return bool(self.fail.search(self.tokenizer.decode(input_ids)))

    def _adapter(self, adapter_name: str | None):
        if adapter_name is not None and adapter_name not in self.adapters:
            raise ValueError(f"unknown adapter {adapter_name!r}; loaded: {list(self.adapters)}")
        if self.adapters:
            if adapter_name is None:
                return self.model.disable_adapter()
            self.model.set_adapter(adapter_name)
        return contextlib.nullcontext()

    def _block_keys(self, adapter_name: str | None, ids: list[int]) -> list[Any]:
        """One key per full block of `ids`, each standing for the whole prefix up to it."""
        keys, key, n = [], adapter_name, self.block_size
        for end in range(n, len(ids) + 1, n):
            key = hash((key, tuple(ids[end - n : end])))
            keys.append(key)
        return keys

    def prefix_cached(self, adapter_name: str | None, ids: list[int]) -> tuple[int, int]:
        """(tokens of `ids` found as leading full blocks in the prefix cache, of which stale);
        then the blocks of `ids` are cached, the oldest blocks evicted past the pool's size."""
        if not self.prefix_caching:
            return 0, 0
        hit = stale = 0
        keys = self._block_keys(adapter_name, ids)
        for key in keys:
            if key not in self.cached_blocks:
                break
            hit += self.block_size
            stale += self.block_size if self.cached_blocks[key] else 0
        for key in keys:
            self.cached_blocks.pop(key, None)
            self.cached_blocks[key] = False  # most recently used last, KV valid again
        while len(self.cached_blocks) > self.num_blocks:
            self.cached_blocks.popitem(last=False)
            self.stats["evicted_blocks"] += 1
        return hit, stale

    def generate(
        self, input_ids: list[int], gen_config, adapter_name: str | None, stale: int = 0
    ) -> list[int]:
        """New token ids, ending with the stop token when one was produced (as lmdeploy's).
        The first `stale` tokens come from KV blocks a sleep emptied: the model attends to pad
        ids in their place."""
        import torch

        if stale:
            input_ids = [0] * stale + list(input_ids[stale:])
        stop_ids = [] if gen_config.ignore_eos else list(gen_config.stop_token_ids or [])
        # pytorch.engine.Engine._add_message: max_new_tokens cut to the session's room
        max_new = min(gen_config.max_new_tokens, self.max_input_len - len(input_ids))
        kwargs: dict[str, Any] = {}
        if gen_config.do_sample and gen_config.top_k != 1:
            generator_seed = gen_config.random_seed
            if generator_seed is not None:
                torch.manual_seed(generator_seed % (2**63))
            kwargs.update(
                do_sample=True,
                temperature=gen_config.temperature,
                top_p=gen_config.top_p,
                top_k=gen_config.top_k or None,
                repetition_penalty=gen_config.repetition_penalty,
            )
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        if gen_config.bad_token_ids:
            kwargs["bad_words_ids"] = [[i] for i in gen_config.bad_token_ids]
        with self._adapter(adapter_name), torch.no_grad():
            output = self.model.generate(
                torch.tensor([input_ids]),
                attention_mask=torch.ones(1, len(input_ids), dtype=torch.long),
                max_new_tokens=max_new,
                min_new_tokens=gen_config.min_new_tokens or 0,
                eos_token_id=stop_ids or None,
                pad_token_id=stop_ids[0] if stop_ids else 0,
                **kwargs,
            )
        return output[0, len(input_ids) :].tolist()

    def input_logprobs(self, input_ids: list[int], start: int, top_k: int, adapter_name):
        """Rows for input_ids[start + 1:]: {target id: value, top-k ids: values}, the values
        as `logprobs_mode` says (BaseModelAgent._get_outputs_with_logprobs: log_softmax only
        for 'raw_logprobs', raw logits otherwise), from logits at the LM head's precision."""
        import torch

        with self._adapter(adapter_name), torch.no_grad():
            logits = self.model(torch.tensor([input_ids])).logits[0]
        logits = logits.to(logits_dtype(self.engine_config))
        if getattr(self.engine_config, "logprobs_mode", None) == "raw_logprobs":
            logits = torch.log_softmax(logits, dim=-1)
        logprobs = logits.float()
        rows = []
        for pos in range(start + 1, len(input_ids)):
            row = logprobs[pos - 1]
            indices = [input_ids[pos]]
            values = [row[input_ids[pos]].item()]
            if top_k > 0:
                top = torch.topk(row, top_k)
                indices += top.indices.tolist()
                values += top.values.tolist()
            rows.append(dict(zip(indices, values, strict=True)))
        return rows

    def all_logits(self, input_ids: list[int], adapter_name):
        """Per-position outputs: the LM head's logits, or a reward model's value head."""
        import torch

        with self._adapter(adapter_name), torch.no_grad():
            ids = torch.tensor([input_ids])
            if self.is_reward:
                base = getattr(self.model, self.model.base_model_prefix)
                hidden = base(ids).last_hidden_state
                head = getattr(self.model, "score", None) or self.model.v_head
                return head(hidden)[0].float()
            return self.model(ids).logits[0].float()


class CPUEngineInstance:
    """A request handle: `async_stream_infer` yields `EngineOutput`s as lmdeploy's engines do."""

    def __init__(self, engine: CPUEngine) -> None:
        self.engine = engine

    async def async_cancel(self, session_id: int) -> None:
        return None

    async def async_end(self, session_id: int) -> None:
        return None

    async def async_stream_infer(
        self,
        session_id: int,
        input_ids: list[int],
        gen_config=None,
        multimodal=None,
        adapter_name: str | None = None,
        stream_output: bool = False,
        **kwargs,
    ):
        from lmdeploy.messages import EngineOutput, GenerationConfig, RequestMetrics, ResponseType

        engine = self.engine
        gen_config = gen_config or GenerationConfig()
        input_ids = list(input_ids)
        await asyncio.sleep(0)  # let the other submitted requests be admitted, as on a GPU
        engine.stats["requests"] += 1
        stopped = engine.stop_after is not None and engine.stats["requests"] > engine.stop_after
        if engine.model is None or engine.sleeping_level or stopped:
            yield EngineOutput(ResponseType.ENGINE_STOP_ERROR, [])
            return
        if len(input_ids) > engine.max_input_len:  # EngineInstance.async_stream_infer
            yield EngineOutput(ResponseType.INPUT_LENGTH_ERROR, [])
            return
        if engine._injected_failure(input_ids):
            yield EngineOutput(ResponseType.INTERNAL_ENGINE_ERROR, [])
            return
        hit, stale = engine.prefix_cached(adapter_name, input_ids)
        engine.stats["prompt_tokens"] += len(input_ids)
        engine.stats["cached_tokens"] += hit
        metrics = RequestMetrics(cached_tokens=hit)
        if gen_config.logprob_start_len >= 0:  # scoring-only request
            if engine.backend != "pytorch":
                yield EngineOutput(ResponseType.NOT_SUPPORTED, [])
                return
            rows = engine.input_logprobs(
                input_ids, gen_config.logprob_start_len, gen_config.logprobs or 0, adapter_name
            )
            yield EngineOutput(ResponseType.FINISH, [], logprobs=rows, req_metrics=metrics)
            return
        if gen_config.output_logits == "all":
            logits = engine.all_logits(input_ids, adapter_name)
            yield EngineOutput(ResponseType.FINISH, [], logits=logits, req_metrics=metrics)
            return
        new_ids = engine.generate(input_ids, gen_config, adapter_name, stale)
        engine.prefix_cached(adapter_name, input_ids + new_ids)
        # One output per decoding step, the last one FINISH, as the engines send them (whatever
        # `stream_output` says): lmdeploy's incremental detokeniser depends on the chunking.
        for token in new_ids[:-1]:
            yield EngineOutput(ResponseType.SUCCESS, [token], req_metrics=metrics)
        yield EngineOutput(ResponseType.FINISH, new_ids[-1:], req_metrics=metrics)
