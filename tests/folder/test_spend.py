"""Specs of committed spend (`leapbatch.folder.spend`), through the fold of ledger records (`state.fold`): an intent
counts from the moment it is written, an unknown outcome counts as spent until proven otherwise, and only a refusal
(or a create the server surely never acted on) gives the money back."""

from __future__ import annotations

from decimal import Decimal

import pytest

from leapbatch.folder.records import (
    DeletedRecord,
    FailedRecord,
    FailStage,
    FinishedRecord,
    ImageRecord,
    IntentRecord,
    PrunedRecord,
    Record,
    RefusedRecord,
    SubmittedRecord,
)
from leapbatch.folder.spend import Attempt, Charge, Spend
from leapbatch.folder.state import fold

CENT = 0.01  # what an intent at pay as you go records as its cost, one image


def intent(key: str = "k1", *, images: int | None = 1, cost: float | None = CENT) -> IntentRecord:
    """Return an intent for `key` of `images` images (None: numberOfImages unset) committing `cost`."""
    request: dict[str, object] = {"prompt": key} | ({} if images is None else {"numberOfImages": images})
    return IntentRecord(t=1.0, key=key, model="m", fingerprint=f"fp-{key}", request=request, cost=cost)


def submitted(key: str = "k1", inference_id: str = "id-1") -> SubmittedRecord:
    """Return the record that the create of `key` made `inference_id`."""
    return SubmittedRecord(t=2.0, key=key, inference_id=inference_id)


def finished(key: str = "k1", inference_id: str = "id-1") -> FinishedRecord:
    """Return the record that `key` finished with one image."""
    image = ImageRecord(
        index=0, uri="https://img/0", path=f"images/{key}-0.png", sha256="0" * 64, bytes=1, width=1, height=1
    )
    return FinishedRecord(t=3.0, key=key, inference_id=inference_id, images=[image])


def failed(stage: FailStage, key: str = "k1", *, inference_id: str | None = None, no_job: bool = False) -> FailedRecord:
    """Return the record that `key` failed at `stage`."""
    return FailedRecord(t=3.0, key=key, stage=stage, reason="it broke", inference_id=inference_id, no_job=no_job)


def refused(key: str = "k1") -> RefusedRecord:
    """Return the record that the create of `key` was refused for a reason every job shares."""
    return RefusedRecord(t=3.0, key=key, reason="HTTP 402: billing limit", http_status=402)


def spend_of(*records: Record) -> Spend:
    """Return the folder's spend after `records`."""
    return fold(records).spend


def charge_of(*records: Record) -> Charge:
    """Return the charge of the latest attempt of job `k1` after `records`."""
    attempt = fold(records).jobs["k1"].attempt
    assert attempt is not None
    return attempt.charge


def tallies(spend: Spend) -> tuple[tuple[int, Decimal], tuple[int, Decimal]]:
    """Return (spent images, spent cost), (unknown images, unknown cost)."""
    return (spend.spent.images, spend.spent.cost), (spend.unknown.images, spend.unknown.cost)


NOTHING = ((0, Decimal(0)), (0, Decimal(0)))
SPENT = ((1, Decimal("0.01")), (0, Decimal(0)))
UNKNOWN = ((0, Decimal(0)), (1, Decimal("0.01")))


def test_an_intent_counts_as_unknown_from_the_moment_it_is_written() -> None:
    """An intent with no answer yet commits its images and cost as unknown: committed, not yet spent."""
    spend = spend_of(intent())

    assert UNKNOWN == tallies(spend)
    assert (1, Decimal("0.01")) == (spend.committed_images, spend.committed_cost)
    assert Charge.UNKNOWN is charge_of(intent())


@pytest.mark.parametrize(
    "after",
    [
        [submitted()],
        [submitted(), finished()],
        [finished()],
        [submitted(), DeletedRecord(t=4.0, key="k1", inference_id="id-1", outcome="deleted")],
        [submitted(), finished(), PrunedRecord(t=5.0, key="k1")],
    ],
    ids=["submitted", "finished", "finished-only", "deleted", "pruned"],
)
def test_a_create_that_made_a_job_is_spent_for_good(after: list[Record]) -> None:
    """Submitted (created or adopted) or finished: spent; deleting or pruning the job gives nothing back."""
    assert SPENT == tallies(spend_of(intent(), *after))


@pytest.mark.parametrize(
    "stage_and_id",
    [
        (FailStage.GENERATE, "id-1"),
        (FailStage.TIMEOUT, "id-1"),
        (FailStage.DOWNLOAD, "id-1"),
        (FailStage.CREATE, "id-1"),
    ],
    ids=["generate", "timeout", "download", "create-with-a-job"],
)
def test_a_failure_after_the_job_was_made_is_spent(stage_and_id: tuple[FailStage, str]) -> None:
    """A job that failed while generating, timed out or could not be downloaded was paid for: spent."""
    stage, inference_id = stage_and_id

    assert SPENT == tallies(spend_of(intent(), submitted(), failed(stage, inference_id=inference_id)))


