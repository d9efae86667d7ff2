"""`lm_eval --model lmdeploy`: lmdeploy's inference engines as an lm-eval model.

    lm_eval --model lmdeploy \\
        --model_args pretrained=internlm/internlm2_5-7b-chat,backend=pytorch,tp=2 \\
        --tasks deita_qr,deita_qcr,mmlu --apply_chat_template

Request types:
- `generate_until`: every prompt of the call goes to the engine at once, as token ids (encoded
  once here, with the tokenizer's prefix exactly once; lmdeploy batches continuously). The
  engine stops on every EOS id lmdeploy reads (tokenizer and `generation_config.json`), on the
  token that closes an assistant turn in the chat template, and on `until` strings that are
  single tokens; no stop or EOS text is ever part of a reply (`include_stop_str_in_output` is
  off) and `until` strings are cut from the text afterwards. Greedy unless the task samples. A
  request that fails inside the engine (`finish_reason='error'`) stops the run with its
  message: lm-eval has no per-request failure value for it.
- `generate_chat_rounds` (deita_qr / deita_qcr): `rgen_harness.chat.runner.run_rounds` with
  this engine as backend: one batched engine call per round, the model's own chat template,
  the context budget in the model's tokens, lm-eval's `--use_cache` database per round.
  Prefix caching (on by default) lets round 2 of QCR reuse round 1's prefill. A failed request
  is recorded on its conversation (status 'failed', counted by the `failed` metric).
- `loglikelihood` / `loglikelihood_rolling`: exact, from the PyTorch engine's prompt
  log-probabilities (`logprobs_mode='raw_logprobs'`, `max_new_tokens=0`, `logprob_start_len`),
  summed over the continuation, with the greedy check; rolling windows as lm-eval builds them.
  TurboMind cannot return prompt log-probabilities: with `backend=auto` (the default) these
  requests run on a PyTorch engine built for them (the TurboMind one is released first); with
  `backend=turbomind` they stop with a message to use `backend=pytorch` or `auto`.

Scale-out is lmdeploy's own: `tp=N` splits the model over N GPUs; `dp=M` runs M replicas inside
one TurboMind engine (lmdeploy's PyTorch engine needs one process per dp rank, so `dp>1` with
the PyTorch backend is refused with the alternatives). Multi-node: start a Ray cluster
(`ray start --head` on the first node, `ray start --address=<head>:6379` on the others) and
run lm_eval on the head node with `backend=pytorch,distributed_executor_backend=ray` and `tp`
spanning all GPUs; TurboMind instead runs one process per node with
`nnodes=2,node_rank=<i>,dist_init_addr=<head ip:port>`.

Memory: `release()` closes the engine and empties the CUDA cache (the next request builds a
new engine); `sleep()` / `wakeup()` offload and restore weights and KV cache;
`rgen_harness.models.engine.release_all()` releases every live engine in the process.

LoRA (PyTorch engine): `adapters=NAME:PATH[;NAME:PATH]`, `adapter_name=NAME` picks the adapter
every request uses (default: the only one).

Throughput (samples/s, generated tokens/s, wall time) is recorded per request type and lands
in the results JSON under `config.throughput` (lm-eval merges `get_model_info()` there).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import replace
from typing import Any

from lm_eval.api.model import TemplateLM
from tqdm import tqdm

from rgen_harness.chat.fast_template import FastChatTemplate
from rgen_harness.chat.protocol import REQUEST_TYPE
from rgen_harness.chat.reply_text import reply_from_ids
from rgen_harness.chat.runner import RoundCache, run_rounds
from rgen_harness.chat.special_tokens import encode_prompt, template_tokens
from rgen_harness.models.engine import EngineSpec, create_engine, engine_factory, free_memory
from rgen_harness.models.engine_chat import EngineChatBackend
from rgen_harness.models.lmdeploy_config import (
    LMDeployArgs,
    generation_config,
    require_lmdeploy,
    split_gen_kwargs,
)
from rgen_harness.models.loglikelihood import score_continuation
from rgen_harness.models.responses import (
    FAILED,
    MAX_LISTED_FAILURES,
    GenerationFailed,
    LogprobsUnavailable,
    check_engine_alive,
    describe_failure,
)
from rgen_harness.models.throughput import ThroughputLog

log = logging.getLogger(__name__)


class LMDeployLM(TemplateLM):
    def __init__(self, pretrained: str | None = None, **kwargs: Any) -> None:
        super().__init__()
        require_lmdeploy()
        self.args = LMDeployArgs.from_kwargs({"pretrained": pretrained, **kwargs})
        if self.args.batch_size not in (None, 1, "1", "auto"):
            log.info(
                "batch_size=%s is not used: lmdeploy batches continuously; cap concurrency with "
                "--model_args max_batch_size=N",
                self.args.batch_size,
            )
        from transformers import AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(
            self.args.tokenizer or self.args.pretrained,
            trust_remote_code=self.args.trust_remote_code,
        )
        if self.args.chat_template:
            self.tokenizer.chat_template = self.args.chat_template
        self._spec = EngineSpec(
            model_path=self.args.pretrained,
            backend=self.args.backend,
            args=self.args,
            log_level=self.args.log_level,
        )
        self._factory = engine_factory()  # a rebuilt engine comes from the same factory
        self._engine = None
        self.throughput = ThroughputLog()
        self._gen_cache: dict[str, tuple[list[str], Any]] = {}
        self.backends_used: dict[str, str] = {}  # request type -> engine that served it
        # Effective settings per backend, read when each engine is built: the reward scorer
        # may close every engine (release_all) before lm-eval asks for the model info.
        self.engine_settings: dict[str, dict[str, Any]] = {}
        self.engine  # noqa: B018  (build now: configuration errors surface before any task loads)

    # -- engine lifecycle ---------------------------------------------------------------------
    @property
    def engine(self):
        if self._engine is None or getattr(self._engine, "closed", False):
            if self._engine is not None:
                log.info("the lmdeploy engine was released; building it again")
            self._engine = self._build(self._spec)
        return self._engine

    def _build(self, spec: EngineSpec):
        engine = create_engine(spec, self._factory)
        settings = dict(engine.settings())
        settings["engine"] = type(engine).__name__
        self.engine_settings[engine.backend] = settings
        self._last_backend = engine.backend
        return engine

    def _logprob_engine(self, request_type: str):
        """An engine that returns prompt log-probabilities: the PyTorch one. With backend=auto
        a TurboMind engine is released and a PyTorch engine built in its place."""
        engine = self.engine
        if engine.backend == "pytorch":
            return engine
        if self.args.backend != "auto":
            raise LogprobsUnavailable(
                f"{request_type} needs prompt log-probabilities, which lmdeploy's {engine.backend} "
                "engine does not return. Run these tasks with backend=pytorch or backend=auto "
                "(auto builds a PyTorch engine for them)."
            )
        log.warning(
            "%s needs prompt log-probabilities, which TurboMind does not return: releasing it "
            "and building lmdeploy's PyTorch engine for these requests",
            request_type,
        )
        self.release()
        self._engine = self._build(replace(self._spec, backend="pytorch"))
        return self._engine

    def release(self) -> None:
        """Close the engine and free its GPU memory (a later request builds a new one)."""
        engine, self._engine = self._engine, None
        if engine is not None:
            engine.close()
        del engine
        free_memory()

    def sleep(self, level: int = 1) -> None:
        """Offload weights and drop the KV cache, keeping the engine (lmdeploy's sleep)."""
        self.engine.sleep(level)

    def wakeup(self) -> None:
        self.engine.wakeup()

    # -- lm-eval model surface ----------------------------------------------------------------
    @property
    def eot_token_id(self) -> int:
        return self.tokenizer.eos_token_id

    @property
    def prefix_token_id(self) -> int:
        if self.tokenizer.bos_token_id is not None:
            return self.tokenizer.bos_token_id
        return self.tokenizer.eos_token_id

    @property
    def max_length(self) -> int:
        """Prompt plus generation, in tokens: lmdeploy's session_len, capped as the engine caps
        it (the PyTorch engine: by its KV block pool minus one block)."""
        return self.engine.session_len

    def check_request_types(self, request_types: set[str]) -> None:
        """Called with the run's request types before any request is made: refuse now, not
        after hours of generation, what the log-likelihood requests could not run on."""
        wanted = request_types & {"loglikelihood", "multiple_choice", "loglikelihood_rolling"}
        if not wanted or self.engine.backend == "pytorch":
            return
        if self.args.backend != "auto":
            raise LogprobsUnavailable(
                f"the tasks need prompt log-probabilities ({', '.join(sorted(wanted))}), which "
                f"lmdeploy's {self.engine.backend} engine does not return. Use backend=pytorch or "
                "backend=auto (auto builds a PyTorch engine for them), or run those tasks in a "
                "separate lm_eval call."
            )
        from rgen_harness.models.lmdeploy_config import ModelArgsError

        try:
            self.args.engine_config("pytorch")
        except ModelArgsError as e:
            raise ModelArgsError(
                "backend=auto built TurboMind for generation; the log-likelihood tasks "
                f"({', '.join(sorted(wanted))}) need lmdeploy's PyTorch engine, which refuses "
                f"these settings: {e} Drop the TurboMind-only settings, or run the "
                "log-likelihood tasks in a separate lm_eval call."
            ) from None

    @property
    def max_gen_toks(self) -> int:
        return self.args.max_gen_toks

    @property
    def tokenizer_name(self) -> str:
        return self.tokenizer.name_or_path.replace("/", "__")

    def tok_encode(self, string: str, add_special_tokens: bool | None = None, **kwargs):
        """As lm-eval's `hf` model: the tokenizer's default special tokens, none if the string
        already starts with the prefix (BOS) token's text."""
        if add_special_tokens is None:
            bos = self._prefix_text()
            add_special_tokens = not (bos and string.startswith(bos))
        return self.tokenizer.encode(string, add_special_tokens=add_special_tokens)

    def _prefix_text(self) -> str:
        text = getattr(self, "_prefix_text_cache", None)
        if text is None:
            text = self._prefix_text_cache = self.tokenizer.decode([self.prefix_token_id])
        return text

    def encode_prompt(self, prompt: str) -> list[int]:
        """Token ids of a prompt as sent to the engine: the tokenizer's prefix exactly once."""
        return encode_prompt(self.tokenizer, prompt)

    def tok_decode(self, tokens, skip_special_tokens: bool = True) -> str:
        return self.tokenizer.decode(tokens, skip_special_tokens=skip_special_tokens)

    def apply_chat_template(
        self, chat_history: list[dict[str, str]], add_generation_prompt: bool = True
    ) -> str:
        import jinja2

        fast = self._fast_template() if add_generation_prompt else None

        def render(history):
            if fast is not None and fast.takes(history):
                return fast.render(history)
            return self.tokenizer.apply_chat_template(
                history,
                tokenize=False,
                add_generation_prompt=add_generation_prompt,
                continue_final_message=not add_generation_prompt,
            )

        try:
            return render(chat_history)
        except jinja2.exceptions.TemplateError:
            if not any(m["role"] == "system" for m in chat_history):
                raise
            log.warning("chat template rejected the system turn; rendering without it")
            return render([m for m in chat_history if m["role"] != "system"])

    def _fast_template(self) -> FastChatTemplate | None:
        """The tokenizer's chat template, compiled once (None where it cannot be used)."""
        template = getattr(self.tokenizer, "chat_template", None)
        cached = getattr(self, "_fast_template_cache", None)
        if cached is None or cached[0] is not template:
            cached = self._fast_template_cache = (template, FastChatTemplate.build(self.tokenizer))
        return cached[1]

    def get_model_info(self) -> dict:
        """The settings of the engines as they were built (never read from a live engine: it
        may have been released by the time lm-eval asks)."""
        import lmdeploy

        settings = self.engine_settings.get(getattr(self, "_last_backend", ""), {})
        return {
            "lmdeploy_version": lmdeploy.__version__,
            "lmdeploy_backend": settings.get("backend", self.args.backend),
            "lmdeploy_backends_used": dict(self.backends_used),
            "lmdeploy_engine": settings.get("engine"),
            "lmdeploy_session_len": settings.get("session_len", self.args.session_len),
            "lmdeploy_tp": settings.get("tp"),
            "lmdeploy_dp": settings.get("dp"),
            "lmdeploy_max_batch_size": settings.get("max_batch_size"),
            "lmdeploy_enable_prefix_caching": settings.get("enable_prefix_caching"),
            "lmdeploy_engine_settings": {k: dict(v) for k, v in self.engine_settings.items()},
            "lora_adapter": self.args.adapter_name,
            "lora_adapter_path": self.args.adapters.get(self.args.adapter_name or "", None),
            "throughput": self.throughput.summary(),
        }

    # -- generation ----------------------------------------------------------------------------
    def _eos_text(self) -> str | None:
        text = self.tokenizer.decode([self.eot_token_id]) if self.eot_token_id is not None else ""
        return text or self.tokenizer.eos_token

    def _stop_token_ids(self, until: list[str]) -> list[int]:
        """The end-of-turn token of the chat template plus every `until` string that is exactly
        one token. EOS ids are added by lmdeploy itself (tokenizer + generation_config.json)."""
        ids = set()
        eot = template_tokens(self.tokenizer).end_of_turn_id
        if eot is not None:
            ids.add(eot)
        for word in until:
            if not word:
                continue
            enc = self.tokenizer.encode(word, add_special_tokens=False)
            if len(enc) == 1 and self.tokenizer.decode(enc, skip_special_tokens=False) == word:
                ids.add(enc[0])
        return sorted(ids)

    def plan(self, gen_kwargs: dict) -> tuple[list[str], Any, int]:
        """(until, lmdeploy GenerationConfig, max_gen_toks) for one request's gen_kwargs;
        memoised, since a task's requests share their gen_kwargs."""
        key = json.dumps(gen_kwargs, sort_keys=True, default=str)
        hit = self._gen_cache.get(key)
        if hit is None:
            until, max_gen_toks, rest = split_gen_kwargs(
                gen_kwargs, default_max_gen_toks=self.max_gen_toks, eos=self._eos_text()
            )
            config = generation_config(
                rest,
                max_gen_toks=max_gen_toks,
                default_seed=self.args.seed,
                stop_token_ids=self._stop_token_ids(until),
            )
            hit = (until, config, max_gen_toks)
            self._gen_cache[key] = hit
        return hit

    def fit_context(self, context: str, max_gen_toks: int) -> list[int]:
        """The context's token ids, left-truncated (as lm-eval does) if they and max_gen_toks
        exceed max_length."""
        budget = self.max_length - max_gen_toks
        if budget < 1:
            raise ValueError(
                f"max_gen_toks={max_gen_toks} leaves no room for a prompt in max_length="
                f"{self.max_length}: lower max_gen_toks or raise session_len."
            )
        ids = self.encode_prompt(context)
        if len(ids) <= budget:
            return ids
        log.warning(
            "context of %d tokens + max_gen_toks %d exceeds max_length %d: keeping its last "
            "%d tokens",
            len(ids),
            max_gen_toks,
            self.max_length,
            budget,
        )
        return ids[-budget:]

    def _engine_generate(self, input_ids: list[list[int]], configs: list, use_tqdm: bool) -> list:
        engine = self.engine
        responses = engine.generate(
            input_ids, configs, adapter_name=self.args.adapter_name, use_tqdm=use_tqdm
        )
        if len(responses) != len(input_ids):
            raise RuntimeError(f"engine returned {len(responses)} responses for {len(input_ids)}")
        return responses

    def _record_call(self, kind: str, samples: int, responses, start: float) -> None:
        """Throughput of one engine call that served `samples` lm-eval requests."""
        self.backends_used[kind] = self.engine.backend
        self.throughput.record(
            kind,
            samples=samples,
            responses=responses,
            engine_calls=1,
            wall_s=time.perf_counter() - start,
        )

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        if not requests:
            return []
        start = time.perf_counter()
        prompts, configs, untils = [], [], []
        for req in requests:
            context, gen_kwargs = req.args
            until, config, max_gen_toks = self.plan(gen_kwargs)
            prompts.append(self.fit_context(context, max_gen_toks))
            configs.append(config)
            untils.append(until)
        responses = self._engine_generate(prompts, configs, use_tqdm=not disable_tqdm)
        check_engine_alive(responses, "generate_until")
        failures = [(i, r) for i, r in enumerate(responses) if r.finish_reason in FAILED]
        self._record_call("generate_until", len(requests), responses, start)
        out = []
        for req, resp, until in zip(requests, responses, untils, strict=True):
            if resp.finish_reason in FAILED:
                continue
            text = reply_from_ids(self.tokenizer, resp.token_ids or [], until=until).text
            out.append(text)
            # Cached before any failure is raised: with --use_cache a rerun redoes only those.
            self.cache_hook.add_partial("generate_until", req.args, text)
        if failures:
            raise GenerationFailed(self._failure_report(requests, failures))
        return out

    @staticmethod
    def _failure_report(requests, failures) -> str:
        lines = [
            f"lmdeploy failed {len(failures)} of {len(requests)} generate_until requests "
            "(finish_reason='error'); no reply was invented for them:"
        ]
        for i, resp in failures[:MAX_LISTED_FAILURES]:
            req = requests[i]
            where = f"task {getattr(req, 'task_name', None)}, doc {getattr(req, 'doc_id', None)}"
            lines.append(
                f"  request {i} ({where}): {describe_failure(resp)}; "
                f"context starts {str(req.args[0])[:60]!r}"
            )
        if len(failures) > MAX_LISTED_FAILURES:
            lines.append(f"  ... and {len(failures) - MAX_LISTED_FAILURES} more")
        lines.append(
            "Context too long: lower max_gen_toks or raise session_len; out of memory: lower "
            "cache_max_entry_count or max_batch_size. With --use_cache, a rerun regenerates "
            "only the failed requests."
        )
        return "\n".join(lines)

    def generate_chat_rounds(self, requests, disable_tqdm: bool = False) -> list[str]:
        """The multi-round protocol on the engine directly (see rgen_harness.chat)."""
        start = time.perf_counter()
        backend = EngineChatBackend(self, use_tqdm=not disable_tqdm)
        results = run_rounds([req.args for req in requests], backend, RoundCache.of(self))
        self.throughput.add_wall(REQUEST_TYPE, time.perf_counter() - start, len(requests))
        return [r.to_json() for r in results]

    # -- log-likelihood -----------------------------------------------------------------------
    def _loglikelihood_tokens(self, requests, disable_tqdm: bool = False, **kwargs):
        if not requests:
            return []
        engine = self._logprob_engine("loglikelihood")
        start = time.perf_counter()
        answers, responses = self._score_tokens(engine, requests, disable_tqdm)
        self._record_call("loglikelihood", len(requests), responses, start)
        return answers

    def _score_tokens(self, engine, requests, disable_tqdm: bool) -> tuple[list, list]:
        """(logprob, is_greedy) per (cache_key, context_enc, continuation_enc), one engine call."""
        max_input = self.max_length - 1  # lmdeploy needs input length < session_len
        inputs, ctxlens = [], []
        for _, context_enc, continuation_enc in requests:
            whole = list(context_enc) + list(continuation_enc)
            if len(whole) > max_input:
                log.warning(
                    "loglikelihood input of %d tokens exceeds %d: keeping the last %d",
                    len(whole),
                    max_input,
                    max_input,
                )
            inp = whole[-max_input:]
            ctxlen = len(context_enc) - max(0, len(whole) - max_input)
            if ctxlen < 1:
                log.warning("continuation longer than max_length: its first tokens are unscored")
                ctxlen = 1
            inputs.append(inp)
            ctxlens.append(ctxlen)
        responses = engine.prompt_logprobs(
            inputs,
            [c - 1 for c in ctxlens],
            top_k=1,
            adapter_name=self.args.adapter_name,
            use_tqdm=not disable_tqdm,
        )
        check_engine_alive(responses, "log-likelihood scoring")
        out = []
        for i, (req, resp, inp, ctxlen) in enumerate(
            zip(requests, responses, inputs, ctxlens, strict=True)
        ):
            if resp.finish_reason in FAILED:
                raise GenerationFailed(
                    f"lmdeploy failed loglikelihood request {i} ({len(inp)} tokens): "
                    f"{describe_failure(resp)}"
                )
            answer = score_continuation(resp.logprobs, inp[ctxlen:])
            out.append(answer)
            if req[0] is not None:
                self.cache_hook.add_partial("loglikelihood", req[0], answer)
        return out, responses

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False) -> list[float]:
        from lm_eval.utils import get_rolling_token_windows, make_disjoint_window

        if not requests:
            return []
        engine = self._logprob_engine("loglikelihood_rolling")
        start = time.perf_counter()
        windows, owners = [], []
        for i, (string,) in enumerate(
            tqdm([req.args for req in requests], desc="Rolling windows", disable=disable_tqdm)
        ):
            for window in map(
                make_disjoint_window,
                get_rolling_token_windows(
                    token_list=self.tok_encode(string),
                    prefix_token=self.prefix_token_id,
                    # a window is context + predicted tokens <= max_seq_len + 1 = session_len - 1
                    max_seq_len=self.max_length - 2,
                    context_len=1,
                ),
            ):
                windows.append((None, *window))
                owners.append(i)
        scores, responses = self._score_tokens(engine, windows, disable_tqdm)
        self._record_call("loglikelihood_rolling", len(requests), responses, start)
        totals = [0.0] * len(requests)
        for owner, (logprob, _) in zip(owners, scores, strict=True):
            totals[owner] += logprob
        for req, total in zip(requests, totals, strict=True):
            self.cache_hook.add_partial("loglikelihood_rolling", req.args, total)
        return totals
