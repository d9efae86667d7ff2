"""The plain `lm_eval` command, as a user types it, running the judge_pairwise group with a
tiny random chat model on local files in each set's published schema."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from judge_files import write

pytestmark = pytest.mark.slow

TASKS = [
    "judge_pandalm",
    "judge_autoj",
    "judge_autoj_zh",
    "judge_llmbar_natural",
    "judge_llmbar_neighbor",
    "judge_llmbar_gptinst",
    "judge_llmbar_gptout",
    "judge_llmbar_manual",
    "judge_mtbench_human",
]
# Malformed rows among the first 4 docs of each test file (see judge_files.py).
SKIPPED = {"judge_pandalm": 1, "judge_autoj": 0, "judge_autoj_zh": 1, "judge_mtbench_human": 1}


@pytest.fixture(scope="module")
def run(tiny_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("judge_cli")
    files = write(tmp / "data")
    meta = json.dumps({f"judge_path_{name}": str(path) for name, path in files.items()})
    out = tmp / "out"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    args = ["--model", "hf", "--model_args", f"pretrained={tiny_dir / 'chat'}", "--device", "cpu"]
    args += ["--batch_size", "16", "--tasks", "judge_pairwise", "--limit", "4"]
    args += ["--gen_kwargs", "max_gen_toks=4", "--metadata", meta]
    args += ["--log_samples", "--output_path", str(out)]
    subprocess.run(["lm_eval", *args], env=env, check=True, capture_output=True, timeout=600)
    (results,) = out.rglob("results_*.json")
    return {"out": out, "results": json.loads(results.read_text())["results"]}


def test_every_set_reports_its_metrics(run):
    results = run["results"]
    assert "judge_pairwise" in results
    for task in TASKS:
        res = results[task]
        skipped = SKIPPED.get(task, 1)
        assert res["skipped,none"] == skipped, task
        judged = 2 * (4 - skipped)  # both orders of every usable pair
        assert 0 <= res["parse_failures,none"] + res["failed,none"] <= judged
        if task == "judge_mtbench_human":
            assert "agreement_turn1_tie,none" in res and "accuracy,none" not in res
        else:
            assert 0.0 <= res["accuracy,none"] <= 1.0 and "macro_f1,none" in res
    assert "macro_precision,none" in results["judge_pandalm"]
    assert "positional_agreement,none" in results["judge_llmbar_manual"]


def test_samples_log_prompt_in_chat_template_reply_and_parsed_label(run):
    (path,) = run["out"].rglob("samples_judge_autoj_zh_*.jsonl")
    samples = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert len(samples) == 4
    first = samples[0]
    original, swapped = (json.loads(r) for r in first["filtered_resps"])
    assert original["prompt"].startswith("<|im_start|>user\nYou are an impartial judge.")
    assert original["prompt"].endswith("<|im_start|>assistant\n")
    assert (
        "[Query]\n概括这段话。\n\n[Response 1]\n回应一\n\n[Response 2]\n回应二"
        in original["prompt"]
    )
    assert "[Response 1]\n回应二\n\n[Response 2]\n回应一" in swapped["prompt"]
    for judgment in (original, swapped):
        assert isinstance(judgment["reply"], str)
        assert judgment["status"] in ("ok", "unparsed")
        assert judgment["verdict"] in (None, 0, 1, 2)
        assert (judgment["verdict"] is None) == (judgment["status"] == "unparsed")
    assert first["consistency"]["gold"] == 1 and len(first["consistency"]["pred"]) == 2
    bad = json.loads(samples[3]["filtered_resps"][0])
    assert bad["status"] == "skipped" and "is not JSON" in bad["reason"]
