"""Specs of the fold: which `JobState` every sequence of ledger records leaves a job in."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache

import pytest

from leapbatch.folder.records import (
    DeletedRecord,
    FailedRecord,
    FailStage,
    FinishedRecord,
    ImageRecord,
    IntentRecord,
    Record,
    RefusedRecord,
    RunRecord,
    SubmittedRecord,
)
from leapbatch.folder.state import JobState, LedgerState, Phase, apply, fold

KEY = "k1"


def run(*, local: bool = False) -> RunRecord:
    """Return the record of a run opening the folder (a `run --local` when `local`)."""
    return RunRecord(t=0.0, command="run", tool_version="0.1.0", base_url="http://127.0.0.1:1", local=local)


def intent(key: str = KEY) -> IntentRecord:
    """Return an intent for `key`."""
    return IntentRecord(t=1.0, key=key, model="m", fingerprint=f"fp-{key}", request={"prompt": key})


def submitted(inference_id: str, key: str = KEY) -> SubmittedRecord:
    """Return the record that `key` exists remotely as `inference_id`."""
    return SubmittedRecord(t=2.0, key=key, inference_id=inference_id)


def image(index: int, key: str = KEY) -> ImageRecord:
    """Return the record of one image on disk."""
    return ImageRecord(
        index=index,
        uri=f"https://img/{index}",
        path=f"images/{key}-{index}.png",
        sha256="0" * 64,
        bytes=1,
        width=1,
        height=1,
    )


def finished(inference_id: str, images: int = 1, key: str = KEY) -> FinishedRecord:
    """Return the record that `key` finished as `inference_id` with `images` images."""
    return FinishedRecord(t=3.0, key=key, inference_id=inference_id, images=[image(i, key) for i in range(images)])


def failed(stage: FailStage, inference_id: str | None = None, key: str = KEY) -> FailedRecord:
    """Return the record that `key` failed at `stage`."""
    return FailedRecord(t=3.0, key=key, stage=stage, reason="it broke", inference_id=inference_id)


def refused(key: str = KEY) -> RefusedRecord:
    """Return the record that the create of `key` was refused for a reason every job shares."""
    return RefusedRecord(t=3.0, key=key, reason="HTTP 402: billing limit", http_status=402)


def deleted(inference_id: str, key: str = KEY) -> DeletedRecord:
    """Return the record that the remote job `inference_id` of `key` is gone."""
    return DeletedRecord(t=4.0, key=key, inference_id=inference_id, outcome="deleted")


@dataclass(frozen=True)
class Facts:
    """The fields of a `JobState` the fold decides (everything else is copied from the intent)."""

    phase: Phase
    inference_id: str | None = None
    stage: FailStage | None = None
    images: int = 0
    deleted: bool = False
    orphans: tuple[str, ...] = ()
    local: bool = False
    intents: int = 1


def facts_of(job: JobState) -> Facts:
    """Return the facts of `job`."""
    return Facts(
        phase=job.phase,
        inference_id=job.inference_id,
        stage=None if job.failure is None else job.failure.stage,
        images=len(job.images),
        deleted=job.deleted,
        orphans=job.orphans,
        local=job.local,
        intents=job.intents,
    )


GEN, DOWN, TIMEOUT, CREATE = FailStage.GENERATE, FailStage.DOWNLOAD, FailStage.TIMEOUT, FailStage.CREATE


@pytest.mark.parametrize(
    ("records", "expected"),
    [
        pytest.param([intent()], Facts(Phase.INTENT), id="intent"),
        pytest.param([intent(), submitted("a")], Facts(Phase.SUBMITTED, "a"), id="submitted"),
        pytest.param([intent(), submitted("a"), finished("a", 2)], Facts(Phase.FINISHED, "a", images=2), id="finished"),
        pytest.param([intent(), finished("a")], Facts(Phase.FINISHED, "a", images=1), id="finished-without-submitted"),
        pytest.param(
            [intent(), submitted("a"), failed(GEN, "a")], Facts(Phase.FAILED, "a", GEN), id="failed-with-its-id"
        ),
        pytest.param(
            [intent(), submitted("a"), failed(GEN)], Facts(Phase.FAILED, "a", GEN), id="failed-keeps-the-earlier-id"
        ),
        pytest.param([intent(), failed(CREATE)], Facts(Phase.FAILED, None, CREATE), id="failed-create-has-no-id"),
        pytest.param(
            [intent(), submitted("a"), failed(DOWN, "a"), finished("a")],
            Facts(Phase.FINISHED, "a", images=1),
            id="finished-after-download-failure-clears-it",
        ),
        pytest.param(
            [intent(), submitted("a"), failed(GEN, "a"), submitted("b")],
            Facts(Phase.SUBMITTED, "b"),
            id="submitted-clears-the-failure",
        ),
        pytest.param(
            [intent(), submitted("a"), intent()],
            Facts(Phase.INTENT, orphans=("a",), intents=2),
            id="second-intent-orphans-a-live-id",
        ),
        pytest.param(
            [intent(), submitted("a"), failed(GEN, "a"), intent()],
            Facts(Phase.INTENT, orphans=("a",), intents=2),
            id="retry-failed-orphans-the-failed-id",
        ),
        pytest.param(
            [intent(), submitted("a"), intent(), submitted("b"), failed(GEN), intent()],
            Facts(Phase.INTENT, orphans=("a", "b"), intents=3),
            id="third-intent-orphans-both-earlier-ids",
        ),
        pytest.param(
            [intent(), submitted("a"), failed(TIMEOUT, "a"), deleted("a"), intent()],
            Facts(Phase.INTENT, intents=2),
            id="second-intent-after-deleted-adds-no-orphan",
        ),
        pytest.param(
            [run(local=True), intent(), submitted("a"), intent()],
            Facts(Phase.INTENT, local=True, intents=2),
            id="second-intent-after-local-adds-no-orphan",
        ),
        pytest.param(
            [run(local=True), intent(), submitted("a"), run(), intent()],
            Facts(Phase.INTENT, intents=2),
            id="real-intent-after-local-adds-no-orphan",
        ),
        pytest.param(
            [intent(), failed(CREATE), intent()],
            Facts(Phase.INTENT, intents=2),
            id="second-intent-after-create-failure-adds-no-orphan",
        ),
        pytest.param(
            [intent(), submitted("a"), finished("a"), deleted("a")],
            Facts(Phase.FINISHED, "a", images=1, deleted=True),
            id="deleted-current-id",
        ),
        pytest.param(
            [intent(), submitted("a"), deleted("a"), failed(TIMEOUT, "a")],
            Facts(Phase.FAILED, "a", TIMEOUT, deleted=True),
            id="timeout-after-delete-stays-deleted",
        ),
        pytest.param(
            [intent(), submitted("a"), intent(), submitted("b"), deleted("a")],
            Facts(Phase.SUBMITTED, "b", orphans=(), intents=2),
            id="deleted-orphan-leaves-orphans",
        ),
        pytest.param(
            [intent(), submitted("a"), intent(), submitted("b"), intent(), deleted("a")],
            Facts(Phase.INTENT, orphans=("b",), intents=3),
            id="deleted-orphan-keeps-the-others",
        ),
        pytest.param(
            [intent(), submitted("a"), deleted("z")],
            Facts(Phase.SUBMITTED, "a"),
            id="deleted-unknown-id-changes-nothing",
        ),
        pytest.param(
            [intent(), submitted("a"), deleted("a"), submitted("b")],
            Facts(Phase.SUBMITTED, "b"),
            id="submitted-after-deleted-clears-deleted",
        ),
        pytest.param(
            [intent(), submitted("a"), intent(key="other"), submitted("x", key="other"), finished("x", key="other")],
            Facts(Phase.SUBMITTED, "a"),
            id="records-of-other-keys-leave-it-alone",
        ),
        pytest.param([intent(), refused()], Facts(Phase.REFUSED), id="refused"),
        pytest.param(
            [intent(), submitted("a"), intent(), refused()],
            Facts(Phase.REFUSED, orphans=("a",), intents=2),
            id="refused-keeps-the-earlier-attempts-orphans",
        ),
        pytest.param(
            [intent(), submitted("a"), refused()], Facts(Phase.SUBMITTED, "a"), id="refused-after-submitted-is-ignored"
        ),
        pytest.param([intent(), refused(), intent()], Facts(Phase.INTENT, intents=2), id="intent-after-refused"),
        pytest.param([run(local=True), intent()], Facts(Phase.INTENT, local=True), id="local-intent"),
        pytest.param(
            [run(local=True), intent(), submitted("a"), finished("a")],
            Facts(Phase.FINISHED, "a", images=1, local=True),
            id="local-finished",
        ),
        pytest.param(
            [run(), intent(), run(local=True), submitted("a")],
            Facts(Phase.SUBMITTED, "a", local=True),
            id="submitted-during-local-run-is-local",
        ),
        pytest.param(
            [run(local=True), intent(), run(), submitted("a")],
            Facts(Phase.SUBMITTED, "a"),
            id="submitted-during-real-run-is-not-local",
        ),
        pytest.param([run(local=True), run(), intent()], Facts(Phase.INTENT), id="the-latest-run-decides"),
        pytest.param(
            [run(local=True), intent(), submitted("a"), run(), failed(DOWN, "a")],
            Facts(Phase.FAILED, "a", DOWN, local=True),
            id="failed-keeps-local",
        ),
    ],
)
def test_fold_table(records: Sequence[Record], expected: Facts) -> None:
    """Each record sequence leaves the job in the state the module docstring describes."""
    assert expected == facts_of(fold(records).jobs[KEY])


def test_records_before_an_intent_are_ignored() -> None:
    """Submitted, finished, failed and deleted records for a key with no intent yet create no job."""
    records: list[Record] = [submitted("a"), finished("a"), failed(GEN, "a"), deleted("a")]

    assert {} == fold(records).jobs


def test_a_later_intent_starts_clean_after_ignored_records() -> None:
    """An intent after ignored records is an ordinary first intent."""
    state = fold([submitted("a"), finished("a"), intent()])

    assert Facts(Phase.INTENT) == facts_of(state.jobs[KEY])


def test_jobs_keep_first_intent_order_and_runs_keep_file_order() -> None:
    """`jobs` is ordered by each key's first intent, `runs` lists run records as written."""
    first, second = run(), run(local=True)

    state = fold([first, intent("b"), intent("a"), second, intent("b")])

    assert (["b", "a"], [first, second]) == (list(state.jobs), state.runs)


