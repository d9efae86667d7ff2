"""`rgen-harness study CONFIG`: run every model of a study config, then write the report."""

from __future__ import annotations

import contextlib
import os
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
    p.add_argument(
        "--ray",
        metavar="ADDRESS",
        default=None,
        help="run on a Ray cluster (e.g. auto, ray://head:10001); overrides ray.address",
    )


def run(args) -> int:
    from rgen_harness.data.deita import DataUnavailable
    from rgen_harness.file_writes import WriteFailed, explain
    from rgen_harness.study.config import StudyConfigError, load_study_config
    from rgen_harness.study.runner import OutputClosed

    try:
        config = load_study_config(args.config)
        if getattr(args, "ray", None):
            config = with_ray(config, args.ray)
        return _run(args, config)
    except (StudyConfigError, DataUnavailable) as e:
        _error(str(e))
        return 2
    except OutputClosed as e:
        _quiet_stdout()
        _error(str(e))
        return 1
    except BrokenPipeError:
        _quiet_stdout()
        _error("the output of `rgen-harness study` was closed; run it again to resume.")
        return 1
    except WriteFailed as e:
        _error(str(e))
        return 1
    except OSError as e:  # a write outside the checked folders (e.g. a plot)
        _error(str(explain(e, e.filename or "a file")))
        return 1
    except KeyboardInterrupt:
        return 130


def _run(args, config) -> int:
    from rgen_harness.study.report import build_report
    from rgen_harness.study.runner import run_study

    report = not args.dry_run and not args.no_report
    outcome = run_study(config, only=args.only, dry_run=args.dry_run, report=report)
    print(
        f"[study] {config.name}: {len(outcome.done)} run(s) done, {len(outcome.skipped)} "
        f"skipped (finished earlier), {len(outcome.failed)} failed"
        + (f": {', '.join(outcome.failed)}" if outcome.failed else ""),
        flush=True,
    )
    if outcome.scorer_loads is not None:
        charrm = f", CharRM {outcome.charrm_loads} time(s)" if outcome.charrm_loads else ""
        print(
            f"[study] scoring: reward model loaded {outcome.scorer_loads} time(s){charrm}",
            flush=True,
        )
    if report:
        files = build_report(config.study_dir, config.results_dir)
        print(
            f"[study] report: {files.markdown} (+ {files.csv.name}, {files.json.name}, "
            f"{len(files.plots)} plots)",
            flush=True,
        )
        if files.problems:
            print(f"[study] {len(files.problems)} problem(s) listed under Problems in the report")
    return 1 if outcome.failed else 0


def with_ray(config, address: str):
    """The config with `ray.address` set from the command line."""
    import dataclasses

    from rgen_harness.study.config import RaySpec

    new = dataclasses.replace(config, ray=RaySpec(address=address))
    object.__setattr__(new, "env_refs", config.env_refs)  # not an init field: carried over
    return new


def _quiet_stdout() -> None:
    """Point stdout at /dev/null so Python's exit does not report the closed pipe again."""
    with contextlib.suppress(OSError, ValueError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _error(message: str) -> None:
    """One line on stderr; a closed stderr is not worth a traceback."""
    with contextlib.suppress(OSError):
        print(f"error: {message}", file=sys.stderr, flush=True)
