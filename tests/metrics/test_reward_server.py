"""The server backend against a local HTTP server speaking lmdeploy's /pooling format, scoring
with the tiny reward model; HTTP errors are retried a bounded number of times, then counted."""

from __future__ import annotations

import json
import math
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from rgen_harness.chat.protocol import ChatResult, RoundRecord
from rgen_harness.metrics.reward.backends.hf import HFRewardBackend
from rgen_harness.metrics.reward.render import load_model_config
from rgen_harness.metrics.reward.scorer import from_metadata
from rgen_harness.metrics.scorers import ScoredItem


class PoolingServer:
    """`POST /pooling` {"input": [[ids]...]} -> {"data": [{"index", "object", "data"}]}."""

    def __init__(self, backend):
        self.backend, self.fail, self.requests = backend, False, []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                self._send(200, {"data": [{"id": "tiny-rm"}]})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append(body)
                if self.path != "/pooling":
                    return self._send(404, {"error": self.path})
                if outer.fail:
                    return self._send(500, {"error": "engine crashed"})
                scores = outer.backend.score(body["input"])
                data = [{"index": i, "object": "pooling", "data": s} for i, s in enumerate(scores)]
                self._send(200, {"object": "list", "model": "tiny-rm", "data": data})

            def _send(self, code, payload):
                raw = json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)


@pytest.fixture(scope="module")
def hf_backend(tiny_dir):
    path = str(tiny_dir / "reward")
    return HFRewardBackend(path, model_config=load_model_config(path, revision=None), device="cpu")


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
        # 9 inputs in batches of 3 = 3 batches, each tried 1 + reward_retries(1) times
        assert len(server.requests) == 6
    assert sum(r["reward_failed"] for r in rows) == 5
    assert all(math.isnan(r["reward"]) and r["reward_n"] == 0 for r in rows)
