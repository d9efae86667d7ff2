"""Shards inside a model: how many, how conversations are split, the merge into the unsharded
run's files (scored by the real scorer), and generations reused across GPU layouts through
lm-eval's own `--use_cache` (keyed by content)."""

from __future__ import annotations

import json
import random
import sqlite3
import sys

import pytest
from sim_study import SIM, lmdeploy_models, read_records, result_files, use_sim
from study_fakes import base_config, study

from rgen_harness.study import shards
from rgen_harness.study.config import StudyConfigError, parse_study_config
from rgen_harness.study.placement import Job

sys.path.insert(0, str(SIM.parent))
from sim_lm_eval import make_templates  # noqa: E402


def test_auto_counts_fill_the_free_gpus_slowest_first():
    jobs = [Job("a/deita", 2), Job("b/deita", 1), Job("c/deita", 1)]
    weights = {"a/deita": 40.0, "b/deita": 30.0, "c/deita": 5.0}
    limits = {label: 100 for label in weights}
    counts = shards.auto_counts(jobs, weights, limits, gpus=8)
    # 4 GPUs free beside one engine each: a to 2 shards (2 GPUs), then b to 2 and 3 (15 s and
    # 10 s per shard against a's 20 s, which no longer fits)
    assert counts == {"a/deita": 2, "b/deita": 3, "c/deita": 1}
    assert sum(j.gpus * counts[j.label] for j in jobs) <= 8
    assert shards.auto_counts(jobs, weights, limits, gpus=4) == dict.fromkeys(weights, 1)
    assert shards.auto_counts(jobs, weights, {"b/deita": 2}, gpus=16)["b/deita"] == 2


def test_auto_counts_never_exceed_the_gpus_or_the_conversations():
    rng = random.Random(0)
    for _ in range(300):
        jobs = [Job(f"m{i}", rng.choice([1, 1, 2, 4])) for i in range(rng.randint(1, 6))]
        gpus = rng.randint(1, 16)
        limits = {j.label: rng.randint(1, 5) for j in jobs}
        weights = {j.label: rng.uniform(1, 100) for j in jobs}
        counts = shards.auto_counts(jobs, weights, limits, gpus)
        used = sum(j.gpus * counts[j.label] for j in jobs)
        assert all(1 <= counts[j.label] <= max(1, limits[j.label]) for j in jobs)
        assert used <= max(gpus, sum(j.gpus for j in jobs))
        if used == sum(j.gpus for j in jobs):
            continue
        assert used <= gpus


def _planned(tmp_path, **overrides):
    from rgen_harness.study import runner

    raw = base_config(tmp_path, models=lmdeploy_models([("m", 1)]), **overrides)
    config = parse_study_config(raw)
    subset = runner.subset_indices(config)
    return config, runner.plan_runs(config, subset)[0]


def test_split_covers_every_conversation_once(tmp_path):
    config, run = _planned(tmp_path, limit=7)
    indices = shards.run_indices(config, run)
    assert indices == list(range(7))
    parts = shards.split(run, indices, 3)
    assert [p.indices for p in parts] == [(0, 3, 6), (1, 4), (2, 5)]
    for part in parts:
        argv = list(part.run.argv)
        assert "--limit" not in argv and "--predict_only" in argv
        samples = json.loads(argv[argv.index("--samples") + 1])
        assert samples == {"deita_qr": list(part.indices), "deita_qcr": list(part.indices)}
        assert str(part.run.out_dir) in part.run.command and "--limit" not in part.run.command
        assert part.run.fingerprint != run.fingerprint  # a shard's record is its own
    config, run = _planned(tmp_path, subset={"size": 5, "seed": 1})
    indices = shards.run_indices(config, run)
    assert indices == sorted(json.loads(run.argv[run.argv.index("--samples") + 1])["deita_qr"])
    assert len(shards.split(run, indices, 9)) == 5  # never more shards than conversations


def test_shards_need_the_scoring_phase(tmp_path):
    raw = base_config(tmp_path, shards=2, scoring="inline")
    with pytest.raises(StudyConfigError, match="needs the scoring phase"):
        parse_study_config(raw)
    raw = base_config(tmp_path, shards=0)
    with pytest.raises(StudyConfigError, match="shards=0 must be >= 1"):
        parse_study_config(raw)
    raw = base_config(tmp_path, shards="many")
    with pytest.raises(StudyConfigError, match="shards"):
        parse_study_config(raw)


# -- merged results equal the unsharded run's ---------------------------------------------------


