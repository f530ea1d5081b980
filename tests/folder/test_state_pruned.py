"""Specs of the `pruned` record: how the fold, resume, delete, results and the prune plan read a pruned job."""

from __future__ import annotations

import itertools
from pathlib import Path

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
    RunRecord,
    SubmittedRecord,
)
from leapbatch.folder.results import metadata_rows, results_document
from leapbatch.folder.state import LedgerState, Phase, fold
from leapbatch.jobs import Job
from leapbatch.run.delete import Target, plan_deletes
from leapbatch.run.prune import plan_prune, remote_targets
from leapbatch.run.resume import Action, action_for, classify, tally
from leapbatch.wire import CreateInferenceDto

KEY, OTHER = "a" * 64, "b" * 64


def run(*, local: bool = False) -> RunRecord:
    """Return the record of a run opening the folder."""
    return RunRecord(t=0.0, command="run", tool_version="0.1.0", base_url="http://127.0.0.1:1", local=local)


def intent(key: str = KEY) -> IntentRecord:
    """Return an intent for `key`."""
    return IntentRecord(t=1.0, key=key, model="m", fingerprint=f"fp-{key}", request={"prompt": key[:8]})


def submitted(inference_id: str, key: str = KEY) -> SubmittedRecord:
    """Return the record that `key` exists remotely as `inference_id`."""
    return SubmittedRecord(t=2.0, key=key, inference_id=inference_id)


def finished(inference_id: str, key: str = KEY) -> FinishedRecord:
    """Return the record that `key` finished with one image."""
    image = ImageRecord(
        index=0, uri="https://i/0", path=f"images/{key}-0.png", sha256="0" * 64, bytes=1, width=1, height=1
    )
    return FinishedRecord(t=3.0, key=key, inference_id=inference_id, images=[image])


def pruned(key: str = KEY) -> PrunedRecord:
    """Return the record that `key` left the dataset."""
    return PrunedRecord(t=5.0, key=key)


def deleted(inference_id: str, key: str = KEY) -> DeletedRecord:
    """Return the record that the remote job `inference_id` is gone."""
    return DeletedRecord(t=4.0, key=key, inference_id=inference_id, outcome="deleted")


FINISHED: list[Record] = [run(), intent(), submitted("a"), finished("a")]


def test_pruned_owns_no_file_but_keeps_its_remote_job() -> None:
    """A pruned finished job lists no image, and keeps its inference id: its remote job still exists."""
    job = fold([*FINISHED, pruned()]).jobs[KEY]

    assert (Phase.PRUNED, (), "a", False, True) == (
        job.phase,
        job.images,
        job.inference_id,
        job.deleted,
        job.remote_exists,
    )


@pytest.mark.parametrize(
    ("records", "remote_exists"),
    [
        pytest.param([*FINISHED, pruned(), deleted("a")], False, id="deleted-after-pruned"),
        pytest.param([*FINISHED, deleted("a"), pruned()], False, id="pruned-after-deleted"),
        pytest.param([run(local=True), intent(), submitted("a"), finished("a"), pruned()], False, id="local"),
        pytest.param(
            [run(), intent(), FailedRecord(t=2.0, key=KEY, stage=FailStage.CREATE, reason="x"), pruned()],
            False,
            id="no-id",
        ),
        pytest.param([run(), intent(), submitted("a"), pruned()], True, id="in-flight"),
    ],
)
def test_pruned_keeps_deleted_and_local(records: list[Record], remote_exists: bool) -> None:
    """`deleted` and `local` survive the prune (in either order), so `remote_exists` says what is on the server."""
    job = fold(records).jobs[KEY]

    assert (Phase.PRUNED, remote_exists) == (job.phase, job.remote_exists)


def test_a_pruned_job_listed_again_is_created_anew_and_its_remote_job_becomes_an_orphan() -> None:
    """A pruned job needs a create; its new intent keeps the old remote job as an orphan (delete can still find it)."""
    state = fold([*FINISHED, pruned()])
    assert Action.CREATE == action_for(state.jobs[KEY], retry_failed=False)

    job = fold([*FINISHED, pruned(), intent()]).jobs[KEY]

    assert (Phase.INTENT, ("a",), 2) == (job.phase, job.orphans, job.intents)


