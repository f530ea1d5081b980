"""Specs of a run against servers that lag, stall and lie: never pay twice, never hang, never record a lie.

Each test runs the real Runner against the in-process emulator with one of its hostile faults (or a fault written
here through the emulator's seam) on trio's MockClock, so waits of minutes take no time and "seconds until the end"
is exact. What is asserted is the promise itself: creates per job (the emulator's count), jobs finished or failed
and why, virtual seconds until the run ended, and what the ledger recorded.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import httpx
import pytest
import trio
import trio.testing
from pydantic import SecretStr

from leapbatch.api.client import LeapClient, api_http, download_http
from leapbatch.api.ratelimit import AdaptiveLimiter
from leapbatch.api.retry import SafeRetry
from leapbatch.emulator import API_ORIGIN, Emulator, EmulatorConfig, Reply, Request, fault_plan
from leapbatch.emulator.asgi import DROP, Fault, FaultPlan, Handler, Twist, error_reply
from leapbatch.errors import ApiUnavailableError
from leapbatch.folder.images import ImageStore
from leapbatch.folder.ledger import open_folder, read_ledger
from leapbatch.folder.state import LedgerState, Phase
from leapbatch.jobs import Job
from leapbatch.run.runner import Runner, RunOptions, RunSummary
from leapbatch.wire import CreateInferenceDto

MODEL = "26a1a203-3a46-42cb-8cfa-f4de075907d8"
HTTP_TIMEOUT = 5.0  # the clients' read timeout in these tests (their whole-answer deadline is four times this)


def make_jobs(count: int, *, images: int = 1) -> list[Job]:
    """Return `count` distinct small jobs."""
    return [
        Job.build(
            MODEL,
            CreateInferenceDto(
                prompt=f"a fox, number {i}", seed=i, width=64, height=64, steps=10, number_of_images=images
            ),
        )
        for i in range(count)
    ]


@dataclass
class Outcome:
    """What a run did, as the run, the ledger and the server saw it."""

    summary: RunSummary
    state: LedgerState
    created: int  # jobs the server made (each one paid)
    seconds: float  # virtual seconds until the run ended


async def run_against(
    emulator: Emulator, folder: Path, jobs: Sequence[Job], *, options: RunOptions | None = None
) -> Outcome:
    """Run `jobs` to the end against `emulator` with leapbatch's retry policy and timeouts as `run` wires them."""
    timeout = httpx.Timeout(HTTP_TIMEOUT, pool=None)
    started = trio.current_time()
    with open_folder(folder) as ledger:
        async with (
            api_http(API_ORIGIN, SecretStr("k"), transport=emulator.transport(), timeout=timeout) as http,
            download_http(transport=emulator.transport()) as downloads,
        ):
            downloads.timeout = timeout
            runner = Runner(
                client=LeapClient(http, retry=SafeRetry()),
                downloads=downloads,
                ledger=ledger,
                store=ImageStore(folder),
                limiter=AdaptiveLimiter(8),
                options=options or RunOptions(speed=1000.0),
            )
            summary = await runner.run(jobs)
    return Outcome(summary, read_ledger(folder), emulator.stats()["jobs"]["created"], trio.current_time() - started)


@dataclass(frozen=True)
class LostAndLagging:
    """A create the server makes, lists only `lag` seconds later, and whose answer it loses (a fault of our own)."""

    lag: float
    name: str = "lost_and_lagging"
    loses_reply: bool = True

    async def apply(self, request: Request, handler: Handler) -> Reply:
        """Run the create with a listing lag, then close the connection without answering."""
        await handler(replace(request, twist=Twist(list_lag=self.lag)))
        return DROP


LOST = LostAndLagging(lag=0.0)  # the job is made, the answer lost (reset_after, on creates only)


