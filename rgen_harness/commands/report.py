"""`rgen-harness report DIR`: leaderboard (Markdown, CSV, JSON) and plots from a study folder
or any `lm_eval --output_path` folder run with --log_samples."""

from __future__ import annotations

from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser("report", help="write the leaderboard and plots for a study/results folder")
    p.add_argument("results_dir", type=Path, help="study folder (studies/<name>) or lm_eval output")
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="where to write (default: the study's report_dir, resolved against the folder the "
        "study ran from; for a plain lm_eval folder, report/ inside it)",
    )
    p.add_argument("--interval", type=float, default=None, help="interval level (default 0.95)")
    p.add_argument("--resamples", type=int, default=None, help="bootstrap resamples (10000)")
    p.add_argument("--seed", type=int, default=None, help="bootstrap seed (0)")
    p.add_argument(
        "--judge-results",
        type=Path,
        nargs="+",
        default=None,
        metavar="DIR",
        help="lm_eval output folders of judge_* runs of the study's reward model "
        '("judge_with": "reward"): its agreement with human labels is shown next to the '
        "leaderboard",
    )


def run(args) -> int:
    from rgen_harness.study.report import build_report

    if args.interval is not None and not 0.5 <= args.interval < 1:
        raise SystemExit(f"--interval {args.interval} must be in [0.5, 1), e.g. 0.95")
    from rgen_harness.study.report import ReportLocationError

    try:
        files = build_report(
            args.results_dir,
            args.out,
            judge_results=args.judge_results,
            level=args.interval,
            resamples=args.resamples,
            seed=args.seed,
        )
    except ReportLocationError as e:
        raise SystemExit(f"rgen-harness report: {e}") from None
    print(f"wrote {files.markdown}, {files.csv}, {files.json}")
    if files.browser is not None:
        print(f"wrote {files.browser} (open it from disk in a browser to read every reply)")
    for p in files.plots:
        print(f"wrote {p}")
    print(f"{len(files.rows)} model(s)")
    if files.problems:
        print(
            f"{len(files.problems)} problem(s) with the input files (e.g. {files.problems[0]}); "
            f"all are listed under Problems in {files.markdown}"
        )
    return 0