def test_a_prune_of_a_pruned_job_changes_nothing() -> None:
    """Pruning twice (a rerun after a crash) folds to the same state as once."""
    assert fold([*FINISHED, pruned()]).jobs == fold([*FINISHED, pruned(), pruned()]).jobs


def test_every_short_sequence_with_pruned_keeps_pruned_fileless() -> None:
    """After any sequence of up to four records ending in `pruned`, the job is pruned with no image and no failure."""
    alphabet: list[Record] = [
        run(),
        run(local=True),
        intent(),
        submitted("a"),
        finished("a"),
        deleted("a"),
        FailedRecord(t=2.0, key=KEY, stage=FailStage.GENERATE, reason="x", inference_id="a"),
    ]
    broken = []
    for length in range(1, 5):
        for records in itertools.product(alphabet, repeat=length):
            job = fold([*records, pruned()]).jobs.get(KEY)
            if job is not None and (job.phase is not Phase.PRUNED or job.images or job.failure is not None):
                broken.append(records)
    assert [] == broken[:1]


def job(key: str) -> Job:
    """Return a manifest job with `key`."""
    return Job(key, "m", CreateInferenceDto.model_validate({"prompt": key[:8]}), {})


def test_pruned_jobs_are_neither_dropped_again_nor_resumed() -> None:
    """classify leaves pruned jobs out of `not_in_manifest`; tally gives them no action."""
    state = fold([*FINISHED, pruned(), intent(OTHER), submitted("o", OTHER), finished("o", OTHER)])

    plan = classify([job(OTHER)], state)

    assert ([], 1) == (plan.not_in_manifest, sum(tally(state).values()))


def test_results_and_metadata_hold_the_manifest_jobs_only() -> None:
    """results.json lists the manifest's jobs and counts the dropped ones; metadata has rows of manifest jobs only."""
    state = fold([*FINISHED, intent(OTHER), submitted("o", OTHER), finished("o", OTHER)])

    document = results_document([job(OTHER)], state, name="n")

    assert ([OTHER], 1, [OTHER]) == (
        [entry["key"] for entry in document["jobs"]],
        document["not_in_manifest"],
        [row["key"] for row in metadata_rows(state, {OTHER: None})],
    )
    assert 0 == results_document([job(OTHER)], fold([*FINISHED, pruned()]), name="n")["not_in_manifest"]


def state_records() -> list[Record]:
    """Return a ledger of one finished job (KEY) and one in flight (OTHER)."""
    return [*FINISHED, intent(OTHER), submitted("o", OTHER)]


def test_plan_prune_takes_the_dropped_jobs_and_knows_when_none_would_stay() -> None:
    """The plan is every job the manifest dropped, not pruned yet; `keeps_none` when the manifest keeps nothing."""
    state = fold(state_records())

    plan = plan_prune(state, {OTHER})

    assert ([KEY], 1, False) == ([js.key for js in plan.jobs], plan.images, plan.keeps_none)
    assert plan_prune(state, {"c" * 64}).keeps_none
    assert () == plan_prune(fold([*state_records(), pruned()]), {OTHER}).jobs


def test_remote_targets_are_the_live_remote_jobs_of_dropped_and_pruned_jobs() -> None:
    """`prune --remote` deletes the current and earlier remote jobs of dropped jobs and of jobs pruned earlier."""
    records: list[Record] = [run(), intent(), submitted("old"), intent(), submitted("a"), finished("a"), pruned()]
    records += [intent(OTHER), submitted("o", OTHER)]
    state = fold(records)

    targets = remote_targets(state, plan_prune(state, set()))

    assert [("a", "dropped"), ("old", "earlier attempt")] == [(t.inference_id, t.why) for t in targets if t.key == KEY]
    assert [Target(OTHER, "m", "o", "dropped")] == [t for t in targets if t.key == OTHER]


def test_delete_deletes_a_pruned_jobs_remote_job_although_its_images_are_gone(tmp_path: Path) -> None:
    """`delete` targets a pruned job's remote job by default: it has no image left to lose."""
    state: LedgerState = fold([*FINISHED, pruned()])

    plan = plan_deletes(tmp_path, state, include_failed=False, force=False)

    assert ([Target(KEY, "m", "a", "pruned")], []) == (plan.targets, plan.refused)
