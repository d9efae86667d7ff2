"""The report is written for a reader and only where the user or the study says."""

from __future__ import annotations

import json
import os
import re

import pytest
from lm_eval_fixtures import paired_fixture, write_run

from rgen_harness.study.report import ReportLocationError, build_report, default_report_dir


def study_folder(base, **extra):
    root = base / "studies" / "s"
    root.mkdir(parents=True)
    study = {
        "name": "s",
        "models": [{"name": "m", "model": "hf", "model_args": {"pretrained": "org/m"}}],
        "output_dir": "studies/s",
        "report_dir": "results/s",
        "notice": "SMOKE RUN",
        "generation": {"max_gen_toks": 8},
        "reward": {"model": "rm", "backend": "hf"},
        **extra,
    }
    (root / "study.json").write_text(json.dumps(study))
    write_run(root / "runs/m/deita", model_name="org/m", model_args={}, tasks=paired_fixture(12))
    return root


def test_report_goes_to_the_studys_report_dir_not_the_current_directory(tmp_path, monkeypatch):
    work = tmp_path / "demo_out"
    root = study_folder(work)
    elsewhere = tmp_path / "repo"
    (elsewhere / "results" / "s").mkdir(parents=True)
    tracked = elsewhere / "results" / "s" / "leaderboard.md"
    tracked.write_text("tracked")
    monkeypatch.chdir(elsewhere)
    files = build_report(os.path.relpath(root, elsewhere), resamples=50)
    assert files.markdown == work / "results" / "s" / "leaderboard.md"
    assert tracked.read_text() == "tracked"


def test_a_moved_study_with_a_relative_report_dir_asks_for_out(tmp_path):
    root = study_folder(tmp_path / "x", output_dir="/somewhere/else")
    with pytest.raises(ReportLocationError, match="--out DIR"):
        default_report_dir(root, json.loads((root / "study.json").read_text()))
    out = tmp_path / "chosen"
    assert build_report(root, out, resamples=50).markdown.parent == out


def test_a_plain_lm_eval_folder_gets_its_report_inside_it(tmp_path):
    write_run(tmp_path / "runs", model_name="org/m", model_args={}, tasks=paired_fixture(6))
    assert default_report_dir(tmp_path / "runs", None) == tmp_path / "runs" / "report"


def test_text_is_written_for_a_reader(tmp_path):
    root = study_folder(tmp_path)
    files = build_report(root, resamples=50)
    md = files.markdown.read_text()
    setup = md[md.index("## Setup") : md.index("## Leaderboard")]
    assert "{" not in setup and "}" not in setup  # no Python dict printouts
    assert "| Reply length limit (max_gen_toks) | 8 |" in setup
    assert "| Reward model backend | hf |" in setup
    methods = md[md.index("## Methods") :]
    assert "Statistics of the report" not in methods and "numpy" not in methods
    row = next(line for line in md.splitlines() if line.startswith("| [m]"))
    assert "%" not in row  # rates are fractions like the win rates
    assert re.search(r"\| \d\.\d\d / \d\.\d\d / \d\.\d\d \|", row)
    # Of the 10 conversations generated in both modes (one QR skipped, one QCR failed), QCR
    # dropped turns in 2 and QR in none: the report counts them and names them.
    assert "| 8 of 10 |" in row
    assert "Histories differ in m: conv-000, conv-010." in md
    # The fixture's token counts exceed max_gen_toks 8: marked and explained.
    assert "count more tokens than max_gen_toks allows" in md


def test_every_plot_carries_the_notice(tmp_path, monkeypatch):
    from rgen_harness import report_format

    stamped = []
    real = report_format.finish_figure

    def spy(fig, notice):
        stamped.append(notice)
        real(fig, notice)

    monkeypatch.setattr("rgen_harness.study.plots.finish_figure", spy)
    files = build_report(study_folder(tmp_path), resamples=50)
    # five deita plots and the per-reply score histogram (reward)
    assert len(files.plots) == 6 and stamped == ["SMOKE RUN"] * 6
