"""The multi-round chat protocol: the one place that defines it.

lm-eval dispatches each request type once, to `getattr(lm, request_type)(requests)`, and has no
hook for generations that depend on earlier ones. The deita tasks therefore emit one Instance per
conversation with `request_type = REQUEST_TYPE`; its context is a `ChatRequest` (a `str` holding
JSON, so `--log_samples`, `--use_cache` and request caching treat it like any prompt) and its
gen_kwargs are the task's. The model answers with one `ChatResult` JSON string per request.

A ChatRequest is a base history (system turn optional, ending in a user turn) plus `rounds`: the
messages appended before each generation. Round k's reply becomes an assistant turn before round
k+1's messages are appended. QR has one empty round; QCR has two (see `rgen_harness.tasks`).

Every backend meets the protocol through `rgen_harness.chat.runner.run_rounds`; lm-eval models get
it by default (`generate_chat_rounds`), and a backend with a native path overrides the method.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Literal

REQUEST_TYPE = "generate_chat_rounds"

Message = dict[str, str]
Status = Literal["ok", "skipped", "failed"]


class ChatRequest(str):
    """A request context: JSON text of {id, messages, rounds, skip_reason}."""

    @classmethod
    def build(
        cls,
        *,
        doc_id: str,
        messages: list[Message],
        rounds: list[list[Message]],
        skip_reason: str | None = None,
        log_prompts: bool = True,
        budget_tail: list[Message] | None = None,
        quote: dict | None = None,
        special_text: str = "text",
    ) -> ChatRequest:
        """`log_prompts=False`: the result records each round's prompt by its SHA-256, token
        count and dropped turns instead of its text (`rgen_harness.chat.runner.rebuild_prompts`
        renders it again). Deita prompts repeat the history, tens of KB per round.

        `budget_tail`: the first round keeps only the turns that this history + `budget_tail`
        keeps with max_gen_toks more set aside for the reply the tail stands in for (see
        `rgen_harness.chat.budget`): the same history for every mode of one conversation.

        `quote`: `messages` are shown as text inside this frame instead of sent as turns
        (`rgen_harness.chat.quote`; the budget still drops their oldest turns first)."""
        payload = {"id": doc_id, "messages": messages, "rounds": rounds, "skip_reason": skip_reason}
        if not log_prompts:
            payload["log_prompts"] = False
        if budget_tail:
            payload["budget_tail"] = budget_tail
        if quote:
            from rgen_harness.chat.quote import check_quote

            payload["quote"] = check_quote(quote)
        if special_text != "text":  # see rgen_harness.chat.special_text
            payload["special_text"] = special_text
        return cls(json.dumps(payload, ensure_ascii=False))

    @classmethod
    def parse(cls, text: str) -> ChatRequest:
        if isinstance(text, ChatRequest):
            return text
        _load(text)
        return cls(text)

    @classmethod
    def read(cls, text: str) -> RequestData:
        """The request's fields, its JSON parsed once (and checked, for text that is not yet a
        ChatRequest)."""
        return RequestData.of(json.loads(text) if isinstance(text, ChatRequest) else _load(text))

    @property
    def payload(self) -> dict:
        """The parsed JSON. Parsed on each access, never kept on the request: lm-eval keeps
        every context until the samples are written, and a parsed history beside each one
        would double what they hold. Read several fields with `ChatRequest.read`."""
        return json.loads(self)

    @property
    def doc_id(self) -> str:
        return str(self.payload.get("id"))

    @property
    def messages(self) -> list[Message]:
        return self.payload["messages"]

    @property
    def rounds(self) -> list[list[Message]]:
        return self.payload["rounds"]

    @property
    def skip_reason(self) -> str | None:
        return self.payload.get("skip_reason")

    @property
    def log_prompts(self) -> bool:
        return self.payload.get("log_prompts", True) is not False


def _load(text: str) -> dict:
    try:
        payload = json.loads(text)
    except (TypeError, json.JSONDecodeError) as e:
        raise ValueError(
            f"{REQUEST_TYPE} received a context that is not a ChatRequest JSON string "
            f"({str(text)[:80]!r}...). Only the deita tasks emit this request type."
        ) from e
    if not isinstance(payload, dict) or "messages" not in payload or "rounds" not in payload:
        raise ValueError(f"{REQUEST_TYPE}: context lacks 'messages'/'rounds': {str(text)[:80]!r}")
    return payload


@dataclass(frozen=True)
class RequestData:
    """A ChatRequest's fields, parsed."""

    doc_id: str
    messages: list[Message]
    rounds: list[list[Message]]
    skip_reason: str | None
    log_prompts: bool
    budget_tail: list[Message] | None = None
    quote: dict | None = None  # see rgen_harness.chat.quote
    special_text: str = "text"  # "control": special-token strings in contents stay control

    @classmethod
    def of(cls, payload: dict) -> RequestData:
        return cls(
            doc_id=str(payload.get("id")),
            messages=payload["messages"],
            rounds=payload["rounds"],
            skip_reason=payload.get("skip_reason"),
            log_prompts=payload.get("log_prompts", True) is not False,
            budget_tail=payload.get("budget_tail") or None,
            quote=payload.get("quote") or None,
            special_text=payload.get("special_text") or "text",
        )

    def sent(self, kept: list[Message], dropped: int = 0) -> list[Message]:
        """The messages sent for the kept history (`messages` minus `dropped` oldest turns):
        the history itself, or quoted in the request's frame."""
        if not self.quote:
            return kept
        from rgen_harness.chat.quote import framed

        return framed(self.quote, kept, dropped)


@dataclass
class RoundRecord:
    prompt: str  # '' when the request does not log prompts (see prompt_sha256)
    reply: str
    prompt_tokens: int | None = None
    prompt_sha256: str | None = None  # of the prompt text as rendered
    dropped_turns: int | None = None  # history turns this round's prompt left out
    reply_tokens: int | None = None
    finish_reason: str | None = None  # 'stop' (end of turn / EOS / stop string) or 'length'
    cached_tokens: int | None = None  # prompt tokens served by the engine's prefix cache


@dataclass
class ChatResult:
    """What a model returns per ChatRequest (as JSON): every round's prompt and reply."""

    status: Status
    reason: str | None = None
    dropped_turns: int = 0
    rounds: list[RoundRecord] = field(default_factory=list)
    scores: dict[str, float] = field(default_factory=dict)  # filled by reply scorers
    special_text: int = 0  # special-token strings found in the row's contents

    @property
    def reply(self) -> str:
        """The final reply (the last round's), '' when the request did not complete."""
        return self.rounds[-1].reply if self.status == "ok" and self.rounds else ""

    def to_json(self) -> str:
        """Strict JSON: a score that does not apply (NaN, inf) is written as null, which every
        JSON reader accepts (jq, JavaScript); `from_json` reads it back as NaN."""
        import math

        data = asdict(self)
        data["reply"] = self.reply
        data["scores"] = {
            k: None if isinstance(v, float) and not math.isfinite(v) else v
            for k, v in self.scores.items()
        }
        return json.dumps(data, ensure_ascii=False, allow_nan=False)

    @classmethod
    def from_json(cls, text: str) -> ChatResult:
        data = json.loads(text)
        data.pop("reply", None)
        data["rounds"] = [RoundRecord(**r) for r in data.get("rounds", [])]
        scores = data.get("scores") or {}
        data["scores"] = {k: float("nan") if v is None else v for k, v in scores.items()}
        return cls(**data)