def test_apply_is_fold_one_record_at_a_time() -> None:
    """`apply` folds into the given state in place, as `fold` does."""
    records: list[Record] = [run(), intent(), submitted("a"), finished("a")]
    state = LedgerState()

    for record in records:
        apply(state, record)

    assert fold(records) == state


def test_claimed_ids_are_the_current_ids() -> None:
    """`claimed_ids` holds every job's current inference id, finished, failed or deleted, and skips jobs without one."""
    records: list[Record] = [
        intent("submitted"),
        submitted("s", key="submitted"),
        intent("finished"),
        finished("f", key="finished"),
        intent("failed"),
        submitted("x", key="failed"),
        failed(GEN, key="failed"),
        intent("deleted"),
        submitted("d", key="deleted"),
        deleted("d", key="deleted"),
        intent("pending"),
        intent("refused"),
        failed(CREATE, key="refused"),
    ]

    assert {"s", "f", "x", "d"} == fold(records).claimed_ids()


# -- the documented invariants, over every short record sequence for one job -------------------------------------

ALPHABET: dict[str, Record] = {
    "run": run(),
    "run-local": run(local=True),
    "intent": intent(),
    "submitted-a": submitted("a"),
    "submitted-b": submitted("b"),
    "finished-a": finished("a"),
    "failed-create": failed(CREATE),
    "refused": refused(),
    "failed-download-a": failed(DOWN, "a"),
    "deleted-a": deleted("a"),
    "deleted-b": deleted("b"),
}
MAX_LENGTH = 5


