"""The token bucket and the AIMD limit: pure maths first, then the trio wrappers on virtual time."""

from __future__ import annotations

import bisect
import math
import random

import pytest
import trio
import trio.testing
from hypothesis import given
from hypothesis import strategies as st

from leapbatch.api.ratelimit import AdaptiveLimiter, AimdLimit, RequestGate, TokenBucket

# Float sums of virtual time drift by a few ulps; the bound is checked with this much slack, far below one interval.
EPSILON = 1e-6


def most_in_window(times: list[float], width: float) -> int:
    """Return the most timestamps that fall in one closed window of length `width`."""
    ordered = sorted(times)
    return max(bisect.bisect_right(ordered, start + width) - i for i, start in enumerate(ordered))


def worst_excess(times: list[float], rate: float) -> float:
    """Return max over i <= j of (count in [t_i, t_j]) - rate * (t_j - t_i): the burst the times really used."""
    worst, lowest = float("-inf"), float("inf")
    for k, t in enumerate(sorted(times)):
        lowest = min(lowest, k - rate * t)
        worst = max(worst, k - rate * t - lowest + 1)
    return worst


def test_burst_is_free_then_one_token_per_interval() -> None:
    """The first `burst` reservations wait nothing; the next ones queue one interval apart."""
    bucket = TokenBucket(rate=10, burst=3)

    waits = [bucket.reserve(0.0) for _ in range(6)]

    assert [0.0, 0.0, 0.0, pytest.approx(0.1), pytest.approx(0.2), pytest.approx(0.3)] == waits


def test_idle_time_refills_only_up_to_burst() -> None:
    """An hour of silence saves `burst` tokens, not 36,000."""
    bucket = TokenBucket(rate=10, burst=2)
    bucket.reserve(0.0)

    waits = [bucket.reserve(3600.0) for _ in range(3)]

    assert [0.0, 0.0, pytest.approx(0.1)] == waits


def test_a_clock_that_steps_back_refills_nothing() -> None:
    """A `now` earlier than the last one is treated as no time passing."""
    bucket = TokenBucket(rate=1, burst=1)
    bucket.reserve(10.0)

    assert pytest.approx(1.0) == bucket.reserve(5.0)


@pytest.mark.parametrize(("rate", "burst"), [(0, 1), (-1, 1), (float("nan"), 1), (1, 0)])
def test_nonsense_bucket_settings_are_refused(rate: float, burst: int) -> None:
    """A bucket that could never grant, or never refill, is a ValueError."""
    with pytest.raises(ValueError, match="must be"):
        TokenBucket(rate, burst)


@given(
    rate=st.floats(min_value=0.5, max_value=100),
    burst=st.integers(min_value=1, max_value=20),
    gaps=st.lists(st.floats(min_value=0, max_value=2), min_size=1, max_size=200),
)
def test_granted_times_never_beat_the_bucket(rate: float, burst: int, gaps: list[float]) -> None:
    """Whatever the arrivals, granted times are in arrival order and use at most `burst` beyond `rate`."""
    bucket = TokenBucket(rate, burst)
    now, granted = 0.0, []
    for gap in gaps:
        now += gap
        granted.append(now + bucket.reserve(now))

    assert sorted(granted) == granted
    assert worst_excess(granted, rate) <= burst + EPSILON * rate


async def test_many_tasks_through_the_gate_respect_every_window(autojump_clock: trio.testing.MockClock) -> None:
    """Twenty tasks hammering the gate for 30 s: every window holds <= B + R*w, and the rate converges to R."""
    rate, burst, seconds = 10.0, 5, 30.05
    gate = RequestGate(rate=rate, burst=burst)
    sent: list[float] = []

    async def hammer() -> None:
        while True:
            await gate()
            if trio.current_time() > seconds:
                return
            sent.append(trio.current_time())

    async with trio.open_nursery() as nursery:
        for _ in range(20):
            nursery.start_soon(hammer)

    assert burst + int(rate * 30) == len(sent)
    for width in (0.05, 0.25, 1.0, 3.3, 10.0, 30.0):
        assert most_in_window(sent, width) <= burst + rate * width
    assert worst_excess(sent, rate) <= burst + EPSILON * rate


