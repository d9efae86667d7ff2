"""A scripted stdlib HTTP server on 127.0.0.1 standing in for a served model: each POST gets
the next scripted (status, headers, body, delay)."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class ScriptedServer:
    """Answers each POST with the next scripted (status, headers, body, delay); `{auth}` in a
    body is replaced by the Authorization header received. Records that header (`auth`) and
    the arrival times (`times`)."""

    def __init__(self, script):
        self.script, self.auth, self.times = list(script), [], []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers["Content-Length"]))
                outer.auth.append(self.headers.get("Authorization"))
                outer.times.append(time.monotonic())
                status, headers, body, delay = outer.script.pop(0)
                time.sleep(delay)
                raw = body.replace("{auth}", self.headers.get("Authorization", "")).encode()
                try:
                    self.send_response(status)
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(raw)))
                    self.end_headers()
                    self.wfile.write(raw)
                except OSError:
                    pass

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
