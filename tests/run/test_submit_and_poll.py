"""Specs of `run.submit` and `run.poller` alone: who may be adopted, how far a listing reaches, how `failed` is seen."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import pytest
import trio
import trio.testing
from pydantic import SecretStr

from leapbatch.api.client import LeapClient, api_http
from leapbatch.api.clock import ServerClock
from leapbatch.emulator import API_ORIGIN, Emulator, EmulatorConfig
from leapbatch.events import discard
from leapbatch.folder.ledger import open_folder
from leapbatch.folder.records import IntentRecord, SubmittedRecord
from leapbatch.jobs import Job
from leapbatch.run.poller import Poller
from leapbatch.run.submit import Submitter
from leapbatch.wire import CreateInferenceDto, InferenceEntity, InferenceState

MODEL = "26a1a203-3a46-42cb-8cfa-f4de075907d8"
REQUEST = CreateInferenceDto(prompt="a fox", seed=3, width=64, height=64, steps=10, number_of_images=1)


def intent(job: Job, t: float) -> IntentRecord:
    """Return the intent record a create of `job` at `t` writes."""
    return IntentRecord(
        t=t, key=job.key, model=job.model_id, fingerprint=job.fingerprint, request=job.request.to_wire()
    )


async def reconcile_after(
    tmp_path: Path,
    job: Job,
    intent_t: float,
    ledger_before: list[Any],
    *,
    copies: int = 1,
    clock_offset: float = 0.0,
    learn: bool = True,
) -> tuple[str, str | None]:
    """Create `job` on a fresh emulator, write `ledger_before` plus an intent at `intent_t`, and reconcile it.

    With `copies` > 1 the same request is created again a little later (a second, newer match). The emulator's
    clock runs `clock_offset` seconds off ours; with `learn` False the reconciling client has heard no answer
    before its listing (a fresh process). Return the id the first create made and the id reconciliation adopted
    (None: nothing adopted).
    """
    emulator = Emulator(EmulatorConfig(speed=1.0, seed=1, clock_offset=clock_offset))
    with open_folder(tmp_path) as ledger:
        async with api_http(API_ORIGIN, SecretStr("k"), transport=emulator.transport()) as http:
            client = LeapClient(http)
            made = await client.create(job.model_id, job.request)
            if not learn:
                client = LeapClient(http)
            for _ in range(copies - 1):
                await trio.sleep(0.01)
                await client.create(job.model_id, job.request)
            for record in ledger_before:
                ledger.append(record(made.id) if callable(record) else record)
            ledger.append(intent(job, intent_t))
            found = (await Submitter(client, ledger, events=discard).look(job, since=intent_t)).found
    return made.id, None if found is None else found.id


async def test_reconcile_adopts_the_job_a_lost_create_made(tmp_path: Path) -> None:
    """The job that matches the fingerprint, created after the intent, is adopted."""
    job = Job.build(MODEL, REQUEST)
    made, adopted = await reconcile_after(tmp_path, job, time.time() - 1.0, [])
    assert made == adopted


async def test_reconcile_adopts_the_oldest_match_after_the_intent(tmp_path: Path) -> None:
    """Of two matching jobs made after the intent, the older is the one the lost create made."""
    job = Job.build(MODEL, REQUEST)
    made, adopted = await reconcile_after(tmp_path, job, time.time() - 1.0, [], copies=2)
    assert made == adopted


@pytest.mark.parametrize("offset", [-86_400.0, -300.0, 300.0])
async def test_reconcile_learns_a_server_clock_far_off_ours(tmp_path: Path, offset: float) -> None:
    """With the server's clock a day or 5 minutes behind (or ahead), the job the lost create made is still found:
    the offset is learned from the server's own answers, not assumed."""
    job = Job.build(MODEL, REQUEST)
    made, adopted = await reconcile_after(tmp_path, job, time.time() - 1.0, [], clock_offset=offset)
    assert made == adopted


async def test_reconcile_learns_the_offset_from_the_listings_date_header_alone(tmp_path: Path) -> None:
    """A fresh client that has heard nothing before its listing still finds a job stamped 5 minutes behind."""
    job = Job.build(MODEL, REQUEST)
    made, adopted = await reconcile_after(tmp_path, job, time.time() - 1.0, [], clock_offset=-300.0, learn=False)
    assert made == adopted


async def test_a_job_stamped_before_the_intent_on_the_servers_clock_is_not_adopted(tmp_path: Path) -> None:
    """A matching job made a minute before the intent (by the learned clock) is another create's, not ours."""
    job = Job.build(MODEL, REQUEST)
    assert (await reconcile_after(tmp_path, job, time.time() + 60.0, [], clock_offset=-300.0))[1] is None


async def test_reconcile_never_adopts_an_id_another_job_owns(tmp_path: Path) -> None:
    """A matching remote job that the ledger already gives to another job (same fingerprint) is not adopted."""
    job = Job.build(MODEL, REQUEST)
    twin = Job.build(MODEL, REQUEST.model_copy(update={"restore_faces": True}))  # same fingerprint, another key
    assert twin.key != job.key
    assert twin.fingerprint == job.fingerprint
    now = time.time()

    def owned(inference_id: str) -> SubmittedRecord:
        return SubmittedRecord(t=now, key=twin.key, inference_id=inference_id)

    assert (await reconcile_after(tmp_path, job, now - 1.0, [intent(twin, now - 2.0), owned]))[1] is None