@pytest.fixture(scope="module")
def templates(tiny_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("templates")
    return folder, make_templates(folder, tiny_dir / "chat", tiny_dir / "reward")


def _config(tmp_path, metadata, name, **overrides):
    reward = {k[len("reward_") :]: v for k, v in metadata.items() if k.startswith("reward_")}
    settings = {
        "models": lmdeploy_models([("m7b", 1), ("m1b", 1)]),
        "data": {"path": "sample"},
        "limit": 3,  # the templates' conversations
        "scorers": ["rouge", "reward"],
        "reward": reward,
        "gpus": [0, 1, 2, 3, 4, 5],
        "output_dir": str(tmp_path / name),
    }
    return base_config(tmp_path, **{**settings, **overrides})


@pytest.mark.slow
def test_sharded_study_writes_the_unsharded_results(templates, tmp_path, monkeypatch):
    folder, metadata = templates
    use_sim(monkeypatch, folder, tmp_path / "rec-whole", {"org/m7b": 1.0, "org/m1b": 0.3})
    outcome, printed = study(_config(tmp_path, metadata, "whole", shards=1))
    assert len(outcome.done) == 2 and "shards" not in printed, printed
    monkeypatch.setenv("SIM_RECORDS", str(tmp_path / "rec-sharded"))
    outcome, printed = study(_config(tmp_path, metadata, "sharded"))
    assert sorted(outcome.done) == ["m1b/deita", "m7b/deita"], printed
    recs = read_records(tmp_path / "rec-sharded")
    # six GPUs, two models: the slower gets 3 shards (one per conversation), the other 3 too
    assert sorted(r["model"] for r in recs).count("org/m7b") == 3, printed
    assert len({r["gpus"] for r in recs}) == len(recs)  # each engine on its own GPU
    assert "m7b/deita: 3 shards merged" in printed and outcome.scorer_loads == 1
    assert result_files(tmp_path / "sharded") == result_files(tmp_path / "whole")
    # finished: skipped whatever the layout; another layout resumes from the merged generation
    outcome, _ = study(_config(tmp_path, metadata, "sharded", shards=2))
    assert len(outcome.skipped) == 2
    for path in (tmp_path / "sharded/runs/m7b/deita").rglob("results_*.json"):
        path.unlink()
    outcome, printed = study(_config(tmp_path, metadata, "sharded", shards=2))
    assert outcome.done == ["m7b/deita"] and "generated earlier; scoring" in printed
    assert result_files(tmp_path / "sharded") == result_files(tmp_path / "whole")


@pytest.mark.slow
def test_a_failed_shard_fails_its_run_and_only_it_runs_again(templates, tmp_path, monkeypatch):
    folder, metadata = templates
    seconds = {"org/m7b": 0.3, "org/m1b": 0.3}
    use_sim(monkeypatch, folder, tmp_path / "rec-whole", seconds)
    study(_config(tmp_path, metadata, "whole", shards=1))
    monkeypatch.setenv("SIM_RECORDS", str(tmp_path / "rec"))
    monkeypatch.setenv("SIM_FAIL_INDEX", "1")
    raw = _config(tmp_path, metadata, "sharded", shards=3)
    outcome, printed = study(raw)
    assert sorted(outcome.failed) == ["m1b/deita", "m7b/deita"], printed
    assert "m7b/deita: FAILED (m7b/deita#2of3: exit code 1; see " in printed
    assert "deita.shards/2of3/lm_eval.log" in printed
    outcome, printed = study(raw)
    assert sorted(outcome.done) == ["m1b/deita", "m7b/deita"], printed
    assert printed.count("generated earlier, reused") == 4  # shards 1 and 3 of each model
    assert "m7b/deita#2of3: generating (scored later)" in printed
    assert result_files(tmp_path / "sharded") == result_files(tmp_path / "whole")


def test_dry_run_prints_shards_and_their_commands(templates, tmp_path):
    _, metadata = templates
    raw = _config(tmp_path, metadata, "plan", scorers=["rouge"], reward={})
    _, printed = study(raw, dry_run=True)
    assert "m7b/deita: 3 shards of 1/1/1 conversations" in printed, printed
    assert "m7b/deita#1of3: 1 GPU(s) [" in printed
    line = next(x for x in printed.splitlines() if "deita.shards/1of3" in x)
    assert line.strip().startswith("$ CUDA_VISIBLE_DEVICES=") and "--predict_only" in line
    assert '--samples \'{"deita_qr": [0]' in line
    assert not (tmp_path / "plan").exists()
    raw.pop("gpus")
    raw["ray"] = {"address": "auto"}  # a dry run does not reach the cluster
    _, printed = study(raw, dry_run=True)
    assert "shards: auto, decided from the cluster's GPUs when the study starts" in printed


# -- generations are reused whatever the layout -------------------------------------------------


def _keys(path) -> set[str]:
    db = sqlite3.connect(path)
    try:
        return {row[0] for row in db.execute('SELECT key FROM "unnamed"')}
    finally:
        db.close()


@pytest.mark.slow
def test_cached_generations_serve_any_layout(tiny_dir, tmp_path):
    """Two shards generate through lm-eval's --use_cache; after the merge of their cache files
    the unsharded run finds every request cached (no new key), and the reverse."""
    from lm_eval import simple_evaluate

    from rgen_harness.study import runner

    raw = base_config(
        tmp_path,
        models=[{"name": "m", "model": "hf", "model_args": {"pretrained": str(tiny_dir / "chat")}}],
        limit=3,
        generation={"max_gen_toks": 4},
    )
    config = parse_study_config(raw)
    (run,) = runner.plan_runs(config, None)
    parts = shards.split(run, shards.run_indices(config, run), 2)

    def generate(cache, **kwargs):
        simple_evaluate(
            model="hf",
            model_args=f"pretrained={tiny_dir / 'chat'}",
            device="cpu",
            tasks=list(run.tasks),
            metadata=config.task_metadata(),
            gen_kwargs="max_gen_toks=4",
            use_cache=str(cache),
            predict_only=True,
            **kwargs,
        )

    for part in parts:
        generate(part.run.cache, samples={t: list(part.indices) for t in run.tasks})
    merged = shards.consolidate_cache(run)
    assert [p.name for p in shards.cache_files(run)] == [merged.name]
    before = _keys(merged)
    assert len(before) >= 6  # 3 conversations x 2 tasks (and what the model caches per round)
    generate(run.cache, limit=3)
    assert _keys(merged) == before
    # and back: a new layout's shards start from the merged cache
    again = shards.split(run, shards.run_indices(config, run), 3)
    shards.seed_cache(again[0])
    seeded = again[0].run.cache.with_name(again[0].run.cache.name + "_rank0.db")
    assert _keys(seeded) == before
