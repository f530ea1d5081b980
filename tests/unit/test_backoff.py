"""`Retry-After` parsing and backoff delays: pure functions of their inputs."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from leapbatch.api.backoff import RETRY_AFTER_CEILING, backoff_delay, parse_retry_after

NOW = datetime(2024, 1, 1, 12, 0, 0, tzinfo=UTC)


class UpperBound(random.Random):
    """A random source whose `uniform` always returns the top of its range."""

    def uniform(self, a: float, b: float) -> float:
        """Return `b`."""
        return b


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        pytest.param("5", 5.0, id="seconds"),
        pytest.param(" 5 ", 5.0, id="seconds-padded"),
        pytest.param("0", 0.0, id="zero"),
        pytest.param("120", 120.0, id="two-minutes"),
        pytest.param("3600", 3600.0, id="an-hour-is-kept-for-the-policy-to-clamp"),
        pytest.param("99999", RETRY_AFTER_CEILING, id="huge-seconds-clamped"),
        pytest.param("9" * 400, RETRY_AFTER_CEILING, id="absurd-seconds-clamped"),
        pytest.param("Mon, 01 Jan 2024 12:00:30 GMT", 30.0, id="http-date"),
        pytest.param("Mon, 01 Jan 2024 12:00:30 -0000", 30.0, id="http-date-without-zone"),
        pytest.param("Mon, 01 Jan 2024 13:00:30 +0100", 30.0, id="http-date-other-zone"),
        pytest.param("Mon, 01 Jan 2024 11:00:00 GMT", 0.0, id="past-date"),
        pytest.param("Tue, 02 Jan 2024 12:00:00 GMT", 86_400.0, id="a-day-ahead"),
        pytest.param("Wed, 03 Jan 2024 12:00:00 GMT", RETRY_AFTER_CEILING, id="far-date-clamped"),
        pytest.param("soon", None, id="garbage"),
        pytest.param("-5", None, id="negative"),
        pytest.param("1.5", None, id="fraction"),
        pytest.param("", None, id="empty"),
        pytest.param("   ", None, id="blank"),
        pytest.param(None, None, id="absent"),
    ],
)
def test_parse_retry_after(header: str | None, expected: float | None) -> None:
    """Delta-seconds and HTTP dates become seconds, clamped to [0, a day] (the policy applies max_retry_after);
    anything else is None."""
    assert expected == parse_retry_after(header, now=NOW)


def test_unicode_digits_are_garbage_not_a_crash() -> None:
    """A header of non-ASCII 'digits' such as '²' is garbage (None), not a ValueError from the client."""
    assert None is parse_retry_after("²", now=NOW)


@pytest.mark.parametrize(
    ("attempt", "expected"),
    [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 8.0), (6, 10.0), (30, 10.0), (0, 0.5)],
)
def test_backoff_ceiling_doubles_then_caps(attempt: int, expected: float) -> None:
    """The top of the jitter range is base * 2**(attempt-1), capped (attempt 0 counts as the first)."""
    assert expected == backoff_delay(attempt, base=0.5, cap=10.0, rng=UpperBound())


@given(attempt=st.integers(min_value=1, max_value=60), seed=st.integers(min_value=0, max_value=2**32))
def test_full_jitter_stays_in_range(attempt: int, seed: int) -> None:
    """Every delay lies in [0, min(cap, base * 2**(attempt-1))]."""
    delay = backoff_delay(attempt, base=0.25, cap=30.0, rng=random.Random(seed))

    assert 0.0 <= delay <= min(30.0, 0.25 * 2 ** (attempt - 1))


def test_full_jitter_spreads_over_the_whole_range() -> None:
    """A thousand seeded delays cover the range from near 0 to near the ceiling (full jitter, not equal jitter)."""
    rng = random.Random(2024)

    delays = [backoff_delay(4, base=1.0, cap=60.0, rng=rng) for _ in range(1000)]

    assert (True, True) == (min(delays) < 0.1, max(delays) > 7.9)


def test_backoff_survives_absurd_attempt_numbers() -> None:
    """Attempt 2000 sleeps at most the cap instead of raising OverflowError."""
    assert backoff_delay(2000, base=0.5, cap=30.0, rng=random.Random(0)) <= 30.0
