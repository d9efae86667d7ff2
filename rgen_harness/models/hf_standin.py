"""A CPU stand-in for lmdeploy's Pipeline, for tests and machines without a GPU.

lmdeploy imports on a CPU machine but cannot run inference there (its engines need CUDA or
another accelerator). This engine meets the same `InferenceEngine` protocol with a real
transformers model, so every output is a real computation, and answers with lmdeploy's own
`Response` objects following lmdeploy's rules (read from lmdeploy 0.18's `AsyncEngine`):

- a `str` prompt with `do_preprocess=False` is encoded as-is with special tokens (a doubled
  BOS is reduced to one); with `do_preprocess=True`, or a message list, it is rendered with the
  tokenizer's chat template first;
- stop ids = ids of single-token `stop_words` (tokens whose text contains the word) +
  `stop_token_ids` + the tokenizer's and generation_config's EOS; the stopping token is dropped
  from the text unless `include_stop_str_in_output`; finish_reason 'stop' or 'length';
- `do_sample=False` is greedy; prompts of `session_len` tokens or more fail with lmdeploy's
  context-length error; errors come back as `finish_reason='error'` with error_code/message;
- scoring-only requests (`max_new_tokens=0`, `logprobs=k`, `logprob_start_len=N`) return one
  row per input token after N: `{target id: logprob, top-k ids: logprobs}` (raw log-softmax).

It also builds the real lmdeploy engine config from the model_args (so the mapping is checked
against lmdeploy's dataclasses) and loads LoRA `adapters` with peft.

Select it with `RGEN_HARNESS_LMDEPLOY_ENGINE=rgen_harness.models.hf_standin:build_hf_standin`.
`RGEN_HARNESS_STANDIN_FAIL=<regex>` makes every request whose prompt text matches it fail the
way a failed lmdeploy request does (to test that failures are reported, not swallowed).
"""

from __future__ import annotations

import os
import re
from typing import Any

from rgen_harness.models.engine import EngineSpec

FAIL_ENV = "RGEN_HARNESS_STANDIN_FAIL"


def build_hf_standin(spec: EngineSpec) -> HFStandInEngine:
    backend = "turbomind" if spec.backend == "turbomind" else "pytorch"
    spec.args.engine_config(backend)  # lmdeploy's own dataclass validates the mapping
    return HFStandInEngine(
        spec.model_path,
        backend=backend,
        session_len=spec.args.session_len,
        adapters=dict(spec.args.adapters),
        trust_remote_code=spec.args.trust_remote_code,
        fail_pattern=os.environ.get(FAIL_ENV) or None,
    )


