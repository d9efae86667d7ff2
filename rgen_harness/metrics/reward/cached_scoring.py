"""Token-id inputs scored through the score cache in length-sorted batches: the loop the reward
scorer and the charrm scorer share (each passes its own model, cache key, batch limits and the
error its model raises for a failed batch)."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, MutableMapping
from pathlib import Path
from typing import Protocol

log = logging.getLogger(__name__)


class BatchScorer(Protocol):
    def score(self, batch: list[list[int]]) -> list[float]: ...


def score_cached(
    jobs: dict[str, list[int]],
    *,
    cache_dir: str | Path,
    cache_key: str,
    load: Callable[[], BatchScorer],
    failure: type[Exception],
    batch_size: int,
    batch_tokens: int,
    stats: MutableMapping[str, int],
    scored_stat: str,
    name: str,
    desc: str,
) -> dict[str, float]:
    """digest -> score for every input of `jobs` (digest -> token ids): cached ones read back,
    the rest scored by `load()` (called only when something is left to score) in length-sorted
    batches, written to the cache after each batch. A batch whose model raises `failure`, or
    answers with a different number of scores, is logged and scores NaN. `stats` counts
    `cache_hits`, `batches` and, under `scored_stat`, the inputs scored."""
    from tqdm.auto import tqdm

    from rgen_harness.metrics.reward.batching import length_sorted_batches
    from rgen_harness.metrics.reward.cache import ScoreCache

    if not jobs:
        return {}
    cache = ScoreCache(cache_dir, cache_key)
    try:
        scores = cache.get_many(jobs)
        stats["cache_hits"] += len(scores)
        todo = [d for d in jobs if d not in scores]
        if not todo:
            return scores
        model = load()
        batches = length_sorted_batches(
            [len(jobs[d]) for d in todo], batch_size=batch_size, batch_tokens=batch_tokens
        )
        with tqdm(total=len(todo), desc=desc, unit="input") as bar:
            for batch in batches:
                digests = [todo[i] for i in batch]
                try:
                    values = model.score([jobs[d] for d in digests])
                    if len(values) != len(digests):
                        raise failure(f"{len(values)} scores for {len(digests)} inputs")
                except failure as e:
                    log.warning("%s: a batch of %d failed: %s", name, len(digests), e)
                    values = [math.nan] * len(digests)
                stats["batches"] += 1
                stats[scored_stat] += len(digests)
                scores.update(zip(digests, values, strict=True))
                cache.put_many((d, len(jobs[d]), scores[d]) for d in digests)
                bar.update(len(digests))
        return scores
    finally:
        cache.close()
