"""Multi-round chat through lm-eval's OpenAI-compatible API models (`local-chat-completions`,
`local-completions`, `openai-chat-completions`, ...), e.g. against lmdeploy's or vLLM's server.

The generic runner (`LMChatBackend`) counts tokens with the model's `tok_encode`, which for chat
API models returns its input unchanged (1 "token" per prompt), and sends a round with one
`generate_until` call, which lm-eval aborts on the first request that fails its retries. This
backend instead:

- **chat models** send each conversation as separate role messages (the server applies its own
  template); the logged prompt is the messages as JSON text;
- **completion models** need the served model's tokenizer (`tokenizer_backend=huggingface,
  tokenizer=<id>`): the history is rendered with its chat template and sent as lm-eval sends
  prompts (token ids when `tokenized_requests`, else text);
- **context budget**: `max_length` from `--model_args` (required: the server's context length);
  prompt tokens are counted with the tokenizer when one is given (exactly, with its chat template),
  otherwise estimated from above (`estimate_tokens`);
- **tokenised once**: as on the lmdeploy path (`rgen_harness.models.engine_chat`), counting goes
  through one `PromptEncoder` (each piece of text between special tokens tokenised once, reused
  by every budget attempt and by QR and both QCR rounds), the token ids a completions request
  sends are assembled from those pieces (`stage`), and a round goes out in chunks while the next
  chunk is budgeted (`concurrent_generate`). Chat requests are counted on the text the chat
  template renders from their messages (`apply_chat_template(..., tokenize=True)`'s count);
- **failures**: a request that still fails after lm-eval's `max_retries` attempts (or that the
  server rejects as invalid, 4xx, which a retry cannot fix) is a failed conversation carrying the
  server's message; the run goes on;
- **token figures** come from the server's `usage` when it reports one;
- **concurrency and retries** are the model's own settings (`num_concurrent`, `max_retries`,
  `timeout`; lm-eval's defaults: 3 attempts of up to 300 s), with lm-eval's back-off
  (exponential, 1 s to 10 s), or the wait a 429/503 answer's `Retry-After` asks (at most
  `MAX_RETRY_AFTER` s); a request unanswered after `WAIT_WARNING_S` seconds is announced with a
  warning (again every as long), and one that times out is recorded as a timeout with the
  seconds it waited;
- **credentials** never reach a record: the reason of a failed conversation (the server's
  error text, the URL) is masked (`rgen_harness.redact`); a `base_url` with `user:password@`
  and an `api_key` at once is refused at start (HTTP cannot send both).
"""

from __future__ import annotations

import asyncio
import copy
import functools
import json
import logging
import sys
from collections.abc import Callable
from typing import Any

from rgen_harness.chat.fast_template import FastChatTemplate
from rgen_harness.chat.generation import DEFAULT_MAX_GEN_TOKS, Generation
from rgen_harness.chat.protocol import Message
from rgen_harness.chat.special_text import SpecialText, encode_marked, has_marks
from rgen_harness.chat.special_tokens import template_tokens
from rgen_harness.http_retry import MAX_RETRY_AFTER, WAIT_WARNING_S, retry_after

log = logging.getLogger(__name__)

API_MODULE = "lm_eval.models.api_models"
CHAT_MODULE = "lm_eval.models.openai_completions"
# Set by the start-up hook on every TemplateAPI instance: whether --model_args gave max_length
# (lm-eval silently defaults to 2048 otherwise).
MAX_LENGTH_GIVEN_ATTR = "_rgen_max_length_given"
# Conservative estimate without a tokenizer (see `estimate_tokens`).
ESTIMATE_TOKENS_PER_MESSAGE = 16
ESTIMATE_TOKENS_PER_PROMPT = 16
RETRYABLE_STATUS = frozenset({408, 409, 425, 429})
ERROR_TEXT_LIMIT = 500
# Stands for a prompt's token ids in a payload whose JSON text gets them joined in.
_ID_MARKER = -918_273_645
_JSON_TYPE = {"Content-Type": "application/json"}


class ApiModelUnusable(RuntimeError):
    """The API model's settings cannot serve the deita tasks: fail the run, with the fix."""


