"""HTTP reward backend: `lmdeploy serve api_server <reward model> --backend pytorch`.

Requests are `POST {url}/pooling` with `{"model"?, "input": [[token ids], ...]}`; the answer is
`{"data": [{"index": i, "data": score}, ...]}`. Token ids (rendered locally with the reward
model's tokenizer, reward token included) are sent because string input is only encoded by the
server: no chat template, no reward token. Failed requests are retried a bounded number of times
(connection errors, 5xx, 429); then the batch's replies are recorded as failed.
"""

from __future__ import annotations

import json
import logging
import math
import time
import urllib.error
import urllib.request

from rgen_harness.metrics.reward.backends import BackendError

log = logging.getLogger(__name__)

RETRY_STATUS = {429, 500, 502, 503, 504}


def check_reachable(url: str, timeout: float = 10.0) -> None:
    """Any HTTP answer counts; only a connection failure is an error (raised at task start)."""
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/v1/models", timeout=timeout):
            pass
    except urllib.error.HTTPError:
        return
    except (urllib.error.URLError, OSError) as e:
        raise ConnectionError(
            f"reward_url={url!r} does not answer ({e}). Start the reward server with "
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
        timeout: float = 600.0,
        retries: int = 2,
        backoff: float = 0.5,
    ) -> None:
        self.endpoint = url.rstrip("/") + "/pooling"
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
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            self.requests += 1
            try:
                request = urllib.request.Request(
                    self.endpoint,
                    data=payload,
                    headers={"Content-Type": "application/json"},
                    method="POST",
                )
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    answer = json.loads(response.read().decode("utf-8"))
                return _parse(answer, len(batch))
            except urllib.error.HTTPError as e:
                detail = e.read().decode("utf-8", "replace")[:300]
                last_error = f"HTTP {e.code} from {self.endpoint}: {detail}"
                if e.code not in RETRY_STATUS:
                    break
            except (urllib.error.URLError, OSError) as e:
                last_error = f"{self.endpoint}: {e}"
            except (ValueError, KeyError, TypeError, IndexError) as e:
                last_error = f"malformed /pooling answer from {self.endpoint}: {e}"
                break
            log.warning("reward server attempt %d failed: %s", attempt + 1, last_error)
        raise BackendError(last_error)

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
