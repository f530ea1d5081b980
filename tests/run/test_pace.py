"""Specs of the learned pace (`leapbatch.run.pace`, `run.poller`): the run learns how long jobs take on this server
from the jobs it sees finish, so a server faster or slower than it was told needs no `--speed`.

The poller specs run on virtual time against a fake server whose jobs end at exact times, so no figure here
depends on the machine's speed (the benchmark `benchmarks/pace.py` measures real runs).
"""

from __future__ import annotations

from typing import cast

import pytest
import trio
import trio.testing

from leapbatch.api.client import LeapClient
from leapbatch.api.clock import ServerClock
from leapbatch.run.pace import MIN_SAMPLES, WINDOW, Pace
from leapbatch.run.poller import SWEEPS_PER_JOB, Poller, sweep_spacing
from leapbatch.wire import InferenceEntity, InferenceState, expected_generation_seconds

WORK = expected_generation_seconds(10, 1)  # the 10-step jobs of `make_jobs`, on Leap's clock


def test_the_prior_is_work_over_speed_until_enough_jobs_finished() -> None:
    """Before `MIN_SAMPLES` jobs finished, a job is expected to take work / speed (0 at infinite speed)."""
    pace = Pace(speed=4.0)
    for _ in range(MIN_SAMPLES - 1):
        pace.observe(8.0, 1.0)
    assert (False, 2.0) == (pace.learned, pace.expected(8.0))
    assert 0.0 == Pace(speed=float("inf")).expected(8.0)


def test_what_finished_jobs_showed_replaces_the_prior() -> None:
    """Three jobs of 8 s of work seen finished after 2 s: a job of 4 s of work is expected to take 1 s."""
    pace = Pace(speed=1.0)
    for _ in range(MIN_SAMPLES):
        pace.observe(8.0, 2.0)
    assert (True, 1.0) == (pace.learned, pace.expected(4.0))


def test_one_stuck_or_instant_job_does_not_move_the_pace() -> None:
    """The median: among jobs at 1 s per second of work, one that took 100x and one that took 0 change nothing."""
    pace = Pace()
    for seconds in (5.0, 500.0, 5.0, 0.0, 5.0):
        pace.observe(5.0, seconds)
    assert 5.0 == pace.expected(5.0)


def test_a_server_that_changes_pace_is_followed_within_a_window() -> None:
    """After `WINDOW` jobs at the new pace, the old one is forgotten."""
    pace = Pace()
    for _ in range(WINDOW):
        pace.observe(1.0, 10.0)
    for _ in range(WINDOW // 2 + 1):
        pace.observe(1.0, 2.0)
    assert 2.0 == pace.expected(1.0)


@pytest.mark.parametrize(("work", "seconds"), [(0.0, 1.0), (-1.0, 1.0), (1.0, -1.0), (1.0, float("nan"))])
def test_samples_that_say_nothing_are_ignored(work: float, seconds: float) -> None:
    """No work, a negative or not-a-number duration: no sample."""
    pace = Pace()
    for _ in range(MIN_SAMPLES):
        pace.observe(work, seconds)
    assert not pace.learned


@pytest.mark.parametrize("waiters", [2, 10, 40, 100, 250])
def test_sweeps_cost_at_most_a_tenth_of_a_request_per_finishing_job_when_many_wait(waiters: int) -> None:
    """Sweeps come every quarter of the expected time, closer with many waiters, but the sweeps in one expected
    time never outnumber a tenth of the waiters (who finish in that time), unless that would leave them
    further apart than a quarter of it; never closer than a tenth of it."""
    expected = 3.0
    spacing = sweep_spacing(expected, waiters)
    assert expected * 0.1 <= spacing <= expected * 0.25
    assert expected / spacing <= max(SWEEPS_PER_JOB * waiters, 4.0) + 1e-9


class TimedServer:
    """A client of a server whose jobs each end `duration` seconds (virtual time) after they were created; it
    lists finished jobs newest first (one page) and counts every request."""

    def __init__(self, duration: float) -> None:
        self.duration = duration
        self.created: dict[str, float] = {}
        self.requests = 0
        self.clock = ServerClock()

    pages = LeapClient.pages  # the real, bounded paging over this fake's find_all

    def create(self, inference_id: str) -> None:
        self.created[inference_id] = trio.current_time()

    def entity(self, inference_id: str) -> InferenceEntity:
        made = self.created[inference_id]
        done = trio.current_time() >= made + self.duration
        state = InferenceState.FINISHED if done else InferenceState.PROCESSING
        return InferenceEntity(id=inference_id, state=state, created_at=CREATED + made)

    async def find_all(self, model_id: str, *, only_finished: bool, page: int, page_size: int) -> list[InferenceEntity]:
        self.requests += 1
        await trio.lowlevel.checkpoint()
        if page > 1:
            return []
        listed = [self.entity(i) for i in sorted(self.created, key=self.created.__getitem__, reverse=True)]
        return [e for e in listed if e.state is InferenceState.FINISHED or not only_finished][:page_size]

    async def find_one(self, model_id: str, inference_id: str) -> InferenceEntity:
        self.requests += 1
        await trio.lowlevel.checkpoint()
        return self.entity(inference_id)


CREATED = 1_800_000_000.0


async def rounds(server: TimedServer, *, count: int, width: int, speed: float = 1.0) -> list[float]:
    """Wait for `count` rounds of `width` jobs of `WORK` seconds of work on one poller told `speed`, each round
    created once the last ended, and return how long each job was seen to take (its true duration plus the lag)."""
    poller = Poller(cast(LeapClient, server), "m", pace=Pace(speed))
    seen: list[float] = []

    async def job(name: str) -> None:
        server.create(name)
        started = trio.current_time()
        found = await poller.wait(name, created_at=None, work=WORK, timeout=600.0, learn=True)
        assert found is not None
        seen.append(trio.current_time() - started)

    async with trio.open_nursery() as outer:
        outer.start_soon(poller.run)
        for r in range(count):
            async with trio.open_nursery() as jobs:
                for i in range(width):
                    jobs.start_soon(job, f"{r}-{i}")
        outer.cancel_scope.cancel()
    return seen


async def test_a_server_ten_times_faster_than_told_is_learned(autojump_clock: trio.testing.MockClock) -> None:
    """Jobs of 0.51 s on a server 10x faster than the poller's speed (1: Leap) says. Polled at Leap's pace, each
    would be seen after 1.27 s at the earliest (a quarter of Leap's 5.07 s); once the pace is learned (by the
    third round of 20), each is seen within a third of its duration of its end."""
    server = TimedServer(WORK / 10)
    seen = await rounds(server, count=6, width=20)

    assert min(seen[:20]) >= WORK / 4 - 1e-9  # the first round, on the prior
    later = seen[40:]
    assert max(later) <= server.duration * (1 + 1 / 3)


async def test_a_server_slower_than_told_is_looked_at_near_its_true_end(autojump_clock: trio.testing.MockClock) -> None:
    """Jobs of 15.2 s on a server 3x slower than told: once learned (from the third round of 20 on), no job is seen
    later than 1.35x its time, and the six rounds cost less than one request a job."""
    server = TimedServer(WORK * 3)
    seen = await rounds(server, count=6, width=20)

    assert max(seen[40:]) <= server.duration * 1.35
    assert server.requests < 120
