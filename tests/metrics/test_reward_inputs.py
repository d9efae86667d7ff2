"""What the reward model reads: the complete history (identical for QR and QCR), and scoring
through lmdeploy's own `Pipeline.get_reward_score` over the CPU engine."""

from __future__ import annotations

import json
import shutil

import pytest

from rgen_harness.chat.protocol import ChatResult


@pytest.fixture(scope="module")
def scored(tiny_dir, tmp_path_factory):
    """QR and QCR with a generation context so short that turns are dropped, and a reward
    model that reads up to 1024 tokens: {task: {doc id: (ChatResult, sample)}}."""
    import lm_eval
    from lm_eval.models.huggingface import HFLM

    out = tmp_path_factory.mktemp("reward_inputs")
    words = ["accuracy", "depth", "clarity", "answer", "criteria", "user", "query", "response"]
    with open(out / "long.jsonl", "w", encoding="utf-8") as f:
        for i in range(4):
            turns = []
            for k in range(2 * (6 + i)):
                text = " ".join(words[(i + k + j) % len(words)] for j in range(25))
                turns.append({"from": "human" if k % 2 == 0 else "gpt", "value": text})
            f.write(json.dumps({"id": f"long-{i}", "conversations": turns}) + "\n")
    lm = HFLM(pretrained=str(tiny_dir / "chat"), device="cpu", batch_size=1, max_length=1000)
    run = lm_eval.simple_evaluate(
        model=lm,
        tasks=["deita_qr", "deita_qcr"],
        gen_kwargs="max_gen_toks=4",
        metadata={
            "deita_path": str(out / "long.jsonl"),
            "scorers": "reward",
            "reward_model": str(tiny_dir / "reward"),
            "reward_backend": "hf",
            "reward_cache": str(out / "cache"),
            "same_history": False,  # per-mode budgets: QCR drops more turns than QR
        },
        log_samples=True,
        bootstrap_iters=0,
    )
    return {
        task: {s["doc"]["id"]: ChatResult.from_json(s["filtered_resps"][0]) for s in samples}
        for task, samples in run["samples"].items()
    }


def test_reference_reward_is_the_same_in_qr_and_qcr(scored):
    qr, qcr = scored["deita_qr"], scored["deita_qcr"]
    dropped_differently = 0
    for doc_id, a in qr.items():
        b = qcr[doc_id]
        if a.status != "ok" or b.status != "ok":
            continue
        assert a.scores["reference_reward"] == b.scores["reference_reward"], doc_id
        assert a.scores["reward_dropped_turns"] == b.scores["reward_dropped_turns"]
        dropped_differently += a.dropped_turns != b.dropped_turns
    # the check means something: QCR's longer prompts made generation drop more turns
    assert dropped_differently > 0


def test_lmdeploy_reward_backend_through_get_reward_score(tiny_dir, tmp_path, monkeypatch):
    """`reward_backend lmdeploy` runs lmdeploy's Pipeline.get_reward_score (architecture check,
    sessions, `async_get_logits`, last-position score) over the CPU engine."""
    import torch
    from transformers import AutoModelForSequenceClassification

    from rgen_harness.metrics.reward.backends.lmdeploy import LMDeployRewardBackend

    path = shutil.copytree(tiny_dir / "reward", tmp_path / "internlm2-like-reward")
    config = json.loads((path / "config.json").read_text())
    config["architectures"] = ["InternLM2ForRewardModel"]  # what lmdeploy requires
    (path / "config.json").write_text(json.dumps(config))
    monkeypatch.setenv(
        "RGEN_HARNESS_LMDEPLOY_ENGINE", "rgen_harness.models.cpu_engine:build_cpu_engine"
    )
    backend = LMDeployRewardBackend(str(path), max_length=256)
    batch = [[5, 17, 42, 3], [9, 8, 7, 6, 5, 4, 3]]
    try:
        scores = backend.score(batch)
    finally:
        backend.close()
    model = AutoModelForSequenceClassification.from_pretrained(tiny_dir / "reward").eval()
    with torch.no_grad():
        expected = [float(model(torch.tensor([ids])).logits[0, 0]) for ids in batch]
    assert scores == pytest.approx(expected, abs=1e-5)
    assert scores[0] != pytest.approx(scores[1])