@dataclass(frozen=True)
class OnRoutes:
    """A plan that gives every request to a route the fault a plan of its own draws for it (other routes: none)."""

    plans: Mapping[str, FaultPlan]

    def decide(self, request: Request) -> Fault | None:
        """Return the fault of the request's route, or None."""
        plan = self.plans.get(request.route)
        return None if plan is None else plan.decide(request)


@dataclass(frozen=True)
class Always:
    """A plan that always answers the same fault."""

    fault: Fault

    def decide(self, request: Request) -> Fault:
        """Return the fault."""
        return self.fault


def forced(name: str, **options: float) -> FaultPlan:
    """Return the emulator's seeded plan with fault `name` at rate 1."""
    plan = fault_plan(rates={name: 1.0}, **options)  # type: ignore[arg-type]
    assert plan is not None
    return plan


def finished(outcome: Outcome) -> int:
    """Return how many jobs the ledger has finished."""
    return sum(job.phase is Phase.FINISHED for job in outcome.state.jobs.values())


async def test_a_create_committed_after_the_client_gave_up_is_adopted_not_paid_again(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    """slow_commit: the server commits each job 8 s after its create and answers 8 s later still; the client gives
    up at 5 s, finds nothing at once, keeps looking, and adopts the job: one create per job."""
    plan = fault_plan(rates={"slow_commit": 1.0}, delay_seconds=8.0)
    emulator = Emulator(EmulatorConfig(speed=1000.0, faults=plan))

    outcome = await run_against(emulator, tmp_path, make_jobs(4))

    assert (4, 4, 4) == (outcome.summary.finished, outcome.summary.adopted, outcome.created)


async def test_a_lost_create_listed_late_is_adopted_not_paid_again(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    """A create whose answer is lost and whose job is listed only 20 s later is found by a later look within the
    settle window: one create per job (with one quick listing it was paid for twice)."""
    emulator = Emulator(EmulatorConfig(speed=1000.0, faults=OnRoutes({"create": Always(LostAndLagging(lag=20.0))})))

    outcome = await run_against(emulator, tmp_path, make_jobs(3))

    assert (3, 3, 3) == (outcome.summary.finished, outcome.summary.adopted, outcome.created)


async def test_a_lost_create_on_a_server_clock_five_minutes_behind_is_adopted(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    """With createdAt 300 s behind our clock (past the old fixed 120 s allowance) a lost create's job is still
    matched, the offset learned from the server's answers: one create per job."""
    plan = OnRoutes({"create": Always(LOST)})
    emulator = Emulator(EmulatorConfig(speed=1000.0, faults=plan, clock_offset=-300.0))

    outcome = await run_against(emulator, tmp_path, make_jobs(3))

    assert (3, 3, 3) == (outcome.summary.finished, outcome.summary.adopted, outcome.created)


@dataclass(frozen=True)
class LostInABusyServer:
    """A create that is made, then `others` creates of other users land after it, and its answer is lost."""

    others: int
    name: str = "lost_in_a_busy_server"
    loses_reply: bool = True

    async def apply(self, request: Request, handler: Handler) -> Reply:
        """Make the job, then the others' (newer, so listed before it), then close without answering."""
        await handler(request)
        for n in range(self.others):
            body = json.dumps({"prompt": f"someone else's job {n}", "seed": n}).encode()
            await handler(replace(request, body=body))
        return DROP


async def test_a_server_that_ignores_page_cannot_hold_a_settling_create_forever(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    """A lost create, 150 newer jobs of others after it, and listings that answer page 1 whatever page is asked:
    every look stops at the repeated page (it used to page forever), the job is left unsettled (never created a
    second time on a look that could not end), and the run ends."""
    plans = {"create": Always(LostInABusyServer(others=150)), "list": forced("page_ignored")}
    emulator = Emulator(EmulatorConfig(speed=1000.0, faults=OnRoutes(plans)))

    outcome = await run_against(emulator, tmp_path, make_jobs(1))

    assert (0, 0, 1) == (outcome.summary.finished, outcome.summary.failed, outcome.summary.unsettled)
    assert 151 == outcome.created  # ours once, and the others'
    assert outcome.seconds < 600.0


async def test_a_findone_answer_for_another_job_is_never_recorded(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    """wrong_id on a third of findOnes: the answers for another id are refused; every job ends with its own
    images (the same request it sent), none with another's."""
    plan = fault_plan(rates={"wrong_id": 0.34}, seed=2)
    emulator = Emulator(EmulatorConfig(speed=1000.0, faults=plan))
    jobs = make_jobs(3)

    outcome = await run_against(emulator, tmp_path, jobs, options=RunOptions(speed=1000.0, list_threshold=100))

    assert 3 == outcome.summary.finished
    assert len({job.inference_id for job in outcome.state.jobs.values()}) == 3
    assert emulator.stats()["faults"].get("wrong_id", 0) >= 1


async def test_a_create_answered_with_another_jobs_id_fails_safely(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    """duplicate_id: the second create answers the first job's id. It is not recorded as the second job's (two jobs
    never share an id in the ledger, and the run does not hang); that job fails at create, saying why."""
    jobs = make_jobs(2)
    emulator = Emulator(EmulatorConfig(speed=1000.0))
    first = await run_against(emulator, tmp_path, jobs[:1])
    assert 1 == first.summary.finished
    emulator.state.config = replace(emulator.state.config, faults=fault_plan(rates={"duplicate_id": 1.0}))

    outcome = await run_against(emulator, tmp_path, jobs)

    second = outcome.state.jobs[jobs[1].key]
    assert (Phase.FAILED, None) == (second.phase, second.inference_id)
    assert second.failure is not None
    assert "which job" in second.failure.reason
    assert "already owns" in second.failure.reason
    assert outcome.seconds < 600.0


async def test_a_job_listing_more_images_than_it_asked_for_downloads_none(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    """extra_images: a job that asked for 1 image and lists 300 fails at download (a server error) and no image of
    it is fetched."""
    plan = fault_plan(rates={"extra_images": 1.0}, seed=4)
    emulator = Emulator(EmulatorConfig(speed=1000.0, faults=plan))

    outcome = await run_against(emulator, tmp_path, make_jobs(2))

    failures = [job.failure for job in outcome.state.jobs.values()]
    assert (0, 2) == (outcome.summary.finished, outcome.summary.failed)
    assert all(f is not None and "images for a job that asked for 1" in f.reason for f in failures)
    assert 0 == emulator.stats()["requests"]["image"]


async def test_one_transient_404_from_findone_does_not_fail_a_paid_job(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    """transient_404 on half the findOnes: a 404 is confirmed (findOne again, then a listing) before a job is
    declared gone, so every job finishes."""
    plan = fault_plan(rates={"transient_404": 0.5}, seed=6)
    emulator = Emulator(EmulatorConfig(speed=1000.0, faults=plan))

    outcome = await run_against(emulator, tmp_path, make_jobs(4), options=RunOptions(speed=1000.0, list_threshold=100))

    assert (4, 0) == (outcome.summary.finished, outcome.summary.failed)
    assert emulator.stats()["faults"]["transient_404"] >= 1


async def test_a_job_really_deleted_on_the_server_is_still_declared_gone(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    """A job deleted behind our back answers 404 every time and is not listed: it fails (generate, 404)."""
    emulator = Emulator(EmulatorConfig(speed=0.01))  # jobs take ~20 minutes: deleted long before they end
    jobs = make_jobs(1)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(run_against, emulator, tmp_path, jobs)
        await trio.sleep(30.0)
        job = next(iter(emulator.state._jobs.values()))
        emulator.state.delete(MODEL, job.id)

    failure = read_ledger(tmp_path).jobs[jobs[0].key].failure
    assert failure is not None
    assert (404, "generate") == (failure.http_status, failure.stage.value)


async def test_trickled_images_end_at_their_deadline_not_never(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    """Images trickled at 1 byte a second pass every read timeout; each meets its whole-body deadline (four read
    timeouts), so the jobs fail at download (re-polled for free by the next run) instead of taking hours."""
    emulator = Emulator(EmulatorConfig(speed=1000.0, faults=OnRoutes({"image": forced("trickle", trickle_rate=1.0)})))

    outcome = await run_against(emulator, tmp_path, make_jobs(2))

    failures = [job.failure for job in outcome.state.jobs.values()]
    assert (0, 2, 2) == (outcome.summary.finished, outcome.summary.failed, outcome.created)
    assert all(f is not None and "no complete body within 20 s" in f.reason for f in failures)
    assert outcome.seconds < 600.0


async def test_an_api_that_trickles_every_answer_ends_the_run_not_never(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    """Every API answer trickled at 1 byte a second: each meets the whole-answer deadline, the retry budget sees a
    dead API, and the run ends with ApiUnavailableError within minutes (not the hours the bodies would take)."""
    emulator = Emulator(EmulatorConfig(speed=1000.0, faults=forced("trickle", trickle_rate=1.0)))
    started = trio.current_time()

    with pytest.RaisesGroup(ApiUnavailableError, flatten_subgroups=True, allow_unwrapped=True):
        await run_against(emulator, tmp_path, make_jobs(2))

    assert trio.current_time() - started < 600.0
    assert emulator.stats()["jobs"]["created"] <= 2


@dataclass
class NotFoundAtFirst:
    """findOne answers 404 for the first `times` requests about each job, then the truth (a lagging replica)."""

    times: int
    seen: dict[str, int] = field(default_factory=dict)
    name: str = "not_found_at_first"

    async def apply(self, request: Request, handler: Handler) -> Reply:
        """Answer 404 while the job is young in this replica's eyes, else run the handler."""
        inference_id = request.params["inference_id"]
        self.seen[inference_id] = self.seen.get(inference_id, 0) + 1
        if self.seen[inference_id] <= self.times:
            return error_reply(404, f"Inference {inference_id} not found")
        return await handler(request)


async def test_a_job_findone_keeps_calling_gone_but_the_listing_shows_is_not_failed(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    """findOne answers 404 five times in a row per job while listings show the jobs: the listing that confirms a
    404 sees them, so no paid job is declared gone, and every job finishes."""
    plan = OnRoutes({"get": Always(NotFoundAtFirst(times=5))})
    emulator = Emulator(EmulatorConfig(speed=1000.0, faults=plan))

    outcome = await run_against(emulator, tmp_path, make_jobs(2), options=RunOptions(speed=1000.0, list_threshold=100))

    assert (2, 0) == (outcome.summary.finished, outcome.summary.failed)


@dataclass(frozen=True)
class ThrottleFor:
    """A 429 asking the client to wait `seconds` (a fault of our own: the emulator's throttle draws its styles)."""

    seconds: int
    name: str = "throttle_for"
    loses_reply: bool = False

    async def apply(self, request: Request, handler: Handler) -> Reply:
        """Refuse with Retry-After."""
        return error_reply(429, "ThrottlerException: Too Many Requests", headers=(("Retry-After", str(self.seconds)),))


async def test_jobs_that_finish_while_a_sweep_sleeps_past_their_deadline_are_finished_not_timed_out(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    """Every listing answers 429 with Retry-After 120, so the sweep sleeps past the 60 s job timeout while the jobs
    finish on the server. One last findOne before a job is given up sees them finished: none is failed or deleted."""
    emulator = Emulator(EmulatorConfig(speed=1000.0, faults=OnRoutes({"list": Always(ThrottleFor(120))})))

    outcome = await run_against(emulator, tmp_path, make_jobs(4), options=RunOptions(speed=1000.0, job_timeout=60))

    assert (4, 0) == (outcome.summary.finished, outcome.summary.failed)
    assert 0 == emulator.stats()["jobs"]["deleted"]
