"""`SafeRetry`: send an API request again only when that cannot do harm, and give up fast on a dead server.

Which failures are retried (`should_retry`, after urllib3 and the AWS SDK's "standard" mode):

| failure                                  | GET, DELETE (idempotent) | POST (not idempotent)       |
|------------------------------------------|--------------------------|-----------------------------|
| `ConnectError` (never reached the server) | retry                    | retry                       |
| other `TransportError` (timeout, reset)  | retry                    | no: the job may exist       |
| `MalformedResponseError` (cut body)      | retry                    | no: the job may exist       |
| 429                                      | retry                    | retry (refused, not served) |
| 503                                      | retry                    | retry (refused, not served) |
| other 5xx                                | retry                    | no: the job may exist       |
| any other status (400, 401, 403, 404...) | no                       | no                          |

A POST that is not retried is re-raised at once: the runner settles it by listing (docs/reliability.md, rule 3).

Before retry number n the policy sleeps the server's `Retry-After` when it sent one (up to `max_retry_after`, which
may be set above its 120 s default), else a capped exponential backoff with full jitter. At most `max_attempts`
attempts per request.

`RetryBudget` is shared by every request of a batch. A failure that says "no answer" (a transport error, a
malformed body, a 5xx) extends the current streak; a success, or any other HTTP answer (a 4xx, 429 included, is
proof that the server is alive), ends it. When the streak has lasted `dead_after` seconds and counts at least
`min_failures` attempts, the next failure raises `ApiUnavailableError` instead: one clear message ends the batch,
rather than every job retrying on its own forever. The budget is pure (callers pass `now`); `SafeRetry` reads
`trio.current_time()` and sleeps with `trio.sleep`, so tests run it on `trio.testing.MockClock`.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

import trio

from leapbatch import errors
from leapbatch.api.backoff import MAX_RETRY_AFTER, backoff_delay

# RFC 9110 section 9.2.2: sending one of these twice has the same effect as sending it once.
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
# Statuses by which the server says it refused the request without acting on it.
REFUSED_STATUSES = frozenset({429, 503})

DEAD_HINT = "check the network and LEAP_BASE_URL, then run the same command again to resume"

OnRetry = Callable[[str, str, int, float, errors.ApiError], None]
Hook = Callable[[], object]  # the result is ignored
T = TypeVar("T")


def provably_unserved(exc: errors.ApiError) -> bool:
    """Return whether the request that failed with `exc` provably never acted on the server.

    True for a connection that was never made, and for the statuses by which a server refuses without acting
    (429, 503). The retry policy sends a POST again only then, and the submitter fails a create without a
    reconciliation listing only then: any other failure may have made the job.
    """
    return isinstance(exc, errors.ConnectError) or errors.status_of(exc) in REFUSED_STATUSES


def should_retry(method: str, exc: errors.ApiError) -> bool:
    """Return whether a request that failed with `exc` may safely be sent again."""
    status = errors.status_of(exc)
    if method.upper() in IDEMPOTENT_METHODS:
        if isinstance(exc, errors.TransportError | errors.MalformedResponseError):
            return True
        return status is not None and (status == 429 or status >= 500)
    return provably_unserved(exc)


def _is_no_answer(exc: errors.ApiError) -> bool:
    """Return whether `exc` says the API did not really answer (as opposed to answering "no")."""
    status = errors.status_of(exc)
    if status is None:
        return isinstance(exc, errors.TransportError | errors.MalformedResponseError)
    return status >= 500


@dataclass
class RetryBudget:
    """The batch-wide count of failures in a row, that declares the API dead after a long enough streak."""

    dead_after: float = 60.0
    min_failures: int = 8
    failures_in_row: int = field(default=0, init=False)
    streak_started: float | None = field(default=None, init=False)

    def succeeded(self) -> None:
        """End the current streak of failures."""
        self.failures_in_row = 0
        self.streak_started = None

    def failed(self, now: float, path: str, exc: errors.ApiError) -> errors.ApiUnavailableError | None:
        """Count one failure at `now`; return the error that ends the batch if the API now looks dead."""
        if not _is_no_answer(exc):
            self.succeeded()
            return None
        if self.streak_started is None:
            self.streak_started = now
        self.failures_in_row += 1
        silent = now - self.streak_started
        if self.failures_in_row < self.min_failures or silent < self.dead_after:
            return None
        return errors.ApiUnavailableError(
            f"the API at {path} did not answer: {self.failures_in_row} requests failed in a row over "
            f"{silent:.0f} s; last error: {exc.message}",
            hint=DEAD_HINT,
        )


def _ignore() -> None:
    return None


def _ignore_retry(method: str, path: str, attempt: int, delay: float, exc: errors.ApiError) -> None:
    return None


@dataclass
class SafeRetry:
    """The retry policy of `LeapClient(retry=...)`: safe retries, backoff, `Retry-After`, a shared budget.

    `on_throttle` is called for every 429 and `on_success` for every success (the runner wires them to
    `AdaptiveLimiter.throttled` / `succeeded`); `on_retry(method, path, attempt, delay, exc)` is called before each
    sleep, with the number of the attempt that failed.
    """

    max_attempts: int = 6
    base_delay: float = 0.5
    max_delay: float = 30.0
    max_retry_after: float = MAX_RETRY_AFTER  # the longest server-requested wait honoured
    budget: RetryBudget = field(default_factory=RetryBudget)
    rng: random.Random = field(default_factory=random.Random)
    on_throttle: Hook = _ignore
    on_success: Hook = _ignore
    on_retry: OnRetry = _ignore_retry
    origin: str = ""  # the API's scheme://host[:port], so the message that ends a batch names the host

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {self.max_attempts}")

    def delay(self, failed_attempt: int, exc: errors.ApiError) -> float:
        """Return the seconds to sleep after attempt number `failed_attempt` failed with `exc`."""
        if isinstance(exc, errors.HTTPStatusError) and exc.retry_after is not None:
            return min(exc.retry_after, self.max_retry_after)
        return backoff_delay(failed_attempt, base=self.base_delay, cap=self.max_delay, rng=self.rng)

    async def run(self, method: str, path: str, attempt: Callable[[], Awaitable[T]]) -> T:
        """Call `attempt` until it succeeds, must not be retried, or runs out of attempts; re-raise the last error."""
        number = 1
        while True:
            try:
                result = await attempt()
            except errors.ApiError as exc:
                if isinstance(exc, errors.RateLimitedError):
                    self.on_throttle()
                dead = self.budget.failed(trio.current_time(), self.origin + path, exc)
                if dead is not None:
                    raise dead from exc
                if number >= self.max_attempts or not should_retry(method, exc):
                    raise
                pause = self.delay(number, exc)
                self.on_retry(method, path, number, pause, exc)
                await trio.sleep(pause)
                number += 1
            else:
                self.budget.succeeded()
                self.on_success()
                return result