def estimate_tokens(messages: list[Message]) -> int:
    """An upper bound on the prompt tokens of `messages` without the served model's tokenizer.

    Every token of a byte-level BPE (GPT-2, Llama-3, Qwen, InternLM2 ...) or of a SentencePiece
    model with byte fallback (Llama-2, Mistral ...) covers at least one UTF-8 byte, so the bytes
    of the contents bound the content tokens; each message adds its template's role markers
    (<= 16 tokens) and the generation prompt another 16. It over-counts English about 4x: give
    the served model's tokenizer (`tokenizer_backend=huggingface,tokenizer=<id>`) for an exact
    budget.
    """
    content = sum(len(str(m.get("content", "")).encode("utf-8")) for m in messages)
    return content + ESTIMATE_TOKENS_PER_MESSAGE * len(messages) + ESTIMATE_TOKENS_PER_PROMPT


def is_api_model(lm) -> bool:
    module = sys.modules.get(API_MODULE)
    return module is not None and isinstance(lm, module.TemplateAPI)


def _is_chat_model(lm) -> bool:
    module = sys.modules.get(CHAT_MODULE)
    return module is not None and isinstance(lm, module.LocalChatCompletion)


def api_backend_for(lm) -> ApiChatBackend | None:
    """The backend for an lm-eval API model, None for any other model."""
    return ApiChatBackend(lm) if is_api_model(lm) else None


def _hf_tokenizer(lm):
    """The model's transformers tokenizer, or None (no tokenizer, tiktoken, remote)."""
    if getattr(lm, "tokenizer_backend", None) != "huggingface":
        return None
    tokenizer = getattr(lm, "tokenizer", None)
    return tokenizer if hasattr(tokenizer, "apply_chat_template") else None


def _has_chat_template(tokenizer) -> bool:
    return tokenizer is not None and bool(getattr(tokenizer, "chat_template", None))


def _check_credentials(lm, name: str) -> None:
    """aiohttp refuses a request that has both URL credentials and an Authorization header."""
    from urllib.parse import urlsplit

    from rgen_harness.redact import mask_url

    url = str(getattr(lm, "base_url", "") or "")
    headers = getattr(lm, "header", None) or {}
    has_auth = any(str(k).lower() == "authorization" for k in headers)
    if has_auth and (urlsplit(url).username is not None):
        raise ApiModelUnusable(
            f"{name}: base_url={mask_url(url)!r} carries credentials (user:password@) and an "
            "api_key is set too; HTTP sends only one. Remove the user-info from base_url or "
            "the api_key."
        )


async def _announce(what: str, timeout: float) -> None:
    """Warn every WAIT_WARNING_S seconds until cancelled (the request was answered)."""
    waited = 0.0
    while True:
        await asyncio.sleep(WAIT_WARNING_S)
        waited += WAIT_WARNING_S
        log.warning(
            "%s: no answer after %.0f s (gives up after %.0f s: timeout in --model_args)",
            what,
            waited,
            timeout,
        )


class _ChatPrompt(str):
    """A chat request's messages as JSON (what is logged, hashed and sent), carrying the text
    the chat template renders from them (what is counted) until the prompt is staged."""

    templated: str | None


