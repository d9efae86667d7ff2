"""Placement: model sizes from config.json, GPUs per run, and a schedule that never hands out
more GPUs than there are (a seeded random search over sizes, tp and GPU counts)."""

from __future__ import annotations

import json
import random

import pytest

from rgen_harness.study.placement import (
    GpuPool,
    Job,
    PlacementError,
    check_fits,
    gpus_per_run,
    model_size,
    next_fit,
    order,
    simulate,
    size_from_config,
)

LLAMA_31_8B = {  # meta-llama/Llama-3.1-8B-Instruct config.json (the keys that matter)
    "hidden_size": 4096,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "intermediate_size": 14336,
    "vocab_size": 128256,
    "tie_word_embeddings": False,
    "max_position_embeddings": 131072,
}
GLM4_9B = {  # THUDM/glm-4-9b-chat config.json (ChatGLM's own key names)
    "hidden_size": 4096,
    "num_layers": 40,
    "num_attention_heads": 32,
    "multi_query_attention": True,
    "multi_query_group_num": 2,
    "kv_channels": 128,
    "ffn_hidden_size": 13696,
    "padded_vocab_size": 151552,
    "seq_length": 131072,
}


@pytest.mark.parametrize(
    "config, billions", [(LLAMA_31_8B, 8.03), (GLM4_9B, 9.40)], ids=["llama3.1-8b", "glm4-9b"]
)
def test_parameter_count_matches_the_published_size(config, billions):
    size = size_from_config(config, session_len=32768)
    assert size.params / 1e9 == pytest.approx(billions, rel=0.03)
    assert size.weights_gb == pytest.approx(2 * size.params / 1e9)


def test_kv_cache_room_follows_session_len(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(LLAMA_31_8B))
    short = model_size({"pretrained": str(tmp_path), "session_len": 8192})
    long = model_size({"pretrained": str(tmp_path), "session_len": 32768})
    # 2 (K, V) x 32 layers x 8 KV heads x 128 dims x 2 bytes = 128 KiB per token
    assert long.kv_gb == pytest.approx(32768 * 131072 / 1e9)
    assert long.kv_gb == pytest.approx(4 * short.kv_gb)
    assert model_size({"pretrained": str(tmp_path / "absent")}) is None


def test_a_model_too_big_for_its_gpus_names_the_tp_to_set():
    size = size_from_config({**LLAMA_31_8B, "num_hidden_layers": 160}, session_len=32768)
    with pytest.raises(PlacementError, match=r"big-model needs ~\d+ GB .* Set tp: 2"):
        check_fits("big-model", size, 1, 80.0)
    check_fits("big-model", size, 2, 80.0)


def test_gpus_per_run_is_tp_times_dp_for_lmdeploy():
    assert gpus_per_run("lmdeploy", {"tp": 2, "dp": 2}) == 4
    assert gpus_per_run("lmdeploy", {}) == 1
    assert gpus_per_run("hf", {"tp": 4}) == 1


def test_largest_model_first_unknown_sizes_last():
    jobs = [Job("small", 1, 3.0), Job("unknown", 2, None), Job("big", 1, 40.0)]
    assert [j.label for j in order(jobs)] == ["big", "small", "unknown"]


def test_a_run_needing_more_gpus_than_exist_is_refused():
    with pytest.raises(PlacementError, match="needs 4 GPU.* the study has 2"):
        simulate([Job("wide", 4, 10.0)], (0, 1))


def test_schedule_never_oversubscribes_random_studies():
    rng = random.Random(1234)
    for trial in range(400):
        n_gpus = rng.randint(1, 16)
        ids = tuple(rng.sample(range(32), n_gpus))
        jobs = [
            Job(
                f"m{i}",
                rng.choice([t for t in (1, 2, 4, 8) if t <= n_gpus]),
                rng.uniform(1, 200) if rng.random() > 0.1 else None,
                rng.uniform(1, 100),
            )
            for i in range(rng.randint(1, 12))
        ]
        max_parallel = rng.choice([None, 1, 2, 3])
        slots = simulate(jobs, ids, max_parallel)
        assert sorted(s.label for s in slots) == sorted(j.label for j in jobs), trial
        for s in slots:
            assert set(s.gpu_ids) <= set(ids) and len(set(s.gpu_ids)) == len(s.gpu_ids)
            assert len(s.gpu_ids) == next(j.gpus for j in jobs if j.label == s.label)
        # at every start, the runs going hold distinct GPUs, at most max_parallel of them
        for s in slots:
            going = [o for o in slots if o.start_s <= s.start_s < o.end_s]
            used = [g for o in going for g in o.gpu_ids]
            assert len(used) == len(set(used)) <= n_gpus, (trial, going)
            assert max_parallel is None or len(going) <= max_parallel
        # no GPU idles while a waiting run would fit (greedy list scheduling)
        for s in slots:
            free_before = n_gpus - sum(
                len(o.gpu_ids) for o in slots if o.start_s < s.start_s < o.end_s
            )
            assert len(s.gpu_ids) <= free_before


def test_pool_hands_out_whole_gpus_and_refuses_a_double_return():
    pool = GpuPool((3, 5, 7))
    a = pool.take(2)
    assert a == (3, 5) and pool.take(2) is None
    pool.give(a)
    with pytest.raises(RuntimeError, match="not handed out"):
        pool.give((3,))
    assert next_fit([Job("x", 3)], 3, 0, None).label == "x"
    assert next_fit([Job("x", 1)], 3, 2, 2) is None
