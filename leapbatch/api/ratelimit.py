"""Request rate and jobs in flight: a token bucket and an AIMD limit, pure maths with thin trio wrappers.

`TokenBucket` is reservation-based (the "virtual scheduling" form of a token bucket, as in Go's
`x/time/rate.Reserve`): every call takes one token at once, even when that drives the balance below zero, and is
told how long to wait for the token it took. The balance refills at `rate` per second up to `burst`. So callers are
served in the order they asked (no thundering herd, no starvation), and the granted times obey the token-bucket
guarantee: **in any window of length T, at most `burst + rate * T` requests are granted**, however many tasks ask.
A caller that is cancelled while waiting does not give its token back: the bucket only ever errs on the slow side.

`AimdLimit` is additive increase, multiplicative decrease (TCP congestion control; Netflix's concurrency-limits):
every `value` successes add one (one step per full window of successes), each throttle halves the value, never below
`minimum` nor above `maximum`. A wave of requests sent together meets a 429 together, so a throttle within
`cooldown` seconds of the last halving is one signal, not many: it does not halve again.

Neither class reads a clock: callers pass `now`. `RequestGate` and `AdaptiveLimiter` are the trio shells that do,
on `trio.current_time()`, so tests drive them on `trio.testing.MockClock`. `AdaptiveLimiter` holds job slots in a
`trio.CapacityLimiter` whose `total_tokens` follows the AIMD value: no holder enters while `in_use >= limit`, and
`in_use` never exceeds `maximum`. A shrink takes slots from no one: it takes effect as holders leave.
"""

from __future__ import annotations

from types import TracebackType

import trio

DEFAULT_COOLDOWN = 2.0


class TokenBucket:
    """A reservation-based token bucket: `rate` tokens per second, at most `burst` saved up."""

    def __init__(self, rate: float, burst: int) -> None:
        if not rate > 0:
            raise ValueError(f"rate must be > 0 requests per second, got {rate!r}")
        if burst < 1:
            raise ValueError(f"burst must be >= 1, got {burst!r}")
        self.rate = float(rate)
        self.burst = burst
        self._tokens = float(burst)
        self._updated: float | None = None

    def reserve(self, now: float) -> float:
        """Take one token and return the seconds to wait before using it (0.0 if it is available now)."""
        if self._updated is None:
            self._updated = now
        # A clock never runs backwards; if a caller's `now` does, refill nothing rather than un-refill.
        elapsed = max(now - self._updated, 0.0)
        self._updated = max(now, self._updated)
        self._tokens = min(float(self.burst), self._tokens + elapsed * self.rate)
        self._tokens -= 1.0
        if self._tokens >= 0.0:
            return 0.0
        return -self._tokens / self.rate


class RequestGate:
    """Wait for a token of a shared `TokenBucket` before each API request (pass it as `LeapClient(gate=...)`)."""

    def __init__(self, rate: float, burst: int) -> None:
        self.bucket = TokenBucket(rate, burst)

    async def __call__(self) -> None:
        """Wait until this request may be sent."""
        delay = self.bucket.reserve(trio.current_time())
        if delay > 0.0:
            await trio.sleep(delay)
        else:
            # Even an immediate grant is a checkpoint, so a hot loop of requests still yields to other tasks.
            await trio.lowlevel.checkpoint()


class AimdLimit:
    """An additive-increase, multiplicative-decrease limit between `minimum` and `maximum`."""

    def __init__(self, initial: int, *, minimum: int = 1, maximum: int, cooldown: float = DEFAULT_COOLDOWN) -> None:
        if not 1 <= minimum <= initial <= maximum:
            raise ValueError(f"need 1 <= minimum <= initial <= maximum, got {minimum}, {initial}, {maximum}")
        if not cooldown >= 0:
            raise ValueError(f"cooldown must be >= 0 seconds, got {cooldown!r}")
        self.minimum = minimum
        self.maximum = maximum
        self.cooldown = cooldown
        self._value = initial
        # Successes since the last step, counted in integers so a step comes after exactly `value` of them.
        self._successes = 0
        self._last_halved: float | None = None

    @property
    def value(self) -> int:
        """Return the current limit."""
        return self._value

    def on_success(self) -> None:
        """Count a success: every `value` of them grow the limit by one, up to `maximum`."""
        if self._value >= self.maximum:
            return
        self._successes += 1
        if self._successes >= self._value:
            self._value += 1
            self._successes = 0

    def on_throttle(self, now: float) -> bool:
        """Halve the limit (not below `minimum`) unless it was halved less than `cooldown` ago; return if it did."""
        if self._last_halved is not None and now - self._last_halved < self.cooldown:
            return False
        self._last_halved = now
        self._value = max(self._value // 2, self.minimum)
        self._successes = 0
        return True


class AdaptiveLimiter:
    """Job slots whose number follows an `AimdLimit`: `async with limiter:` holds one slot."""

    def __init__(
        self, maximum: int, minimum: int = 1, *, initial: int | None = None, cooldown: float = DEFAULT_COOLDOWN
    ) -> None:
        self._aimd = AimdLimit(
            maximum if initial is None else initial, minimum=minimum, maximum=maximum, cooldown=cooldown
        )
        self._slots = trio.CapacityLimiter(self._aimd.value)

    @property
    def limit(self) -> int:
        """Return how many slots may be held at once now."""
        return self._aimd.value

    @property
    def maximum(self) -> int:
        """Return the most slots that may ever be held at once."""
        return self._aimd.maximum

    @property
    def in_use(self) -> int:
        """Return how many slots are held (briefly above `limit` right after a shrink)."""
        return self._slots.borrowed_tokens

    async def acquire(self, borrower: object | None = None) -> None:
        """Wait for a slot, held by `borrower` (default: the current task) until `release`."""
        if borrower is None:
            await self._slots.acquire()
        else:
            await self._slots.acquire_on_behalf_of(borrower)

    def release(self, borrower: object | None = None) -> None:
        """Give back the slot held by `borrower` (default: the current task)."""
        if borrower is None:
            self._slots.release()
        else:
            self._slots.release_on_behalf_of(borrower)

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()

    def throttled(self) -> bool:
        """Note a 429: halve the limit (once per cooldown); return whether it shrank."""
        shrank = self._aimd.on_throttle(trio.current_time())
        self._slots.total_tokens = self._aimd.value
        return shrank

    def succeeded(self) -> None:
        """Note a successful request: grow the limit back toward the maximum."""
        self._aimd.on_success()
        if self._slots.total_tokens != self._aimd.value:
            self._slots.total_tokens = self._aimd.value
