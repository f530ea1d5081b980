"""Pure retry maths: capped exponential backoff with full jitter, and `Retry-After` parsing.

Nothing here sleeps or reads a clock on its own: callers pass `now` and a random source, so the maths is tested
without sockets or time.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

MAX_RETRY_AFTER = 120.0  # the default of the longest wait honoured (the retry policy's `max_retry_after`)
RETRY_AFTER_CEILING = 86_400.0  # what parsing keeps at most (a day): the policy, not the parser, chooses the limit


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Return the seconds a `Retry-After` header asks for (delta-seconds or HTTP date), at most a day; None if
    garbage. The retry policy then honours it up to its own `max_retry_after`."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if text.isascii() and text.isdigit():
        return min(float(text), RETRY_AFTER_CEILING)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    seconds = (when - (now or datetime.now(UTC))).total_seconds()
    return min(max(seconds, 0.0), RETRY_AFTER_CEILING)


def backoff_delay(attempt: int, *, base: float, cap: float, rng: random.Random) -> float:
    """Return the sleep before retry number `attempt` (1-based): uniform in [0, min(cap, base * 2**(attempt-1))]."""
    ceiling = min(cap, base * 2.0 ** min(max(attempt - 1, 0), 64))
    return rng.uniform(0.0, ceiling)
