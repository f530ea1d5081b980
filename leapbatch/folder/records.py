"""The ledger's records, and the pure fold that turns them into the state of every job.

Every record is one JSON object on one line with a format version `v` and a `type`:

| type        | written                                        | carries                                         |
|-------------|------------------------------------------------|-------------------------------------------------|
| `run`       | when a run (or `delete`) opens the folder      | manifest path + sha256, tool version, base URL  |
| `intent`    | fsynced **before** a create is sent            | job key, model, request as sent, fingerprint    |
| `submitted` | after the create answered (or was adopted)     | inference id, whether it was adopted            |
| `finished`  | after every image is verified and in place     | per image: index, uri, path, sha256, bytes, w, h|
| `failed`    | when a job cannot finish                       | stage, reason, HTTP status, attempts            |
| `deleted`   | after the remote job was deleted (or was gone) | inference id, outcome                           |

The API key is never in a record. `fold` is the only interpretation of the records: the runner, `plan`, `status`,
`delete` and `verify` all read the same `JobState`s from it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

FORMAT_VERSION: Literal[1] = 1


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    v: Literal[1] = FORMAT_VERSION
    t: float  # unix time (seconds) when the record was written


class RunRecord(_Record):
    """A process opened the folder to work on it."""

    type: Literal["run"] = "run"
    command: str
    tool_version: str
    base_url: str
    manifest_path: str | None = None
    manifest_sha256: str | None = None
    jobs: int | None = None
    local: bool = False  # against the bundled emulator, whose jobs vanish with the run


class IntentRecord(_Record):
    """A create is about to be sent for this job."""

    type: Literal["intent"] = "intent"
    key: str
    model: str
    fingerprint: str
    request: dict[str, Any]
    variables: dict[str, Any] = Field(default_factory=dict)


class SubmittedRecord(_Record):
    """The job exists remotely under this inference id."""

    type: Literal["submitted"] = "submitted"
    key: str
    inference_id: str
    created_at: str | None = None  # the server's createdAt, ISO 8601
    adopted: bool = False  # found by fingerprint after an unknown outcome, not from a create's response


class ImageRecord(BaseModel):
    """One verified image on disk."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    index: int
    uri: str
    path: str
    sha256: str
    bytes: int
    width: int
    height: int


class FinishedRecord(_Record):
    """Every image of the job is verified and in place."""

    type: Literal["finished"] = "finished"
    key: str
    inference_id: str
    images: list[ImageRecord]


class FailStage(StrEnum):
    """Where a job failed; a `download` failure is retried on resume for free (the job is paid and finished)."""

    CREATE = "create"  # the server refused the request (400) or creating kept failing
    GENERATE = "generate"  # the job ended `failed` remotely
    TIMEOUT = "timeout"  # the job did not finish within job_timeout
    DOWNLOAD = "download"  # the images could not be fetched or did not verify


class FailedRecord(_Record):
    """The job cannot finish (for now)."""

    type: Literal["failed"] = "failed"
    key: str
    stage: FailStage
    reason: str
    inference_id: str | None = None
    http_status: int | None = None
    attempts: int = 1


class DeletedRecord(_Record):
    """The remote job is gone: deleted now, or found already gone (404)."""

    type: Literal["deleted"] = "deleted"
    key: str
    inference_id: str
    outcome: Literal["deleted", "already_gone"]


Record = Annotated[
    RunRecord | IntentRecord | SubmittedRecord | FinishedRecord | FailedRecord | DeletedRecord,
    Field(discriminator="type"),
]
RECORD_ADAPTER: TypeAdapter[Record] = TypeAdapter(Record)


class Phase(StrEnum):
    """Where a job stands according to the ledger."""

    INTENT = "intent"  # a create may or may not have reached the server: settle by listing
    SUBMITTED = "submitted"  # exists remotely, not known to be done
    FINISHED = "finished"
    FAILED = "failed"


@dataclass(frozen=True)
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
    deleted: bool = False
    orphans: tuple[str, ...] = ()  # remote jobs of earlier attempts (e.g. before --retry-failed), not yet deleted
    local: bool = False  # submitted to the bundled emulator of a `run --local`: nothing remains remotely

    @property
    def remote_exists(self) -> bool:
        """Return whether a remote job is known to exist (submitted to a real server and not deleted)."""
        return self.inference_id is not None and not self.deleted and not self.local


@dataclass
class LedgerState:
    """The fold of a ledger: every job by key (in first-intent order), and the run records."""

    jobs: dict[str, JobState] = field(default_factory=dict)
    runs: list[RunRecord] = field(default_factory=list)

    def claimed_ids(self) -> set[str]:
        """Return every inference id some job already owns."""
        return {job.inference_id for job in self.jobs.values() if job.inference_id is not None}


def apply(state: LedgerState, record: Record) -> None:
    """Fold one record into `state` (records about unknown jobs are ignored, as a later intent would rewrite them)."""
    if isinstance(record, RunRecord):
        state.runs.append(record)
        return
    if isinstance(record, IntentRecord):
        previous = state.jobs.get(record.key)
        orphans = previous.orphans if previous else ()
        if previous is not None and previous.remote_exists and previous.inference_id is not None:
            orphans = (*orphans, previous.inference_id)
        state.jobs[record.key] = JobState(
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
        )
        return
    job = state.jobs.get(record.key)
    if job is None:
        return
    if isinstance(record, SubmittedRecord):
        state.jobs[record.key] = replace(
            job,
            phase=Phase.SUBMITTED,
            inference_id=record.inference_id,
            created_at=record.created_at,
            failure=None,
            deleted=False,
            local=bool(state.runs) and state.runs[-1].local,
        )
    elif isinstance(record, FinishedRecord):
        state.jobs[record.key] = replace(
            job, phase=Phase.FINISHED, inference_id=record.inference_id, images=tuple(record.images), failure=None
        )
    elif isinstance(record, FailedRecord):
        state.jobs[record.key] = replace(
            job, phase=Phase.FAILED, failure=record, inference_id=record.inference_id or job.inference_id
        )
    elif isinstance(record, DeletedRecord):
        if record.inference_id == job.inference_id:
            state.jobs[record.key] = replace(job, deleted=True)
        else:
            state.jobs[record.key] = replace(job, orphans=tuple(i for i in job.orphans if i != record.inference_id))


def fold(records: Iterable[Record]) -> LedgerState:
    """Return the state of every job after `records`, in order."""
    state = LedgerState()
    for record in records:
        apply(state, record)
    return state
