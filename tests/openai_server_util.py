"""The loopback OpenAI-compatible test server (tests/served/openai_server.py) run as a
subprocess for a test module, and a free local port."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SERVER = Path(__file__).parent / "served" / "openai_server.py"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def openai_server(model: Path, folder: Path, *options: str) -> Iterator[str]:
    """The server on a free port serving `model`, with `options` added to its command line;
    yields its base URL once it answers. Its output goes to `folder`/server.log and the request
    bodies it receives to `folder`/requests.jsonl; stopped on exit."""
    port = free_port()
    log = (folder / "server.log").open("w")
    args = [sys.executable, str(SERVER), "--model", str(model), "--port", str(port)]
    args += ["--log-file", str(folder / "requests.jsonl"), *options]
    args += ["--max-requests", "400", "--max-seconds", "300"]
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"test server exited with {proc.returncode}; see {log.name}")
            try:
                with urllib.request.urlopen(f"{base}/openapi.json", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