class HFStandInEngine:
    def __init__(
        self,
        model_path: str,
        *,
        backend: str = "pytorch",
        session_len: int | None = None,
        adapters: dict[str, str] | None = None,
        trust_remote_code: bool = False,
        fail_pattern: str | None = None,
    ) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(
            model_path, trust_remote_code=trust_remote_code
        )
        model = AutoModelForCausalLM.from_pretrained(
            model_path, dtype=torch.float32, trust_remote_code=trust_remote_code
        )
        self.adapters = dict(adapters or {})
        if self.adapters:
            from peft import PeftModel

            names = list(self.adapters)
            model = PeftModel.from_pretrained(model, self.adapters[names[0]], adapter_name=names[0])
            for name in names[1:]:
                model.load_adapter(self.adapters[name], adapter_name=name)
        self.model = model.eval()
        self.backend = backend
        self.session_len = int(session_len or model.config.max_position_embeddings)
        self.fail = re.compile(fail_pattern) if fail_pattern else None
        self.closed = False
        self.sleeping = False
        self.calls: list[tuple[str, int]] = []  # (method, number of prompts) per call
        eos = {self.tokenizer.eos_token_id}
        gen_eos = getattr(model.generation_config, "eos_token_id", None)
        eos.update(gen_eos if isinstance(gen_eos, list) else [gen_eos])
        self.eos_ids = {i for i in eos if i is not None}

    # -- helpers ----------------------------------------------------------------------------
    def _check_usable(self) -> None:
        if self.closed:
            raise RuntimeError("the engine was closed")
        if self.sleeping:
            raise RuntimeError("the engine is asleep: call wakeup() first")

    def _encode(self, prompt, do_preprocess: bool) -> tuple[str, list[int]]:
        if isinstance(prompt, str) and do_preprocess:
            prompt = [{"role": "user", "content": prompt}]
        if not isinstance(prompt, str):
            prompt = self.tokenizer.apply_chat_template(
                prompt, tokenize=False, add_generation_prompt=True
            )
        ids = self.tokenizer.encode(prompt)
        bos = self.tokenizer.bos_token_id
        if bos is not None and ids[:2] == [bos, bos]:
            ids = ids[1:]
        return prompt, ids

    def _error(self, idx: int, input_len: int, code: str, message: str):
        from lmdeploy.messages import Response

        return Response(
            text="",
            generate_token_len=0,
            input_token_len=input_len,
            finish_reason="error",
            token_ids=[],
            index=idx,
            error_code=code,
            error_message=message,
        )

    def _admission_error(self, idx: int, text: str, ids: list[int]):
        if self.fail is not None and self.fail.search(text):
            message = f"injected failure ({FAIL_ENV}={self.fail.pattern})"
            return self._error(idx, len(ids), "internal_error", message)
        if len(ids) >= self.session_len:
            return self._error(
                idx,
                len(ids),
                "context_length_exceeded",
                f"Input length ({len(ids)}) must be smaller than the model context length "
                f"({self.session_len}).",
            )
        return None

    def _adapter(self, adapter_name: str | None):
        if adapter_name is not None and adapter_name not in self.adapters:
            raise ValueError(f"unknown adapter {adapter_name!r}; loaded: {list(self.adapters)}")
        if self.adapters:
            if adapter_name is None:
                return self.model.disable_adapter()
            self.model.set_adapter(adapter_name)
        import contextlib

        return contextlib.nullcontext()

    def _stop_ids(self, gen_config) -> set[int]:
        ids = set(gen_config.stop_token_ids or [])
        for word in gen_config.stop_words or []:
            if len(self.tokenizer.encode(word, add_special_tokens=False)) != 1:
                continue  # lmdeploy drops multi-token stop words (with a warning)
            vocab = self._decoded_vocab()
            ids.update(i for i, text in vocab.items() if word in text)
        return ids | self.eos_ids

    def _decoded_vocab(self) -> dict[int, str]:
        if not hasattr(self, "_vocab_text"):
            self._vocab_text = {i: self.tokenizer.decode([i]) for i in range(len(self.tokenizer))}
        return self._vocab_text

    # -- the protocol -------------------------------------------------------------------------
    def infer(self, prompts, gen_config, *, do_preprocess=True, adapter_name=None, use_tqdm=False):
        from lmdeploy import GenerationConfig
        from tqdm import tqdm

        self._check_usable()
        prompts = list(prompts)
        self.calls.append(("infer", len(prompts)))
        if gen_config is None:
            configs = [GenerationConfig()] * len(prompts)
        elif isinstance(gen_config, (list, tuple)):
            configs = list(gen_config)
        else:
            configs = [gen_config] * len(prompts)
        if len(configs) != len(prompts):
            raise ValueError(f"{len(prompts)} prompts but {len(configs)} gen_configs")
        out = []
        with self._adapter(adapter_name):
            items = list(zip(prompts, configs, strict=True))
            for idx, (prompt, cfg) in enumerate(
                tqdm(items, desc="stand-in infer", disable=not use_tqdm)
            ):
                text, ids = self._encode(prompt, do_preprocess)
                out.append(self._admission_error(idx, text, ids) or self._generate(idx, ids, cfg))
        return out

    def _generate(self, idx: int, ids: list[int], cfg):
        import torch
        from lmdeploy.messages import Response

        if cfg.max_new_tokens < 1:
            return self._error(idx, len(ids), "invalid_request", "max_new_tokens must be >= 1")
        stop_ids = set() if cfg.ignore_eos else self._stop_ids(cfg)
        max_new = min(cfg.max_new_tokens, self.session_len - len(ids))
        kwargs: dict[str, Any] = {"do_sample": bool(cfg.do_sample)}
        if cfg.do_sample:
            kwargs.update(temperature=cfg.temperature, top_p=cfg.top_p, top_k=cfg.top_k or None)
            if cfg.random_seed is not None:
                torch.manual_seed(cfg.random_seed)
        else:
            kwargs.update(temperature=None, top_p=None, top_k=None)
        with torch.no_grad():
            output = self.model.generate(
                torch.tensor([ids]),
                attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                max_new_tokens=max_new,
                min_new_tokens=cfg.min_new_tokens or 0,
                eos_token_id=sorted(stop_ids) or None,
                pad_token_id=self.tokenizer.pad_token_id,
                repetition_penalty=cfg.repetition_penalty if cfg.do_sample else None,
                **kwargs,
            )
        generated = output[0, len(ids) :].tolist()
        stopped = bool(generated) and generated[-1] in stop_ids
        kept = generated[:-1] if stopped else generated
        text = self.tokenizer.decode(kept, skip_special_tokens=cfg.skip_special_tokens)
        if stopped and cfg.include_stop_str_in_output:
            kept = generated
            text += self.tokenizer.decode(generated[-1:], skip_special_tokens=False)
        return Response(
            text=text,
            generate_token_len=len(kept),
            input_token_len=len(ids),
            finish_reason="stop" if stopped else "length",
            token_ids=kept,
            index=idx,
        )

    def prompt_logprobs(
        self, input_ids, logprob_start_lens, *, top_k=1, adapter_name=None, use_tqdm=False
    ):
        import torch
        from lmdeploy.messages import Response
        from tqdm import tqdm

        self._check_usable()
        if self.backend != "pytorch":
            raise RuntimeError("prompt logprobs need lmdeploy's PyTorch engine")
        self.calls.append(("prompt_logprobs", len(input_ids)))
        out = []
        with self._adapter(adapter_name), torch.no_grad():
            items = list(zip(input_ids, logprob_start_lens, strict=True))
            for idx, (ids, start) in enumerate(
                tqdm(items, desc="stand-in prompt logprobs", disable=not use_tqdm)
            ):
                ids = list(ids)
                text = self.tokenizer.decode(ids)
                error = self._admission_error(idx, text, ids)
                if error is None and not 0 <= start < len(ids):
                    error = self._error(
                        idx,
                        len(ids),
                        "invalid_request",
                        f"logprob_start_len({start}) exceeds the last source position for "
                        f"processed input_ids length({len(ids)}).",
                    )
                if error is not None:
                    out.append(error)
                    continue
                logits = self.model(torch.tensor([ids])).logits[0].float()
                logprobs = torch.log_softmax(logits, dim=-1)
                rows = []
                for pos in range(start + 1, len(ids)):
                    row = logprobs[pos - 1]
                    indices = [ids[pos]]
                    values = [row[ids[pos]].item()]
                    if top_k > 0:
                        top = torch.topk(row, top_k)
                        indices += top.indices.tolist()
                        values += top.values.tolist()
                    rows.append(dict(zip(indices, values, strict=True)))
                out.append(
                    Response(
                        text="",
                        generate_token_len=0,
                        input_token_len=len(ids),
                        finish_reason="length",
                        token_ids=[],
                        logprobs=rows,
                        index=idx,
                    )
                )
        return out

    def sleep(self, level: int = 1) -> None:
        self.sleeping = True

    def wakeup(self) -> None:
        self.sleeping = False

    def close(self) -> None:
        self.closed = True
        self.model = None