async def test_reconcile_never_adopts_an_earlier_attempts_job(tmp_path: Path) -> None:
    """The remote job of this job's earlier attempt (an orphan now, e.g. after --retry-failed) is not adopted."""
    job = Job.build(MODEL, REQUEST)
    now = time.time()

    def earlier(inference_id: str) -> SubmittedRecord:
        return SubmittedRecord(t=now, key=job.key, inference_id=inference_id)

    assert (await reconcile_after(tmp_path, job, now - 1.0, [intent(job, now - 2.0), earlier]))[1] is None


class ListingFake:
    """A client whose listings are given pages and whose findOne answers from a table; it counts both."""

    def __init__(self, pages: list[list[InferenceEntity]], jobs: dict[str, InferenceEntity]) -> None:
        self.served, self.jobs = pages, jobs
        self.listed: list[int] = []
        self.found: list[str] = []
        self.clock = ServerClock()

    pages = LeapClient.pages  # the real, bounded paging over this fake's find_all

    async def find_all(self, model_id: str, *, only_finished: bool, page: int, page_size: int) -> list[InferenceEntity]:
        self.listed.append(page)
        await trio.lowlevel.checkpoint()
        return self.served[page - 1] if page <= len(self.served) else []

    async def find_one(self, model_id: str, inference_id: str) -> InferenceEntity:
        self.found.append(inference_id)
        await trio.lowlevel.checkpoint()
        return self.jobs[inference_id]


CREATED = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def entity(job_id: str, state: InferenceState, minutes: float = 0.0) -> InferenceEntity:
    """Return a job created `minutes` after CREATED."""
    return InferenceEntity(id=job_id, state=state, created_at=CREATED.timestamp() + minutes * 60)


async def wait_all(fake: ListingFake, ids: list[str], *, expected: float) -> list[InferenceEntity | None]:
    """Wait for `ids` (created at CREATED) on one Poller in sweep mode; return what each wait returned."""
    poller = Poller(cast(LeapClient, fake), MODEL, list_threshold=2)
    results: dict[str, InferenceEntity | None] = {}

    async def wait(job_id: str) -> None:
        results[job_id] = await poller.wait(job_id, created_at=CREATED, work=expected, timeout=600.0)

    async with trio.open_nursery() as outer:
        outer.start_soon(poller.run)
        async with trio.open_nursery() as waits:
            for job_id in ids:
                waits.start_soon(wait, job_id)
        outer.cancel_scope.cancel()
    return [results[job_id] for job_id in ids]


async def test_a_sweep_reads_every_page_until_one_predates_the_oldest_waiter(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Newer jobs fill pages 1 and 2; the waiters are found on page 3, by listing alone, and page 4 is not read."""
    newer = [[entity(f"n{p}-{i}", InferenceState.FINISHED, 10) for i in range(3)] for p in range(2)]
    ours = [entity("a", InferenceState.FINISHED), entity("b", InferenceState.FINISHED)]
    older = [entity("old", InferenceState.FINISHED, -10)]
    fake = ListingFake([*newer, ours, older, [entity("older", InferenceState.FINISHED, -20)]], {})

    results = await wait_all(fake, ["a", "b"], expected=1.0)

    assert (["a", "b"], [], [1, 2, 3]) == ([r.id if r else None for r in results], fake.found, fake.listed)


async def test_in_sweep_mode_an_overdue_waiter_gets_find_one(autojump_clock: trio.testing.MockClock) -> None:
    """Jobs that end `failed` never show in onlyFinished listings: once overdue, findOne sees them (still sweeping)."""
    jobs = {"a": entity("a", InferenceState.FINISHED)} | {i: entity(i, InferenceState.FAILED) for i in ("b", "c")}
    fake = ListingFake([[jobs["a"]]], jobs)

    results = await wait_all(fake, ["a", "b", "c"], expected=1.0)

    states = [InferenceState.FINISHED, InferenceState.FAILED, InferenceState.FAILED]
    assert (states, ["b", "c"]) == ([r.state if r else None for r in results], sorted(set(fake.found)))


async def test_a_sweep_stops_at_a_page_that_predates_every_waiter(autojump_clock: trio.testing.MockClock) -> None:
    """A waiter never listed (its job failed) does not make the sweep read on: it stops after the first page whose
    jobs all predate the oldest waiter (page 3 here), never reading the older pages behind it."""
    jobs = {"a": entity("a", InferenceState.FINISHED), "b": entity("b", InferenceState.FAILED)}
    older = [[entity(f"old{p}", InferenceState.FINISHED, -10 * (p + 1))] for p in range(3)]
    fake = ListingFake([[entity("new", InferenceState.FINISHED, 10)], [jobs["a"]], *older], jobs)

    await wait_all(fake, ["a", "b"], expected=1.0)

    assert 4 not in fake.listed
    assert [1, 2, 3] == fake.listed[:3]


async def test_a_look_stops_at_a_page_that_predates_the_intent(tmp_path: Path) -> None:
    """Looking for a lost create reads pages only until one whose jobs all predate the intent (on the server's
    clock): page 2 here, never the older pages behind it."""
    job = Job.build(MODEL, REQUEST)
    stamp = CREATED.timestamp()
    pages = [[entity("new", InferenceState.FINISHED, 10)], [entity("old", InferenceState.FINISHED, -10)]]
    fake = ListingFake([*pages, [entity("older", InferenceState.FINISHED, -20)]], {})
    fake.clock = ServerClock()
    fake.clock.observe(stamp, stamp, stamp, stamp)  # the server's clock is ours
    with open_folder(tmp_path) as ledger:
        look = await Submitter(cast(LeapClient, fake), ledger, events=discard).look(job, since=stamp)

    assert (None, True, [1, 2]) == (look.found, look.complete, fake.listed)
