"""The runner on virtual time: limits hold, resume never creates twice, unknown outcomes are settled by listing.

The emulator runs in-process (its clock is trio's, so MockClock drives job lifecycles too); the runner talks to it
through `Emulator.transport()`. Every API request is timestamped on the way in.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import httpx
import pytest
import trio
from pydantic import SecretStr

from leapbatch.api.client import LeapClient, api_http, download_http
from leapbatch.api.ratelimit import AdaptiveLimiter, RequestGate
from leapbatch.api.retry import SafeRetry
from leapbatch.emulator import API_ORIGIN, Emulator, EmulatorConfig
from leapbatch.errors import ApiUnavailableError
from leapbatch.events import Event, JobFailed, JobFinished, JobSubmitted
from leapbatch.folder.images import ImageStore
from leapbatch.folder.ledger import open_folder, read_ledger
from leapbatch.folder.records import IntentRecord
from leapbatch.folder.state import Phase
from leapbatch.jobs import Job
from leapbatch.run.runner import Runner, RunOptions, RunSummary
from leapbatch.wire import CreateInferenceDto

MODEL = "26a1a203-3a46-42cb-8cfa-f4de075907d8"


def make_jobs(count: int, *, images: int = 1) -> list[Job]:
    """Return `count` distinct small jobs."""
    return [
        Job.build(
            MODEL,
            CreateInferenceDto(
                prompt=f"a fox, number {i}",
                seed=i,
                width=64,
                height=64,
                steps=10,
                number_of_images=images,
                prompt_strength=7,
            ),
        )
        for i in range(count)
    ]


class RecordingTransport(httpx.AsyncBaseTransport):
    """Pass requests on, noting when each API request was sent and how many job slots were held then."""

    def __init__(self, inner: httpx.AsyncBaseTransport, limiter: AdaptiveLimiter) -> None:
        self.inner = inner
        self.limiter = limiter
        self.sent: list[float] = []
        self.slots_held: list[int] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(trio.current_time())
        self.slots_held.append(self.limiter.in_use)
        return await self.inner.handle_async_request(request)


class InFlight:
    """An event sink counting jobs between `submitted` and their end."""

    def __init__(self) -> None:
        self.now = 0
        self.peak = 0

    def __call__(self, event: Event) -> None:
        if isinstance(event, JobSubmitted):
            self.now += 1
            self.peak = max(self.peak, self.now)
        elif isinstance(event, JobFinished | JobFailed):
            self.now -= 1


async def run_jobs(
    emulator: Emulator,
    folder: Path,
    jobs: Sequence[Job],
    *,
    rate: float = 50.0,
    burst: int = 5,
    max_in_flight: int = 8,
    options: RunOptions | None = None,
    sink: InFlight | None = None,
) -> tuple[RunSummary, RecordingTransport]:
    """Run `jobs` to the end against `emulator`, with a fresh ledger handle on `folder`."""
    limiter = AdaptiveLimiter(max_in_flight)
    transport = RecordingTransport(emulator.transport(), limiter)
    with open_folder(folder) as ledger:
        async with (
            api_http(API_ORIGIN, SecretStr("k"), transport=transport) as http,
            download_http(transport=emulator.transport()) as downloads,
        ):
            client = LeapClient(http, gate=RequestGate(rate, burst), retry=SafeRetry())
            runner = Runner(
                client=client,
                downloads=downloads,
                ledger=ledger,
                store=ImageStore(folder),
                limiter=limiter,
                options=options or RunOptions(),
                events=sink or InFlight(),
            )
            summary = await runner.run(jobs)
    return summary, transport


def most_in_window(times: list[float], window: float) -> int:
    """Return the most timestamps that fall in any half-open window of length `window`."""
    times = sorted(times)
    most, start = 0, 0
    for end, moment in enumerate(times):
        while times[start] <= moment - window:
            start += 1
        most = max(most, end - start + 1)
    return most


async def test_rate_limit_and_in_flight_cap_hold(autojump_clock: trio.testing.MockClock, tmp_path: Path) -> None:
    """Requests never exceed burst + rate * window in any window, and jobs in flight never exceed the cap."""
    emulator = Emulator(EmulatorConfig(speed=1.0, seed=3))
    sink = InFlight()
    summary, transport = await run_jobs(
        emulator, tmp_path, make_jobs(40), rate=4.0, burst=3, max_in_flight=5, sink=sink
    )
    assert 40 == summary.finished
    for window in (0.5, 1.0, 5.0, 20.0):
        assert most_in_window(transport.sent, window) <= 3 + 4.0 * window, window
    assert max(transport.slots_held) <= 5
    assert sink.peak <= 5
    assert 40 == emulator.stats()["jobs"]["created"]


async def test_many_jobs_in_flight_are_polled_through_listings(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    """With many jobs in flight, finished ones are learned from findAll pages: far fewer polls than jobs."""
    emulator = Emulator(EmulatorConfig(speed=1.0, seed=4))
    summary, _ = await run_jobs(emulator, tmp_path, make_jobs(60), rate=1000.0, burst=100, max_in_flight=60)
    stats = emulator.stats()["requests"]
    assert 60 == summary.finished
    assert 60 == stats["create"]
    assert stats["get"] + stats["list"] < 60


async def test_resume_after_cancel_creates_each_job_once(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    """A run cancelled part-way, then run again, creates every job exactly once and finishes them all."""
    emulator = Emulator(EmulatorConfig(speed=1.0, seed=5))
    jobs = make_jobs(20)
    with trio.move_on_after(3.0):
        await run_jobs(emulator, tmp_path, jobs, rate=5.0, burst=2, max_in_flight=6)
    phases = {js.phase for js in read_ledger(tmp_path).jobs.values()}
    assert Phase.SUBMITTED in phases
    summary, _ = await run_jobs(emulator, tmp_path, jobs)
    assert 20 == summary.finished
    assert 20 == emulator.stats()["jobs"]["created"]
    summary_again, transport = await run_jobs(emulator, tmp_path, jobs)
    assert 20 == summary_again.finished
    assert [] == transport.sent  # finished jobs cost no request


def write_intent(folder: Path, job: Job, t: float) -> None:
    """Leave an intent with no `submitted`, as a crash between the two does."""
    with open_folder(folder) as ledger:
        ledger.append(
            IntentRecord(
                t=t, key=job.key, model=job.model_id, fingerprint=job.fingerprint, request=job.request.to_wire()
            )
        )


@pytest.mark.parametrize("created_before_crash", [True, False])
async def test_intent_without_submitted_is_settled_by_listing(
    autojump_clock: trio.testing.MockClock, tmp_path: Path, created_before_crash: bool
) -> None:
    """An orphan intent adopts the job the lost create made, or creates it if the create never arrived."""
    emulator = Emulator(EmulatorConfig(speed=1.0, seed=6))
    jobs = make_jobs(3)
    orphan = jobs[1]
    write_intent(tmp_path, orphan, t=0.0)
    if created_before_crash:
        async with api_http(API_ORIGIN, SecretStr("k"), transport=emulator.transport()) as http:
            lost = await LeapClient(http).create(orphan.model_id, orphan.request)
    summary, _ = await run_jobs(emulator, tmp_path, jobs)
    state = read_ledger(tmp_path).jobs[orphan.key]
    assert 3 == summary.finished
    assert 3 == emulator.stats()["jobs"]["created"]
    assert (1 if created_before_crash else 0) == summary.adopted
    if created_before_crash:
        assert lost.id == state.inference_id


async def test_failed_jobs_stay_failed_unless_retried(autojump_clock: trio.testing.MockClock, tmp_path: Path) -> None:
    """Jobs that end `failed` are recorded; a rerun keeps them failed; --retry-failed resubmits exactly those."""
    emulator = Emulator(EmulatorConfig(speed=1.0, seed=7, fail_rate=1.0))
    jobs = make_jobs(4)
    summary, _ = await run_jobs(emulator, tmp_path, jobs)
    assert (0, 4) == (summary.finished, summary.failed)
    again, transport = await run_jobs(emulator, tmp_path, jobs)
    assert (0, 4, []) == (again.finished, again.failed, transport.sent)
    healthy = Emulator(EmulatorConfig(speed=1.0, seed=7))
    retried, _ = await run_jobs(healthy, tmp_path, jobs, options=RunOptions(retry_failed=True))
    assert (4, 0) == (retried.finished, retried.failed)
    assert 4 == healthy.stats()["jobs"]["created"]


async def test_job_past_its_timeout_is_deleted_and_failed(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    """A job not finished within job_timeout is deleted remotely and recorded as failed (timeout)."""
    emulator = Emulator(EmulatorConfig(speed=0.001, seed=8))  # ~5,000 s per job
    summary, _ = await run_jobs(emulator, tmp_path, make_jobs(2), options=RunOptions(job_timeout=30.0))
    states = list(read_ledger(tmp_path).jobs.values())
    assert (0, 2) == (summary.finished, summary.failed)
    assert {"timeout"} == {js.failure.stage.value for js in states if js.failure}
    assert all(js.deleted for js in states)
    assert 0 == emulator.stats()["jobs"]["live"]


async def test_a_request_the_server_rejects_fails_with_its_messages(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    """A 400 marks the job failed at the create stage, with the server's messages, and costs no retry."""
    emulator = Emulator(EmulatorConfig(speed=1.0, max_dimension=32))
    summary, transport = await run_jobs(emulator, tmp_path, make_jobs(2))
    failures = [js.failure for js in read_ledger(tmp_path).jobs.values()]
    assert (0, 2) == (summary.finished, summary.failed)
    assert 2 == len(transport.sent)
    assert all(f is not None and f.stage.value == "create" and f.http_status == 400 for f in failures)
    assert all(f is not None and "width must not be greater than 32" in f.reason for f in failures)


