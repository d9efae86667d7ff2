"""What the project's HTTP clients (served chat models, the reward server) wait for.

- `retry_after`: the seconds a 429/503 answer's `Retry-After` header asks for (delta-seconds or
  an HTTP date), at most `MAX_RETRY_AFTER`; the clients wait that long instead of their own
  back-off before the next attempt.
- `WAIT_WARNING_S`: a request unanswered this long is announced with a warning, then again every
  as long, so a hung server is never waited on in silence.
"""

from __future__ import annotations

import email.utils
import time

MAX_RETRY_AFTER = 60.0  # seconds: a longer Retry-After is cut to this
WAIT_WARNING_S = 30.0


def retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds `Retry-After: value` asks to wait, in [0, MAX_RETRY_AFTER]; None if unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value).timestamp()
        except (TypeError, ValueError, IndexError):
            return None
        seconds = when - (time.time() if now is None else now)
    if seconds != seconds:  # NaN
        return None
    return min(MAX_RETRY_AFTER, max(0.0, seconds))
