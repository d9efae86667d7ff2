"""The offline judge demo (`rgen-harness demo --judge`).

In the work folder: builds a tiny random-weight chat model and a tiny random reward model, runs
the real `lm_eval` command twice at once on the bundled hand-written sample rows of every judge
set (`--metadata '{"judge_path": "sample"}'`): the chat model as the judge (`--model hf`, both
orders) and the reward model as the judge (`--model dummy`, `"judge_with": "reward"`), then
writes the judge leaderboard to `results/judge_smoke/`. The models are random and the rows a
handful: it shows that the judge tasks and the leaderboard run end to end; the scores mean
nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

NOTICE = (
    "SMOKE RUN: a tiny random-weight chat model (hf) and a tiny random reward model judge the "
    "bundled hand-written sample rows (3-4 per set, not the published test sets) on a CPU. It "
    "shows that the judge tasks and the leaderboard run end to end; the scores mean nothing."
)
MODELS = Path("judge/models")
RUNS = Path("judge/runs")
REPORT = Path("results/judge_smoke")
RESAMPLES = 2000


@dataclass(frozen=True)
class JudgeRun:
    name: str
    argv: tuple[str, ...]

    @property
    def out_dir(self) -> Path:
        return RUNS / self.name

    def shell_command(self) -> str:
        import shlex

        return "lm_eval " + " ".join(shlex.quote(a) for a in self.argv)


def plan(tasks: str = "judge_pairwise") -> list[JudgeRun]:
    """The two lm_eval commands (paths relative to the work folder)."""
    common = ["--tasks", tasks, "--log_samples"]
    chat = MODELS / "tiny-chat"
    reward_meta = {
        "judge_path": "sample",
        "judge_with": "reward",
        "reward_model": str(MODELS / "tiny-reward"),
        "reward_backend": "hf",
        "reward_device": "cpu",
        "reward_cache": "none",
    }
    runs = [
        JudgeRun(
            "tiny-chat",
            (
                "--model",
                "hf",
                "--model_args",
                f"pretrained={chat}",
                "--device",
                "cpu",
                "--batch_size",
                "32",
                "--metadata",
                json.dumps({"judge_path": "sample"}),
                *common,
            ),
        ),
        JudgeRun(
            "tiny-reward", ("--model", "dummy", "--metadata", json.dumps(reward_meta), *common)
        ),
    ]
    return [JudgeRun(r.name, (*r.argv, "--output_path", str(RUNS / r.name))) for r in runs]


def _start(run: JudgeRun, env: dict[str, str]) -> subprocess.Popen:
    run.out_dir.mkdir(parents=True, exist_ok=True)
    log = open(run.out_dir / "lm_eval.log", "wb")  # noqa: SIM115 (closed by the caller)
    argv = [sys.executable, "-m", "lm_eval", *run.argv]
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)
    proc.log = log  # type: ignore[attr-defined]
    return proc


def run_judge_demo(work: Path, *, resamples: int = RESAMPLES) -> int:
    """Runs in `work` (the caller's current folder must be it); 0 when everything ran."""
    from rgen_harness.judge_report import Settings, build_judge_report
    from rgen_harness.smoke.tiny_models import build_chat_model, build_reward_model

    print(f"[demo] building tiny random models in {work / MODELS}", flush=True)
    build_chat_model(MODELS / "tiny-chat", seed=0)
    build_reward_model(MODELS / "tiny-reward", seed=2)
    env = dict(os.environ, TOKENIZERS_PARALLELISM="false")
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 2) // 2)))
    runs = plan()
    procs = []
    for run in runs:
        print(f"[demo] {run.shell_command()}", flush=True)
        procs.append(_start(run, env))
    failed = []
    for run, proc in zip(runs, procs, strict=True):
        code = proc.wait()
        proc.log.close()  # type: ignore[attr-defined]
        if code != 0:
            failed.append((run, code))
    for run, code in failed:
        log = (run.out_dir / "lm_eval.log").read_text(encoding="utf-8", errors="replace")
        print(f"[demo] lm_eval for {run.name} exited with {code}; the end of its log:", flush=True)
        print(log[-3000:])
        print(f"[demo] full log: {work / run.out_dir / 'lm_eval.log'}")
    if failed:
        return failed[0][1] or 1
    files = build_judge_report(
        [run.out_dir for run in runs],
        REPORT,
        settings=Settings(resamples=resamples),
        notice=NOTICE,
    )
    text = files.markdown.read_text(encoding="utf-8")
    start = text.find("## Leaderboard")
    print("\n" + text[start : text.find("\n## ", start + 3)].strip() + "\n")
    print(f"[demo] judge leaderboard: {work / files.markdown}")
    if files.problems:
        print(f"[demo] {len(files.problems)} problem(s), listed under Problems in the leaderboard")
        return 1
    return 0