class ApiChatBackend:
    """The ChatBackend of an lm-eval `TemplateAPI` model.

    Rendering, counting and staging run on the budgeting thread; `generate` (the HTTP requests)
    on the runner's worker thread, while the next chunk is budgeted."""

    concurrent_generate = True

    def __init__(self, lm) -> None:
        self.lm = lm
        self.chat = _is_chat_model(lm)
        self.tokenizer = _hf_tokenizer(lm)
        name = type(lm).__name__
        if not self.chat and not _has_chat_template(self.tokenizer):
            what = (
                "its tokenizer has no chat template"
                if self.tokenizer is not None
                else f"no local tokenizer (tokenizer_backend={lm.tokenizer_backend})"
            )
            raise ApiModelUnusable(
                f"{name} sends text prompts, and the deita tasks render every conversation with "
                f"the served model's chat template, but the model has {what}. Pass the served "
                "model's tokenizer: --model_args ...,tokenizer_backend=huggingface,"
                "tokenizer=<its hub id or local folder>; or use local-chat-completions "
                "(base_url=.../v1/chat/completions), where the server applies its template."
            )
        if getattr(lm, MAX_LENGTH_GIVEN_ATTR, True) is False:
            raise ApiModelUnusable(
                f"{name}: the deita tasks fit every prompt plus max_gen_toks into the server's "
                "context, but --model_args gives no max_length (lm-eval would assume 2048). "
                "Add max_length=<the server's context length> (lmdeploy: its --session-len; "
                "vLLM: its --max-model-len), e.g. --model_args model=...,base_url=...,"
                "max_length=8192."
            )
        _check_credentials(lm, name)
        # special_text: escaped only where the project sends token ids (see chat/special_text.py)
        self.special_text = SpecialText.of(
            self.tokenizer, escape=not self.chat and bool(getattr(lm, "tokenized_requests", False))
        )
        # lm-eval keeps one token for generation: max_length - 1.
        self.max_length = int(lm.max_length)
        self.template: FastChatTemplate | None = None
        self.encoder = None
        self.staged = None
        if _has_chat_template(self.tokenizer):
            from rgen_harness.chat.token_counts import PromptEncoder, StagedIds

            self.template = FastChatTemplate.build(self.tokenizer)
            # chat: what apply_chat_template(tokenize=True) counts; completions: what is sent
            specials = False if self.chat else bool(getattr(lm, "add_bos_token", False))
            self.encoder = PromptEncoder(self.tokenizer, add_special_tokens=specials)
            if not self.chat and lm.tokenized_requests:
                self.staged = StagedIds(self.encoder, as_json=True)
        if self.chat and not _has_chat_template(self.tokenizer):
            log.warning(
                "%s: no tokenizer with a chat template; prompt tokens are estimated from above "
                "(UTF-8 bytes + %d per message), so long histories lose more turns than needed. "
                "Pass tokenizer_backend=huggingface,tokenizer=<the served model's id> for an "
                "exact budget.",
                name,
                ESTIMATE_TOKENS_PER_MESSAGE,
            )

    # -- ChatBackend ----------------------------------------------------------------------
    def render(self, messages: list[Message]) -> str:
        if not self.chat:
            return self._apply_template(messages)
        prompt = _ChatPrompt(json.dumps(messages, ensure_ascii=False))
        prompt.templated = self._apply_template(messages) if self.encoder is not None else None
        return prompt

    def _apply_template(self, messages: list[Message]) -> str:
        """`apply_chat_template(messages, tokenize=False, add_generation_prompt=True)`; plain
        messages through the compiled template (the same text, see `FastChatTemplate`)."""
        if self.template is not None and self.template.takes(messages):
            return self.template.render(messages)
        return self.tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True
        )

    def _templated(self, prompt: str) -> str:
        """The template's text of a chat prompt (rendered again if it was not made here)."""
        text = getattr(prompt, "templated", None)
        return text if text is not None else self._apply_template(json.loads(prompt))

    def count_tokens(self, prompt: str) -> int:
        return self.count_many([prompt])[0]

    def count_many(self, prompts: list[str]) -> list[int]:
        """Prompt tokens of each prompt, new pieces tokenised in one batch."""
        if self.encoder is None:
            return [estimate_tokens(json.loads(p)) for p in prompts]
        if self.chat:
            return self.encoder.count_many([self._templated(p) for p in prompts])
        return self.encoder.count_many(prompts)

    def stage(self, prompts: list[str]) -> None:
        """The prompts about to be sent: assemble their ids (completions with token ids), or
        keep their pieces for the next rounds (chat, text completions)."""
        if self.encoder is None:
            return
        if self.staged is not None:
            self.staged.stage(prompts)
            return
        if self.chat:
            texts = [self._templated(p) for p in prompts]
            for p in prompts:
                if isinstance(p, _ChatPrompt):
                    p.templated = None  # counted and kept: the JSON is what is sent
            prompts = texts
        self.encoder.keep(prompts)

    def round_done(self) -> None:
        """Every prompt of the round is staged: keep only the pieces later rounds extend."""
        if self.encoder is not None:
            self.encoder.keep_only_used()

    def max_gen_toks(self, gen_kwargs: dict) -> int:
        value = gen_kwargs.get("max_gen_toks", getattr(self.lm, "_max_gen_toks", None))
        return int(value if value is not None else DEFAULT_MAX_GEN_TOKS)

    def generate(self, prompts: list[str], gen_kwargs: list[dict]) -> list[Generation]:
        """One round's chunk as HTTP requests, `num_concurrent` at a time; each request's
        payload is built when it is sent (a chunk's token ids as Python lists would take
        ~36 bytes per id at once)."""
        makers = [
            functools.partial(self._payload, prompt, kwargs)
            for prompt, kwargs in zip(prompts, gen_kwargs, strict=True)
        ]
        return asyncio.run(self._post_all(makers))

    # -- requests -------------------------------------------------------------------------
    def _encode(self, text: str) -> list[int]:
        if has_marks(text):  # special_text: escaped contents encoded as ordinary text
            prefix = template_tokens(self.tokenizer).prefix_ids
            add = bool(getattr(self.lm, "add_bos_token", False))
            return [*(prefix if add else ()), *encode_marked(self.tokenizer, text)]
        return self.tokenizer(
            text, add_special_tokens=bool(getattr(self.lm, "add_bos_token", False))
        ).input_ids

    def _payload(self, prompt: str, gen_kwargs: dict) -> dict | bytes:
        """The request body: exactly what lm-eval sends (its `create_message` and
        `_create_payload`); a staged completions prompt as the JSON text of that payload with
        the ids' text joined in from their pieces (the same JSON, without converting each id)."""
        lm = self.lm
        kwargs = copy.deepcopy(dict(gen_kwargs))
        kwargs.setdefault("max_gen_toks", self.max_gen_toks(kwargs))
        if self.chat:
            message = json.loads(prompt)
        else:
            kwargs = self._with_end_of_turn(kwargs)
            if lm.tokenized_requests:
                parts = self.staged.take(prompt) if self.staged is not None else None
                if parts is not None:
                    return self._json_body(parts, kwargs)
            single = self._encode(prompt) if lm.tokenized_requests else str(prompt)
            message = lm.create_message([single])
        return lm._create_payload(
            message, generate=True, gen_kwargs=kwargs, seed=lm._seed, eos=lm.eos_string
        )

    def _json_body(self, parts: list[str], gen_kwargs: dict) -> dict | bytes:
        """The payload of token ids whose JSON text is `parts` (`PromptEncoder.json_parts_many`),
        as the bytes `json.dumps` gives (aiohttp's `json=`)."""
        lm = self.lm
        ids_text = "[" + ", ".join(parts) + "]"
        message = lm.create_message([[_ID_MARKER]])
        payload = lm._create_payload(
            message, generate=True, gen_kwargs=gen_kwargs, seed=lm._seed, eos=lm.eos_string
        )
        text = json.dumps(payload)
        marker = f"[{_ID_MARKER}]"
        if text.count(marker) != 1:  # a model class that reshapes the ids: the plain way
            message = lm.create_message([json.loads(ids_text)])
            return lm._create_payload(
                message, generate=True, gen_kwargs=gen_kwargs, seed=lm._seed, eos=lm.eos_string
            )
        return text.replace(marker, ids_text).encode("utf-8")

    def _with_end_of_turn(self, gen_kwargs: dict) -> dict:
        """Stop at the template's end-of-turn token too (a completion server knows only EOS)."""
        eot = template_tokens(self.tokenizer).end_of_turn_text
        if not eot:
            return gen_kwargs
        until = gen_kwargs.get("until") or []
        until = [until] if isinstance(until, str) else list(until)
        return {**gen_kwargs, "until": until if eot in until else [*until, eot]}

    async def _post_all(self, payloads: list[Callable[[], dict | bytes]]) -> list[Generation]:
        from aiohttp import ClientSession, ClientTimeout, TCPConnector

        concurrent = max(1, int(getattr(self.lm, "_concurrent", 1)))
        connector = TCPConnector(limit=concurrent, ssl=self.lm.verify_certificate)
        sem = asyncio.Semaphore(concurrent)
        timeout = ClientTimeout(total=int(getattr(self.lm, "timeout", 300)))
        async with ClientSession(connector=connector, timeout=timeout) as session:
            return list(await asyncio.gather(*(self._post(session, sem, p) for p in payloads)))

    async def _post(
        self, session, sem: asyncio.Semaphore, make_payload: Callable[[], dict | bytes]
    ) -> Generation:
        """One request with lm-eval's retry policy; never raises for a request's own failure."""
        from urllib.parse import urlsplit

        from aiohttp import ClientError

        from rgen_harness.redact import mask_text, mask_url

        lm = self.lm
        url = mask_url(str(lm.base_url))
        # The credentials themselves, masked wherever a server echoes them back.
        secrets = (str(getattr(lm, "api_key", "") or ""), urlsplit(str(lm.base_url)).password)
        secrets = tuple(s for s in secrets if s)
        attempts = max(1, int(getattr(lm, "max_retries", 3)))
        timeout = float(getattr(lm, "timeout", 300))
        error = "no attempt made"
        payload = None
        for attempt in range(1, attempts + 1):
            retryable = True
            asked = None
            async with sem:
                if payload is None:
                    payload = make_payload()
                what = f"request to {url} (attempt {attempt} of {attempts})"
                watch = asyncio.ensure_future(_announce(what, timeout))
                try:
                    if isinstance(payload, bytes):
                        body = {"data": payload, "headers": {**lm.header, **_JSON_TYPE}}
                    else:
                        body = {"json": payload, "headers": lm.header}
                    async with session.post(lm.base_url, **body) as r:
                        if r.ok:
                            outputs = await r.json(content_type=None)
                            return self._generation(outputs)
                        body = (await r.text())[:ERROR_TEXT_LIMIT]
                        error = f"HTTP {r.status} from {url}: {body}"
                        retryable = r.status >= 500 or r.status in RETRYABLE_STATUS
                        asked = retry_after(r.headers.get("Retry-After"))
                except asyncio.TimeoutError:
                    error = f"request to {url} timed out after {timeout:g} s (timeout={timeout:g})"
                except ClientError as e:
                    error = f"request to {url} failed: {type(e).__name__}: {e}"
                except (ValueError, KeyError, IndexError, TypeError) as e:
                    error = f"unreadable response from {url}: {type(e).__name__}: {e}"
                finally:
                    watch.cancel()
            error = mask_text(error, secrets)
            if not retryable or attempt == attempts:
                break
            # lm-eval's back-off: wait_exponential(multiplier=0.5, min=1, max=10)
            wait = min(10.0, max(1.0, 0.5 * 2 ** (attempt - 1)))
            if asked is not None:
                wait = min(asked, MAX_RETRY_AFTER)
                error += f" (Retry-After: {asked:g} s)"
            log.info("%s; retry %d of %d in %g s", error, attempt, attempts - 1, wait)
            await asyncio.sleep(wait)
        log.warning("request failed, the conversation is counted as failed: %s", error)
        return Generation(text="", error=error)

    def _generation(self, outputs: dict[str, Any]) -> Generation:
        texts = self.lm.parse_generations(outputs=outputs)
        if not texts or texts[0] is None:
            raise ValueError(f"no generated text in {json.dumps(outputs)[:200]}")
        choice = (outputs.get("choices") or [{}])[0]
        usage = outputs.get("usage") or {}
        prompt_tokens = usage.get("prompt_tokens")
        reply_tokens = usage.get("completion_tokens")
        if reply_tokens is None and self.tokenizer is not None:
            reply_tokens = len(self.tokenizer(texts[0], add_special_tokens=False).input_ids)
        from rgen_harness.chat.reply_text import clean_text

        return Generation(
            text=clean_text(texts[0]),  # the servers stop at `stop`; the trailing-byte rule
            finish_reason=choice.get("finish_reason"),
            tokens=int(reply_tokens) if reply_tokens is not None else None,
            prompt_tokens=int(prompt_tokens) if prompt_tokens is not None else None,
        )
