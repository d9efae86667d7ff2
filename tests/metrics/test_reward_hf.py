"""transformers backend: padded batches give the same scores as one input at a time."""

from __future__ import annotations

import random

import pytest
import torch

from rgen_harness.metrics.reward.backends.hf import HFRewardBackend
from rgen_harness.metrics.reward.batching import length_sorted_batches, padding_efficiency
from rgen_harness.metrics.reward.render import load_model_config


@pytest.fixture(scope="module")
def backend(tiny_dir):
    path = str(tiny_dir / "reward")
    return HFRewardBackend(path, model_config=load_model_config(path, revision=None), device="cpu")


def inputs(vocab=500, seed=0):
    rng = random.Random(seed)
    lengths = [3, 17, 64, 5, 200, 33, 128, 9]
    return [[rng.randrange(4, vocab) for _ in range(n)] for n in lengths]


def test_batched_equals_one_at_a_time_with_mixed_lengths(backend):
    seqs = inputs()
    batched = backend.score(seqs)
    alone = [backend.score([s])[0] for s in seqs]
    assert len(set(round(x, 6) for x in alone)) == len(seqs)  # scores really differ per input
    assert batched == pytest.approx(alone, abs=1e-4)


def test_pooling_matches_the_models_own_forward(backend):
    seqs = inputs(seed=1)
    with torch.inference_mode():
        own = [backend.model(input_ids=torch.tensor([s])).logits[0, 0].item() for s in seqs]
    assert backend.score(seqs) == pytest.approx(own, abs=1e-4)


def test_last_token_found_from_the_attention_mask_not_the_pad_id(backend, tiny_dir):
    # An input that ENDS with the pad token id (the tiny model pads with <|endoftext|>):
    # transformers' own pooling would score the token before it; ours scores the last one.
    pad = load_model_config(str(tiny_dir / "reward"), revision=None)["pad_token_id"]
    seq = inputs(seed=2)[2] + [pad]
    with torch.inference_mode():
        hidden = backend.body(input_ids=torch.tensor([seq]))[0]
        expected = backend.head(hidden[0, -1]).item()
    batched = backend.score([seq, inputs(seed=2)[4]])
    assert batched[0] == pytest.approx(expected, abs=1e-4)


def test_length_sorted_batches_respect_limits():
    lengths = [5, 100, 7, 90, 3, 60]
    batches = length_sorted_batches(lengths, batch_size=2, batch_tokens=150)
    assert sorted(i for b in batches for i in b) == list(range(6))
    assert all(len(b) <= 2 and len(b) * max(lengths[i] for i in b) <= 150 for b in batches)
    assert [lengths[b[0]] for b in batches] == sorted(
        (lengths[b[0]] for b in batches), reverse=True
    )
    assert length_sorted_batches([500, 10], batch_size=8, batch_tokens=100) == [[0], [1]]
    assert padding_efficiency(lengths, [[1, 3]]) == pytest.approx(190 / 200)
