"""The judge leaderboard from hand-written lm-eval judge output: values and intervals checked
by hand, judges labelled (LoRA, reward model), damaged files listed under Problems."""

from __future__ import annotations

import csv
import json
import math

import pytest
from judge_runs import record, write_run

from rgen_harness.judge_report import Settings, build_judge_report
from rgen_harness.judge_report.measures import estimate, measures_for

FAST = Settings(resamples=500, seed=0)


def rows_by(files):
    return {(r["judge"], r["set"]): r for r in files.rows}


def test_perfect_judge_has_accuracy_one_with_a_degenerate_interval(tmp_path):
    perfect = [record(g, [g, g]) for g in (1, 2, 2, 1, 1)]
    write_run(tmp_path / "runs" / "perfect", {"llmbar_natural": perfect}, model_name="perfect")
    files = build_judge_report([tmp_path / "runs"], tmp_path / "out", settings=FAST)
    assert files.problems == []
    row = rows_by(files)["perfect", "llmbar_natural"]
    for name in ("accuracy", "consistency"):
        assert row["measures"][name] == {"value": 1.0, "low": 1.0, "high": 1.0, "n": 5}
    # Macro-F1 is 1, but a resample holding one gold class only scores the other class 0
    # (scikit-learn's zero_division=0 over the set's labels): 0.5.
    assert row["measures"]["macro_f1"] == {"value": 1.0, "low": 0.5, "high": 1.0, "n": 5}
    assert row["pairs"] == 5 and row["kind"] == "model"
    md = files.markdown.read_text()
    assert "| perfect | model |  | 1.000 [1.000, 1.000] |" in md
    assert files.plot is not None and files.plot.stat().st_size > 1000


def test_values_by_hand_and_equal_to_lm_eval(tmp_path):
    # pooled gold 1 1 2 2 0 0 1 1 / pred 1 1 2 1 0 0 2 2: 5 of 8 right; per class
    # F1 = 2TP/(pred+gold): tie 2*2/4 = 1, "1" 2*2/(3+4) = 4/7, "2" 2*1/(3+2) = 2/5.
    records = [
        record(1, [1, 1]),
        record(2, [2, 1]),
        record(0, [0, 0]),
        record(1, [2, 2]),
        record(-1, [], skipped=1),
    ]
    write_run(tmp_path / "run", {"pandalm": records}, model_name="m")
    files = build_judge_report([tmp_path / "run"], tmp_path / "out", settings=FAST)
    assert files.problems == []  # the samples' values equal the results file's (lm-eval's)
    row = rows_by(files)["m", "pandalm"]
    acc, f1, cons = (row["measures"][k] for k in ("accuracy", "macro_f1", "consistency"))
    assert acc["value"] == pytest.approx(5 / 8) and acc["n"] == 4
    assert f1["value"] == pytest.approx((1 + 4 / 7 + 2 / 5) / 3)
    assert cons["value"] == pytest.approx(3 / 4)
    for est in (acc, f1, cons):
        assert 0 <= est["low"] <= est["value"] <= est["high"] <= 1
        assert est["low"] < est["high"]
    # Resampling pairs: a resample of only pair 4 gives 0, of only pair 1 gives 1.
    assert acc["low"] < 0.5 < acc["high"]
    assert row["pairs"] == 4 and row["skipped"] == 1


def test_intervals_resample_pairs_reproducibly():
    records = [record(1, [1, 2]), record(2, [2, 2]), record(1, [2, 2]), record(2, [1, 1])]
    accuracy = measures_for("llmbar")[0]
    a = estimate(accuracy, records, (1, 2), level=0.95, resamples=300, seed=3)
    b = estimate(accuracy, records, (1, 2), level=0.95, resamples=300, seed=3)
    assert a == b and a.value == pytest.approx(3 / 8)
    one = estimate(accuracy, records[:1], (1, 2), level=0.95, resamples=300, seed=3)
    assert one.value == 0.5 and math.isnan(one.low) and one.n == 1  # no interval from 1 pair


def test_mtbench_agreement_by_hand(tmp_path):
    records = [
        record(-1, [1, 1], turn=1, votes=[1, 1, 0]),  # vote 1: with ties 2/3, without 2/2
        record(-1, [1, 2], turn=1, votes=[2]),  # inconsistent = tie: 0/1, left out without
        record(-1, [2, 2], turn=2, votes=[2]),
    ]
    write_run(tmp_path / "run", {"mtbench_human": records}, model_name="m")
    files = build_judge_report([tmp_path / "run"], tmp_path / "out", settings=FAST)
    assert files.problems == []
    measures = rows_by(files)["m", "mtbench_human"]["measures"]
    assert measures["agreement_turn1_tie"]["value"] == pytest.approx(2 / 4)
    assert measures["agreement_turn1_notie"]["value"] == 1.0
    assert measures["agreement_turn2_tie"]["value"] == 1.0
    assert measures["consistency"]["value"] == pytest.approx(2 / 3)
    assert "accuracy" not in measures
    assert "## MT-Bench human judgments" in files.markdown.read_text()


