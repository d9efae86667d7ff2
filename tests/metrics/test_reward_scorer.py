"""The reward scorer over a task's replies: cache and resume, and bad outputs counted."""

from __future__ import annotations

import math

import pytest

from rgen_harness.chat.protocol import ChatResult, RoundRecord
from rgen_harness.metrics.reward.backends import BackendError
from rgen_harness.metrics.reward.backends.hf import HFRewardBackend
from rgen_harness.metrics.reward.config import RewardConfig
from rgen_harness.metrics.reward.render import load_model_config
from rgen_harness.metrics.reward.scorer import RewardScorer
from rgen_harness.metrics.scorers import ScoredItem


class Counting:
    """The real backend, counting the inputs it is asked to score; can fail on demand."""

    name = "hf"

    def __init__(self, inner, *, fail_after: int | None = None):
        self.inner, self.fail_after, self.inputs, self.calls = inner, fail_after, 0, 0

    def score(self, batch):
        if self.fail_after is not None and self.calls >= self.fail_after:
            raise KeyboardInterrupt  # the run is interrupted mid-way
        self.calls += 1
        self.inputs += len(batch)
        return self.inner.score(batch)

    def close(self):
        pass


class Constant:
    name = "hf"

    def __init__(self, value=None, error=None):
        self.value, self.error = value, error

    def score(self, batch):
        if self.error:
            raise BackendError(self.error)
        return [self.value] * len(batch)

    def close(self):
        pass


@pytest.fixture(scope="module")
def hf_backend(tiny_dir):
    path = str(tiny_dir / "reward")
    return HFRewardBackend(path, model_config=load_model_config(path, revision=None), device="cpu")


def item(i, reply="a reply", status="ok", reference="the reference reply"):
    history = [{"role": "user", "content": f"question number {i} " + "word " * (i * 7)}]
    result = ChatResult(status=status, rounds=[RoundRecord(prompt="p", reply=reply)])
    return ScoredItem(
        task="t", doc={"id": i, "reference": reference}, result=result, history=history
    )


def config(tiny_dir, cache, **kw):
    return RewardConfig(model=str(tiny_dir / "reward"), backend="hf", cache=str(cache), **kw)


def test_interrupted_run_resumes_without_rescoring(tiny_dir, tmp_path, hf_backend):
    items = [item(i, reply=f"reply {i} " * (i + 1)) for i in range(10)]  # 10 replies + 10 refs
    cfg = config(tiny_dir, tmp_path / "cache", batch_size=4)
    first = Counting(hf_backend, fail_after=2)
    with pytest.raises(KeyboardInterrupt):
        RewardScorer(cfg, backend=first).score(items)
    assert first.inputs == 8  # two batches of 4 were scored and cached before the interruption
    second = Counting(hf_backend)
    rows = RewardScorer(cfg, backend=second).score(items)
    assert second.inputs == 20 - 8  # only what the first run had not finished
    third = Counting(hf_backend)
    again = RewardScorer(cfg, backend=third).score(items)
    assert third.inputs == 0 and again == rows
    fresh = RewardScorer(config(tiny_dir, "none"), backend=Counting(hf_backend)).score(items)
    assert [r["reward"] for r in fresh] == pytest.approx([r["reward"] for r in rows], abs=1e-4)
    assert all(r["reward_n"] == 1 and math.isfinite(r["reference_reward"]) for r in rows)


def test_bad_outputs_are_counted_not_crashed(tiny_dir, hf_backend):
    items = [
        item(0),
        item(1, reply="   "),  # empty reply
        item(2, status="skipped", reply=""),  # generation skipped: not a reward failure
        item(3, status="failed", reply=""),
        item(4, reply="x " * 600),  # longer than max_length
    ]
    rows = RewardScorer(config(tiny_dir, "none", max_length=200), backend=hf_backend).score(items)
    ok, empty, skipped, failed, long = rows
    assert ok["reward_n"] == 1 and ok["reward_failed"] == 0 and math.isfinite(ok["reward"])
    assert empty["reward_failed"] == 1 and math.isnan(empty["reward"])
    for r in (skipped, failed):
        assert r["reward_failed"] == 0 and r["reward_n"] == 0 and math.isnan(r["reward"])
        assert math.isfinite(r["reference_reward"])  # the reference is still scored
    assert long["reward_too_long"] == 1 and long["reward_failed"] == 0 and long["reward_n"] == 0


@pytest.mark.parametrize(
    "backend", [Constant(value=math.nan), Constant(value=math.inf), Constant(error="HTTP 500")]
)
def test_nan_inf_and_engine_errors_count_as_failed(tiny_dir, tmp_path, backend):
    cfg = config(tiny_dir, tmp_path / "c")
    rows = RewardScorer(cfg, backend=backend).score([item(0), item(1)])
    assert [r["reward_failed"] for r in rows] == [1, 1]
    assert all(math.isnan(r["reward"]) and math.isnan(r["reference_reward"]) for r in rows)
    # failures are not cached: a working backend scores them next time
    counting = Counting(Constant(value=0.5))
    rows = RewardScorer(cfg, backend=counting).score([item(0), item(1)])
    assert counting.inputs == 4 and [r["reward"] for r in rows] == [0.5, 0.5]
