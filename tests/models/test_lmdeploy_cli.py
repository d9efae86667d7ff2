"""`lm_eval --model lmdeploy` as a user types it, with inference by the CPU stand-in engine.

ONE lm_eval run (each costs ~30 s) covers deita_qr, deita_qcr (multi-round), a multiple-choice
log-likelihood task, a rolling log-likelihood task and a generate_until task with answer
extraction, with --apply_chat_template --fewshot_as_multiturn, --use_cache and --log_samples.
One deita conversation is made to fail inside the engine: it must be reported, not swallowed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("lmdeploy")

from cpu_engine_util import CPU_ENGINE

FAIL_ON = "光合作用"  # appears only in the deita sample conversation sample-zh-1
OWN_TASKS = ["rgen_test_mc", "rgen_test_rolling", "rgen_test_gen"]
TASKS = ["deita_qr", "deita_qcr", *OWN_TASKS]
LIMIT = 3


@pytest.fixture(scope="module")
def run(tiny_dir, lmdeploy_task_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("lm_eval_lmdeploy")
    env = dict(os.environ)
    env.update(
        RGEN_HARNESS_LMDEPLOY_ENGINE=CPU_ENGINE,
        RGEN_HARNESS_CPU_ENGINE_FAIL=FAIL_ON,
        HF_HUB_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
    )
    cmd = [
        "lm_eval",
        "--model", "lmdeploy",
        "--model_args", f"pretrained={tiny_dir / 'chat'}",
        "--tasks", ",".join(TASKS),
        "--include_path", str(lmdeploy_task_dir),
        "--metadata", json.dumps({"deita_path": "sample", "scorers": "none"}),
        "--limit", str(LIMIT),
        "--gen_kwargs", "max_gen_toks=8",
        "--apply_chat_template", "--fewshot_as_multiturn",
        "--use_cache", str(out / "cache"),
        "--log_samples", "--output_path", str(out / "results"),
    ]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    [results_file] = (out / "results").rglob("results_*.json")
    samples = {}
    for task in TASKS:
        [path] = (out / "results").rglob(f"samples_{task}_*.jsonl")
        samples[task] = [json.loads(line) for line in path.read_text().splitlines()]
    return {"results": json.loads(results_file.read_text()), "samples": samples, "out": out}


def test_every_task_ran_through_the_lmdeploy_model(run):
    results = run["results"]
    assert results["config"]["model"] == "lmdeploy"
    assert set(TASKS) <= set(results["results"])
    config = results["config"]
    assert config["lmdeploy_engine"] == "LMDeployEngine"
    # auto: TurboMind for generation, a PyTorch engine for the log-likelihood tasks
    used = config["lmdeploy_backends_used"]
    assert used["generate_chat_rounds"] == "turbomind" and used["loglikelihood"] == "pytorch"
    for task in TASKS:  # a task with two filters logs each doc twice
        assert {s["doc_id"] for s in run["samples"][task]} == set(range(LIMIT))


def test_deita_rounds_and_the_failed_conversation(run, tiny_dir):
    import hashlib

    from transformers import AutoTokenizer

    from rgen_harness.chat.protocol import ChatRequest, ChatResult
    from rgen_harness.chat.runner import rebuild_prompts

    tokenizer = AutoTokenizer.from_pretrained(tiny_dir / "chat")

    def render(messages):
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    for task, n_rounds in (("deita_qr", 1), ("deita_qcr", 2)):
        by_id = {}
        for sample in run["samples"][task]:
            request = ChatRequest.parse(sample["arguments"]["gen_args_0"]["arg_0"])
            by_id[sample["doc"]["id"]] = (request, ChatResult.from_json(sample["resps"][0][0]))
        _, failed = by_id.pop("sample-zh-1")
        assert failed.status == "failed" and "internal_error" in failed.reason
        for request, result in by_id.values():
            assert result.status == "ok" and len(result.rounds) == n_rounds
            prompts = rebuild_prompts(request, result, render)
            for prompt, record in zip(prompts, result.rounds, strict=True):
                assert prompt.endswith("<|im_start|>assistant\n")
                assert hashlib.sha256(prompt.encode()).hexdigest() == record.prompt_sha256
                assert 0 < record.reply_tokens <= 8
        assert run["results"]["results"][task]["failed,none"] == 1


def test_generate_until_with_stop_strings_and_fewshot_turns(run):
    samples = run["samples"]["rgen_test_gen"]
    assert {s["filter"] for s in samples} == {"strict-match", "flexible-extract"}
    for sample in samples:
        context = sample["arguments"]["gen_args_0"]["arg_0"]
        assert context.count("<|im_start|>user") == 3  # two few-shot turns + the question
        reply = sample["resps"][0][0]
        assert "Question:" not in reply and "\n\n" not in reply
    assert "exact_match,strict-match" in run["results"]["results"]["rgen_test_gen"]


def test_throughput_is_in_the_results_json(run):
    throughput = run["results"]["config"]["throughput"]
    for request_type in ("generate_chat_rounds", "loglikelihood", "loglikelihood_rolling"):
        assert throughput[request_type]["samples"] > 0
    assert throughput["loglikelihood"]["samples"] == LIMIT * 4  # 4 choices per question
    assert throughput["generate_chat_rounds"]["failed"] == 2  # one QR and one QCR round
    assert throughput["total"]["generated_tokens_per_s"] > 0


def test_use_cache_holds_the_rounds(run):
    from sqlitedict import SqliteDict

    [db_path] = run["out"].glob("cache*.db")
    with SqliteDict(str(db_path)) as db:
        entries = len(db)
    ok_rounds = (LIMIT - 1) * (1 + 2)  # QR + QCR rounds of the conversations that did not fail
    assert entries >= LIMIT * 4 + LIMIT + LIMIT + ok_rounds


def test_log_likelihoods_match_lm_eval_hf_within_1e4(run, tiny_dir, lmdeploy_task_dir):
    """Per-request parity with lm-eval's own `hf` model on the same weights and prompts."""
    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    hf = HFLM(pretrained=str(tiny_dir / "chat"), device="cpu", batch_size=4)
    manager = TaskManager(include_path=str(lmdeploy_task_dir), include_defaults=False)
    theirs = lm_eval.simple_evaluate(
        model=hf,
        tasks=["rgen_test_mc", "rgen_test_rolling"],
        task_manager=manager,
        limit=LIMIT,
        apply_chat_template=True,
        fewshot_as_multiturn=True,
        bootstrap_iters=0,
        log_samples=True,
    )["samples"]
    worst = 0.0
    for task in ("rgen_test_mc", "rgen_test_rolling"):
        ours = {s["doc_id"]: s for s in run["samples"][task]}
        for sample in theirs[task]:
            mine = ours[sample["doc_id"]]
            assert mine["arguments"] == _as_logged(sample["arguments"])  # same prompts
            for a, b in zip(_values(mine["resps"]), _values(sample["resps"]), strict=True):
                worst = max(worst, abs(a - b))
    print(f"max |lmdeploy stand-in - hf| per request: {worst:.2e} nats")
    assert worst < 1e-4


def _values(resps) -> list[float]:
    """Log-likelihood values from logged resps ([[ll, greedy]] or [ll] per request)."""
    out = []
    for resp in resps:
        value = resp[0]
        out.append(float(value[0] if isinstance(value, (list, tuple)) else value))
    return out


def _as_logged(arguments) -> dict:
    """In-memory request arguments in the layout of the samples file."""
    return {
        f"gen_args_{i}": {f"arg_{j}": value for j, value in enumerate(args)}
        for i, args in enumerate(arguments)
    }


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([str(Path(__file__)), "-q"]))
