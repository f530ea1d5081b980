"""Specs of the resume contract: what each job needs in a run, given what the ledger knows about it."""

from __future__ import annotations

from typing import Literal

import pytest

from leapbatch.folder.records import FailedRecord, FailStage
from leapbatch.folder.state import JobState, LedgerState, Phase
from leapbatch.jobs import Job
from leapbatch.run.resume import Action, ResumePlan, action_for, classify, ledger_diff, tally
from leapbatch.wire import CreateInferenceDto

Remote = Literal["live", "deleted", "no-id"]  # what became of the job's current inference id
OTHER_STAGES = tuple(stage for stage in FailStage if stage is not FailStage.DOWNLOAD)


def job_state(
    phase: Phase,
    *,
    key: str = "k1",
    remote: Remote = "live",
    local: bool = False,
    stage: FailStage | None = None,
) -> JobState:
    """Return the state of one job, built directly (a `failed` job fails at `stage`)."""
    inference_id = None if remote == "no-id" else f"inf-{key}"
    failure = None
    if stage is not None:
        failure = FailedRecord(t=3.0, key=key, stage=stage, reason="it broke", inference_id=inference_id)
    return JobState(
        key=key,
        model="m",
        request={"prompt": key},
        fingerprint=f"fp-{key}",
        variables={},
        phase=phase,
        intent_time=1.0,
        inference_id=inference_id,
        failure=failure,
        deleted=remote == "deleted",
        local=local,
    )


def row(
    phase: Phase | None,
    expected: Action,
    *,
    remote: Remote = "live",
    local: bool = False,
    stage: FailStage | None = None,
    retry_failed: bool = False,
) -> object:
    """Return one row of the `action_for` table, with an id that spells its columns."""
    state = None if phase is None else job_state(phase, remote=remote, local=local, stage=stage)
    columns = [
        "no-state" if phase is None else phase.value,
        *([stage.value] if stage is not None else []),
        *([remote] if phase is not None else []),
        *(["local"] if local else []),
        "retry" if retry_failed else "plain",
    ]
    return pytest.param(state, retry_failed, expected, id="-".join(columns))


BOTH = (False, True)
GONE: tuple[tuple[Remote, bool], ...] = (("deleted", False), ("no-id", False), ("live", True))  # no remote job

ACTION_TABLE = [
    # A job the ledger never heard of is created.
    *(row(None, Action.CREATE, retry_failed=retry) for retry in BOTH),
    # A finished job costs nothing: not when local, not when deleted, not with --retry-failed.
    *(
        row(Phase.FINISHED, Action.DONE, remote=remote, local=local, retry_failed=retry)
        for remote in ("live", "deleted")
        for local in BOTH
        for retry in BOTH
    ),
    # A submitted job is polled by its id, never created again (even after `delete --force` removed it: the poll
    # finds the 404 and records the failure).
    *(
        row(Phase.SUBMITTED, Action.POLL, remote=remote, retry_failed=retry)
        for remote in ("live", "deleted")
        for retry in BOTH
    ),
    # An intent without `submitted` is settled by listing.
    *(row(Phase.INTENT, Action.RECONCILE, remote="no-id", retry_failed=retry) for retry in BOTH),
    # A `run --local` job left unfinished is created again: its emulator ended with that run.
    *(row(Phase.INTENT, Action.CREATE, remote="no-id", local=True, retry_failed=retry) for retry in BOTH),
    *(row(Phase.SUBMITTED, Action.CREATE, local=True, retry_failed=retry) for retry in BOTH),
    # A download failure whose remote job still exists is polled again for free, --retry-failed or not.
    *(row(Phase.FAILED, Action.POLL, stage=FailStage.DOWNLOAD, retry_failed=retry) for retry in BOTH),
    # ... but not once its remote job is gone (deleted, never known, or held by an ended emulator).
    *(
        row(Phase.FAILED, Action.KEEP_FAILED, stage=FailStage.DOWNLOAD, remote=remote, local=local)
        for remote, local in GONE
    ),
    *(
        row(Phase.FAILED, Action.CREATE, stage=FailStage.DOWNLOAD, remote=remote, local=local, retry_failed=True)
        for remote, local in GONE
    ),
    # Any other failure stays failed unless --retry-failed, whatever became of its remote job.
    *(
        row(Phase.FAILED, Action.KEEP_FAILED, stage=stage, remote=remote, local=local)
        for stage in OTHER_STAGES
        for remote in ("live", "deleted", "no-id")
        for local in BOTH
    ),
    *(
        row(Phase.FAILED, Action.CREATE, stage=stage, remote=remote, local=local, retry_failed=True)
        for stage in OTHER_STAGES
        for remote in ("live", "deleted", "no-id")
        for local in BOTH
    ),
]


@pytest.mark.parametrize(("state", "retry_failed", "expected"), ACTION_TABLE)
def test_action_for_table(state: JobState | None, retry_failed: bool, expected: Action) -> None:
    """Finished costs nothing, submitted is polled, intent is reconciled, only `--retry-failed` pays again."""
    assert expected == action_for(state, retry_failed=retry_failed)


def manifest_job(prompt: str) -> Job:
    """Return a job of the manifest for `prompt`."""
    return Job.build("m", CreateInferenceDto(prompt=prompt, seed=1))


def ledger_of(*states: JobState) -> LedgerState:
    """Return a ledger state holding `states`, in order."""
    return LedgerState(jobs={state.key: state for state in states})


