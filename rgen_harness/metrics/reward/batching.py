"""Length-sorted batches: inputs of similar length share a batch, so little compute goes to
padding, and no batch exceeds a padded-token budget."""

from __future__ import annotations

from collections.abc import Sequence


def length_sorted_batches(
    lengths: Sequence[int], *, batch_size: int, batch_tokens: int
) -> list[list[int]]:
    """Indices into `lengths`, grouped longest first (an out-of-memory error shows at once).

    A batch holds at most `batch_size` inputs and `batch_tokens` padded tokens (its longest
    input times its size); an input longer than `batch_tokens` runs alone.
    """
    order = sorted(range(len(lengths)), key=lambda i: lengths[i], reverse=True)
    batches: list[list[int]] = []
    current: list[int] = []
    for i in order:
        # Sorted descending: the first member is the longest, so padded size = len * longest.
        longest = lengths[current[0]] if current else lengths[i]
        if current and (len(current) >= batch_size or (len(current) + 1) * longest > batch_tokens):
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches


def padding_efficiency(lengths: Sequence[int], batches: Sequence[Sequence[int]]) -> float:
    """Real tokens / padded tokens over all batches (1.0 = no padding)."""
    real = sum(lengths[i] for batch in batches for i in batch)
    padded = sum(len(batch) * max(lengths[i] for i in batch) for batch in batches)
    return real / padded if padded else 1.0
