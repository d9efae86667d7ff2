"""The served path's piece-cached, chunked rounds send exactly what the one-prompt-at-a-time
backend sent (kept here verbatim as the reference): the same turns dropped, the same
conversations skipped, the same prompts and token ids in the same requests, for QR and both
QCR rounds, through lm-eval's own `LocalCompletionsAPI` (token ids with and without the
tokenizer's special tokens, text) and `LocalChatCompletion` (messages, counted with the local
tokenizer), for every model family. No server: the requests are answered in process."""

from __future__ import annotations

import copy
import hashlib
import json
import random

import pytest

from rgen_harness.chat import runner
from rgen_harness.chat.api_backend import ApiChatBackend, estimate_tokens
from rgen_harness.chat.generation import DEFAULT_MAX_GEN_TOKS, Generation
from rgen_harness.chat.protocol import ChatRequest, ChatResult
from rgen_harness.chat.runner import run_rounds
from rgen_harness.chat.special_tokens import template_tokens
from rgen_harness.prompts.qcr import load_qcr_prompts
from rgen_harness.smoke.families import FAMILIES, build_family_tokenizer

MAX_GEN = 16
WORDS = ["the", "model", "answer", "数据", "分析", "naïve", "🙂", "  ", "\n\n", "x=1;", "e\u0301"]


class ReferenceBackend:
    """The served backend as it was: every prompt rendered with `apply_chat_template`, counted
    by tokenising it whole (chat: `apply_chat_template(..., tokenize=True)`), and encoded again
    for its request; one `generate` call per round."""

    def __init__(self, lm) -> None:
        self.lm = lm
        self.chat = type(lm).__name__ == "LocalChatCompletion"
        self.tokenizer = lm.tokenizer
        self.max_length = int(lm.max_length)

    def render(self, messages):
        if self.chat:
            return json.dumps(messages, ensure_ascii=False)
        return self.tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True
        )

    def count_tokens(self, prompt: str) -> int:
        if not self.chat:
            return len(self._encode(prompt))
        messages = json.loads(prompt)
        if self.tokenizer is not None:
            ids = self.tokenizer.apply_chat_template(
                messages, tokenize=True, add_generation_prompt=True
            )
            if isinstance(ids, dict) or hasattr(ids, "input_ids"):
                ids = ids["input_ids"]
            return len(ids)
        return estimate_tokens(messages)

    def max_gen_toks(self, gen_kwargs: dict) -> int:
        value = gen_kwargs.get("max_gen_toks", getattr(self.lm, "_max_gen_toks", None))
        return int(value if value is not None else DEFAULT_MAX_GEN_TOKS)

    def generate(self, prompts, gen_kwargs):
        return [answer(self._payload(p, k)) for p, k in zip(prompts, gen_kwargs, strict=True)]

    def _encode(self, text: str) -> list[int]:
        return self.tokenizer(
            text, add_special_tokens=bool(getattr(self.lm, "add_bos_token", False))
        ).input_ids

    def _payload(self, prompt: str, gen_kwargs: dict) -> dict:
        lm = self.lm
        kwargs = copy.deepcopy(dict(gen_kwargs))
        kwargs.setdefault("max_gen_toks", self.max_gen_toks(kwargs))
        if self.chat:
            message = json.loads(prompt)
        else:
            kwargs = self._with_end_of_turn(kwargs)
            single = self._encode(prompt) if lm.tokenized_requests else prompt
            message = lm.create_message([single])
        return lm._create_payload(
            message, generate=True, gen_kwargs=kwargs, seed=lm._seed, eos=lm.eos_string
        )

    def _with_end_of_turn(self, gen_kwargs: dict) -> dict:
        eot = template_tokens(self.tokenizer).end_of_turn_text
        if not eot:
            return gen_kwargs
        until = gen_kwargs.get("until") or []
        until = [until] if isinstance(until, str) else list(until)
        return {**gen_kwargs, "until": until if eot in until else [*until, eot]}


SENT: list[dict] = []
AS_TEXT: list[int] = []  # bodies sent as JSON text with the ids joined in


def answer(payload: dict | bytes) -> Generation:
    """A reply that depends on the whole request (another request, another next round)."""
    if isinstance(payload, bytes):  # a body sent as JSON text: the same JSON as the dict's
        assert payload.decode() == json.dumps(json.loads(payload))
        payload = json.loads(payload)
        AS_TEXT.append(1)
    SENT.append(payload)
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).digest()
    words = [WORDS[b % len(WORDS)] for b in digest[: 2 + digest[0] % 12]]
    return Generation(text="reply " + " ".join(words), finish_reason="stop", tokens=len(words))


class AnsweredInProcess(ApiChatBackend):
    """The backend under test with its HTTP requests answered here (each payload is built
    when it is sent, on the generating thread, as over HTTP)."""

    async def _post_all(self, payloads):
        return [answer(make()) for make in payloads]


