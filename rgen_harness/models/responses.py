"""What comes back from lmdeploy's engines: failure statuses and the errors they raise."""

from __future__ import annotations

from collections.abc import Sequence

FAILED = ("error", "abort")
MAX_LISTED_FAILURES = 5


class GenerationFailed(RuntimeError):
    """lmdeploy answered some requests with finish_reason='error' (or 'abort')."""


class LogprobsUnavailable(RuntimeError):
    """Log-likelihood requests on an engine that cannot score prompts (TurboMind)."""


def cut_at_stops(text: str, until: Sequence[str]) -> str:
    """The text before the first occurrence of any stop string (lm-eval's rule)."""
    for stop in until:
        if stop:
            text = text.split(stop, 1)[0]
    return text


def describe_failure(resp) -> str:
    code = getattr(resp, "error_code", None) or resp.finish_reason
    message = getattr(resp, "error_message", None) or "(no message from the engine)"
    return f"[{code}] {message}"
