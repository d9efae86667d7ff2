"""`rgen-harness study CONFIG`: run every model of a study config, then write the report."""

from __future__ import annotations

import sys
from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser(
        "study",
        help="run every model x {deita_qr, deita_qcr} (+ benchmarks) through lm_eval; resumable",
    )
    p.add_argument("config", type=Path, help="study YAML (see rgen_harness/configs/)")
    p.add_argument("--only", nargs="+", metavar="MODEL", help="run only these models (by name)")
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="print what would run (and what is done), run nothing",
    )
    p.add_argument("--no-report", action="store_true", help="do not write the report at the end")


def run(args) -> int:
    from rgen_harness.data.deita import DataUnavailable
    from rgen_harness.study.config import StudyConfigError, load_study_config
    from rgen_harness.study.report import build_report
    from rgen_harness.study.runner import run_study

    try:
        config = load_study_config(args.config)
        outcome = run_study(config, only=args.only, dry_run=args.dry_run)
    except (StudyConfigError, DataUnavailable) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    print(
        f"[study] {config.name}: {len(outcome.done)} run(s) done, {len(outcome.skipped)} "
        f"skipped (finished earlier), {len(outcome.failed)} failed"
        + (f": {', '.join(outcome.failed)}" if outcome.failed else "")
    )
    if not args.dry_run and not args.no_report:
        files = build_report(config.study_dir, config.results_dir)
        print(
            f"[study] report: {files.markdown} (+ {files.csv.name}, {files.json.name}, "
            f"{len(files.plots)} plots)"
        )
        if files.problems:
            print(f"[study] {len(files.problems)} problem(s) listed under Problems in the report")
    return 1 if outcome.failed else 0
