"""A local HTTP server speaking lmdeploy's /pooling format, scoring with a real reward backend
(the tiny reward model in process), optionally requiring an Authorization header."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from rgen_harness.metrics.reward.backends.hf import HFRewardBackend
from rgen_harness.metrics.reward.render import load_model_config


class PoolingServer:
    """`POST /pooling` {"input": [[ids]...]} -> {"data": [{"index", "object", "data"}]}."""

    def __init__(self, backend, auth: str | None = None):
        """`auth`: the Authorization header every request must carry (else 401)."""
        self.backend, self.fail, self.requests, self.auth = backend, False, [], auth
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                self._send(200, {"data": [{"id": "tiny-rm"}]})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append(body)
                if outer.auth is not None and self.headers.get("Authorization") != outer.auth:
                    return self._send(401, {"error": "unauthorized"})
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


def hf_reward_backend(path) -> HFRewardBackend:
    """The tiny reward model in process, as the server's scorer."""
    path = str(path)
    return HFRewardBackend(path, model_config=load_model_config(path, revision=None), device="cpu")
