"""Runs ChatRequests round by round; each round is ONE batched generation call for all live
conversations, so a backend's continuous batching (or HF's batching) sees the whole round.

`run_rounds` is backend-neutral: a backend supplies a `ChatBackend` (render, count tokens,
generate). `generate_chat_rounds` is the default implementation that every lm-eval model gets
(installed on `lm_eval.api.model.LM` by the start-up hook); it drives the model's own
`apply_chat_template` and `generate_until`, so `hf`, `vllm` and friends work unchanged.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Protocol

from rgen_harness.chat.budget import ContextTooLong, FitJob, Fitted, fit_prompts
from rgen_harness.chat.gen_options import check_generation_options
from rgen_harness.chat.generation import DEFAULT_MAX_GEN_TOKS, Generation
from rgen_harness.chat.protocol import (
    REQUEST_TYPE,
    ChatRequest,
    ChatResult,
    Message,
    RequestData,
    RoundRecord,
)
from rgen_harness.chat.special_text import (
    SpecialText,
    escape_reply,
    install_lm_hook,
    prepare_request,
    unescape,
)
from rgen_harness.chat.special_tokens import template_tokens

log = logging.getLogger(__name__)


class ChatTemplateUnavailable(RuntimeError):
    """The model cannot render chat messages at all: fail the run, not each row."""


class ChatBackend(Protocol):
    max_length: int | None  # None: the backend cannot count tokens, no budget is applied

    def render(self, messages: list[Message]) -> str: ...

    def count_tokens(self, text: str) -> int: ...

    def max_gen_toks(self, gen_kwargs: dict) -> int: ...

    def generate(self, prompts: list[str], gen_kwargs: list[dict]) -> list[Generation]: ...


@dataclass
class _State:
    request: RequestData  # parsed once here; dropped with the state when the rounds end
    gen_kwargs: dict
    tail: list[Message]
    result: ChatResult
    done: bool = False


class RoundCache:
    """Per-round generation cache in lm-eval's `--use_cache` database.

    lm-eval's CachingLM caches only its three built-in request types and passes other methods
    through, so the rounds look themselves up in the same sqlite file (reached through the
    model's `cache_hook`). Sampled generations are not cached, as in lm-eval; errors never are.
    """

    KEY = f"{REQUEST_TYPE}:round"

    def __init__(self, db) -> None:
        self.db = db

    @classmethod
    def of(cls, lm) -> RoundCache | None:
        """The model's cache, its file checked first (a broken one is set aside and restarted)."""
        from rgen_harness.cache_files import reopen_if_broken

        hook = getattr(lm, "cache_hook", None)
        db = getattr(hook, "dbdict", None)
        if db is None:
            return None
        hook.dbdict = reopen_if_broken(db)
        return cls(hook.dbdict)

    @staticmethod
    def _cacheable(gen_kwargs: dict) -> bool:
        return not gen_kwargs.get("do_sample", False)

    def _key(self, prompt: str, gen_kwargs: dict) -> str:
        from lm_eval.api.model import hash_args

        return hash_args(self.KEY, (prompt, gen_kwargs))

    def get(self, prompt: str, gen_kwargs: dict) -> Generation | None:
        if not self._cacheable(gen_kwargs):
            return None
        hit = self.db.get(self._key(prompt, gen_kwargs))
        return Generation(**hit) if hit is not None else None

    def put(self, prompt: str, gen_kwargs: dict, gen: Generation) -> None:
        if gen.error is None and self._cacheable(gen_kwargs):
            self.db[self._key(prompt, gen_kwargs)] = asdict(gen)

    def commit(self) -> None:
        if hasattr(self.db, "commit"):
            self.db.commit()


def _cached(
    prompts: list[str], kwargs: list[dict], cache: RoundCache | None
) -> tuple[list[Generation | None], list[int]]:
    """The generations the cache holds (None elsewhere) and the indices still to generate."""
    if cache is None:
        return [None] * len(prompts), list(range(len(prompts)))
    out: list[Generation | None] = [cache.get(p, k) for p, k in zip(prompts, kwargs, strict=True)]
    todo = [i for i, g in enumerate(out) if g is None]
    if len(todo) < len(prompts):
        log.info(
            "%s: %d of %d prompts from cache", REQUEST_TYPE, len(prompts) - len(todo), len(prompts)
        )
    return out, todo


def _generate_into(
    backend: ChatBackend,
    out: list[Generation | None],
    todo: list[int],
    prompts: list[str],
    kwargs: list[dict],
    cache: RoundCache | None,
) -> list[Generation]:
    """Generate the prompts at `todo` into `out` (and the cache)."""
    if todo:
        fresh = backend.generate([prompts[i] for i in todo], [kwargs[i] for i in todo])
        if len(fresh) != len(todo):
            raise RuntimeError(f"backend returned {len(fresh)} generations for {len(todo)} prompts")
        for i, gen in zip(todo, fresh, strict=True):
            out[i] = gen
            if cache is not None:
                cache.put(prompts[i], kwargs[i], gen)
        if cache is not None:
            cache.commit()
    return out


def run_rounds(
    requests: Sequence[tuple[str, dict]],
    backend: ChatBackend,
    cache: RoundCache | None = None,
) -> list[ChatResult]:
    check_generation_options((gen_kwargs for _, gen_kwargs in requests), backend)
    states = []
    for context, gen_kwargs in requests:
        request, special = prepare_request(ChatRequest.read(context), backend)  # special_text
        state = _State(request, dict(gen_kwargs or {}), [], ChatResult(status="ok"))
        if request.skip_reason:
            state.result = ChatResult(status="skipped", reason=request.skip_reason)
            state.done = True
        state.result.special_text = special
        states.append(state)

    n_rounds = max((len(s.request.rounds) for s in states), default=0)
    for wave in _waves(states, backend):
        _run_wave(wave, backend, cache, n_rounds)
    return [s.result for s in states]


FIRST_WAVE = 64  # conversations in the first wave when the backend has a prefix cache
FALLBACK_WAVE = 256  # when its size is not known (TurboMind)
CACHE_SHARE = 0.5  # of the prefix cache a wave's first round may fill


def _waves(states: list[_State], backend: ChatBackend):
    """The conversations in the order and groups their rounds run in.

    Without a prefix cache: one group, every round for all conversations at once (the fewest,
    largest engine calls). With one (`backend.prefix_cache_tokens`: its size in tokens, 0 when
    off, None when unknown): a conversation's QR and QCR requests side by side (they share the
    history), in waves whose first round fills about half the cache, each wave's later rounds
    right after its first, so round 2 finds round 1's blocks before they are evicted. A wave's
    size follows the tokens its predecessors' first rounds took."""
    capacity = getattr(backend, "prefix_cache_tokens", 0)
    if capacity == 0 or len(states) <= FIRST_WAVE:
        yield states
        return
    order = sorted(range(len(states)), key=lambda i: (states[i].request.doc_id or "", i))
    ordered = [states[i] for i in order]
    size, start, used, counted = FIRST_WAVE, 0, 0, 0
    while start < len(ordered):
        wave = ordered[start : start + size]
        yield wave
        start += len(wave)
        for s in wave:
            if s.result.rounds:
                first = s.result.rounds[0]
                used += (first.prompt_tokens or 0) + (first.reply_tokens or 0)
                counted += 1
        if capacity is None or not counted or not used:
            size = FALLBACK_WAVE
        else:
            size = max(16, int(CACHE_SHARE * capacity * counted / used))


def _run_wave(
    states: list[_State], backend: ChatBackend, cache: RoundCache | None, n_rounds: int
) -> None:
    for k in range(n_rounds):
        todo = [s for s in states if not s.done and k < len(s.request.rounds)]
        if not todo:
            continue
        for s in todo:
            s.tail = s.tail + s.request.rounds[k]
        log.info("%s: round %d/%d, %d conversations", REQUEST_TYPE, k + 1, n_rounds, len(todo))
        for s, gen in _run_round(todo, backend, cache):
            record = s.result.rounds[-1]
            record.finish_reason = gen.finish_reason
            if gen.error is not None:
                s.result.status, s.result.reason, s.done = "failed", gen.error, True
                continue
            record.reply = gen.text
            record.reply_tokens = gen.tokens
            record.cached_tokens = gen.cached_tokens
            if gen.prompt_tokens is not None:
                record.prompt_tokens = gen.prompt_tokens
            if k + 1 < len(s.request.rounds) and not gen.text.strip():
                # GLM-4's template drops empty turns: the next round would see another dialogue.
                s.result.status, s.done = "failed", True
                s.result.reason = f"empty reply in round {k + 1} of {len(s.request.rounds)}"
                continue
            reply = escape_reply(backend, s.request, gen.text)  # special_text
            s.tail = s.tail + [{"role": "assistant", "content": reply}]


FIRST_CHUNK = 64  # conversations budgeted before the first engine call of a round
CHUNK_GROWTH = 4  # each later call takes this many times more


def _chunks(items: list, concurrent: bool) -> list[list]:
    """The round's conversations in the order they go to the backend: all at once, or, for a
    backend that generates while the next prompts are budgeted, 64, 256, 1024 ... so the
    engine starts within seconds and a round still takes only a few calls (each call's tail
    runs at a lower batch occupancy)."""
    if not concurrent:
        return [items] if items else []
    out, size, start = [], FIRST_CHUNK, 0
    while start < len(items):
        out.append(items[start : start + size])
        start += size
        size *= CHUNK_GROWTH
    return out


def _run_round(
    todo: list[_State], backend: ChatBackend, cache: RoundCache | None
) -> list[tuple[_State, Generation]]:
    """Budget and generate one round. A backend with `concurrent_generate = True` generates
    each chunk on a worker thread while the next chunk is budgeted (its `generate` must not
    share mutable state with `render` / counting); any other backend gets one call."""
    from concurrent.futures import ThreadPoolExecutor

    concurrent = bool(getattr(backend, "concurrent_generate", False))
    stage = getattr(backend, "stage", None)
    pending = []
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="rgen-generate") as pool:
        for chunk in _chunks(todo, concurrent):
            if any(f.done() and f.exception() for _, f in pending):
                break  # the engine failed: stop budgeting, the error is raised below
            live, prompts = [], []
            for s, prompt in zip(chunk, _prepare_many(chunk, backend), strict=True):
                if prompt is not None:
                    live.append(s)
                    prompts.append(prompt)
            if not live:
                continue
            kwargs = [s.gen_kwargs for s in live]
            out, missing = _cached(prompts, kwargs, cache)
            if stage is not None:
                stage([prompts[i] for i in missing])
            job = (backend, out, missing, prompts, kwargs, cache)
            if concurrent:
                future = pool.submit(_generate_into, *job)
            else:
                future = _done(_generate_into(*job))
            pending.append((live, future))
        release = getattr(backend, "round_done", None)
        if release is not None:
            release()
        out = []
        for live, future in pending:
            generations = future.result()
            if len(generations) != len(live):
                raise RuntimeError(
                    f"backend returned {len(generations)} generations for {len(live)} prompts"
                )
            out.extend(zip(live, generations, strict=True))
    return out


