"""`lm_eval --tasks deita_qr,charactereval` with ONE --metadata, as a user types it (tiny models,
CPU): each task takes its own keys and scorers and lets the other's through; a typo still stops
the run; the dimension averages have a real stderr in the results and the printed table."""

from __future__ import annotations

import json
import math
import os
import subprocess

import pytest

from rgen_harness.metrics.charrm.aggregate import SUMMARY_NAMES

pytestmark = pytest.mark.slow


def _lm_eval(tiny_dir, out, metadata):
    cmd = [
        "lm_eval", "--model", "hf", "--model_args", f"pretrained={tiny_dir / 'chat'}",
        "--device", "cpu", "--tasks", "deita_qr,charactereval", "--metadata",
        json.dumps(metadata), "--gen_kwargs", "max_gen_toks=8", "--limit", "4",
        "--log_samples", "--output_path", str(out),
    ]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)


def test_one_metadata_for_deita_and_charactereval(tiny_dir, charrm_dir, tmp_path):
    metadata = {
        "deita_path": "sample",
        "charactereval_path": "sample",
        "charrm_model": str(charrm_dir),
        "charrm_trust_remote_code": True,
        "charrm_cache": "none",
        "scorers": "rouge,charrm",
    }
    proc = _lm_eval(tiny_dir, tmp_path, metadata)
    assert proc.returncode == 0, proc.stderr[-4000:]
    [path] = tmp_path.rglob("results_*.json")
    results = json.loads(path.read_text())["results"]
    deita, roleplay = results["deita_qr"], results["charactereval"]
    assert "rouge1_f,none" in deita and "reward,none" not in deita  # deita: rouge only
    assert roleplay["charrm_pairs,none"] > 0 and 1.0 <= roleplay["overall,none"] <= 5.0
    for name in SUMMARY_NAMES:
        stderr = roleplay[f"{name}_stderr,none"]
        assert isinstance(stderr, float) and math.isfinite(stderr) and stderr >= 0, name
    # lm-eval's printed table shows it in the stderr column of the dimension's row
    row = next(line for line in proc.stdout.splitlines() if "|overall " in line)
    assert f"{roleplay['overall_stderr,none']:.4f}" in row and "N/A" not in row

    typo = {**metadata, "charrm_modle": str(charrm_dir)}
    proc = _lm_eval(tiny_dir, tmp_path / "typo", typo)
    assert proc.returncode != 0
    assert "unknown --metadata key 'charrm_modle'. Did you mean 'charrm_model'?" in proc.stderr
