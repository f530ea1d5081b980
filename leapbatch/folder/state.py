"""The pure fold of ledger records into the state of every job: the only interpretation of a ledger.

The runner, `plan`, `status`, `delete` and `verify` all read the same `JobState`s from `fold`. Records apply in
file order; a record about a key with no intent yet is ignored (a later intent would rewrite the job anyway).

The legal states of one job (`tests/folder/test_state.py` walks every record sequence that reaches each):

| phase       | inference_id | failure | images | deleted     | orphans  | reached by                              |
|-------------|--------------|---------|--------|-------------|----------|-----------------------------------------|
| `intent`    | None         | None    | ()     | False       | any      | intent (a new attempt starts clean)     |
| `submitted` | set          | None    | ()     | True/False  | any      | intent, submitted (then delete --force) |
| `finished`  | set          | None    | >= 1   | True/False  | any      | ... submitted, finished (then deleted)  |
| `failed`    | None or set  | set     | ()     | True/False  | any      | ... failed (then deleted)               |
| `refused`   | None         | None    | ()     | False       | any      | intent, refused (no job was made)       |
| `pruned`    | None or set  | None    | ()     | True/False  | any      | ... pruned (then deleted)               |

- `orphans` are the inference ids of earlier attempts that still exist remotely: an intent for a job whose
  previous attempt has a live remote job (submitted to a real server, not deleted) moves that id to `orphans`; a
  `deleted` record for an orphan's id removes it. The current `inference_id` is never among the orphans.
- `local` is True when the job's latest intent or submitted record was written during a `run --local`: its remote
  job lived in an emulator that ended with the run, so it is never `remote_exists` and never an orphan.
- `deleted` is set by a `deleted` record for the current id and cleared by a later `submitted` record.
- `attempt` is what the job's latest create commits (`leapbatch.folder.spend`); `LedgerState.spend` tallies every
  attempt of every job, earlier ones included, and `consent` is the latest `consent` record.
- `pruned` (a job its manifest dropped, removed from the dataset by `leapbatch prune`) owns no file, but keeps its
  `inference_id`, `deleted`, `local` and `orphans`: a remote job it still has stays `remote_exists`, so `delete`
  can remove it. Only a new intent (the manifest lists the job again: it is created anew) ends the phase.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any

from leapbatch.folder.records import (
    ConsentRecord,
    DeletedRecord,
    FailedRecord,
    FinishedRecord,
    ImageRecord,
    IntentRecord,
    PrunedRecord,
    Record,
    RefusedRecord,
    RunRecord,
    SubmittedRecord,
)
from leapbatch.folder.spend import Attempt, Spend


class Phase(StrEnum):
    """Where a job stands according to the ledger."""

    INTENT = "intent"  # a create may or may not have reached the server: settle by listing
    SUBMITTED = "submitted"  # exists remotely, not known to be done
    FINISHED = "finished"
    FAILED = "failed"
    REFUSED = "refused"  # the create was refused for a reason every job shares: created again by the next run
    PRUNED = "pruned"  # its manifest dropped it and `prune` removed its files: created anew if listed again


@dataclass(frozen=True, slots=True)
class JobState:
    """Everything the ledger knows about one job."""

    key: str
    model: str
    request: dict[str, Any]
    fingerprint: str
    variables: dict[str, Any]
    phase: Phase
    intent_time: float
    intents: int = 1
    inference_id: str | None = None
    created_at: str | None = None
    images: tuple[ImageRecord, ...] = ()
    failure: FailedRecord | None = None
    refusal: RefusedRecord | None = None  # why the last create was refused (phase `refused` only)
    deleted: bool = False
    orphans: tuple[str, ...] = ()  # remote jobs of earlier attempts (e.g. before --retry-failed), not yet deleted
    local: bool = False  # submitted to the bundled emulator of a `run --local`: nothing remains remotely
    attempt: Attempt | None = None  # the latest create's commitment (set by every intent)

    @property
    def remote_exists(self) -> bool:
        """Return whether a remote job is known to exist (submitted to a real server and not deleted)."""
        return self.inference_id is not None and not self.deleted and not self.local


@dataclass
class LedgerState:
    """The fold of a ledger: every job by key (in first-intent order), and the run records."""

    jobs: dict[str, JobState] = field(default_factory=dict)
    runs: list[RunRecord] = field(default_factory=list)
    owners: dict[str, str] = field(default_factory=dict)  # every inference id ever recorded -> its job's key
    spend: Spend = field(default_factory=Spend)  # what every create committed (see leapbatch.folder.spend)
    consent: ConsentRecord | None = None  # the latest cost the user agreed to
    changes: int = 0  # records that changed a job (its state, and so the derived files): a version, not a count

    def claimed_ids(self) -> set[str]:
        """Return every inference id some job already owns: current ids and earlier attempts' (never adopt one)."""
        owned = {job.inference_id for job in self.jobs.values() if job.inference_id is not None}
        return owned.union(*(job.orphans for job in self.jobs.values()))

    def owner_of(self, inference_id: str) -> str | None:
        """Return the key of the job any record gave `inference_id` to (the last one, if several), or None."""
        return self.owners.get(inference_id)