def _done(value):
    from concurrent.futures import Future

    future = Future()
    future.set_result(value)
    return future


def _prepare_many(states: list[_State], backend: ChatBackend) -> list[str | None]:
    """Render (and budget) the next prompt of each conversation; None where one ends here.

    The budget's attempts are counted a step at a time for all conversations together
    (`fit_prompts`): a backend with `count_many` encodes each step as one batch."""
    fitted: list = []
    if backend.max_length is None:
        for s in states:
            try:
                messages = s.request.sent(s.request.messages) + s.tail
                fitted.append(_unbudgeted(backend.render(messages)))
            except Exception as e:  # noqa: BLE001  (sorted out below)
                fitted.append(e)
    else:
        jobs = [
            FitJob.for_round(
                s.request,
                s.tail,
                round_index=len(s.result.rounds),
                max_length=backend.max_length,
                max_gen_toks=backend.max_gen_toks(s.gen_kwargs),
                dropped=s.result.dropped_turns,
            )
            for s in states
        ]
        count_many = getattr(backend, "count_many", None) or (
            lambda prompts: [backend.count_tokens(p) for p in prompts]
        )
        fitted = fit_prompts(jobs, render=backend.render, count_many=count_many)
    return [_record(s, f) for s, f in zip(states, fitted, strict=True)]


