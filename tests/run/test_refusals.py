"""Specs of the refusals every job would share (`leapbatch.run.refusal`): which answers trip the batch's breaker,
and what a run does then, on the in-process emulator with a refusal of our own through its fault seam."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from test_hostile_server import Always, OnRoutes, make_jobs, run_against

from leapbatch import errors
from leapbatch.emulator import Emulator, EmulatorConfig, Reply, Request
from leapbatch.emulator.asgi import Handler, error_reply
from leapbatch.folder.ledger import read_ledger
from leapbatch.folder.state import Phase
from leapbatch.run.refusal import REPEATS, Breaker, RefusalKind

MODEL = "m"


def bad_request(*messages: str) -> errors.BadRequestError:
    """Return the error of a 400 answered with `messages`."""
    return errors.BadRequestError(status=400, messages=list(messages), method="POST", path="/p")


def status(code: int, message: str) -> errors.ApiError:
    """Return the error of a create answered `code`."""
    return errors.status_error_class(code)(status=code, messages=[message], method="POST", path="/p")


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        pytest.param(status(404, "Model not found"), RefusalKind.MODEL, id="404-model"),
        pytest.param(status(402, "Billing limit reached"), RefusalKind.BILLING, id="402-billing"),
        pytest.param(
            errors.ConnectError("refused", method="POST", path="/p"), RefusalKind.UNREACHABLE, id="no-connection"
        ),
        pytest.param(
            errors.KeyRefusedError(errors.AuthError(status=401, messages=["no"], method="POST", path="/p")),
            RefusalKind.KEY,
            id="401-key",
        ),
    ],
)
def test_an_answer_every_job_would_get_trips_the_breaker_at_once(exc: errors.LeapbatchError, kind: RefusalKind) -> None:
    """404, 402, 401/403 and no connection say nothing about the job: the first one trips the breaker."""
    breaker = Breaker()

    refusal = breaker.refused(MODEL, exc)

    assert refusal is not None
    assert kind is refusal.kind
    assert refusal == breaker.tripped


@pytest.mark.parametrize(
    "exc",
    [
        pytest.param(status(500, "boom"), id="500"),
        pytest.param(status(429, "slow down"), id="429"),
        pytest.param(errors.TransportError("reset", method="POST", path="/p"), id="reset"),
        pytest.param(bad_request("prompt is too long"), id="one-400"),
    ],
)
def test_an_answer_that_may_be_the_jobs_own_does_not_trip_it(exc: errors.ApiError) -> None:
    """A 5xx, a 429, a lost answer or one 400 may be this job's or this moment's: the batch goes on."""
    breaker = Breaker()

    assert (None, None) == (breaker.refused(MODEL, exc), breaker.tripped)


def test_the_same_400_for_repeats_creates_in_a_row_trips_it() -> None:
    """The same messages on `REPEATS` 400s of one model in a row are the manifest's mistake: the breaker trips."""
    breaker = Breaker()

    results = [breaker.refused(MODEL, bad_request("width must be a multiple of 8")) for _ in range(REPEATS)]

    assert [None] * (REPEATS - 1) == results[:-1]
    assert results[-1] is not None
    assert RefusalKind.REQUEST is results[-1].kind
    assert "HTTP 400: width must be a multiple of 8" == results[-1].message


@pytest.mark.parametrize(
    "between",
    [
        pytest.param(lambda b: b.created(MODEL), id="a-success-between"),
        pytest.param(lambda b: b.refused(MODEL, bad_request("another message")), id="another-message-between"),
    ],
)
def test_400s_broken_by_a_success_or_another_message_do_not_trip_it(between: object) -> None:
    """The streak counts 400s with the same messages and no accepted create between them."""
    breaker = Breaker()
    for _ in range(REPEATS - 1):
        breaker.refused(MODEL, bad_request("nope"))
    assert callable(between)
    between(breaker)

    assert breaker.refused(MODEL, bad_request("nope")) is None


def test_400s_of_different_models_are_separate_streaks() -> None:
    """One model's 400s do not add up with another's."""
    breaker = Breaker()
    for index in range(REPEATS):
        breaker.refused(f"model-{index % 2}", bad_request("nope"))

    assert breaker.tripped is None


@dataclass(frozen=True)
class RefuseCreates:
    """Every create is answered `status` with `message` (a refusal of our own, through the emulator's seam)."""

    status: int
    message: str
    name: str = "refuse_creates"
    loses_reply: bool = False

    async def apply(self, request: Request, handler: Handler) -> Reply:
        """Answer the refusal without making a job."""
        return error_reply(self.status, self.message)


async def test_a_400_every_job_gets_stops_the_batch_after_repeats_creates(tmp_path: Path) -> None:
    """Every create answered 400 alike: `REPEATS` creates (one at a time: no create of the model was accepted),
    those jobs failed with the server's words, the others left untouched for the next run."""
    refusing = OnRoutes({"create": Always(RefuseCreates(400, "steps must be at most 50 for this model"))})
    emulator = Emulator(EmulatorConfig(speed=1000, faults=refusing))

    outcome = await run_against(emulator, tmp_path / "out", make_jobs(40))

    assert REPEATS == emulator.stats()["requests"]["create"]
    assert outcome.summary.stopped is not None
    assert RefusalKind.REQUEST is outcome.summary.stopped.kind
    assert (REPEATS, 40 - REPEATS) == (outcome.summary.failed, outcome.summary.not_submitted)
    assert [Phase.FAILED] * REPEATS == [job.phase for job in outcome.state.jobs.values()]


async def test_jobs_already_on_the_server_are_still_finished_after_the_batch_stops(tmp_path: Path) -> None:
    """A 402 once 5 images were made, with 8 jobs in flight: the 5 accepted jobs finish and are downloaded; the
    refused ones are `refused`, not failed."""
    emulator = Emulator(EmulatorConfig(speed=1000, billing_limit=5))

    outcome = await run_against(emulator, tmp_path / "out", make_jobs(20))

    phases = [job.phase for job in outcome.state.jobs.values()]
    assert 5 == phases.count(Phase.FINISHED) == outcome.summary.finished
    assert Phase.FAILED not in phases
    assert outcome.summary.refused == phases.count(Phase.REFUSED) >= 1
    assert 20 == outcome.summary.finished + outcome.summary.refused + outcome.summary.not_submitted


async def test_a_refused_key_ends_the_run_with_the_job_refused_not_failed(tmp_path: Path) -> None:
    """401 on the first create: the run ends with `KeyRefusedError` (exit 5), one create sent, and that job is
    `refused`, so the run after the key is fixed creates it without `--retry-failed` or a settle window."""
    emulator = Emulator(EmulatorConfig(speed=1000, token="another-key"))

    with pytest.RaisesGroup(errors.KeyRefusedError, flatten_subgroups=True):
        await run_against(emulator, tmp_path / "out", make_jobs(10))

    assert 1 == emulator.stats()["requests"]["create"]
    assert [Phase.REFUSED] == [job.phase for job in read_ledger(tmp_path / "out").jobs.values()]
