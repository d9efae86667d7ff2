"""The study's `charactereval:` block: checked when the config loads, one lm_eval run per model
beside the deita run (metadata, resume, refusal on changed settings or CharRM weights), and its
figures in the report (leaderboard columns, 12 metrics, per role, plots) computed from the logged
samples. lm_eval is replaced by writing lm-eval 0.4.13's files (study_fakes)."""

from __future__ import annotations

import csv
import json
import math
import os

import numpy as np
import pytest
from lm_eval_fixtures import sample_line, write_run
from study_fakes import FakeLmEval, base_config, study

from rgen_harness.metrics.charrm import aggregate as agg
from rgen_harness.study.config import StudyConfigError, parse_study_config
from rgen_harness.study.report import build_report

DIMENSIONS = {  # the paper's Table 4, written out independently of the code under test
    "conversational_ability": ["Fluency", "Coherence", "Consistency"],
    "character_consistency": ["Exposure", "Accuracy", "Hallucination", "Behavior", "Utterance"],
    "roleplay_attractiveness": ["Humanlikeness", "Communication_skills", "Diversity", "Empathy"],
}
ALL = [m for ms in DIMENSIONS.values() for m in ms]
ROLES = ("林小满", "陈大夫", "王掌柜")


def charrm_folder(tmp_path):
    folder = tmp_path / "charrm"
    folder.mkdir(exist_ok=True)
    (folder / "config.json").write_text('{"architectures": ["BaichuanCharRM"]}')
    return folder


def with_roleplay(tmp_path, **block) -> dict:
    spec = {
        "data": "sample",
        "charrm": {"model": str(charrm_folder(tmp_path)), "trust_remote_code": True},
        **block,
    }
    raw = base_config(tmp_path, charactereval=spec)
    second = {"name": "second", "model": "hf", "model_args": {"pretrained": "org/second"}}
    raw["models"] = [*raw["models"], second]
    return raw


def roleplay_lines(seed: int, n: int = 30) -> tuple[list[dict], list[dict]]:
    """Sample lines of a charactereval run and the per-example score records they hold."""
    rng = np.random.default_rng(seed)
    lines, records = [], []
    for i in range(n):
        status = "skipped" if i == 4 else "ok"
        metrics = [] if status == "skipped" else list(rng.choice(ALL, size=3, replace=False))
        record = {m: float(rng.uniform(1, 5)) for m in metrics}
        if i == 7:
            record.pop(metrics[0])  # a pair whose batch failed: not scored
        reply = {"status": status, "reason": None, "dropped_turns": 0, "rounds": [],
                 "scores": record, "reply": "好的。" if status == "ok" else ""}  # fmt: skip
        line = sample_line(i, f"ex-{i}", {"reply_chars": 3.0})
        line["doc"] = {"id": f"ex-{i}", "role": ROLES[i % 3], "context": "...",
                       "metrics": [{"en": m, "zh": m} for m in metrics], "problem": ""}  # fmt: skip
        line["filtered_resps"] = [json.dumps(reply, ensure_ascii=False)]
        line["overall"] = record
        lines.append(line)
        records.append(record)
    return lines, records


def results_entry(records: list[dict]) -> dict:
    entry = {"alias": "charactereval", "sample_len": len(records)}
    means = agg.metric_means(records)
    entry.update({f"{agg.metric_key(m)},none": v for m, v in means.items()})
    entry.update({f"{k},none": v for k, v in agg.summarise(means).items()})
    return entry


class FakeWithRoleplay(FakeLmEval):
    """The deita runs as FakeLmEval writes them; a charactereval run as lm-eval would."""

    def __init__(self, monkeypatch):
        super().__init__(monkeypatch)
        self.records: dict[str, list[dict]] = {}
        self.argv: dict[str, tuple] = {}

    def __call__(self, run, stream) -> int:
        self.argv[run.label] = run.argv
        if run.key != "charactereval":
            return super().__call__(run, stream)
        from rgen_harness.study import runner

        self.calls.append(run.label)
        run.out_dir.mkdir(parents=True, exist_ok=True)
        record = {"fingerprint": run.fingerprint, "settings": run.recorded_settings}
        runner._write_json(run.out_dir / runner.RUN_FILE, record)
        lines, records = roleplay_lines(seed=len(self.records))
        self.records[run.model.name] = records
        write_run(
            run.out_dir,
            model_name=run.model.model_args["pretrained"],
            model_args=run.model.model_args,
            tasks={"charactereval": lines},
            extra_results={"charactereval": results_entry(records)},
            ts=next(self._stamps),
        )
        return 0