def test_lora_and_reward_model_judges_are_labelled(tmp_path):
    recs = {"llmbar_manual": [record(1, [1, 1]), record(2, [1, 2])]}
    write_run(tmp_path / "a", recs, model_args={"pretrained": "/m/base", "peft": "/m/my-lora/"})
    write_run(
        tmp_path / "b", recs, model="lmdeploy", model_args="pretrained=/m/base,adapters=x:/m/y"
    )
    reward = {"llmbar_manual": [record(1, [1]), record(2, [1])]}
    write_run(
        tmp_path / "c",
        reward,
        model="dummy",
        model_name="x8k2",
        metadata={"judge_with": "reward", "reward_model": "org/rm-20b"},
    )
    files = build_judge_report([tmp_path], tmp_path / "out", settings=FAST)
    judges = {r["judge"]: r for r in files.rows}
    assert set(judges) == {
        "judge-model + LoRA my-lora",
        "judge-model + LoRA y",
        "org/rm-20b (reward model)",
    }
    assert judges["org/rm-20b (reward model)"]["kind"] == "reward model"
    assert math.isnan(judges["org/rm-20b (reward model)"]["measures"]["consistency"]["value"])
    with open(files.csv, newline="") as f:
        lines = list(csv.DictReader(f))
    assert {line["lora"] for line in lines} == {"my-lora", "y", ""}
    assert len(lines) == 3 * 4  # judges x (accuracy, positional, macro_f1, consistency)


def test_damaged_files_are_listed_under_problems(tmp_path):
    good = [record(1, [1, 1]), record(2, [2, 1]), record(1, [1, 1])]
    write_run(tmp_path / "ok", {"llmbar_natural": good}, model_name="ok")
    (tmp_path / "garbled").mkdir()
    (tmp_path / "garbled" / "results_2026-01-02.json").write_bytes(b'{"results": {"judge_\xff')
    # A damaged samples line, and a results value that the samples do not give.
    path = write_run(
        tmp_path / "bad",
        {"llmbar_natural": good},
        model_name="bad",
        overrides={"llmbar_natural": {"accuracy,none": 0.99}},
    )
    samples = path.parent / path.name.replace("results_", "samples_judge_llmbar_natural_")
    samples = samples.with_suffix(".jsonl")
    samples.write_text(samples.read_text() + '{"doc_id": 3, "skipped": {"gold": 1, "pred": "x"\n')
    # No samples file: the results' values without intervals.
    write_run(tmp_path / "nos", {"llmbar_natural": good}, model_name="nos", samples=False)
    files = build_judge_report([tmp_path], tmp_path / "out", settings=FAST)
    problems = "\n".join(files.problems)
    assert "garbled/results_2026-01-02.json: unreadable (UnicodeDecodeError" in problems
    assert f"{samples}:4: unreadable judge sample" in problems
    assert "4 readable samples" not in problems and "3 readable samples" not in problems
    assert "accuracy from the samples is 0.833333 but" in problems
    assert "no samples_judge_llmbar_natural_" in problems
    rows = rows_by(files)
    assert rows["ok", "llmbar_natural"]["measures"]["accuracy"]["value"] == pytest.approx(5 / 6)
    nos = rows["nos", "llmbar_natural"]["measures"]["accuracy"]
    assert nos["value"] == pytest.approx(5 / 6) and math.isnan(nos["low"])
    md = files.markdown.read_text()
    assert "## Problems" in md and "garbled/results_2026-01-02.json" in md
    payload = json.loads(files.json.read_text())
    assert len(payload["problems"]) == len(files.problems)


def test_cli_writes_the_leaderboard_and_rejects_a_bad_level(tmp_path, capsys):
    from rgen_harness.cli import main

    write_run(tmp_path / "run", {"autoj": [record(1, [1, 2]), record(0, [0, 0])]})
    out = tmp_path / "board"
    assert (
        main(["judge-report", str(tmp_path / "run"), "--out", str(out), "--resamples", "200"]) == 0
    )
    assert (out / "judge_leaderboard.md").is_file() and (out / "judge_accuracy.png").is_file()
    assert "1 judge(s), 1 judge x set row(s)" in capsys.readouterr().out
    with pytest.raises(SystemExit, match=r"interval level 1.5 must be in \[0.5, 1\)"):
        main(["judge-report", str(tmp_path / "run"), "--interval", "1.5"])
    with pytest.raises(SystemExit, match="not a folder: .*nowhere"):
        main(["judge-report", str(tmp_path / "nowhere"), "--out", str(out)])


