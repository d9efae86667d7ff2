"""`rgen-harness demo`: the offline smoke study.

Runs the bundled smoke study config (`rgen_harness/configs/study_smoke.yaml`): tiny random-weight
chat and reward models (and a tiny BaichuanCharRM) are built on first use, then the real `lm_eval`
command runs deita_qr and deita_qcr on the bundled deita sample and charactereval on the bundled
CharacterEval sample on the CPU, the replies are scored, and the report is written. It proves the
pipeline runs end to end; the models are random, so the scores mean nothing.

`rgen-harness demo --judge` runs the judge demo instead (rgen_harness/smoke/judge_demo.py): a tiny
chat model and a tiny reward model judge the bundled sample rows of every judge set, and the judge
leaderboard is written to `results/judge_smoke/` in the work folder.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

JUDGE_BANNER = (
    "SMOKE RUN: tiny random-weight judges on the bundled hand-written judge sample rows, CPU.\n"
    "It shows that the judge tasks and the leaderboard run end to end; the scores mean nothing."
)
BANNER = (
    "SMOKE RUN: tiny random-weight models on the bundled deita and CharacterEval samples, CPU.\n"
    "It shows that the pipeline runs end to end; the scores mean nothing."
)


def add_parser(sub) -> None:
    p = sub.add_parser(
        "demo", help="offline smoke study on tiny random models (CPU, a few minutes)"
    )
    p.add_argument(
        "--work-dir",
        type=Path,
        default=Path("demo_out"),
        help="where models, runs and the report go (default: ./demo_out)",
    )
    p.add_argument(
        "--judge",
        action="store_true",
        help="run the judge demo instead: tiny judges on the bundled judge sample rows, then "
        "the judge leaderboard (results/judge_smoke/ in the work folder)",
    )


def run(args) -> int:
    from argparse import Namespace

    from rgen_harness.commands import study

    config = Path(str(resources.files("rgen_harness") / "configs" / "study_smoke.yaml"))
    work = args.work_dir.resolve()
    work.mkdir(parents=True, exist_ok=True)
    if args.judge:
        return _judge(work)
    print(BANNER, flush=True)
    print(f"[demo] working in {work}", flush=True)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.chdir(work)  # the smoke config's paths are relative
    code = study.run(Namespace(config=config, only=None, dry_run=False, no_report=False))
    board = work / "results" / "smoke" / "leaderboard.md"
    if board.is_file():
        text = board.read_text(encoding="utf-8")
        start = text.find("## Leaderboard")
        print("\n" + text[start : text.find("\n## ", start + 3)].strip() + "\n")
        print(f"[demo] full report: {board}")
    print(BANNER)
    return code


def _judge(work: Path) -> int:
    from rgen_harness.smoke.judge_demo import run_judge_demo

    print(JUDGE_BANNER, flush=True)
    print(f"[demo] working in {work}", flush=True)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.chdir(work)  # the demo's paths are relative
    code = run_judge_demo(work)
    print(JUDGE_BANNER)
    return code