def _unbudgeted(prompt: str) -> Fitted:
    return Fitted(prompt, None, 0)  # type: ignore[arg-type]  (no budget: nothing counted)


def _record(state: _State, fitted: Fitted | Exception) -> str | None:
    """Record the outcome of one conversation's budget; its prompt, or None if it ends here."""
    result = state.result
    if isinstance(fitted, ContextTooLong):
        result.status, result.reason, state.done = "skipped", f"context too long: {fitted}", True
        return None
    if isinstance(fitted, ChatTemplateUnavailable):
        raise fitted
    if isinstance(fitted, Exception):  # a template that rejects this one conversation
        result.status, state.done = "failed", True
        result.reason = f"chat template failed: {type(fitted).__name__}: {fitted}"
        return None
    result.dropped_turns = fitted.dropped_turns
    prompt = unescape(fitted.prompt)  # special_text: the text as typed, not its escaped form
    result.rounds.append(
        RoundRecord(
            prompt=prompt if state.request.log_prompts else "",
            reply="",
            prompt_tokens=fitted.prompt_tokens,
            prompt_sha256=hashlib.sha256(prompt.encode("utf-8", "surrogatepass")).hexdigest(),
            dropped_turns=fitted.dropped_turns,
        )
    )
    return fitted.prompt