def test_config_block_is_checked_when_it_loads(tmp_path):
    raw = with_roleplay(tmp_path)
    spec = parse_study_config(raw).charactereval
    assert spec.data == "sample" and spec.charrm["trust_remote_code"] is True
    for change, message in (
        ({"charrm": {"model": "x/y"}}, "charactereval.charrm.trust_remote_code is not true"),
        ({"charrm": {"modle": "x", "trust_remote_code": True}}, "Did you mean 'model'?"),
        ({"charrm": {"batch_size": 0, "trust_remote_code": True}}, "charrm_batch_size=0"),
        ({"limit": 3, "subset": {"size": 2}}, "either 'limit' or 'subset'"),
        ({"dataa": "sample"}, "Did you mean 'data'?"),
    ):
        bad = {**raw, "charactereval": {**raw["charactereval"], **change}}
        with pytest.raises(StudyConfigError, match=message.replace("(", r"\(").replace("?", r"\?")):
            parse_study_config(bad)
    with pytest.raises(StudyConfigError, match="'tasks' lists charactereval"):
        parse_study_config({**raw, "tasks": ["deita_qr", "charactereval"]})


def test_each_model_gets_a_charactereval_run_that_resumes_and_refuses_changes(
    tmp_path, monkeypatch
):
    fake = FakeWithRoleplay(monkeypatch)
    raw = with_roleplay(tmp_path, subset={"size": 3, "seed": 0}, max_gen_toks=24)
    outcome, _ = study(raw, report=False)
    assert fake.calls == ["first/deita", "first/charactereval", "second/deita",
                          "second/charactereval"]  # fmt: skip
    argv = fake.argv["first/charactereval"]
    metadata = json.loads(argv[argv.index("--metadata") + 1])
    assert metadata == {
        "charactereval_path": "sample",
        "charrm_model": raw["charactereval"]["charrm"]["model"],
        "charrm_trust_remote_code": True,
    }
    assert json.loads(argv[argv.index("--gen_kwargs") + 1]) == {"max_gen_toks": 24}
    indices = json.loads(argv[argv.index("--samples") + 1])["charactereval"]
    assert len(indices) == 3 and indices == sorted(set(indices))
    assert argv[argv.index("--tasks") + 1] == "charactereval"

    # Finished runs are skipped.
    again, printed = study(raw, report=False)
    assert again.skipped == [*outcome.done] and len(fake.calls) == 4
    assert "first/charactereval: finished earlier, skipped" in printed

    # Other CharRM settings, or other CharRM weights, are never mixed with these results.
    changed = {**raw, "charactereval": {**raw["charactereval"]}}
    changed["charactereval"]["charrm"] = {**raw["charactereval"]["charrm"], "batch_size": 4}
    with pytest.raises(StudyConfigError, match="charactereval was run with different settings"):
        study(changed)
    weights = charrm_folder(tmp_path) / "model.safetensors"
    weights.write_bytes(b"new weights")
    os.utime(weights, ns=(10**19, 10**19))
    with pytest.raises(StudyConfigError, match=r"changed: inputs\.charrm_model"):
        study(raw)
    assert len(fake.calls) == 4


