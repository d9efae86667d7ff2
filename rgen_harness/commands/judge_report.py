"""`rgen-harness judge-report DIR [DIR ...]`: the judge leaderboard (Markdown, CSV, JSON, PNG)
from lm_eval --output_path folders of judge_* runs."""

from __future__ import annotations

from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser(
        "judge-report", help="judge leaderboard (judges x pairwise test sets) from judge_* runs"
    )
    p.add_argument(
        "results_dirs", type=Path, nargs="+", help="lm_eval --output_path folders of judge runs"
    )
    p.add_argument(
        "--out",
        type=Path,
        default=Path("results/judge_leaderboard"),
        help="where to write (default: results/judge_leaderboard)",
    )
    p.add_argument("--interval", type=float, default=0.95, help="interval level (default 0.95)")
    p.add_argument("--resamples", type=int, default=10000, help="bootstrap resamples (10000)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (0)")
    p.add_argument("--notice", default=None, help="a line shown in bold under the title")


def run(args) -> int:
    from rgen_harness.judge_report import Settings, build_judge_report

    try:
        settings = Settings(level=args.interval, resamples=args.resamples, seed=args.seed)
        files = build_judge_report(
            args.results_dirs, args.out, settings=settings, notice=args.notice
        )
    except (ValueError, FileNotFoundError) as e:
        raise SystemExit(f"rgen-harness judge-report: {e}") from None
    from rgen_harness.study.judge_link import write_page

    page = write_page(
        list(args.results_dirs), Path(args.out) / "judge_browser.html", notice=args.notice
    )
    print(f"wrote {files.markdown}, {files.csv}, {files.json}")
    if page is not None:
        print(f"wrote {page} (open it from disk: every pair, both orders' replies and verdicts)")
    if files.plot is not None:
        print(f"wrote {files.plot}")
    judges = len({r["judge"] for r in files.rows})
    print(f"{judges} judge(s), {len(files.rows)} judge x set row(s)")
    if files.problems:
        print(
            f"{len(files.problems)} problem(s) with the input files (e.g. {files.problems[0]}); "
            f"all are listed under Problems in {files.markdown}"
        )
    return 0
