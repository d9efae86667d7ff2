"""Per-reply figures every deita run reports: length, dropped turns, skipped and failed counts.

Replies that were skipped or failed give NaN for the length figures and 1 in `skipped` / `failed`
(added up by `sum`), so the table shows how many there were. The task leaves NaN values out of
the per-doc results (see `DeitaTask.process_results`), so each mean is over the replies it
applies to.
"""

from __future__ import annotations

import math

from rgen_harness.chat.protocol import ChatResult

# Counts and means, with the direction lm-eval prints next to them.
METRICS = {
    "reply_chars": ("mean", False),
    "reply_tokens": ("mean", False),
    "criteria_chars": ("mean", False),
    "dropped_turns": ("mean", False),
    "skipped": ("sum", False),
    "failed": ("sum", False),
    "special_text_rows": ("sum", False),  # rows with special-token strings in their contents
}

NAN = math.nan


def register() -> None:
    """Register the `sum` aggregation and the metrics above with lm-eval (idempotent)."""
    import lm_eval.api.metrics  # noqa: F401  (built-ins first: the registries load lazily when empty)
    from lm_eval.api.registry import (
        AGGREGATION_REGISTRY,
        METRIC_REGISTRY,
        register_aggregation,
        register_metric,
    )

    if "sum" not in AGGREGATION_REGISTRY:
        register_aggregation("sum")(_sum)
    for name, (aggregation, higher) in METRICS.items():
        if name not in METRIC_REGISTRY:
            register_metric(metric=name, higher_is_better=higher, aggregation=aggregation)(
                passthrough
            )


def _sum(values) -> float:
    return float(sum(values))


def passthrough(items):
    return items


def reply_stats(result: ChatResult, *, with_criteria: bool) -> dict[str, float]:
    ok = result.status == "ok"
    last = result.rounds[-1] if ok and result.rounds else None
    stats = {
        "reply_chars": float(len(result.reply)) if ok else NAN,
        "reply_tokens": float(last.reply_tokens)
        if last is not None and last.reply_tokens is not None
        else NAN,
        "dropped_turns": float(result.dropped_turns) if ok else NAN,
        "skipped": float(result.status == "skipped"),
        "failed": float(result.status == "failed"),
        "special_text_rows": float(result.special_text > 0),
    }
    if with_criteria:
        stats["criteria_chars"] = float(len(result.rounds[0].reply)) if ok else NAN
    return stats