async def test_a_refused_key_stops_the_batch_at_once(autojump_clock: trio.testing.MockClock, tmp_path: Path) -> None:
    """401 ends the run with ApiUnavailableError ("the API key was refused") after one request per job slot."""
    emulator = Emulator(EmulatorConfig(speed=1.0, token="the-right-one"))
    with pytest.raises(BaseExceptionGroup) as caught:
        await run_jobs(emulator, tmp_path, make_jobs(20), max_in_flight=2)
    group = caught.value.subgroup(ApiUnavailableError)
    assert group is not None
    refused: list[ApiUnavailableError] = []
    while group is not None and not refused:
        refused = [e for e in group.exceptions if isinstance(e, ApiUnavailableError)]
        group = next((e for e in group.exceptions if isinstance(e, BaseExceptionGroup)), None)
    assert refused[0].message.startswith("the API key was refused (HTTP 401")
    assert 0 == emulator.stats()["jobs"]["created"]
    assert emulator.stats()["requests"]["create"] <= 2  # at most one per job slot: a 401 is never retried


class SecondImageIsHtml(httpx.AsyncBaseTransport):
    """The image host, except that image 1 of every job comes back as an HTML page."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/1.png"):
            return httpx.Response(200, headers={"content-type": "text/html"}, content=b"<html>oops</html>")
        return await self.inner.handle_async_request(request)


async def test_a_job_that_fails_downloading_keeps_no_image(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    """If one image of a job cannot be had, the job fails at `download` and none of its images stays on disk."""
    emulator = Emulator(EmulatorConfig(speed=1.0))
    jobs = make_jobs(3, images=2)
    with open_folder(tmp_path) as ledger:
        async with (
            api_http(API_ORIGIN, SecretStr("k"), transport=emulator.transport()) as http,
            download_http(transport=SecondImageIsHtml(emulator.transport())) as downloads,
        ):
            runner = Runner(
                client=LeapClient(http),
                downloads=downloads,
                ledger=ledger,
                store=ImageStore(tmp_path),
                limiter=AdaptiveLimiter(4),
                options=RunOptions(),
            )
            summary = await runner.run(jobs)
    assert (0, 3) == (summary.finished, summary.failed)
    assert {"download"} == {js.failure.stage.value for js in read_ledger(tmp_path).jobs.values() if js.failure}
    assert [] == list((tmp_path / "images").iterdir())
