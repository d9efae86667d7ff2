"""`rgen-harness demo`: the offline smoke study.

Runs the bundled smoke study config (`rgen_harness/configs/study_smoke.yaml`): tiny random-weight
chat and reward models are built on first use, then the real `lm_eval` command runs deita_qr and
deita_qcr on the bundled deita sample on the CPU, the replies are scored, and the report is
written. It proves the pipeline runs end to end; the models are random, so the scores mean nothing.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

BANNER = (
    "SMOKE RUN: tiny random-weight models on the bundled deita sample, CPU.\n"
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


def run(args) -> int:
    from argparse import Namespace

    from rgen_harness.commands import study

    config = Path(str(resources.files("rgen_harness") / "configs" / "study_smoke.yaml"))
    work = args.work_dir.resolve()
    work.mkdir(parents=True, exist_ok=True)
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
