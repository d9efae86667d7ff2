"""Continuation log-likelihoods from the PyTorch engine's prompt log-probability rows."""

from __future__ import annotations


def score_continuation(rows, targets: list[int]) -> tuple[float, bool]:
    """Sum of the targets' log-probabilities and whether each was the top-1 token.

    A row is lmdeploy's {target id: logprob, top-k ids: logprobs}."""
    if rows is None or len(rows) != len(targets):
        raise RuntimeError(
            f"engine returned {0 if rows is None else len(rows)} logprob rows for "
            f"{len(targets)} continuation tokens"
        )
    total, greedy = 0.0, True
    for row, target in zip(rows, targets, strict=True):
        if target not in row:
            raise RuntimeError(f"logprob row lacks the target token {target}: {row}")
        value = row[target]
        total += value
        if greedy and max(row.values()) > value:
            greedy = False
    return total, greedy
