"""The server backend against a local HTTP server speaking lmdeploy's /pooling format, scoring
with the tiny reward model; HTTP errors are retried a bounded number of times, then counted."""

from __future__ import annotations

import base64
import json
import math

import pytest
from pooling_server_util import PoolingServer, hf_reward_backend
from scripted_http import ScriptedServer

from rgen_harness.chat.protocol import ChatResult, RoundRecord
from rgen_harness.metrics.reward.backends import BackendError
from rgen_harness.metrics.reward.backends import server as server_module
from rgen_harness.metrics.reward.backends.server import ServerRewardBackend
from rgen_harness.metrics.reward.scorer import from_metadata
from rgen_harness.metrics.scorers import ScoredItem


@pytest.fixture(scope="module")
def hf_backend(tiny_dir):
    return hf_reward_backend(tiny_dir / "reward")


def items():
    out = []
    for i in range(5):
        history = [{"role": "user", "content": "tell me about tuples " * (i + 1)}]
        result = ChatResult(status="ok", rounds=[RoundRecord(prompt="", reply=f"reply {i}" * i)])
        doc = {"id": i, "reference": "a tuple is immutable"}
        out.append(ScoredItem(task="t", doc=doc, result=result, history=history))
    return out


def meta(tiny_dir, url, backend="server"):
    return {
        "reward_model": str(tiny_dir / "reward"),
        "reward_backend": backend,
        "reward_url": url,
        "reward_cache": "none",
        "reward_retries": 1,
        "reward_batch_size": 3,
    }


def test_server_scores_equal_in_process_scores(tiny_dir, hf_backend):
    with PoolingServer(hf_backend) as server:
        rows = from_metadata(meta(tiny_dir, server.url)).score(items())
        sent = [ids for r in server.requests for ids in r["input"]]
    local = from_metadata(meta(tiny_dir, None, backend="hf")).score(items())
    assert len(sent) == 9  # 4 non-empty replies + 5 references ("reply 0" * 0 is empty)
    assert all(isinstance(t, int) for ids in sent for t in ids)  # token ids, not text
    for key in ("reward", "reference_reward"):
        got, want = [r[key] for r in rows], [r[key] for r in local]
        assert got == pytest.approx(want, abs=1e-4, nan_ok=True)
    assert [r["reward_failed"] for r in rows] == [1, 0, 0, 0, 0]  # the empty reply


def test_http_500_is_retried_then_counted(tiny_dir, hf_backend):
    with PoolingServer(hf_backend) as server:
        server.fail = True
        rows = from_metadata(meta(tiny_dir, server.url)).score(items())
        # 5 references, then 4 replies, in batches of 3 = 2 + 2 batches, each tried
        # 1 + reward_retries(1) times
        assert len(server.requests) == 8
    assert sum(r["reward_failed"] for r in rows) == 5
    assert all(math.isnan(r["reward"]) and r["reward_n"] == 0 for r in rows)


OK = (200, {}, json.dumps({"data": [{"index": 0, "data": 1.5}]}), 0)


def test_url_credentials_go_as_basic_auth_and_never_into_the_reason():
    server = ScriptedServer(
        [(401, {}, "bad key: user:hunter2-secret for Basic xyzzyQWxhZGRpbg", 0)]
    )
    try:
        backend = ServerRewardBackend(f"http://user:hunter2-secret@127.0.0.1:{server.port}")
        with pytest.raises(BackendError) as caught:
            backend.score([[1, 2]])
    finally:
        server.close()
    assert server.auth == ["Basic " + base64.b64encode(b"user:hunter2-secret").decode()]
    reason = str(caught.value)
    assert reason.startswith("HTTP 401 from http://127.0.0.1:")
    assert "hunter2-secret" not in reason and "xyzzyQWxhZGRpbg" not in reason


def test_retry_after_is_honoured():
    server = ScriptedServer([(503, {"Retry-After": "2"}, "busy", 0), OK])
    try:
        backend = ServerRewardBackend(f"http://127.0.0.1:{server.port}", backoff=0.01)
        assert backend.score([[1, 2]]) == [1.5]
    finally:
        server.close()
    assert server.times[1] - server.times[0] >= 1.9  # not the 0.01 s back-off


def test_timeout_is_recorded_with_the_seconds_waited(monkeypatch, caplog):
    monkeypatch.setattr(server_module, "WAIT_WARNING_S", 0.3)
    server = ScriptedServer([(200, {}, "{}", 1.5)])
    try:
        backend = ServerRewardBackend(f"http://127.0.0.1:{server.port}", timeout=1, retries=0)
        with caplog.at_level("WARNING"), pytest.raises(BackendError, match="timed out after 1 s"):
            backend.score([[1, 2]])
    finally:
        server.close()
    assert "no answer after" in caplog.text and "reward_timeout" in caplog.text