def test_pandalm_leads_with_its_own_figures_one_order_unreadable_as_tie(tmp_path):
    # Given order: gold 1 2 0 1 / verdict 1 None(-> tie) 0 2; the swapped order is ignored.
    # Their accuracy 2/4; per class (tie, 1, 2): TP 1 1 0, predicted 2 1 1, gold 1 2 1:
    # precision (1/2 + 1 + 0)/3, recall (1 + 1/2 + 0)/3, F1 (2/3 + 2/3 + 0)/3.
    records = [
        record(1, [1, 2]),
        record(2, [None, 2]),
        record(0, [0, 1]),
        record(1, [2, 2]),
    ]
    write_run(tmp_path / "run", {"pandalm": records}, model_name="m")
    files = build_judge_report([tmp_path / "run"], tmp_path / "out", settings=FAST)
    assert files.problems == []  # equal to the task's aggregation (lm-eval's values)
    measures = rows_by(files)["m", "pandalm"]["measures"]
    assert list(measures)[:4] == [
        "pandalm_accuracy",
        "pandalm_macro_precision",
        "pandalm_macro_recall",
        "pandalm_macro_f1",
    ]
    assert measures["pandalm_accuracy"]["value"] == 0.5
    assert measures["pandalm_macro_precision"]["value"] == pytest.approx(0.5)
    assert measures["pandalm_macro_recall"]["value"] == pytest.approx(0.5)
    assert measures["pandalm_macro_f1"]["value"] == pytest.approx(4 / 9)
    assert measures["accuracy"]["value"] == pytest.approx(3 / 8)  # pooled, None wrong
    md = files.markdown.read_text()
    assert "## PandaLM, computed as PandaLM does" in md
    leaderboard = md.split("## Leaderboard")[1].split("##")[0]
    assert "| m | model |  | 0.500 [" in leaderboard  # pandalm_accuracy leads


def test_autoj_leads_with_agreement_in_both_orders_and_has_the_group_table(tmp_path):
    records = [
        record(1, [1, 1], scenario="post_summarization"),  # right in both orders
        record(2, [2, 1], scenario="text_summarization"),  # right once: inconsistent
        record(0, [0, 0], scenario="code_generation"),
        record(1, [2, 2], scenario="code_generation"),
        record(2, [2, 2], scenario="no_such_scenario"),
    ]
    write_run(tmp_path / "run", {"autoj": records}, model_name="m")
    files = build_judge_report([tmp_path / "run"], tmp_path / "out", settings=FAST)
    row = rows_by(files)["m", "autoj"]
    assert row["measures"]["agreement_both"]["value"] == pytest.approx(3 / 5)
    groups = {g["group"]: g for g in row["groups"]}
    assert list(groups) == ["Summarization", "Code", "(not in an Auto-J group)", "Overall"]
    assert groups["Summarization"]["agreement_both"] == 0.5
    assert groups["Summarization"]["consistency"] == 0.5
    assert groups["Summarization"]["accuracy_original"] == 1.0
    assert groups["Code"]["agreement_both"] == 0.5 and groups["Overall"]["pairs"] == 5
    md = files.markdown.read_text()
    leaderboard = md.split("## Leaderboard")[1].split("##")[0]
    assert "Auto-J: agreement in both orders" in leaderboard
    assert "| m | model |  | 0.600 [" in leaderboard
    assert "| m | autoj | Summarization | 2 | 0.500 | 0.500 | 1.000 |" in md


def test_autoj_reward_model_is_ranked_on_the_single_order(tmp_path):
    write_run(
        tmp_path / "rm",
        {"autoj": [record(1, [1]), record(2, [1])]},
        model="dummy",
        metadata={"judge_with": "reward", "reward_model": "org/rm"},
    )
    files = build_judge_report([tmp_path / "rm"], tmp_path / "out", settings=FAST)
    md = files.markdown.read_text()
    assert "| Judge | Kind | LoRA | autoj (single order) |" in md
    assert "| org/rm (reward model) | reward model |  | 0.500 [" in md


def test_llmbar_default_prompt_is_not_shown_but_the_tie_prompt_is(tmp_path):
    runs = {"llmbar_natural": [record(1, [1, 1])]}
    write_run(tmp_path / "a", runs, model_name="m", metadata={"judge_prompt": "judge_forced_v1"})
    write_run(tmp_path / "b", runs, model_name="m", metadata={"judge_prompt": "judge_v1"})
    files = build_judge_report([tmp_path], tmp_path / "out", settings=FAST)
    assert {r["judge"] for r in files.rows} == {"m", "m [judge_v1]"}


def test_a_folder_without_judge_runs_is_an_error_naming_what_to_pass(tmp_path):
    from rgen_harness.cli import main

    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "results_2026.json").write_text('{"results": {"arc_easy": {}}}')
    out = tmp_path / "board"
    with pytest.raises(SystemExit, match="no results of a judge_\\* task under .*runs. Pass the"):
        main(["judge-report", str(tmp_path / "runs"), "--out", str(out)])
    assert not out.exists()
