"""HTTP reward backend: `lmdeploy serve api_server <reward model> --backend pytorch`.

Requests are `POST {url}/pooling` with `{"model"?, "input": [[token ids], ...]}`; the answer is
`{"data": [{"index": i, "data": score}, ...]}`. Token ids (rendered locally with the reward
model's tokenizer, reward token included) are sent because string input is only encoded by the
server: no chat template, no reward token. Failed requests are retried a bounded number of times
(connection errors, timeouts, 5xx, 429), waiting what the server's `Retry-After` asks (at most
`MAX_RETRY_AFTER` seconds) or a short back-off; then the batch's replies are recorded as failed,
with the reason (a timeout says how long it waited). A request that is still unanswered after
`WAIT_WARNING_S` seconds is announced with a warning. Credentials in the URL
(`http://user:password@host`) are sent as HTTP Basic auth and masked in every message.
"""

from __future__ import annotations

import base64
import json
import logging
import math
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

from rgen_harness.http_retry import WAIT_WARNING_S, retry_after
from rgen_harness.metrics.reward.backends import BackendError
from rgen_harness.redact import mask_text, mask_url

log = logging.getLogger(__name__)

RETRY_STATUS = {429, 500, 502, 503, 504}
ERROR_TEXT_LIMIT = 300


def split_credentials(url: str) -> tuple[str, dict[str, str]]:
    """`url` without its user-info, and the Basic auth header that carries it (if any)."""
    parts = urllib.parse.urlsplit(url)
    if parts.username is None and parts.password is None:
        return url, {}
    user = urllib.parse.unquote(parts.username or "")
    password = urllib.parse.unquote(parts.password or "")
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        netloc += f":{parts.port}"
    clean = urllib.parse.urlunsplit(parts._replace(netloc=netloc))
    token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    return clean, {"Authorization": f"Basic {token}"}


class _WaitWarning:
    """Logs a warning every `every` seconds while a request is unanswered."""

    def __init__(self, what: str, timeout: float) -> None:
        self.what, self.timeout, self.every = what, timeout, WAIT_WARNING_S
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._start = time.monotonic()

    def _watch(self) -> None:
        while not self._done.wait(self.every):
            log.warning(
                "%s: no answer after %.0f s (gives up after %.0f s: reward_timeout)",
                self.what,
                time.monotonic() - self._start,
                self.timeout,
            )

    def __enter__(self) -> _WaitWarning:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._done.set()


def check_reachable(url: str, timeout: float = 10.0) -> None:
    """Any HTTP answer counts; only a connection failure is an error (raised at task start)."""
    clean, headers = split_credentials(url)
    request = urllib.request.Request(clean.rstrip("/") + "/v1/models", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout):
            pass
    except urllib.error.HTTPError:
        return
    except (urllib.error.URLError, OSError, ValueError) as e:
        raise ConnectionError(
            f"reward_url={mask_url(url)!r} does not answer ({mask_text(str(e))}). Start the "
            "reward server with "
            "`lmdeploy serve api_server <reward model> --backend pytorch --server-port 23333` "
            "and pass its address, or use reward_backend hf / lmdeploy."
        ) from e


class ServerRewardBackend:
    name = "server"

    def __init__(
        self,
        url: str,
        *,
        model: str | None = None,
        timeout: float = 120.0,
        retries: int = 2,
        backoff: float = 0.5,
    ) -> None:
        clean, self._auth = split_credentials(url)
        password = urllib.parse.unquote(urllib.parse.urlsplit(url).password or "")
        # The credentials themselves, masked wherever a server echoes them back.
        self._secrets = tuple(v for v in (password, *self._auth.values()) if v)
        self.endpoint = clean.rstrip("/") + "/pooling"
        self.model = model
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.requests = 0

    def score(self, batch: list[list[int]]) -> list[float]:
        body = {"input": [list(ids) for ids in batch]}
        if self.model:
            body["model"] = self.model
        payload = json.dumps(body).encode("utf-8")
        last_error = ""
        wait = 0.0
        attempts = self.retries + 1
        for attempt in range(attempts):
            if attempt:
                time.sleep(wait)
            wait = self.backoff * 2**attempt
            self.requests += 1
            try:
                request = urllib.request.Request(
                    self.endpoint,
                    data=payload,
                    headers={"Content-Type": "application/json", **self._auth},
                    method="POST",
                )
                what = f"reward request to {self.endpoint} (attempt {attempt + 1} of {attempts})"
                with (
                    _WaitWarning(what, self.timeout),
                    urllib.request.urlopen(request, timeout=self.timeout) as response,
                ):
                    answer = json.loads(response.read().decode("utf-8"))
                return _parse(answer, len(batch))
            except urllib.error.HTTPError as e:
                detail = e.read().decode("utf-8", "replace")[:ERROR_TEXT_LIMIT]
                last_error = f"HTTP {e.code} from {self.endpoint}: {detail}"
                if e.code not in RETRY_STATUS:
                    break
                asked = retry_after(e.headers.get("Retry-After") if e.headers else None)
                if asked is not None:
                    wait = asked
                    last_error += f" (Retry-After: {asked:g} s)"
            except TimeoutError as e:
                last_error = f"{self.endpoint}: timed out after {self.timeout:g} s ({e})"
            except urllib.error.URLError as e:
                if isinstance(e.reason, TimeoutError):
                    last_error = f"{self.endpoint}: timed out after {self.timeout:g} s"
                else:
                    last_error = f"{self.endpoint}: {e}"
            except OSError as e:
                last_error = f"{self.endpoint}: {e}"
            except (ValueError, KeyError, TypeError, IndexError) as e:
                last_error = f"malformed /pooling answer from {self.endpoint}: {e}"
                break
            last_error = mask_text(last_error, self._secrets)
            log.warning("reward server attempt %d failed: %s", attempt + 1, last_error)
        raise BackendError(mask_text(last_error, self._secrets))

    def close(self) -> None:
        pass


def _parse(answer: dict, n: int) -> list[float]:
    data = answer["data"]
    if len(data) != n:
        raise ValueError(f"{len(data)} scores for {n} inputs")
    scores = [math.nan] * n
    for entry in data:
        index = int(entry["index"])
        value = entry["data"]
        if isinstance(value, list):  # some servers wrap a single value
            value = value[0] if len(value) == 1 else math.nan
        scores[index] = float(value)
    return scores
