"""Through the installed `lm_eval` command line: a reward column and per-sample rewards; then
`rgen-harness score` on the logged samples reproduces them. Also: a plain generate_until YAML
task using the reward filter."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess

import pytest

pytestmark = pytest.mark.slow


def read_samples(folder):
    out = {}
    for path in sorted(folder.rglob("samples_*.jsonl")):
        task = path.name.split("_2")[0].removeprefix("samples_")
        out[task] = [json.loads(line) for line in path.read_text().splitlines()]
    return out


@pytest.fixture(scope="module")
def run_dir(tiny_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("reward_run")
    meta = {
        "deita_path": "sample",
        "scorers": "reward",
        "reward_model": str(tiny_dir / "reward"),
        "reward_backend": "hf",
        "reward_cache": str(out / "cache"),
    }
    cmd = [
        shutil.which("lm_eval") or "lm_eval",
        "--model",
        "hf",
        "--model_args",
        f"pretrained={tiny_dir / 'chat'}",
        "--device",
        "cpu",
        "--tasks",
        "deita_qr,deita_qcr",
        "--metadata",
        json.dumps(meta),
        "--limit",
        "3",
        "--gen_kwargs",
        "max_gen_toks=8",
        "--log_samples",
        "--output_path",
        str(out / "results"),
    ]
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, proc.stdout


def test_lm_eval_prints_reward_and_logs_it_per_sample(run_dir):
    out, stdout = run_dir
    for metric in ("reward ", "reference_reward", "reward_n", "reward_failed"):
        assert f"|{metric}" in stdout, stdout
    results = json.loads(next((out / "results").rglob("results_*.json")).read_text())
    samples = read_samples(out / "results")
    for task in ("deita_qr", "deita_qcr"):
        res = results["results"][task]
        assert res["reward_n,none"] == 3 and res["reward_failed,none"] == 0
        rewards = [s["reward"] for s in samples[task]]
        assert len(rewards) == 3 and all(math.isfinite(r) for r in rewards)
        assert res["reward,none"] == pytest.approx(sum(rewards) / 3)
        assert isinstance(res["reward_stderr,none"], float)
        stored = json.loads(samples[task][0]["filtered_resps"][0])["scores"]
        assert stored["reward"] == samples[task][0]["reward"]


def test_rescoring_the_samples_reproduces_them(run_dir):
    from rgen_harness.cli import main

    out, _ = run_dir
    # no cache: the scores are computed again, from the logged samples alone
    code = main(
        [
            "score",
            str(out / "results"),
            "--output-dir",
            str(out / "again"),
            "--reward-cache",
            "none",
            "--bootstrap-iters",
            "100",
        ]
    )
    assert code == 0
    before, after = read_samples(out / "results"), read_samples(out / "again")
    assert set(after) == {"deita_qr", "deita_qcr"}
    for task in before:
        for b, a in zip(before[task], after[task], strict=True):
            for key in ("reward", "reference_reward", "reward_dropped_turns"):
                assert a[key] == pytest.approx(b[key], abs=1e-6)
    rescored = json.loads(next((out / "again").rglob("results_*.json")).read_text())
    inline = json.loads(next((out / "results").rglob("results_*.json")).read_text())
    for task in ("deita_qr", "deita_qcr"):
        for key in ("reward,none", "reward_stderr,none", "reward_n,none"):
            assert rescored["results"][task][key] == pytest.approx(
                inline["results"][task][key], abs=1e-6
            )
    # The rescored run keeps the model's settings, is labelled, and pairs with its samples.
    assert rescored["config"]["model_args"] == inline["config"]["model_args"]
    assert rescored["model_name"].endswith("(rescored)")
    (res_path,) = (out / "again").rglob("results_*.json")
    date = res_path.name[len("results_") : -len(".json")]
    assert (res_path.parent / f"samples_deita_qr_{date}.jsonl").is_file()


def test_plain_generate_until_task_with_the_reward_filter(tiny_dir, tmp_path):
    data = tmp_path / "qa.jsonl"
    rows = [{"question": f"What is {i} plus {i}?", "answer": str(2 * i)} for i in range(3)]
    data.write_text("\n".join(json.dumps(r) for r in rows))
    mod = "rgen_harness.metrics.reward.lm_eval_task"
    (tmp_path / "qa_reward.yaml").write_text(f"""
task: qa_reward
dataset_path: json
dataset_kwargs: {{data_files: {{test: {data}}}}}
test_split: test
output_type: generate_until
doc_to_text: "Q: {{{{question}}}}\\nA:"
doc_to_target: answer
generation_kwargs: {{until: ["\\n"], max_gen_toks: 6, do_sample: false}}
filter_list:
  - name: reward
    filter:
      - function: !function {mod}.RewardFilter
        prompt: "{{{{question}}}}"
        reference: "{{{{answer}}}}"
        reward_model: "{tiny_dir / "reward"}"
        reward_backend: hf
        reward_cache: none
metric_list:
  - metric: !function {mod}.reward
    aggregation: nanmean
    higher_is_better: true
  - metric: !function {mod}.reward_failed
    aggregation: sum
    higher_is_better: false
""")
    from lm_eval.api.task import ConfigurableTask
    from lm_eval.evaluator import evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks._yaml_loader import load_yaml

    config = load_yaml(tmp_path / "qa_reward.yaml")
    task = ConfigurableTask(config=config)
    lm = HFLM(pretrained=str(tiny_dir / "chat"), device="cpu", batch_size=4)
    out = evaluate(lm, {"qa_reward": task}, bootstrap_iters=0, log_samples=True)
    got = {
        "res": out["results"]["qa_reward"],
        "samples": [s["reward"] for s in out["samples"]["qa_reward"]],
    }
    assert len(got["samples"]) == 3
    assert got["res"]["reward_failed,reward"] + sum(map(math.isfinite, got["samples"])) == 3
    finite = [x for x in got["samples"] if math.isfinite(x)]
    assert got["res"]["reward,reward"] == pytest.approx(sum(finite) / len(finite))