def test_report_shows_roleplay_columns_metrics_roles_and_plots(tmp_path, monkeypatch):
    fake = FakeWithRoleplay(monkeypatch)
    raw = with_roleplay(tmp_path)
    study(raw, report=False)
    files = build_report(tmp_path / "study", tmp_path / "report", resamples=1000)
    assert files.problems == []
    md = files.markdown.read_text(encoding="utf-8")
    header = next(line for line in md.splitlines() if line.startswith("| Model | LoRA |"))
    for label in ("conversational ability", "character consistency", "attractiveness", "overall"):
        assert f"Role-play: {label} [95% CI]" in header
    for row in files.rows:
        records = fake.records[row["model"]]
        # independent point values: mean of each metric's pairs, then of each dimension's means
        means = {m: np.mean([r[m] for r in records if m in r]) for m in ALL}
        dims = {d: np.mean([means[m] for m in ms]) for d, ms in DIMENSIONS.items()}
        dims["overall"] = np.mean(list(means.values()))
        figures = row["charactereval"]
        for name, value in dims.items():
            assert figures[name]["value"] == pytest.approx(value, rel=1e-12)
        est = agg.estimates(records, level=0.95, resamples=1000, seed=300)
        for name in (*agg.METRIC_NAMES, *agg.SUMMARY_NAMES):
            mine = figures[agg.metric_key(name)]
            assert (mine["low"], mine["high"]) == (est[name].low, est[name].high)
            assert mine["low"] <= mine["value"] <= mine["high"]
        assert figures["examples"] == 30 and figures["skipped"] == 1
        assert figures["pairs"] == sum(len(r) for r in records) == 29 * 3 - 1
        o = figures["overall"]
        cell = f"{o['value']:.3f} [{o['low']:.3f}, {o['high']:.3f}]"
        assert f"| {row['model']} |" in md and cell in md
    assert "## Role-play: CharacterEval" in md and "### Per role" in md
    for role in ROLES:
        assert f"| {role} |" in md
    with open(tmp_path / "report/charactereval_roles.csv", encoding="utf-8") as f:
        roles = list(csv.DictReader(f))
    assert len(roles) == 2 * len(ROLES)
    first = [r for r in roles if r["model"] == "first" and r["role"] == ROLES[0]][0]
    mine = [rec for i, rec in enumerate(fake.records["first"]) if i % 3 == 0]
    expected = agg.summarise(agg.metric_means(mine))["overall"]
    assert float(first["overall"]) == pytest.approx(expected, rel=1e-5)
    present = [np.mean([r[m] for r in mine if m in r]) for m in ALL if any(m in r for r in mine)]
    cell = f"{np.mean(present):.3f} ({len(present)}/12, {len(mine)})"
    assert f"| {ROLES[0]} | {cell} |" in md
    with open(files.csv, encoding="utf-8") as f:
        board = list(csv.DictReader(f))
    assert {"charactereval_overall_value", "charactereval_overall_low"} <= set(board[0])
    assert not any(k.startswith("charactereval_roles") for k in board[0])
    names = {p.name for p in files.plots}
    assert {"charactereval_metrics.png", "score_histograms.png"} <= names


def test_samples_that_disagree_with_the_results_are_a_problem(tmp_path, monkeypatch):
    FakeWithRoleplay(monkeypatch)
    study(with_roleplay(tmp_path), report=False)
    [results] = (tmp_path / "study/runs/first/charactereval").rglob("results_*.json")
    data = json.loads(results.read_text())
    data["results"]["charactereval"]["overall,none"] += 0.5
    results.write_text(json.dumps(data))
    files = build_report(tmp_path / "study", tmp_path / "report", resamples=1000)
    assert any("first/charactereval: overall from samples" in p for p in files.problems)
    assert not math.isnan(files.rows[0]["charactereval"]["overall"]["value"])


def test_shipped_configs_smoke_on_default_commented_but_valid():
    from pathlib import Path

    import yaml

    from rgen_harness.study.config import load_study_config

    configs = Path(__file__).resolve().parents[2] / "rgen_harness" / "configs"
    smoke = load_study_config(configs / "study_smoke.yaml")
    spec = smoke.charactereval
    assert spec.data == "sample" and spec.charrm["trust_remote_code"] is True
    assert spec.charrm["model"] in {t.path for t in smoke.tiny_models if t.kind == "charrm"}
    text = (configs / "study_default.yaml").read_text(encoding="utf-8")
    assert load_study_config(configs / "study_default.yaml").charactereval is None
    lines = text.splitlines()
    start = lines.index("# charactereval:")
    block = []
    for line in lines[start:]:
        if not line.startswith("#"):
            break
        block.append(line[2:])
    raw = yaml.safe_load(text)
    raw.update(yaml.safe_load("\n".join(block)))
    enabled = parse_study_config(raw).charactereval
    assert enabled.charrm == {"model": "morecry/BaichuanCharRM", "trust_remote_code": True,
                              "batch_size": 8}  # fmt: skip
    assert enabled.subset.size == 500
