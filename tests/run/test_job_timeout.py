"""Specs of the job timeout on a faster server: job_timeout counts on Leap's clock, with a floor for the client's own
waits (`poller.job_timeout_seconds`), and the runner gives a stuck job up after that, not after 600 real seconds."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import trio
import trio.testing
from pydantic import SecretStr

from leapbatch.api.client import LeapClient, api_http, download_http
from leapbatch.api.ratelimit import AdaptiveLimiter
from leapbatch.emulator import API_ORIGIN, Emulator, EmulatorConfig, fault_plan
from leapbatch.folder.images import ImageStore
from leapbatch.folder.ledger import open_folder, read_ledger
from leapbatch.jobs import Job
from leapbatch.run.poller import JOB_TIMEOUT_FLOOR, job_timeout_seconds
from leapbatch.run.runner import Runner, RunOptions
from leapbatch.wire import CreateInferenceDto


@pytest.mark.parametrize(
    ("job_timeout", "speed", "expected"),
    [
        (600.0, 1.0, 600.0),  # Leap: as written
        (600.0, 5.0, 120.0),  # a 5x server: a fifth
        (600.0, 50.0, 60.0),  # 12 s of the server's work, but never under the floor
        (600.0, math.inf, 60.0),  # instant jobs: the floor
        (30.0, 50.0, 30.0),  # a timeout under the floor is kept as the user set it
        (30.0, 1.0, 30.0),
        (86_400.0, 100.0, 864.0),
    ],
)
def test_job_timeout_counts_on_leaps_clock_with_a_floor(job_timeout: float, speed: float, expected: float) -> None:
    """The wait is job_timeout / speed, but never under min(job_timeout, JOB_TIMEOUT_FLOOR)."""
    assert 60.0 == JOB_TIMEOUT_FLOOR
    assert expected == job_timeout_seconds(job_timeout, speed)


async def test_a_stuck_job_on_a_fast_server_is_given_up_after_the_scaled_timeout(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    """At speed 50 a job that never leaves `queued` is deleted and failed after 60 s (virtual), not 600."""
    plan = fault_plan(rates={"stuck": 1.0})
    emulator = Emulator(EmulatorConfig(speed=50.0, faults=plan))
    job = Job.build(model_id="m", request=CreateInferenceDto(prompt="a fox", width=64, height=64, seed=1))
    started = trio.current_time()
    with open_folder(tmp_path) as ledger:
        async with (
            api_http(API_ORIGIN, SecretStr("k"), transport=emulator.transport()) as http,
            download_http(transport=emulator.transport()) as downloads,
        ):
            runner = Runner(
                client=LeapClient(http),
                downloads=downloads,
                ledger=ledger,
                store=ImageStore(tmp_path),
                limiter=AdaptiveLimiter(4),
                options=RunOptions(speed=50.0),
            )
            summary = await runner.run([job])
    waited = trio.current_time() - started

    failure = read_ledger(tmp_path).jobs[job.key].failure
    assert (0, 1) == (summary.finished, summary.failed)
    assert failure is not None
    assert "timeout" == failure.stage.value
    assert "not finished after 60 s (job_timeout)" == failure.reason
    assert 60.0 <= waited < 70.0
