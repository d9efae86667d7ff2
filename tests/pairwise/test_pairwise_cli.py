"""deita_pairwise through the plain `lm_eval` command as a user types it: a tiny random chat
model writes QR and QCR replies to the bundled sample (scored by a tiny reward model), then the
same model judges them. A random judge's verdicts are mostly unreadable: what is checked is
that every pair is accounted for, both orders were asked, and the judge saw the history."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess

import pytest

pytestmark = pytest.mark.slow


def lm_eval(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    proc = subprocess.run(["lm_eval", *args], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.fixture(scope="module")
def runs(tiny_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pairwise_cli")
    model = ["--model", "hf", "--model_args", f"pretrained={tiny_dir / 'chat'},max_length=1024"]
    gen = [*model, "--device", "cpu", "--limit", "4", "--log_samples"]
    meta = {"deita_path": "sample", "scorers": "reward", "reward_model": str(tiny_dir / "reward")}
    lm_eval(
        *gen,
        "--tasks",
        "deita_qr,deita_qcr",
        "--metadata",
        json.dumps(meta),
        "--gen_kwargs",
        "max_gen_toks=8",
        "--output_path",
        str(tmp / "gen"),
    )
    (run_folder,) = {p.parent for p in (tmp / "gen").rglob("samples_deita_qr_*.jsonl")}
    proc = lm_eval(
        *model,
        "--device",
        "cpu",
        "--tasks",
        "deita_pairwise",
        "--metadata",
        json.dumps({"pairwise_run": str(run_folder), "pairwise_resamples": 200}),
        "--log_samples",
        "--output_path",
        str(tmp / "judge"),
    )
    (results,) = (tmp / "judge").rglob("results_*.json")
    (samples,) = (tmp / "judge").rglob("samples_deita_pairwise_*.jsonl")
    return {
        "stdout": proc.stdout,
        "results": json.loads(results.read_text())["results"]["deita_pairwise"],
        "samples": [json.loads(line) for line in samples.read_text().splitlines()],
    }


def test_every_pair_is_accounted_for(runs):
    res = {k.split(",")[0]: v for k, v in runs["results"].items()}
    assert res["pairs"] == 4 == len(runs["samples"])
    counted = res["n"] + res["skipped"] + res["too_long"] + res["failed"] + res["unreadable"]
    assert counted == res["pairs"]
    assert res["wins"] + res["ties"] + res["losses"] == res["n"]
    assert "win_rate_adjusted" in runs["stdout"] and "reward_agreement" in runs["stdout"]


def test_both_orders_asked_in_the_judges_template(runs, tiny_dir):
    from transformers import AutoTokenizer

    from rgen_harness.chat.protocol import ChatRequest, ChatResult
    from rgen_harness.chat.runner import rebuild_prompts

    tok = AutoTokenizer.from_pretrained(tiny_dir / "chat")
    judged = [s for s in runs["samples"] if not s["doc"]["problem"]]
    assert judged
    for sample in judged:
        orders = [json.loads(r) for r in sample["filtered_resps"]]
        assert [o["order"] for o in orders] == ["original", "swapped"]
        for i, order in enumerate(orders):
            request = ChatRequest.parse(sample["arguments"][f"gen_args_{i}"]["arg_0"])
            result = ChatResult.from_json(sample["resps"][i][0])
            (prompt,) = rebuild_prompts(
                request,
                result,
                lambda m: tok.apply_chat_template(m, tokenize=False, add_generation_prompt=True),
            )
            assert hashlib.sha256(prompt.encode()).hexdigest() == result.rounds[0].prompt_sha256
            assert prompt.startswith("<|im_start|>user\nYou are an impartial judge.")
            assert sample["doc"]["messages"][-1]["content"] in prompt
            first, second = sample["doc"]["response_a"], sample["doc"]["response_b"]
            if order["order"] == "swapped":
                first, second = second, first
            assert f"[Response 1]\n{first}\n\n[Response 2]\n{second}" in prompt


def test_rewards_come_from_the_logged_samples(runs):
    docs = [s["doc"] for s in runs["samples"] if not s["doc"]["problem"]]
    assert all(isinstance(d["reward_a"], float) and isinstance(d["reward_b"], float) for d in docs)
