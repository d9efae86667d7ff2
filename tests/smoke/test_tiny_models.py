"""A tiny model folder is reused only when it was built with the same settings (seed included)."""

from __future__ import annotations

import json

from rgen_harness.smoke.tiny_models import build_reward_model


def test_same_settings_reuse_the_folder_other_seed_rebuilds_it(tmp_path):
    out = tmp_path / "reward"
    build_reward_model(out, seed=3)
    weights = out / "model.safetensors"
    first = weights.read_bytes()
    stamp = weights.stat().st_mtime_ns
    build_reward_model(out, seed=3)
    assert weights.stat().st_mtime_ns == stamp  # not built again
    build_reward_model(out, seed=4)
    assert weights.read_bytes() != first
    assert json.loads((out / "rgen_tiny.json").read_text())["seed"] == 4


def test_a_marker_from_an_unfinished_or_older_build_does_not_count(tmp_path):
    out = tmp_path / "reward"
    out.mkdir()
    (out / "rgen_tiny.json").write_text('{"kind": "reward", "arch": "llama", "seed": 1}')
    build_reward_model(out, seed=1)  # older marker without the full settings: built
    assert (out / "model.safetensors").is_file()
    (out / "rgen_tiny.json").write_text("{cut sh")
    stamp = (out / "model.safetensors").stat().st_mtime_ns
    build_reward_model(out, seed=1)
    assert (out / "model.safetensors").stat().st_mtime_ns != stamp
