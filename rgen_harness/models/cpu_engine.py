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
from typing import Any

from rgen_harness.models.engine import EngineSpec, LMDeployEngine, open_pipeline

FAIL_ENV = "RGEN_HARNESS_CPU_ENGINE_FAIL"
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
    return config


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
        self.cached_blocks: set[tuple[str | None, tuple[int, ...]]] = set()
        self.sleeping_level = 0
        pattern = os.environ.get(FAIL_ENV) or None
        self.fail = re.compile(pattern) if pattern else None
        self.tokenizer = None  # loaded on first use of the failure pattern
        self.model_path = model_path
        self.trust_remote_code = trust_remote_code

    # -- what AsyncEngine calls ---------------------------------------------------------------
    def create_instance(self, *args, **kwargs) -> CPUEngineInstance:
        return CPUEngineInstance(self)

    async def sleep(self, level: int = 1) -> None:
        self.sleeping_level = level
        self.cached_blocks.clear()
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

    def prefix_cached(self, adapter_name: str | None, ids: list[int]) -> int:
        """Tokens of `ids` found as full blocks in the prefix cache; then caches them."""
        if not getattr(self.engine_config, "enable_prefix_caching", False):
            return 0
        hit, n = 0, self.block_size
        for end in range(n, len(ids) + 1, n):
            key = (adapter_name, tuple(ids[:end]))
            if key in self.cached_blocks and hit == end - n:
                hit = end
            self.cached_blocks.add(key)
        return hit

    def generate(self, input_ids: list[int], gen_config, adapter_name: str | None) -> list[int]:
        """New token ids, ending with the stop token when one was produced (as lmdeploy's)."""
        import torch

        stop_ids = [] if gen_config.ignore_eos else list(gen_config.stop_token_ids or [])
        session_len = self.engine_config.session_len
        max_new = min(gen_config.max_new_tokens, session_len - len(input_ids))
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
        """Rows for input_ids[start + 1:]: {target id: logprob, top-k ids: logprobs} (raw)."""
        import torch

        with self._adapter(adapter_name), torch.no_grad():
            logits = self.model(torch.tensor([input_ids])).logits[0].float()
        logprobs = torch.log_softmax(logits, dim=-1)
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
        if engine.model is None or engine.sleeping_level:
            yield EngineOutput(ResponseType.ENGINE_STOP_ERROR, [])
            return
        if len(input_ids) >= engine.engine_config.session_len:
            yield EngineOutput(ResponseType.INPUT_LENGTH_ERROR, [])
            return
        if engine._injected_failure(input_ids):
            yield EngineOutput(ResponseType.INTERNAL_ENGINE_ERROR, [])
            return
        metrics = RequestMetrics(cached_tokens=engine.prefix_cached(adapter_name, input_ids))
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
        new_ids = engine.generate(input_ids, gen_config, adapter_name)
        engine.prefix_cached(adapter_name, input_ids + new_ids)
        # One output per decoding step, the last one FINISH, as the engines send them (whatever
        # `stream_output` says): lmdeploy's incremental detokeniser depends on the chunking.
        for token in new_ids[:-1]:
            yield EngineOutput(ResponseType.SUCCESS, [token], req_metrics=metrics)
        yield EngineOutput(ResponseType.FINISH, new_ids[-1:], req_metrics=metrics)
