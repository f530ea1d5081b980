"""Specs of the slow count: jobs waiting more than twice their expected time (`Poller.overdue_count`), and the
runner's `JobsOverdue` events that carry it to the display."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import trio
import trio.testing
from pydantic import SecretStr

from leapbatch.api.client import LeapClient, api_http, download_http
from leapbatch.api.ratelimit import AdaptiveLimiter
from leapbatch.emulator import API_ORIGIN, Emulator, EmulatorConfig, fault_plan
from leapbatch.events import Event, JobFailed, JobsOverdue
from leapbatch.folder.images import ImageStore
from leapbatch.folder.ledger import open_folder
from leapbatch.jobs import Job
from leapbatch.run.overdue import SLOW_GRACE
from leapbatch.run.poller import Poller, expected_seconds
from leapbatch.run.runner import Runner, RunOptions
from leapbatch.wire import CreateInferenceDto, expected_generation_seconds

MODEL = "26a1a203-3a46-42cb-8cfa-f4de075907d8"


async def test_a_waiter_is_overdue_past_twice_its_expected_time_and_a_second() -> None:
    """Two waiters expecting 2 s and 10 s count from 5 s and 21 s on (twice the expected time and a second), or
    from 9 s and 25 s on with a grace of 5 s; a waiter that left never counts."""
    now = [100.0]
    poller = Poller(cast(LeapClient, object()), MODEL, clock=lambda: now[0])  # never run: nothing is polled
    async with trio.open_nursery() as nursery:
        nursery.start_soon(lambda: poller.wait("a", created_at=None, work=2.0, timeout=600.0))
        nursery.start_soon(lambda: poller.wait("b", created_at=None, work=10.0, timeout=600.0))
        await trio.testing.wait_all_tasks_blocked()
        counts = [poller.overdue_count(100.0 + waited) for waited in (0.0, 4.9, 5.0, 20.9, 21.0)]
        graced = [poller.overdue_count(100.0 + waited, grace=5.0) for waited in (8.9, 9.0, 24.9, 25.0)]
        now[0] = 130.0
        assert 2 == poller.overdue_count()
        nursery.cancel_scope.cancel()
    assert [0, 0, 1, 1, 2] == counts
    assert [0, 1, 1, 2] == graced
    assert 0 == poller.overdue_count(10_000.0)


def small_job(index: int) -> Job:
    """Return a small job (64x64, 10 steps)."""
    request = CreateInferenceDto(prompt=f"a fox {index}", width=64, height=64, steps=10, seed=index)
    return Job.build(model_id=MODEL, request=request)


async def run_logged(emulator: Emulator, folder: Path, jobs: list[Job]) -> list[tuple[float, Event]]:
    """Run `jobs` at speed 50 against `emulator` and return every event with its (virtual) time."""
    log: list[tuple[float, Event]] = []
    with open_folder(folder) as ledger:
        async with (
            api_http(API_ORIGIN, SecretStr("k"), transport=emulator.transport()) as http,
            download_http(transport=emulator.transport()) as downloads,
        ):
            runner = Runner(
                client=LeapClient(http),
                downloads=downloads,
                ledger=ledger,
                store=ImageStore(folder),
                limiter=AdaptiveLimiter(4),
                options=RunOptions(speed=50.0),
                events=lambda event: log.append((trio.current_time(), event)),
            )
            await runner.run(jobs)
    return log


async def test_stuck_jobs_are_reported_slow_until_they_are_given_up(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    """Two stuck jobs: `JobsOverdue(2)` once they waited twice their expected time and SLOW_GRACE more, before the
    timeout gave them up (the run ends there, so no count follows)."""
    emulator = Emulator(EmulatorConfig(speed=50.0, faults=fault_plan(rates={"stuck": 1.0})))
    jobs = [small_job(1), small_job(2)]
    started = trio.current_time()
    log = await run_logged(emulator, tmp_path, jobs)

    overdue = [(t, e.count) for t, e in log if isinstance(e, JobsOverdue)]
    failed = [t for t, e in log if isinstance(e, JobFailed)]
    expected = expected_seconds(expected_generation_seconds(10, 1), 50.0)
    assert [2] == [count for _, count in overdue]
    assert 5.0 == SLOW_GRACE
    assert started + 2 * expected + SLOW_GRACE <= overdue[0][0] < min(failed)


async def test_jobs_on_time_are_never_slow(autojump_clock: trio.testing.MockClock, tmp_path: Path) -> None:
    """A healthy run sends no `JobsOverdue` at all."""
    log = await run_logged(Emulator(EmulatorConfig(speed=50.0)), tmp_path, [small_job(i) for i in range(6)])

    assert [] == [e for _, e in log if isinstance(e, JobsOverdue)]
    assert 6 == sum(1 for _, e in log if type(e).__name__ == "JobFinished")
