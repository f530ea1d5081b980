"""Specs of the run's ETA (`leapbatch.cli.eta`): from jobs that ended lately and the jobs left, on made-up times."""

from __future__ import annotations

import itertools
import math

import pytest

from leapbatch.cli.eta import MIN_ENDS, WINDOW, Throughput, end_rate, eta_seconds, eta_text


def test_no_eta_before_enough_jobs_ended() -> None:
    """Before MIN_ENDS jobs ended in this run there is no estimate, shown as `--`."""
    assert 3 == MIN_ENDS
    assert None is eta_seconds([1.0, 2.0], started=0.0, now=3.0, left=10)
    assert "--" == eta_text(eta_seconds([], started=0.0, now=3.0, left=10))
    assert eta_seconds([1.0, 2.0, 3.0], started=0.0, now=3.0, left=10) is not None


def test_the_eta_is_the_jobs_left_over_the_observed_rate() -> None:
    """Ten ends in the first ten seconds of a run: one job a second, so twenty jobs left take twenty seconds."""
    ends = [float(t) for t in range(1, 11)]
    assert 1.0 == end_rate(ends, started=0.0, now=10.0)
    assert 20.0 == eta_seconds(ends, started=0.0, now=10.0, left=20)


def test_only_the_recent_window_counts() -> None:
    """A fast start does not flatter a slow present: the rate is that of the last WINDOW seconds up to the last end."""
    assert 60.0 == WINDOW
    fast = [i / 10 for i in range(1, 101)]  # 100 jobs in the first 10 s
    slow = [100.0, 110.0, 120.0, 130.0, 140.0]  # then one job every 10 s
    assert 5 / 60 == end_rate(fast + slow, started=0.0, now=140.0)
    assert 30 / (5 / 60) == eta_seconds(fast + slow, started=0.0, now=140.0, left=30)


def test_too_few_recent_ends_take_the_last_few_from_the_end_before_them() -> None:
    """With fewer than MIN_ENDS ends in the window, the last MIN_ENDS count, from the end before them."""
    ends = [1.0, 2.0, 3.0, 4.0, 200.0]
    assert 3 / (210.0 - 2.0) == end_rate(ends, started=0.0, now=210.0)


def test_the_eta_grows_while_nothing_ends() -> None:
    """Between two ends the ETA rises at every look, also as the old ends leave the window: it never stands still."""
    ends = [1.0, 2.0, 3.0, 20.0, 21.0, 50.0]
    etas = [eta_seconds(ends, started=0.0, now=50.0 + step, left=10) for step in range(0, 600, 5)]
    known = [eta for eta in etas if eta is not None]
    assert len(etas) == len(known)
    assert all(later > earlier for earlier, later in itertools.pairwise(known))


def test_an_end_brings_the_estimate_back_down() -> None:
    """After a stall, a burst of ends lowers the ETA again."""
    ends = [1.0, 2.0, 3.0]
    stalled = eta_seconds(ends, started=0.0, now=100.0, left=10)
    burst = ends + [100.0 + i / 10 for i in range(20)]
    resumed = eta_seconds(burst, started=0.0, now=102.0, left=10)
    assert stalled is not None
    assert resumed is not None
    assert resumed < stalled


def test_nothing_left_is_an_eta_of_zero() -> None:
    """With no job left, the ETA is 0 whatever was observed."""
    assert 0.0 == eta_seconds([], started=0.0, now=5.0, left=0)


def test_throughput_keeps_what_the_estimate_needs() -> None:
    """`Throughput` answers as `eta_seconds` over every end it was told, though it forgets ends that no longer count."""
    ends = [i * 0.7 for i in range(1, 300)] + [300.0, 500.0, 900.0]
    seen = Throughput(0.0)
    for i, at in enumerate(ends, start=1):
        seen.ended(at)
        for now in (at, at + 30.0, at + 400.0):
            assert eta_seconds(ends[:i], started=0.0, now=now, left=7) == seen.eta(now, 7)
            assert end_rate(ends[:i], started=0.0, now=now) == seen.rate(now)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, "--"),
        (0.0, "0 s"),
        (44.6, "45 s"),
        (119.0, "119 s"),
        (600.0, "10 min"),
        (10_800.0, "3 h"),
        (math.inf, "--"),
    ],
)
def test_eta_text(seconds: float | None, text: str) -> None:
    """An ETA reads in seconds up to two minutes, then minutes up to two hours, then hours; unknown is `--`."""
    assert text == eta_text(seconds)
