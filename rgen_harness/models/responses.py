"""What comes back from lmdeploy's engines: failure statuses and the errors they raise."""

from __future__ import annotations

FAILED = ("error", "abort")
MAX_LISTED_FAILURES = 5


class GenerationFailed(RuntimeError):
    """lmdeploy answered some requests with finish_reason='error' (or 'abort')."""


class EngineStopped(GenerationFailed):
    """The engine stopped serving (OOM, NCCL failure): every later request would fail too.
    The run stops (non-zero exit, not counted as finished); with --use_cache a rerun resumes."""


ENGINE_STOPPED_CODES = ("engine_unavailable",)  # lmdeploy ErrorCode.ENGINE_UNAVAILABLE


def check_engine_alive(responses, what: str) -> None:
    """Raise `EngineStopped` if any response says the engine itself is gone."""
    stopped = [r for r in responses if getattr(r, "error_code", None) in ENGINE_STOPPED_CODES]
    if stopped:
        raise EngineStopped(
            f"lmdeploy's engine stopped serving during {what} ({len(stopped)} of "
            f"{len(responses)} requests answered {describe_failure(stopped[0])}): an engine-wide "
            "failure (out of memory, a lost GPU or NCCL peer). The run stops here; fix the cause "
            "(lower cache_max_entry_count / max_batch_size for memory) and rerun with the same "
            "--use_cache folder to resume."
        )


class LogprobsUnavailable(RuntimeError):
    """Log-likelihood requests on an engine that cannot score prompts (TurboMind)."""


def describe_failure(resp) -> str:
    code = getattr(resp, "error_code", None) or resp.finish_reason
    message = getattr(resp, "error_message", None) or "(no message from the engine)"
    return f"[{code}] {message}"
