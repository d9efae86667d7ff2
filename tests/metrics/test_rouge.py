"""ROUGE-1/2/L of replies against references: tokenizer, hand-made pairs, agreement with
rouge_score, and the scorer's handling of replies that were not generated."""

from __future__ import annotations

import math
import random

import pytest
from scored_items import item

from rgen_harness.metrics.cjk_tokenizer import CJKTokenizer
from rgen_harness.metrics.rouge import METRICS, RougeReplyScorer, build
from rgen_harness.metrics.scorers import DEFAULT_SCORERS, build_scorers

NAMES = [f"{t}_{p}" for t in ("rouge1", "rouge2", "rougeL") for p in ("p", "r", "f")]


def test_metric_names_are_the_contract():
    assert [m.name for m in METRICS] == NAMES
    assert all(m.aggregation == "nanmean" and m.higher_is_better for m in METRICS)


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("叶子是绿色的。", ["叶", "子", "是", "绿", "色", "的"]),
        ("用Python写3个函数！", ["用", "python", "写", "3", "个", "函", "数"]),
        ("Hello, World: GPT-4 (v2)", ["hello", "world", "gpt", "4", "v2"]),
        ("Café Привет 안녕하세요", ["café", "привет", "안녕하세요"]),
        ("ひらがな漢字", ["ひ", "ら", "が", "な", "漢", "字"]),
        ("  ，。！？ -- ", []),
    ],
)
def test_cjk_tokenizer(text, tokens):
    assert CJKTokenizer().tokenize(text) == tokens


def test_default_rouge_score_tokenizer_loses_chinese():
    """Why the project tokenizes itself: rouge_score's default gives a Chinese pair 0."""
    from rouge_score.rouge_scorer import RougeScorer

    same = "叶绿素吸收红光和蓝光。"
    assert RougeScorer(["rouge1"]).score(same, same)["rouge1"].fmeasure == 0.0
    assert RougeReplyScorer().score_pair(same, same)["rouge1_f"] == 1.0


@pytest.mark.parametrize(
    "text",
    [
        "A list is mutable; a tuple is immutable, so tuples can be dictionary keys.",
        "因为叶绿素主要吸收红光和蓝光，而把绿光反射出去，所以叶子是绿色的。",
        "用 Python 的 tuple 作为字典的键 (key)。",
    ],
)
def test_identical_texts_score_one(text):
    assert RougeReplyScorer().score_pair(text, text) == dict.fromkeys(NAMES, 1.0)


@pytest.mark.parametrize(
    ("reference", "reply"),
    [
        ("The cat sat on the mat.", "Quantum chromodynamics describes strong interactions."),
        ("叶子是绿色的。", "明天股市会上涨吗？"),
        ("叶子是绿色的。", "The leaves are green."),
    ],
)
def test_unrelated_texts_score_zero(reference, reply):
    assert RougeReplyScorer().score_pair(reference, reply) == dict.fromkeys(NAMES, 0.0)


def test_partially_overlapping_chinese_pair_by_hand():
    # reference 我喜欢吃苹果 (6 characters, bigrams 我喜 喜欢 欢吃 吃苹 苹果)
    # reply     我喜欢香蕉   (5 characters, bigrams 我喜 喜欢 欢香 香蕉)
    # common: 3 unigrams (我 喜 欢), 2 bigrams, LCS 我喜欢 = 3
    s = RougeReplyScorer().score_pair("我喜欢吃苹果。", "我喜欢香蕉！")

    def f(p, r):
        return 2 * p * r / (p + r)

    expected = {
        "rouge1_p": 3 / 5,
        "rouge1_r": 3 / 6,
        "rouge1_f": f(3 / 5, 3 / 6),
        "rouge2_p": 2 / 4,
        "rouge2_r": 2 / 5,
        "rouge2_f": f(2 / 4, 2 / 5),
        "rougeL_p": 3 / 5,
        "rougeL_r": 3 / 6,
        "rougeL_f": f(3 / 5, 3 / 6),
    }
    assert s == pytest.approx(expected)
    assert all(0 < v < 1 for v in s.values())


def test_agrees_with_rouge_score_on_english():
    """On lowercase ASCII words our tokens equal rouge_score's, so all nine figures must match
    rouge_score's own scorer (its Python LCS included)."""
    from rouge_score.rouge_scorer import RougeScorer

    rng = random.Random(0)
    words = [f"w{i}" for i in range(40)]
    reference_scorer = RougeScorer(["rouge1", "rouge2", "rougeL"])
    ours = RougeReplyScorer()
    for _ in range(30):
        ref = " ".join(rng.choices(words, k=rng.randint(1, 120)))
        reply = " ".join(rng.choices(words, k=rng.randint(1, 120)))
        want = reference_scorer.score(ref, reply)
        got = ours.score_pair(ref, reply)
        for t in ("rouge1", "rouge2", "rougeL"):
            assert got[f"{t}_p"] == pytest.approx(want[t].precision)
            assert got[f"{t}_r"] == pytest.approx(want[t].recall)
            assert got[f"{t}_f"] == pytest.approx(want[t].fmeasure)


def test_scorer_marks_ungenerated_replies_nan_and_empty_replies_zero():
    scorer = RougeReplyScorer()
    out = scorer.score(
        [
            item("叶子是绿色的", "叶子是绿色的"),
            item("", "a reference", status="skipped"),
            item("", "a reference", status="failed"),
            item("", "a reference"),  # generated, but empty
        ]
    )
    assert out[0] == dict.fromkeys(NAMES, 1.0)
    assert all(math.isnan(v) for v in out[1].values()) and set(out[1]) == set(NAMES)
    assert all(math.isnan(v) for v in out[2].values())
    assert out[3] == dict.fromkeys(NAMES, 0.0)


def test_rouge_is_on_by_default_and_can_be_turned_off():
    assert "rouge" in DEFAULT_SCORERS
    assert "similarity" not in DEFAULT_SCORERS  # loads a model: opt-in
    assert [s.name for s in build_scorers({"scorers": "rouge"})] == ["rouge"]
    assert build_scorers({"scorers": "none"}) == []


def test_misspelt_rouge_option_is_an_error():
    with pytest.raises(ValueError, match="rouge_stemer"):
        build({"rouge_stemer": True})
    build({"reward_model": "x", "deita_path": "sample"})  # other scorers' keys are not ours
