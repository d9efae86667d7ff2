"""`--predict_only` generates and logs replies without scoring (no reward model is touched, the
counts stay counts); `rgen-harness score` on its samples then gives the inline run's numbers."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from deita_rows_util import conversation, write_rows

pytestmark = pytest.mark.slow

TASKS = ("deita_qr", "deita_qcr")


def write_data(path: Path) -> Path:
    def row(i, *turns):
        return conversation(f"p{i}", *turns)

    rows = [
        row(0, ("system", "You are terse."), ("human", "Name a prime."), ("gpt", "7")),
        row(1, ("human", "Why is the sky blue?"), ("gpt", "Scattering."), ("human", "More?"),
            ("gpt", "Rayleigh scattering favours short wavelengths.")),
        row(2, ("human", "hi"), ("robot", "beep")),  # unknown role: skipped
        row(3, ("human", "你好，介绍一下长城。"), ("gpt", "长城很长。")),
        row(4, ("human", "only a question")),  # no reference reply: skipped
    ]  # fmt: skip
    return write_rows(path, rows)


def run(tiny_dir: Path, out: Path, metadata: dict, *, predict_only: bool) -> dict:
    """Like the lm_eval command: evaluate, then write results and samples files."""
    from lm_eval import simple_evaluate
    from lm_eval.loggers import EvaluationTracker

    tracker = EvaluationTracker(output_path=str(out))
    results = simple_evaluate(
        model="hf",
        model_args=f"pretrained={tiny_dir / 'chat'}",
        device="cpu",
        tasks=list(TASKS),
        metadata=metadata,
        gen_kwargs="max_gen_toks=8",
        log_samples=True,
        predict_only=predict_only,
        evaluation_tracker=tracker,
    )
    samples = results.pop("samples")
    tracker.save_results_aggregated(results=results, samples=samples)
    for task in results["configs"]:
        tracker.save_results_samples(task_name=task, samples=samples[task])
    return results


@pytest.fixture(scope="module")
def runs(tiny_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("predict_only")
    data = write_data(tmp / "rows.jsonl")
    meta = {
        "deita_path": str(data),
        "scorers": "rouge,reward",
        "reward_model": str(tiny_dir / "reward"),
        "reward_backend": "hf",
        "reward_cache": "none",
    }
    inline = run(tiny_dir, tmp / "inline", meta, predict_only=False)
    # Predict-only never opens the reward model: a path that does not exist is fine.
    missing = {**meta, "reward_model": str(tmp / "no-such-reward-model")}
    predicted = run(tiny_dir, tmp / "predicted", missing, predict_only=True)
    return {"tmp": tmp, "inline": inline, "predicted": predicted}


def test_predict_only_scores_nothing_and_counts_stay_counts(runs):
    for task in TASKS:
        res = runs["predicted"]["results"][task]
        assert res["skipped,none"] == 2 and res["failed,none"] == 0  # sums, not means
        assert not any(k.startswith(("reward", "rouge", "bypass")) for k in res)
        assert res["reply_chars,none"] == runs["inline"]["results"][task]["reply_chars,none"]
    (path,) = (runs["tmp"] / "predicted").rglob("samples_deita_qr_*.jsonl")
    for line in path.read_text().splitlines():
        result = json.loads(json.loads(line)["filtered_resps"][0])
        assert result["scores"] == {}
        assert result["status"] in ("ok", "skipped")


def test_score_reproduces_the_inline_numbers(runs, tiny_dir):
    from rgen_harness.cli import main

    tmp = runs["tmp"]
    code = main(
        [
            "score",
            str(tmp / "predicted"),
            "--output-dir",
            str(tmp / "scored"),
            "--reward-model",
            str(tiny_dir / "reward"),
        ]
    )
    assert code == 0
    (path,) = (tmp / "scored").rglob("results_*.json")
    scored = json.loads(path.read_text())["results"]
    for task in TASKS:
        inline = runs["inline"]["results"][task]
        keys = [k for k in inline if k.endswith(",none")]
        assert {"reward,none", "rouge1_f,none", "skipped,none", "reply_tokens,none"} <= set(keys)
        for key in keys:
            want, got = inline[key], scored[task][key]
            if isinstance(want, str) or (isinstance(want, float) and math.isnan(want)):
                assert got == want or (isinstance(got, float) and math.isnan(got)), key
            else:
                assert got == pytest.approx(want, rel=1e-6, abs=1e-9), key
        assert scored[task]["skipped,none"] == 2  # a count, as inline