def rebuild_prompts(request: ChatRequest, result: ChatResult, render) -> list[str]:
    """Every round's prompt rendered again from the request and the recorded replies and
    dropped turns (`render`: the evaluated model's chat template, e.g. its tokenizer's
    `apply_chat_template(m, tokenize=False, add_generation_prompt=True)`). Compare with the
    recorded `prompt_sha256` to check it is the prompt the model saw."""
    from rgen_harness.chat.budget import drop_oldest

    request = ChatRequest.read(request)
    prompts, tail = [], []
    for k, record in enumerate(result.rounds):
        tail = tail + request.rounds[k]
        dropped = record.dropped_turns or 0
        history = request.sent(drop_oldest(request.messages, dropped), dropped)
        prompts.append(render(history + tail))
        tail = tail + [{"role": "assistant", "content": record.reply}]
    return prompts


def _tokenizer_of(lm):
    """The model's tokenizer, or None (a model such as lm-eval's `dummy` loads one lazily from
    a name that may not exist)."""
    try:
        return getattr(lm, "tokenizer", None)
    except Exception:  # noqa: BLE001
        return None


class LMChatBackend:
    """Adapts any lm-eval `LM` (hf, vllm, api models ...) to the ChatBackend protocol."""

    def __init__(self, lm) -> None:
        self.lm = lm
        self.max_length = getattr(lm, "max_length", None) if hasattr(lm, "tok_encode") else None
        self.special_text = SpecialText.of(_tokenizer_of(lm))  # special_text
        install_lm_hook(lm)

    def render(self, messages: list[Message]) -> str:
        return self._single_prefix(self._render(messages))

    def _single_prefix(self, prompt: str) -> str:
        """The prompt without the template's copy of the tokenizer's prefix when the model's own
        encoding adds that prefix again (lm-eval keys its check on `bos_token`, which GLM-4
        lacks: `[gMASK]<sop>` would appear twice)."""
        tokenizer = getattr(self.lm, "tokenizer", None)
        if tokenizer is None or not hasattr(self.lm, "tok_encode"):
            return prompt
        tokens = template_tokens(tokenizer)
        if not tokens.prefix_ids or not prompt.startswith(tokens.prefix_text):
            return prompt
        prefix = list(tokens.prefix_ids)
        if self.lm.tok_encode(prompt)[: 2 * len(prefix)] == prefix + prefix:
            return prompt[len(tokens.prefix_text) :]
        return prompt

    def _render(self, messages: list[Message]) -> str:
        try:
            return self.lm.apply_chat_template(messages, add_generation_prompt=True)
        except NotImplementedError as e:
            raise ChatTemplateUnavailable(
                f"model class {type(self.lm).__name__} cannot render chat messages, which the "
                "deita tasks need. Use a chat-capable backend (hf, vllm, lmdeploy, "
                "local-chat-completions ...)."
            ) from e
        except ValueError as e:
            if "chat_template" in str(e) or "chat template" in str(e):
                raise ChatTemplateUnavailable(
                    f"the model's tokenizer has no chat template ({e}). The deita tasks render "
                    "each turn with the evaluated model's template: use a chat/instruct model, "
                    "or give the tokenizer a template (hf: --model_args ...,chat_template=...)."
                ) from e
            raise

    def count_tokens(self, text: str) -> int:
        return len(self.lm.tok_encode(text))

    def max_gen_toks(self, gen_kwargs: dict) -> int:
        value = gen_kwargs.get("max_gen_toks", getattr(self.lm, "max_gen_toks", None))
        return int(value if value is not None else DEFAULT_MAX_GEN_TOKS)

    def _reply_tokens(self, text: str) -> int | None:
        if not hasattr(self.lm, "tok_encode"):
            return None
        try:
            return len(self.lm.tok_encode(text, add_special_tokens=False))
        except TypeError:
            return len(self.lm.tok_encode(text))

    def _with_end_of_turn(self, gen_kwargs: dict) -> dict:
        """gen_kwargs whose `until` also holds the template's end-of-turn token, so a base
        model with a chat template stops at the end of its turn."""
        tokenizer = getattr(self.lm, "tokenizer", None)
        eot = template_tokens(tokenizer).end_of_turn_text if tokenizer is not None else None
        if not eot:
            return dict(gen_kwargs)
        until = gen_kwargs.get("until") or []
        until = [until] if isinstance(until, str) else list(until)
        return {**gen_kwargs, "until": until if eot in until else [*until, eot]}

    def generate(self, prompts: list[str], gen_kwargs: list[dict]) -> list[Generation]:
        from lm_eval.api.instance import Instance

        gen_kwargs = [self._with_end_of_turn(kwargs) for kwargs in gen_kwargs]
        instances = [
            Instance(
                request_type="generate_until",
                doc={},
                arguments=(prompt, dict(kwargs)),
                idx=0,
                metadata=(REQUEST_TYPE, i, 1),
            )
            for i, (prompt, kwargs) in enumerate(zip(prompts, gen_kwargs, strict=True))
        ]
        texts = self.lm.generate_until(instances)
        out = []
        for text, kwargs in zip(texts, gen_kwargs, strict=True):
            tokens = self._reply_tokens(text)
            # generate_until reports no finish reason: a reply shorter than the limit stopped.
            limit = self.max_gen_toks(kwargs)
            reason = None if tokens is None else ("length" if tokens >= limit else "stop")
            out.append(Generation(text=text, finish_reason=reason, tokens=tokens))
        return out


def generate_chat_rounds(self, requests, disable_tqdm: bool = False) -> list[str]:
    """Default `LM.generate_chat_rounds`: multi-round chat through apply_chat_template +
    generate_until. Returns one ChatResult JSON string per request, in order."""
    from rgen_harness.chat.api_backend import api_backend_for
    from rgen_harness.models.hf_chat import HFChatBackend, is_hf_causal

    backend = api_backend_for(self)
    if backend is None:
        backend = HFChatBackend(self, use_tqdm=not disable_tqdm) if is_hf_causal(self) else None
    backend = backend or LMChatBackend(self)
    results = run_rounds([req.args for req in requests], backend, RoundCache.of(self))
    return [r.to_json() for r in results]