async def test_bursty_callers_get_the_burst_back_after_idling(autojump_clock: trio.testing.MockClock) -> None:
    """Callers that pause at random still never exceed B + R*w, bursts after pauses included."""
    rate, burst = 4.0, 8
    gate = RequestGate(rate=rate, burst=burst)
    sent: list[float] = []

    async def caller(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(40):
            await gate()
            sent.append(trio.current_time())
            await trio.sleep(rng.choice([0.0, 0.0, 0.3, 5.0]))

    async with trio.open_nursery() as nursery:
        for seed in range(6):
            nursery.start_soon(caller, seed)

    assert 240 == len(sent)
    for width in (0.1, 0.7, 2.5, 9.0):
        assert most_in_window(sent, width) <= burst + rate * width
    assert worst_excess(sent, rate) <= burst + EPSILON * rate
    assert burst == most_in_window(sent, 0.0)  # the saved-up burst was really used


def test_aimd_halves_per_throttle_down_to_the_minimum() -> None:
    """Throttles further apart than the cooldown halve the limit each time, and stop at `minimum`."""
    limit = AimdLimit(32, minimum=3, maximum=32, cooldown=2.0)
    seen = []
    for second in range(0, 12, 2):
        limit.on_throttle(float(second))
        seen.append(limit.value)

    assert [16, 8, 4, 3, 3, 3] == seen


def test_a_wave_of_throttles_halves_once() -> None:
    """Fifty 429s within one cooldown window are one signal: the limit halves once."""
    limit = AimdLimit(20, maximum=20, cooldown=2.0)

    shrank = [limit.on_throttle(100.0 + i / 50) for i in range(50)]

    assert 10 == limit.value
    assert [True] + [False] * 49 == shrank


def test_aimd_grows_one_step_per_window_of_successes() -> None:
    """At 16, sixteen successes make 17: growth is additive, not a doubling."""
    limit = AimdLimit(16, maximum=32)
    for _ in range(15):
        limit.on_success()
    assert 16 == limit.value

    limit.on_success()

    assert 17 == limit.value


def test_successes_bring_the_limit_back_to_the_maximum_and_no_further() -> None:
    """After a collapse to 1, enough successes restore the maximum, which more successes never pass."""
    limit = AimdLimit(32, maximum=32, cooldown=0.0)
    for second in range(6):
        limit.on_throttle(float(second))
    assert 1 == limit.value

    for _ in range(2000):
        limit.on_success()

    assert 32 == limit.value


@pytest.mark.parametrize(("initial", "minimum", "maximum"), [(0, 1, 4), (5, 1, 4), (2, 3, 4), (1, 0, 4)])
def test_inconsistent_aimd_bounds_are_refused(initial: int, minimum: int, maximum: int) -> None:
    """`1 <= minimum <= initial <= maximum` or a ValueError."""
    with pytest.raises(ValueError, match="minimum <= initial <= maximum"):
        AimdLimit(initial, minimum=minimum, maximum=maximum)


async def test_holders_never_exceed_the_limit_while_it_moves(autojump_clock: trio.testing.MockClock) -> None:
    """Forty jobs contend for slots while throttles and successes move the limit: no entry finds it full."""
    limiter = AdaptiveLimiter(maximum=8, minimum=2, cooldown=0.9)
    entries: list[tuple[int, int]] = []
    limits: list[int] = []

    async def job() -> None:
        for _ in range(10):
            async with limiter:
                entries.append((limiter.in_use, limiter.limit))
                # Hold until the next whole second, so slots change hands only at whole seconds.
                await trio.sleep_until(math.floor(trio.current_time() + EPSILON) + 1)

    async def weather() -> None:
        # Changes land at half seconds, slots change hands at whole seconds: an entry sees a settled limit.
        await trio.sleep(0.5)
        for second in range(60):
            if second in (3, 4, 5, 20):
                limiter.throttled()
            else:
                for _ in range(3):
                    limiter.succeeded()
            limits.append(limiter.limit)
            await trio.sleep(1.0)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(weather)
        for _ in range(40):
            nursery.start_soon(job)

    assert 400 == len(entries)
    assert [] == [(in_use, limit) for in_use, limit in entries if in_use > limit]
    assert 8 == max(in_use for in_use, _ in entries)
    assert 2 == min(limits)  # the throttles really pushed it down to the minimum
    assert 8 == limits[-1]  # and the successes brought it back


async def test_a_shrink_takes_effect_as_holders_leave(autojump_clock: trio.testing.MockClock) -> None:
    """Holders keep their slots through a shrink; newcomers wait until in_use is below the new limit."""
    limiter = AdaptiveLimiter(maximum=4)
    for holder in range(4):
        await limiter.acquire(borrower=holder)

    assert limiter.throttled()
    assert (4, 2) == (limiter.in_use, limiter.limit)

    entered = trio.Event()

    async def newcomer() -> None:
        async with limiter:
            entered.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(newcomer)
        for holder in range(3):
            await trio.testing.wait_all_tasks_blocked()
            assert not entered.is_set()
            limiter.release(borrower=holder)
        await entered.wait()

    assert (1, 2) == (limiter.in_use, limiter.limit)


async def test_limiter_throttles_once_per_cooldown_on_virtual_time(autojump_clock: trio.testing.MockClock) -> None:
    """`throttled()` reads trio's clock: repeats within the cooldown do nothing, later ones halve again."""
    limiter = AdaptiveLimiter(maximum=16, minimum=1, cooldown=2.0)

    first = [limiter.throttled(), limiter.throttled()]
    await trio.sleep(2.0)
    second = limiter.throttled()

    assert ([True, False], True, 4) == (first, second, limiter.limit)
