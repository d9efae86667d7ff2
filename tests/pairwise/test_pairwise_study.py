"""The study's `judge:` block end to end: `rgen-harness study` generates QR and QCR replies with
a tiny model, then runs `lm_eval --tasks deita_pairwise` with the judge on them, and the
leaderboard gains the judge columns."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml
from report_compare_util import report_files

from rgen_harness.study.config import StudyConfigError, parse_study_config

pytestmark = pytest.mark.slow


def config(tiny_dir, tmp_path) -> dict:
    chat = str(tiny_dir / "chat")
    return {
        "name": "judged",
        "models": [{"name": "tiny", "model": "hf", "model_args": {"pretrained": chat}}],
        "device": "cpu",
        "data": {"path": "sample"},
        "limit": 3,
        "generation": {"max_gen_toks": 8},
        "scorers": ["reward"],
        "reward": {"model": str(tiny_dir / "reward"), "backend": "hf", "device": "cpu",
                   "cache": str(tmp_path / "rcache")},
        "report": {"resamples": 200},
        "output_dir": str(tmp_path / "study"),
        "report_dir": str(tmp_path / "report"),
        "judge": {"name": "tinyjudge", "model": "hf",
                  "model_args": {"pretrained": str(tiny_dir / "chat"), "max_length": 1024},
                  "prompt": "judge_v1", "subset": 2},
    }  # fmt: skip


def test_judge_block_is_checked(tiny_dir, tmp_path):
    raw = config(tiny_dir, tmp_path)
    parsed = parse_study_config(raw)
    assert parsed.judge.name == "tinyjudge" and parsed.judge.subset == 2
    raw["judge"]["promt"] = "judge_v1"
    with pytest.raises(StudyConfigError, match="Did you mean 'prompt'"):
        parse_study_config(raw)
    raw["judge"].pop("promt")
    raw["judge"]["prompt"] = "judge_v9"
    with pytest.raises(StudyConfigError, match="judge.prompt: judge_prompt='judge_v9' not found"):
        parse_study_config(raw)


def test_a_judge_run_is_tied_to_the_replies_it_judged(tiny_dir, tmp_path):
    """New generation settings make new replies: the old verdicts are refused like any run
    whose settings changed, not shown beside the new rewards."""
    from rgen_harness.study import runner

    def plan(raw):
        runs = runner.plan_runs(parse_study_config(raw), None)
        return {r.key: r for r in runs}

    raw = config(tiny_dir, tmp_path)
    before = plan(raw)
    assert before["judge-tinyjudge"].settings["judged_run"] == before["deita"].fingerprint
    raw["generation"]["max_gen_toks"] = 9
    after = plan(raw)
    assert after["judge-tinyjudge"].fingerprint != before["judge-tinyjudge"].fingerprint
    assert after["judge-tinyjudge"].settings["judged_run"] == after["deita"].fingerprint


def _run_study(raw: dict, tmp_path) -> subprocess.CompletedProcess:
    path = tmp_path / f"{raw['name']}.yaml"
    path.write_text(yaml.safe_dump(raw))
    proc = subprocess.run(
        [sys.executable, "-m", "rgen_harness.cli", "study", str(path)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


@pytest.fixture(scope="module")
def sequential(tiny_dir, tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("sequential")
    return tmp_path, _run_study(config(tiny_dir, tmp_path), tmp_path)


def test_study_runs_the_judge_after_generation_and_reports_it(sequential):
    tmp_path, proc = sequential
    order = [line for line in proc.stdout.splitlines() if line.startswith("[study] tiny/")]
    assert order[0].startswith("[study] tiny/deita: running")
    assert order[-1].startswith("[study] tiny/judge-tinyjudge: running")
    (results,) = (tmp_path / "study/runs/tiny/judge-tinyjudge").rglob("results_*.json")
    res = json.loads(results.read_text())["results"]["deita_pairwise"]
    assert res["pairs,none"] == 2  # the subset
    report = (tmp_path / "report" / "leaderboard.md").read_text()
    assert "Judge W/T/L (QCR vs QR)" in report and "Reward-judge agreement" in report
    board = json.loads((tmp_path / "report" / "leaderboard.json").read_text())
    assert not [p for p in board["problems"] if "pairwise" in p or "judge" in p]
    (row,) = board["models"]
    assert "deita_pairwise" not in row["benchmarks"]
    assert row["judge"]["pairs"] == 2
    assert row["judge"]["n"] == res["n,none"]


def test_parallel_study_with_shards_reports_what_the_sequential_one_does(
    tiny_dir, tmp_path, sequential
):
    """Three (pretend) GPUs: the model's conversations go to three engines, are merged and
    scored in the scoring phase, and the judge starts once they are; the report equals the
    sequential study's."""
    seq_path, _ = sequential
    raw = config(tiny_dir, tmp_path)
    raw.update(gpus=[0, 1, 2], scheduler="parallel")
    proc = _run_study(raw, tmp_path)
    lines = [x for x in proc.stdout.splitlines() if x.startswith("[study] tiny/")]
    assert "[study] tiny/deita: 3 shards of 1/1/1 conversations" in lines, lines
    merged = lines.index("[study] tiny/deita: 3 shards merged")
    judge = next(i for i, x in enumerate(lines) if x.startswith("[study] tiny/judge-tinyjudge: "))
    scored = lines.index("[study] tiny/deita: scored, done")
    assert merged < scored < judge, lines
    assert report_files(tmp_path / "report") == report_files(seq_path / "report")