@cache
def reached() -> dict[Facts, tuple[tuple[str, ...], JobState]]:
    """Return every distinct state some sequence of up to `MAX_LENGTH` records reaches, with the shortest such."""
    states: dict[Facts, tuple[tuple[str, ...], JobState]] = {}
    for length in range(1, MAX_LENGTH + 1):
        for names in itertools.product(ALPHABET, repeat=length):
            job = fold(ALPHABET[name] for name in names).jobs.get(KEY)
            if job is not None:
                states.setdefault(facts_of(job), (names, job))
    return states


def starts_clean(job: JobState) -> bool:
    """Return whether an `intent` job has no id, failure, images, nor deleted flag."""
    return job.phase is not Phase.INTENT or (
        job.inference_id is None and job.failure is None and not job.images and not job.deleted
    )


def submitted_has_an_id_only(job: JobState) -> bool:
    """Return whether a `submitted` job has an id, no failure and no images."""
    return job.phase is not Phase.SUBMITTED or (job.inference_id is not None and job.failure is None and not job.images)


def finished_has_images(job: JobState) -> bool:
    """Return whether a `finished` job has an id, images and no failure."""
    return job.phase is not Phase.FINISHED or (
        job.inference_id is not None and job.failure is None and bool(job.images)
    )


def failed_has_a_failure(job: JobState) -> bool:
    """Return whether a `failed` job has a failure and no images."""
    return job.phase is not Phase.FAILED or (job.failure is not None and not job.images)