def text(rng: random.Random, specials: list[str]) -> str:
    words = [rng.choice(WORDS) for _ in range(int(rng.lognormvariate(3.0, 1.0)) + 1)]
    if rng.random() < 0.1:  # a special token's text inside a message
        words.insert(rng.randrange(len(words) + 1), rng.choice(specials))
    return " ".join(words)


def requests(tokenizer, n: int, seed: int) -> list[tuple[str, dict]]:
    """QR and QCR requests (the same history kept by both) for n conversations."""
    rng = random.Random(seed)
    specials = [t.content for t in tokenizer.added_tokens_decoder.values()]
    qcr = load_qcr_prompts()
    out = []
    for i in range(n):
        messages = [{"role": "system", "content": text(rng, specials)}] if i % 3 == 0 else []
        for _ in range(1 + min(10, int(rng.expovariate(1 / 4)))):
            messages.append({"role": "user", "content": text(rng, specials)})
            messages.append({"role": "assistant", "content": text(rng, specials)})
        messages.append({"role": "user", "content": text(rng, specials)})
        for rounds in ([[]], qcr.rounds()):
            request = ChatRequest.build(
                doc_id=f"s{i}",
                messages=messages,
                rounds=rounds,
                log_prompts=i % 2 == 0,
                budget_tail=qcr.budget_tail(),
                # the reference predates escaping special-token text in contents
                special_text="control",
            )
            out.append((request, {"until": ["\n\nUser:"], "max_gen_toks": MAX_GEN}))
    return out


@pytest.fixture(scope="module", params=list(FAMILIES))
def family_dir(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(request.param)
    build_family_tokenizer(folder, request.param)
    return folder


@pytest.fixture(scope="module")
def loaded_tokenizers():
    return {}


@pytest.fixture
def tokenizer_loaded_once(loaded_tokenizers, monkeypatch):
    """lm-eval's clients load their tokenizer with `AutoTokenizer.from_pretrained`; each folder
    is read once in this module (a real vocabulary takes about a second to read) and every
    client of a family gets that tokenizer, as the backend and the reference share one."""
    import transformers

    original = transformers.AutoTokenizer.from_pretrained

    def from_pretrained(path, *args, **kwargs):
        key = (str(path), args, tuple(sorted(kwargs.items())))
        if key not in loaded_tokenizers:
            loaded_tokenizers[key] = original(path, *args, **kwargs)
        return loaded_tokenizers[key]

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", from_pretrained)


MODES = {
    "completions, token ids": ("LocalCompletionsAPI", {}),
    "completions, token ids with special tokens": ("LocalCompletionsAPI", {"add_bos_token": True}),
    "completions, text": ("LocalCompletionsAPI", {"tokenized_requests": False}),
    "chat-completions, messages": ("LocalChatCompletion", {}),
}


@pytest.mark.parametrize("mode", list(MODES))
def test_served_rounds_equal_the_reference(family_dir, mode, tokenizer_loaded_once, monkeypatch):
    from lm_eval.models import openai_completions

    monkeypatch.setattr(runner, "FIRST_CHUNK", 5)  # several chunks, sent while budgeting
    cls_name, extra = MODES[mode]
    path = "chat/completions" if cls_name == "LocalChatCompletion" else "completions"
    seen = {"fits": 0, "drops": 0, "skipped": 0}
    for max_length in (150, 400, 1200, 100_000):
        lm = getattr(openai_completions, cls_name)(
            model="m",
            base_url=f"http://127.0.0.1:9/v1/{path}",
            tokenizer_backend="huggingface",
            tokenizer=str(family_dir),
            max_length=max_length,
            **extra,
        )
        reqs = requests(lm.tokenizer, 24, seed=max_length)
        backend = AnsweredInProcess(lm)
        assert backend.encoder.piecewise  # the fast path is what is compared
        SENT.clear()
        AS_TEXT.clear()
        got = [ChatResult.from_json(r.to_json()) for r in run_rounds(reqs, backend)]
        got_sent = list(SENT)
        # token ids go out as text joined from their pieces
        assert len(AS_TEXT) == (len(SENT) if lm.tokenized_requests else 0)
        SENT.clear()
        want = run_rounds(reqs, ReferenceBackend(lm))
        for r in got:  # counted on the new path only (the reference predates the count)
            r.special_text = 0
        assert [r.to_json() for r in got] == [r.to_json() for r in want]
        assert got_sent == SENT  # the same requests, token ids and all, in the same order
        for result in want:
            if result.status == "skipped":
                seen["skipped"] += 1
            else:
                assert result.status == "ok", result.reason
                seen["drops" if result.dropped_turns else "fits"] += 1
    assert all(seen.values()), seen  # every kind of outcome was compared
