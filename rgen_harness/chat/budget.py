"""Context budgeting: the prompt plus the generation must fit the model's maximum length.

Policy (the same for generation and reward scoring):
- whole turns are dropped oldest first, as (user, assistant) pairs so the history still opens with
  a user turn after any system turn (most chat templates insist on alternation);
- system turns and the last user turn are never dropped;
- if the last user turn alone does not fit, the conversation is skipped and counted
  (`ContextTooLong`), never cut in the middle and never sent over-long.

Same history in every mode: a request may carry a `budget_tail`, the longest tail any mode
appends to this history (QCR's criteria request, a stand-in for the criteria reply and the final
request), with max_gen_toks tokens more kept for the reply the stand-in takes the place of
(the criteria reply, up to max_gen_toks). The first round then drops at least the turns that tail
needs, so QR and QCR prompts of one conversation keep the same turns, even in a run of QR alone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from rgen_harness.chat.protocol import Message


class ContextTooLong(Exception):
    """Even with every droppable turn dropped, the prompt does not fit."""


def split_system(messages: list[Message]) -> tuple[list[Message], list[Message]]:
    n = 0
    while n < len(messages) and messages[n]["role"] == "system":
        n += 1
    return messages[:n], messages[n:]


def droppable_turns(messages: list[Message]) -> int:
    """How many turns may go: every complete (user, assistant) pair before the last user turn."""
    _, turns = split_system(messages)
    return 2 * ((len(turns) - 1) // 2)


def drop_oldest(messages: list[Message], n_turns: int) -> list[Message]:
    """The history with its `n_turns` oldest non-system turns removed (n_turns is even)."""
    system, turns = split_system(messages)
    return system + turns[n_turns:]


@dataclass(frozen=True)
class Fitted:
    prompt: str
    prompt_tokens: int
    dropped_turns: int


@dataclass(frozen=True)
class FitJob:
    """One prompt to budget: `history[dropped:] + tail` within `max_prompt_tokens`."""

    history: list[Message]
    tail: list[Message]
    max_prompt_tokens: int
    min_dropped: int = 0
    # Drop at least what `history + shared_tail` needs within max_prompt_tokens - shared_reserve.
    shared_tail: list[Message] | None = None
    shared_reserve: int = 0
    # The history is quoted in this frame rather than sent as turns (rgen_harness.chat.quote).
    quote: dict | None = None

    def messages(self, dropped: int) -> list[Message]:
        """What is rendered with `dropped` oldest turns left out."""
        kept = drop_oldest(self.history, dropped)
        if self.quote:
            from rgen_harness.chat.quote import framed

            kept = framed(self.quote, kept, dropped)
        return kept + self.tail

    @classmethod
    def for_round(
        cls,
        request,
        tail: list[Message],
        *,
        round_index: int,
        max_length: int,
        max_gen_toks: int,
        dropped: int,
    ) -> FitJob:
        """The job for round `round_index` of a ChatRequest (`RequestData`): its first round
        also keeps the turns its `budget_tail` needs (later rounds start from `dropped`)."""
        shared = getattr(request, "budget_tail", None) if round_index == 0 else None
        return cls(
            request.messages,
            tail,
            max_length - max_gen_toks,
            dropped,
            shared_tail=shared or None,
            shared_reserve=max_gen_toks if shared else 0,
            quote=getattr(request, "quote", None),
        )


class _Search:
    """The state of one job's search; `next` is the number of dropped pairs to try next."""

    def __init__(self, job: FitJob) -> None:
        self.job = job
        self.max_pairs = droppable_turns(job.history) // 2
        self.lo = min(job.min_dropped // 2 + job.min_dropped % 2, self.max_pairs)
        self.next: int | None = self.lo
        self.phase = "lo"
        self.best: Fitted | None = None
        self.low = self.high = 0
        self.outcome: Fitted | Exception | None = None

    def record(self, pairs: int, cand: Fitted) -> None:
        """Advance on the attempt at `pairs` dropped pairs (the sequence of `fit_prompt`)."""
        fits = cand.prompt_tokens <= self.job.max_prompt_tokens
        if self.phase == "lo":
            if fits:
                return self._finish(cand)
            if self.max_pairs > self.lo:
                self.phase, self.next = "max", self.max_pairs
                return None
            return self._too_long(cand)
        if self.phase == "max":
            if not fits:
                return self._too_long(cand)
            self.best, self.phase = cand, "search"
            self.low, self.high = self.lo + 1, self.max_pairs - 1
        elif fits:
            self.best, self.high = cand, pairs - 1
        else:
            self.low = pairs + 1
        if self.low <= self.high:
            self.next = (self.low + self.high) // 2
        else:
            self._finish(self.best)
        return None

    def _finish(self, fitted: Fitted) -> None:
        self.outcome, self.next = fitted, None

    def _too_long(self, last: Fitted) -> None:
        self.next = None
        self.outcome = ContextTooLong(
            f"prompt needs {last.prompt_tokens} tokens with all {2 * self.max_pairs} earlier "
            f"turns dropped, but only {self.job.max_prompt_tokens} fit (max length minus "
            "max_gen_toks)"
        )


def fit_prompts(
    jobs: list[FitJob],
    *,
    render: Callable[[list[Message]], str],
    count_many: Callable[[list[str]], list[int]],
) -> list[Fitted | Exception]:
    """`fit_prompt` for many jobs at once: every job makes the same attempts in the same order,
    but each step's prompts (one per unfinished job) are counted in ONE `count_many` call, so a
    tokenizer can encode them as a batch. A job whose rendering fails gets that exception (or
    ContextTooLong) as its outcome; the others go on.

    A binary search over the number of dropped pairs needs O(log n) renders per job: deita
    conversations are tens of KB, and rendering plus tokenising them is the expensive part.
    """
    jobs = _with_shared_needs(jobs, render=render, count_many=count_many)
    return _run_searches([_Search(job) for job in jobs], render=render, count_many=count_many)


def _with_shared_needs(jobs: list[FitJob], *, render, count_many) -> list[FitJob]:
    """Each job whose `shared_tail` needs more dropped turns than its own min_dropped, with
    that many as its minimum (all droppable ones when even that is not enough)."""
    idx = [i for i, job in enumerate(jobs) if job.shared_tail]
    if not idx:
        return jobs
    shared = [
        FitJob(
            jobs[i].history,
            jobs[i].shared_tail,
            jobs[i].max_prompt_tokens - jobs[i].shared_reserve,
            jobs[i].min_dropped,
            quote=jobs[i].quote,
        )
        for i in idx
    ]
    outcomes = _run_searches([_Search(j) for j in shared], render=render, count_many=count_many)
    out = list(jobs)
    for i, outcome in zip(idx, outcomes, strict=True):
        job = jobs[i]
        if isinstance(outcome, Fitted):
            need = outcome.dropped_turns
        elif isinstance(outcome, ContextTooLong):
            need = droppable_turns(job.history)
        else:  # the template failed on the shared tail: the job's own attempt reports it
            need = job.min_dropped
        need = max(need, job.min_dropped)
        out[i] = FitJob(job.history, job.tail, job.max_prompt_tokens, need, quote=job.quote)
    return out


def _run_searches(searches: list[_Search], *, render, count_many) -> list[Fitted | Exception]:
    while True:
        step = [s for s in searches if s.next is not None]
        if not step:
            break
        attempts, prompts = [], []
        for s in step:
            pairs = s.next
            try:
                prompt = render(s.job.messages(2 * pairs))
            except Exception as e:  # noqa: BLE001  (the caller decides what a failure means)
                s.outcome, s.next = e, None
                continue
            attempts.append((s, pairs))
            prompts.append(prompt)
        counts = count_many(prompts) if prompts else []
        if len(counts) != len(prompts):
            raise RuntimeError(f"count_many returned {len(counts)} counts for {len(prompts)}")
        for (s, pairs), prompt, n in zip(attempts, prompts, counts, strict=True):
            s.record(pairs, Fitted(prompt, n, 2 * pairs))
    return [s.outcome for s in searches]


def fit_prompt(
    history: list[Message],
    tail: list[Message],
    *,
    render: Callable[[list[Message]], str],
    count_tokens: Callable[[str], int],
    max_prompt_tokens: int,
    min_dropped: int = 0,
) -> Fitted:
    """Render `history[dropped:] + tail` with the fewest dropped turns (>= min_dropped) that fit;
    raises ContextTooLong when even dropping every droppable turn is not enough."""
    (outcome,) = fit_prompts(
        [FitJob(history, tail, max_prompt_tokens, min_dropped)],
        render=render,
        count_many=lambda prompts: [count_tokens(p) for p in prompts],
    )
    if isinstance(outcome, Exception):
        raise outcome
    return outcome
