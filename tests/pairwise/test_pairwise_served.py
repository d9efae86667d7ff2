"""deita_pairwise through lm-eval's `local-chat-completions` against the loopback test server
with a scripted judge (tests/served/scripted_judge.py: the verdict is a known function of the
prompt), on hand-written QCR / QR samples (pairwise_files.SCENARIO). Every figure below is
worked out by hand from the scenario."""

from __future__ import annotations

import json

import numpy as np
import pytest
from openai_server_util import openai_server
from pairwise_files import write_scenario

pytestmark = pytest.mark.slow

# Judged pairs in data order with the both-orders outcome (1 win, 0.5 tie, 0 loss):
# c0 W (3 > 1), c1 L, c2 T (equal quality), c3 T (FIRST_BIAS: each order picks the first shown),
# c4 W, c6 W, c8 L, c9 W, c11 W. Not judged: c5 unreadable (both orders), c7 skipped (B's reply
# not generated), c10 too long for the judge, c12 failed (HTTP 500).
SCORES = [1, 0, 0.5, 0.5, 1, 1, 0, 1, 1]


@pytest.fixture(scope="module")
def server(tiny_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("judge_server")
    with openai_server(tiny_dir / "chat", folder, "--scripted-judge") as base:
        yield base, folder / "requests.jsonl"


@pytest.fixture(scope="module")
def run(server, tiny_dir, tmp_path_factory):
    from lm_eval import simple_evaluate

    base, requests = server
    runs = tmp_path_factory.mktemp("pairwise_runs")
    folder = write_scenario(runs)
    model_args = (
        f"model=tiny,base_url={base}/v1/chat/completions,max_retries=1,max_length=1024,"
        f"tokenizer_backend=huggingface,tokenizer={tiny_dir / 'chat'}"
    )
    out = simple_evaluate(
        model="local-chat-completions",
        model_args=model_args,
        tasks=["deita_pairwise"],
        metadata={"pairwise_run": str(folder), "pairwise_resamples": 1000},
        log_samples=True,
        bootstrap_iters=0,
    )
    res = {k.split(",")[0]: v for k, v in out["results"]["deita_pairwise"].items()}
    samples = {s["doc"]["id"]: s for s in out["samples"]["deita_pairwise"]}
    received = [json.loads(line) for line in requests.read_text("utf-8").splitlines()]
    return res, samples, received


def test_both_orders_rule_counts_and_rates(run):
    res, _, _ = run
    assert (res["pairs"], res["n"]) == (13, 9)
    assert (res["wins"], res["ties"], res["losses"]) == (5, 2, 2)
    assert res["win_rate"] == pytest.approx(5 / 9)
    assert res["tie_rate"] == pytest.approx(2 / 9)
    assert res["loss_rate"] == pytest.approx(2 / 9)
    assert res["win_rate_adjusted"] == pytest.approx(6 / 9)
    assert (res["skipped"], res["too_long"], res["failed"]) == (1, 1, 1)
    assert (res["unreadable"], res["unreadable_verdicts"]) == (1, 2)
    # c9: QCR dropped 2 turns in generation, QR none
    assert res["history_differs"] == 1


def test_position_consistency_and_first_pick(run):
    res, samples, _ = run
    # every judged pair but c3 gives the same verdict both ways
    assert res["consistency"] == pytest.approx(8 / 9)
    # non-tie verdicts as shown: 7 consistent non-tie pairs give one first pick in two orders
    # (14 verdicts, 7 first), c3 two first picks: 9 of 16
    assert res["first_pick_rate"] == pytest.approx(9 / 16)
    # mapping back after the swap: c1 (B better) is "[2]" as given and "[1]" swapped
    orders = [json.loads(r) for r in samples["c1"]["filtered_resps"]]
    assert [o["order"] for o in orders] == ["original", "swapped"]
    assert [o["verdict"] for o in orders] == [2, 1]
    assert [o["verdict_in_dataset_order"] for o in orders] == [2, 2]
    c3 = [json.loads(r) for r in samples["c3"]["filtered_resps"]]
    assert [o["verdict_in_dataset_order"] for o in c3] == [1, 2]


def test_interval_is_the_bootstrap_over_conversations(run):
    from rgen_harness.study.stats import bootstrap

    res, _, _ = run
    low, high = bootstrap(
        (np.array(SCORES, float),),
        lambda s: s.mean(axis=1),
        level=0.95,
        resamples=1000,
        seed=0,
    )
    assert (res["win_rate_adjusted_low"], res["win_rate_adjusted_high"]) == pytest.approx(
        (low, high)
    )
    assert low < 6 / 9 < high


def test_per_source_micro_and_macro(run):
    res, _, _ = run
    # s1: c0 W, c1 L, c2 T; s2: c3 T, c4 W, c6 W, c8 L; s3: c9 W, c11 W
    assert res["source_s1_win_rate_adjusted"] == pytest.approx(1.5 / 3)
    assert res["source_s2_win_rate_adjusted"] == pytest.approx(2.5 / 4)
    assert res["source_s3_win_rate_adjusted"] == pytest.approx(1.0)
    assert (res["source_s1_n"], res["source_s2_n"], res["source_s3_n"]) == (3, 4, 2)
    assert (res["source_s2_wins"], res["source_s2_ties"], res["source_s2_losses"]) == (2, 1, 1)
    assert res["macro_win_rate_adjusted"] == pytest.approx((0.5 + 0.625 + 1.0) / 3)
    assert res["win_rate_adjusted"] == pytest.approx(6 / 9)  # micro


def test_agreement_with_the_reward_model(run):
    res, _, _ = run
    # judged pairs with both rewards (c8 has no QCR reward): judge vs sign(reward A - B)
    # c0 W/W, c1 L/L, c2 T/W, c3 T/L, c4 W/T, c6 W/W, c9 W/W, c11 W/L -> 4 of 8 equal
    assert res["reward_agreement_n"] == 8
    assert res["reward_agreement"] == pytest.approx(4 / 8)
    # without ties (c2, c3: judge tie; c4: reward tie): c0, c1, c6, c9 agree, c11 does not
    assert res["reward_agreement_no_ties_n"] == 5
    assert res["reward_agreement_no_ties"] == pytest.approx(4 / 5)


def test_close_length_pairs(run):
    res, _, _ = run
    # longer / shorter < 1.25: c0 (100 vs 90, W) and c2 (50 vs 50, T)
    assert res["close_length_n"] == 2
    assert res["close_length_win_rate_adjusted"] == pytest.approx(0.75)


def test_history_is_quoted_within_the_judges_budget(run):
    _, samples, received = run
    prompts = [body["messages"][-1]["content"] for body in received]
    c0 = [p for p in prompts if "second question of c0" in p]
    assert len(c0) == 2  # both orders
    assert all("[System]\nBe brief." in p and "[User]\nfirst question of c0" in p for p in c0)
    assert all("[Assistant]\nfirst answer of c0" in p for p in c0)
    # c11: old turns dropped oldest first for the judge; the last user turn kept
    c11 = [json.loads(r) for r in samples["c11"]["filtered_resps"]]
    assert all(o["status"] == "ok" and o["dropped_turns"] >= 2 for o in c11)
    sent = [p for p in prompts if "final question of c11" in p]
    assert len(sent) == 2
    assert all("earlier turns of this conversation are not shown" in p for p in sent)
    assert not any("old question 0 of c11" in p for p in sent)
    # c10 never reached the server; its samples say why
    assert not any("word2999" in p for p in prompts)
    c10 = [json.loads(r) for r in samples["c10"]["filtered_resps"]]
    assert all(o["status"] == "skipped" and "context too long" in o["reason"] for o in c10)