def refused_made_nothing(job: JobState) -> bool:
    """Return whether a `refused` job has a refusal and no id, failure, images, nor deleted flag."""
    return job.phase is not Phase.REFUSED or (
        job.refusal is not None
        and job.inference_id is None
        and job.failure is None
        and not job.images
        and not job.deleted
    )


def current_id_is_no_orphan(job: JobState) -> bool:
    """Return whether the current inference id is absent from the orphans."""
    return job.inference_id is None or job.inference_id not in job.orphans


def local_is_never_remote(job: JobState) -> bool:
    """Return whether a local job is not `remote_exists`."""
    return not (job.local and job.remote_exists)


def deleted_has_an_id(job: JobState) -> bool:
    """Return whether a deleted job has the id the `deleted` record named."""
    return not job.deleted or job.inference_id is not None


@pytest.mark.parametrize(
    "invariant",
    [
        pytest.param(starts_clean, id="intent-starts-clean"),
        pytest.param(submitted_has_an_id_only, id="submitted-has-an-id-no-failure-no-images"),
        pytest.param(finished_has_images, id="finished-has-an-id-images-no-failure"),
        pytest.param(failed_has_a_failure, id="failed-has-a-failure-no-images"),
        pytest.param(refused_made_nothing, id="refused-has-a-refusal-nothing-else"),
        pytest.param(current_id_is_no_orphan, id="current-id-never-an-orphan"),
        pytest.param(local_is_never_remote, id="local-never-remote-exists"),
        pytest.param(deleted_has_an_id, id="deleted-only-with-an-id"),
    ],
)
def test_every_reachable_state_keeps_the_documented_invariants(invariant: Callable[[JobState], bool]) -> None:
    """No sequence of up to five records for one job breaks the module docstring's table (shortest breakers shown)."""
    breakers = [names for names, job in reached().values() if not invariant(job)]

    assert [] == sorted(breakers, key=len)[:3]


def test_the_walk_reaches_every_documented_row() -> None:
    """The walk reaches each row of the docstring's table, with each `deleted` value it allows."""
    expected = {
        (Phase.INTENT, False),
        (Phase.SUBMITTED, False),
        (Phase.SUBMITTED, True),
        (Phase.FINISHED, False),
        (Phase.FINISHED, True),
        (Phase.FAILED, False),
        (Phase.FAILED, True),
        (Phase.REFUSED, False),
    }

    assert expected == {(facts.phase, facts.deleted) for facts in reached()}
