"""`lm_eval ... --tasks charactereval` as a user types it, on tiny models (CPU): hf inline,
hf --predict_only + `rgen-harness score` (same numbers), lmdeploy through the CPU engine."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess

import pytest

from rgen_harness.metrics.charrm.aggregate import METRIC_NAMES, SUMMARY_NAMES, metric_key

pytestmark = pytest.mark.slow


def lm_eval(model, pretrained, out, metadata, *extra, env=None):
    cmd = [
        "lm_eval", "--model", model, "--model_args", f"pretrained={pretrained}",
        "--tasks", "charactereval", "--metadata", json.dumps(metadata),
        "--gen_kwargs", "max_gen_toks=12", "--log_samples", "--output_path", str(out), *extra,
    ]  # fmt: skip
    if model == "hf":
        cmd += ["--device", "cpu"]
    run_env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", **(env or {})}
    proc = subprocess.run(cmd, env=run_env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    [results] = [p for p in out.rglob("results_*.json") if "rescored" not in p.parts]
    [samples] = [p for p in out.rglob("samples_*.jsonl") if "rescored" not in p.parts]
    lines = [json.loads(line) for line in samples.read_text(encoding="utf-8").splitlines()]
    return json.loads(results.read_text())["results"]["charactereval"], lines


@pytest.fixture(scope="module")
def inline(tiny_dir, charrm_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("ce_inline")
    metadata = {
        "charactereval_path": "sample",
        "charrm_model": str(charrm_dir),
        "charrm_trust_remote_code": True,
        "charrm_cache": "none",
    }
    return lm_eval("hf", tiny_dir / "chat", out, metadata)


def test_inline_scores(inline):
    results, samples = inline
    assert results["skipped,none"] == 1.0 and results["failed,none"] == 0.0
    assert results["charrm_pairs,none"] == 14.0 and results["charrm_failed,none"] == 0.0
    for name in (*map(metric_key, METRIC_NAMES), *SUMMARY_NAMES):
        assert 1.0 <= results[f"{name},none"] <= 5.0, name
    # a dimension is the mean of its metric means (Table 4)
    flu = [results[f"{m},none"] for m in ("fluency", "coherence", "consistency")]
    assert math.isclose(results["conversational_ability,none"], sum(flu) / 3, rel_tol=1e-9)
    scored = [s for s in samples if s["doc"]["metrics"] and not s["doc"]["problem"]]
    for sample in scored:
        scores = json.loads(sample["filtered_resps"][0])["scores"]
        assert sorted(scores) == sorted(m["en"] for m in sample["doc"]["metrics"])
        assert sample["doc"]["role"] in ("林小满", "陈大夫")
    [bad] = [s for s in samples if s["doc"]["problem"]]
    assert json.loads(bad["filtered_resps"][0])["status"] == "skipped"


def test_predict_only_then_score_gives_the_inline_numbers(inline, tiny_dir, charrm_dir, tmp_path):
    metadata = {"charactereval_path": "sample", "charrm_model": str(charrm_dir)}
    results, _ = lm_eval("hf", tiny_dir / "chat", tmp_path, metadata, "--predict_only")
    assert "overall,none" not in results and results["skipped,none"] == 1.0
    cmd = ["rgen-harness", "score", str(tmp_path), "--charrm-trust-remote-code", "true",
           "--charrm-cache", "none"]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    [rescored] = (tmp_path / "rescored").rglob("results_*.json")
    again = json.loads(rescored.read_text())["results"]["charactereval"]
    expected = inline[0]
    for key, value in expected.items():
        if key.endswith(",none") and "_stderr" not in key:
            assert again[key] == pytest.approx(value, abs=1e-9), key


def test_lmdeploy_cpu_engine(tiny_dir, charrm_dir, tmp_path):
    pytest.importorskip("lmdeploy")
    from rgen_harness.models.engine import CPU_ENGINE, ENGINE_ENV

    metadata = {
        "charactereval_path": "sample",
        "charrm_model": str(charrm_dir),
        "charrm_trust_remote_code": True,
        "charrm_cache": "none",
    }
    results, samples = lm_eval(
        "lmdeploy", tiny_dir / "chat", tmp_path, metadata, env={ENGINE_ENV: CPU_ENGINE}
    )
    assert results["charrm_pairs,none"] == 14.0 and results["skipped,none"] == 1.0
    assert 1.0 <= results["overall,none"] <= 5.0


def test_trust_is_checked_at_load(tiny_dir, charrm_dir, tmp_path):
    metadata = {"charactereval_path": "sample", "charrm_model": str(charrm_dir)}
    cmd = ["lm_eval", "--model", "hf", "--model_args", f"pretrained={tiny_dir / 'chat'}",
           "--tasks", "charactereval", "--metadata", json.dumps(metadata)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode != 0 and "charrm_trust_remote_code" in proc.stderr, proc.stderr[-2000:]


@pytest.mark.parametrize(
    "metadata, message",
    [
        ({"charactereval_path": "sample", "charrm_modle": "x"}, "Did you mean 'charrm_model'"),
        ({"charactereval_pth": "sample"}, "Did you mean 'charactereval_path'"),
    ],
)
def test_metadata_typos_are_refused_at_load(tiny_dir, metadata, message):
    """As the command line loads the task (lm-eval's simple_evaluate, TaskManager given
    model_args | metadata), in this process."""
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    model_args = {"pretrained": str(tiny_dir / "chat")}
    with pytest.raises(ValueError, match=re.escape(message)):
        simple_evaluate(
            model="hf",
            model_args=model_args,
            tasks=["charactereval"],
            device="cpu",
            task_manager=TaskManager(metadata={**model_args, **metadata}),
        )