NEW, DONE, POLLED, SETTLED, FAILED, DOWNLOAD, LOCAL = (
    manifest_job(name) for name in ("new", "done", "polled", "settled", "failed", "download", "local")
)
MANIFEST = [NEW, DONE, POLLED, SETTLED, FAILED, DOWNLOAD, LOCAL]
LEDGER = ledger_of(
    job_state(Phase.FINISHED, key=DONE.key),
    job_state(Phase.SUBMITTED, key=POLLED.key),
    job_state(Phase.INTENT, key=SETTLED.key, remote="no-id"),
    job_state(Phase.FAILED, key=FAILED.key, stage=FailStage.GENERATE),
    job_state(Phase.FAILED, key=DOWNLOAD.key, stage=FailStage.DOWNLOAD),
    job_state(Phase.SUBMITTED, key=LOCAL.key, local=True),
    job_state(Phase.FINISHED, key="dropped-finished"),
    job_state(Phase.FAILED, key="dropped-failed", stage=FailStage.CREATE, remote="no-id"),
)


def keys_by_action(plan: ResumePlan) -> dict[Action, list[str]]:
    """Return the job keys the plan gives each action, in order."""
    return {action: [job.key for job in jobs] for action, jobs in plan.by_action.items()}


@pytest.mark.parametrize(
    ("retry_failed", "expected"),
    [
        pytest.param(
            False,
            {
                Action.DONE: [DONE.key],
                Action.POLL: [POLLED.key, DOWNLOAD.key],
                Action.RECONCILE: [SETTLED.key],
                Action.CREATE: [NEW.key, LOCAL.key],
                Action.KEEP_FAILED: [FAILED.key],
            },
            id="plain",
        ),
        pytest.param(
            True,
            {
                Action.DONE: [DONE.key],
                Action.POLL: [POLLED.key, DOWNLOAD.key],
                Action.RECONCILE: [SETTLED.key],
                Action.CREATE: [NEW.key, FAILED.key, LOCAL.key],
                Action.KEEP_FAILED: [],
            },
            id="retry-failed",
        ),
    ],
)
def test_classify_sorts_the_manifest_by_action(retry_failed: bool, expected: dict[Action, list[str]]) -> None:
    """Every manifest job lands under the action `action_for` gives it (a job missing from the ledger is CREATE)."""
    plan = classify(MANIFEST, LEDGER, retry_failed=retry_failed)

    assert expected == keys_by_action(plan)


def test_classify_defaults_to_keeping_failures() -> None:
    """Without `retry_failed`, a failed job is kept failed."""
    plan = classify([FAILED], LEDGER)

    assert [FAILED.key] == keys_by_action(plan)[Action.KEEP_FAILED]


def test_ledger_jobs_the_manifest_dropped_are_not_in_manifest() -> None:
    """Ledger jobs absent from the manifest are listed apart, in ledger order, and given no action."""
    plan = classify(MANIFEST, LEDGER)

    assert ["dropped-finished", "dropped-failed"] == [state.key for state in plan.not_in_manifest]
    assert len(MANIFEST) == sum(plan.count(action) for action in Action)


def test_an_empty_ledger_creates_everything() -> None:
    """Against an empty ledger every job is new and nothing is dropped."""
    plan = classify(MANIFEST, LedgerState())

    assert ([job.key for job in MANIFEST], []) == (keys_by_action(plan)[Action.CREATE], plan.not_in_manifest)


def test_to_run_polls_then_reconciles_then_creates() -> None:
    """`to_run` lists POLL jobs, then RECONCILE, then CREATE (each in manifest order), never DONE or failed ones."""
    plan = classify(list(reversed(MANIFEST)), LEDGER)

    expected = [
        (Action.POLL, DOWNLOAD.key),
        (Action.POLL, POLLED.key),
        (Action.RECONCILE, SETTLED.key),
        (Action.CREATE, LOCAL.key),
        (Action.CREATE, NEW.key),
    ]
    assert expected == [(action, job.key) for action, job in plan.to_run]


def test_count_counts_each_action() -> None:
    """`count` is the length of each action's list."""
    plan = classify(MANIFEST, LEDGER)

    expected = {Action.DONE: 1, Action.POLL: 2, Action.RECONCILE: 1, Action.CREATE: 2, Action.KEEP_FAILED: 1}
    assert expected == {action: plan.count(action) for action in Action}


def test_tally_counts_every_ledger_job_as_a_plain_rerun_would() -> None:
    """`tally` gives every ledger job (manifest or not) its action without `--retry-failed`, zeros included."""
    assert {"done": 2, "poll": 2, "reconcile": 1, "create": 1, "failed": 2} == tally(LEDGER)


def test_tally_of_an_empty_ledger_is_all_zeros() -> None:
    """An empty ledger tallies zero for every action."""
    assert {"done": 0, "poll": 0, "reconcile": 0, "create": 0, "failed": 0} == tally(LedgerState())


@pytest.mark.parametrize(
    ("retry_failed", "expected"),
    [
        pytest.param(False, {"new": 2, "done": 1, "in_flight": 3, "failed": 1, "not_in_manifest": 2}, id="plain"),
        pytest.param(True, {"new": 3, "done": 1, "in_flight": 3, "failed": 0, "not_in_manifest": 2}, id="retry-failed"),
    ],
)
def test_ledger_diff(retry_failed: bool, expected: dict[str, int]) -> None:
    """`ledger_diff` counts new (CREATE), done, in flight (POLL + RECONCILE), failed and dropped jobs."""
    assert expected == ledger_diff(classify(MANIFEST, LEDGER, retry_failed=retry_failed))