@pytest.mark.parametrize("stage", [FailStage.GENERATE, FailStage.TIMEOUT, FailStage.DOWNLOAD])
def test_a_non_create_failure_is_spent_even_when_the_ledger_missed_the_submitted_record(stage: FailStage) -> None:
    """A generate, timeout or download failure means a job was made, whatever else the ledger holds."""
    assert SPENT == tallies(spend_of(intent(), failed(stage)))


def test_a_refused_create_counts_nothing() -> None:
    """A create refused for a reason every job shares (402, 404 model, no connection) made no job: nothing."""
    spend = spend_of(intent(), refused())

    assert NOTHING == tallies(spend)
    assert Charge.NONE is charge_of(intent(), refused())


def test_a_failed_create_the_server_surely_never_acted_on_counts_nothing() -> None:
    """A failed create with `no_job` (a 400, or a request the server never got) made no job: nothing."""
    assert NOTHING == tallies(spend_of(intent(), failed(FailStage.CREATE, no_job=True)))


def test_a_failed_create_with_an_unknown_outcome_stays_unknown() -> None:
    """A failed create without `no_job` (say, answers kept being lost) may have made a job: still unknown."""
    assert UNKNOWN == tallies(spend_of(intent(), failed(FailStage.CREATE)))


def test_a_refusal_never_takes_back_a_create_that_made_a_job() -> None:
    """A refusal or a no-job failure after the job was submitted leaves it spent (only an unknown is released)."""
    assert SPENT == tallies(spend_of(intent(), submitted(), refused()))
    assert SPENT == tallies(spend_of(intent(), submitted(), failed(FailStage.CREATE, no_job=True)))


def test_a_second_intent_of_a_job_leaves_the_first_attempt_counted() -> None:
    """Every create may be paid for: a new intent adds its own commitment; an earlier unanswered one stays unknown,
    an earlier spent one stays spent."""
    retried = spend_of(intent(), failed(FailStage.CREATE), intent())
    resubmitted = spend_of(intent(), submitted(), failed(FailStage.GENERATE, inference_id="id-1"), intent())

    assert ((0, Decimal(0)), (2, Decimal("0.02"))) == tallies(retried)
    assert ((1, Decimal("0.01")), (1, Decimal("0.01"))) == tallies(resubmitted)


def test_records_of_the_new_attempt_charge_only_the_new_attempt() -> None:
    """After a second intent, its refusal releases its own commitment, not the first attempt's."""
    spend = spend_of(intent(), failed(FailStage.CREATE), intent(), refused())

    assert UNKNOWN == tallies(spend)


def test_images_multiply_and_jobs_add_up() -> None:
    """numberOfImages counts per intent (unset means 1); the tallies add over jobs."""
    spend = spend_of(
        intent("a", images=4, cost=0.04),
        submitted("a", "id-a"),
        intent("b", images=None, cost=0.01),
        intent("c", images=2, cost=0.02),
        refused("c"),
    )

    assert ((4, Decimal("0.04")), (1, Decimal("0.01"))) == tallies(spend)
    assert 5 == spend.committed_images


def test_costs_add_up_exactly() -> None:
    """40 intents recording $0.0175 commit exactly $0.70 (costs are read as decimals, not summed as floats)."""
    spend = spend_of(*(intent(f"k{i}", cost=0.0175) for i in range(40)))

    assert Decimal("0.70") == spend.committed_cost


def test_intents_without_a_cost_count_their_images_as_unpriced() -> None:
    """An intent written before prices were recorded commits its images, no money, and counts them unpriced."""
    spend = spend_of(intent("a", images=3, cost=None), submitted("a", "id-a"), intent("b", cost=None))

    assert (3, 1) == (spend.spent.unpriced, spend.unknown.unpriced)
    assert (4, Decimal(0)) == (spend.committed_images, spend.committed_cost)
    assert 4 == spend.to_json()["unpriced_images"]


def test_free_images_count_while_committed_and_come_back_with_a_refusal() -> None:
    """The quota's images an intent took (`free_images`) stay taken while it is committed; a refusal returns them."""
    free = IntentRecord(
        t=1.0, key="a", model="m", fingerprint="fa", request={"numberOfImages": 2}, cost=0, free_images=2
    )
    again = free.model_copy(update={"key": "b", "fingerprint": "fb"})

    spend = spend_of(free, submitted("a", "id-a"), again, refused("b"))

    assert (2, 2, Decimal(0)) == (spend.free_images, spend.committed_images, spend.committed_cost)


def test_the_tally_shows_as_json() -> None:
    """`to_json` (plan and status) shows committed images and cost, and each tally."""
    spend = spend_of(intent("a"), submitted("a", "id-a"), intent("b"))

    assert {
        "images": 2,
        "cost": 0.02,
        "spent": {"images": 1, "cost": 0.01},
        "unknown": {"images": 1, "cost": 0.01},
        "unpriced_images": 0,
        "free_images": 0,
    } == spend.to_json()


def test_a_copy_is_independent_of_the_folder_tally() -> None:
    """Admissions tried on a copy leave the folder's own tally as it was."""
    spend = spend_of(intent())
    trial = spend.copy()

    trial.opened(Attempt(1, Decimal("0.01")))

    assert (1, 2) == (spend.committed_images, trial.committed_images)
