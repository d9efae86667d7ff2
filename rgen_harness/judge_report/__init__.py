"""The judge leaderboard (`rgen-harness judge-report`): judges x pairwise test sets from the
lm-eval output of `judge_*` runs, with bootstrap intervals over pairs.

collect.py (reading results and samples) -> measures.py (the measures and their intervals) ->
summary.py (one row per judge and set) -> report.py (Markdown, CSV, JSON) and plot.py (PNG).
"""

from rgen_harness.judge_report.report import JudgeReportFiles, build_judge_report
from rgen_harness.judge_report.summary import Settings

__all__ = ["JudgeReportFiles", "Settings", "build_judge_report"]