def apply(state: LedgerState, record: Record) -> None:
    """Fold one record into `state` (records about unknown jobs are ignored, as a later intent would rewrite them)."""
    if isinstance(record, RunRecord):
        state.runs.append(record)
        return
    if isinstance(record, ConsentRecord):
        state.consent = record
        return
    if isinstance(record, IntentRecord):
        state.jobs[record.key] = _intent(state, record)
        state.changes += 1
        return
    job = state.jobs.get(record.key)
    if job is None:
        return
    state.changes += 1
    _note_owner(state, record)
    job = _next(state, job, record)
    if job.attempt is not None:
        job = _evolve(job, attempt=state.spend.charged(job.attempt, record))
    state.jobs[record.key] = job


def _intent(state: LedgerState, record: IntentRecord) -> JobState:
    """Return the state a new attempt starts in (a live remote job of the previous attempt becomes an orphan)."""
    previous = state.jobs.get(record.key)
    orphans = previous.orphans if previous else ()
    if previous is not None and previous.remote_exists and previous.inference_id is not None:
        orphans = (*orphans, previous.inference_id)
    return JobState(
        key=record.key,
        model=record.model,
        request=record.request,
        fingerprint=record.fingerprint,
        variables=record.variables,
        phase=Phase.INTENT,
        intent_time=record.t,
        intents=previous.intents + 1 if previous else 1,
        orphans=orphans,
        local=bool(state.runs) and state.runs[-1].local,
        attempt=state.spend.opened(Attempt.of(record)),
    )


def _next(state: LedgerState, job: JobState, record: Record) -> JobState:
    """Return the state of `job` after `record` (any record but `run` and `intent`)."""
    if isinstance(record, SubmittedRecord):
        return _evolve(
            job,
            phase=Phase.SUBMITTED,
            inference_id=record.inference_id,
            created_at=record.created_at,
            images=(),
            failure=None,
            deleted=False,
            orphans=_without(job.orphans, record.inference_id),
            local=bool(state.runs) and state.runs[-1].local,
        )
    if isinstance(record, FinishedRecord):
        return _evolve(
            job,
            phase=Phase.FINISHED,
            inference_id=record.inference_id,
            images=tuple(record.images),
            failure=None,
            orphans=_without(job.orphans, record.inference_id),
        )
    if isinstance(record, FailedRecord):
        current = record.inference_id or job.inference_id
        orphans = job.orphans if current is None else _without(job.orphans, current)
        # A failed job owns no image file (the runner removes them), so it lists none.
        return _evolve(job, phase=Phase.FAILED, failure=record, inference_id=current, images=(), orphans=orphans)
    if isinstance(record, RefusedRecord):  # only a create in flight can be refused
        return _evolve(job, phase=Phase.REFUSED, refusal=record) if job.phase is Phase.INTENT else job
    if isinstance(record, PrunedRecord):
        return _evolve(job, phase=Phase.PRUNED, images=(), failure=None)
    if isinstance(record, DeletedRecord):
        if record.inference_id == job.inference_id:
            return _evolve(job, deleted=True)
        return _evolve(job, orphans=_without(job.orphans, record.inference_id))
    return job


def _evolve(job: JobState, **changes: Any) -> JobState:
    """Return `job` with `changes`: `dataclasses.replace` without its per-call look at the fields (the fold makes
    one per record)."""
    return JobState(*[changes[name] if name in changes else getattr(job, name) for name in _FIELDS])


def _note_owner(state: LedgerState, record: Record) -> None:
    recorded = getattr(record, "inference_id", None)
    if isinstance(recorded, str):
        state.owners[recorded] = getattr(record, "key", "")


def _without(orphans: tuple[str, ...], inference_id: str) -> tuple[str, ...]:
    return tuple(i for i in orphans if i != inference_id)


_FIELDS = tuple(f.name for f in fields(JobState))


def fold(records: Iterable[Record]) -> LedgerState:
    """Return the state of every job after `records`, in order."""
    state = LedgerState()
    for record in records:
        apply(state, record)
    return state
