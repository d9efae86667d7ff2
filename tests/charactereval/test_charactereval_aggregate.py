"""Metric means, Table 4's dimension averages, bootstrap intervals and the per-role table."""

from __future__ import annotations

import math

import pytest

from rgen_harness.metrics.charrm import aggregate as agg

# The paper's Table 4, ChatGLM3-6B (the repository README's assets/leaderboard.png).
CHATGLM3 = {
    "Fluency": 3.269, "Coherence": 3.647, "Consistency": 3.283,
    "Exposure": 2.016, "Accuracy": 2.792, "Hallucination": 2.704, "Behavior": 2.455,
    "Utterance": 2.812, "Humanlikeness": 3.064, "Communication_skills": 2.932,
    "Diversity": 1.969, "Empathy": 2.993,
}  # fmt: skip
CHATGLM3_AVG = {
    "conversational_ability": 3.399,
    "character_consistency": 2.556,
    "roleplay_attractiveness": 2.739,
}


def test_dimension_averages_reproduce_table_4():
    out = agg.summarise(CHATGLM3)
    for name, value in CHATGLM3_AVG.items():
        assert out[name] == pytest.approx(value, abs=1e-3), name  # inputs rounded to 3 places
    assert out["overall"] == pytest.approx(sum(CHATGLM3.values()) / 12)


def test_means_run_over_assigned_pairs_only():
    records = [{"Fluency": 5.0}, {"Fluency": 1.0, "Empathy": 4.0}, {}]
    means = agg.metric_means(records)
    assert means["Fluency"] == 3.0 and means["Empathy"] == 4.0 and math.isnan(means["Coherence"])
    assert math.isnan(agg.aggregation("conversational_ability")(records))


def test_bootstrap_over_examples():
    import numpy as np

    rng = np.random.default_rng(0)
    records = [
        {m: float(rng.uniform(1, 5)) for m in agg.METRIC_NAMES[i % 3 :: 3]} for i in range(60)
    ]
    est = agg.estimates(records, resamples=500, seed=1)
    point = agg.summarise(agg.metric_means(records))
    for name in agg.SUMMARY_NAMES:
        assert est[name].value == pytest.approx(point[name])
        assert est[name].low < est[name].value < est[name].high
    assert est["overall"].n == sum(len(r) for r in records)
    assert agg.estimates(records, resamples=500, seed=1) == est  # seeded


def test_per_role():
    table = agg.per_role([{"Fluency": 2.0}, {"Fluency": 4.0}, {"Empathy": 3.0}], ["a", "a", "b"])
    assert table["a"]["Fluency"] == 3.0 and table["a"]["pairs"] == 2 and table["b"]["examples"] == 1
