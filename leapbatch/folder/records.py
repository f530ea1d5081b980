"""The ledger's records: one pydantic model per line type, and the adapter that reads any of them.

Every record is one JSON object on one line with a format version `v` and a `type`:

| type        | written                                        | carries                                         |
|-------------|------------------------------------------------|-------------------------------------------------|
| `run`       | when a run (or `delete`, `merge`) opens the    | manifest path + sha256 and name, tool version,  |
|             | folder                                         | base URL, the shard it runs (`I/N`)             |
| `intent`    | fsynced **before** a create is sent            | job key, model, request as sent, fingerprint,   |
|             |                                                | what it commits (`cost`, at the run's price)    |
| `submitted` | after the create answered (or was adopted)     | inference id, whether it was adopted            |
| `finished`  | after every image is verified and in place     | per image: index, uri, path, sha256, bytes, w, h|
| `failed`    | when a job cannot finish                       | stage, reason, HTTP status, attempts, whether   |
|             |                                                | the server surely made no job (`no_job`)        |
| `refused`   | the server refused the create for every job    | reason, HTTP status: no job was made, and the   |
|             | (model, billing, key, unreachable): see submit | next run creates it again (it is not failed)    |
| `deleted`   | after the remote job was deleted (or was gone) | inference id, outcome                           |
| `pruned`    | by `prune`, **before** the job's files are     | key only: the job left the dataset; its remote  |
|             | removed (the manifest no longer has the job)   | job (if any) is kept until `delete` removes it  |
| `consent`   | when a run above the confirmation threshold    | the folder's total cost and job count the user  |
|             | was confirmed (prompt, --yes, --confirm-cost)  | agreed to: a later run within them asks nothing |

The API key is never in a record. `leapbatch.folder.state.fold` is the only interpretation of the records.
"""

from __future__ import annotations

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
    price: dict[str, Any] | None = None  # the price its intents' costs were computed at (`Price.to_json`)
    max_usd: float | None = None  # the budget caps in force (manifest or command line)
    max_images: int | None = None
    name: str | None = None  # the manifest's name
    # `I/N` when the run made shard I of N of its manifest's jobs (None: all of them)
    shard: str | None = Field(default=None, pattern=r"^[0-9]{1,9}/[0-9]{1,9}$")


class IntentRecord(_Record):
    """A create is about to be sent for this job."""

    type: Literal["intent"] = "intent"
    key: str
    model: str
    fingerprint: str
    request: dict[str, Any]
    variables: dict[str, Any] = Field(default_factory=dict)
    cost: float | None = None  # what this create commits at the run's price (None: written before prices were)
    free_images: int = 0  # of its images, how many the plan's included quota covered (they cost nothing)


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
    no_job: bool = False  # the server refused the create (a definite answer) or never got it: nothing was spent


class RefusedRecord(_Record):
    """The create was refused for a reason every job shares (the batch stopped): no job was made."""

    type: Literal["refused"] = "refused"
    key: str
    reason: str
    http_status: int | None = None  # None: the server could not be reached


class DeletedRecord(_Record):
    """The remote job is gone: deleted now, or found already gone (404)."""

    type: Literal["deleted"] = "deleted"
    key: str
    inference_id: str
    outcome: Literal["deleted", "already_gone"]


class PrunedRecord(_Record):
    """The job left the dataset (its manifest dropped it): written before its files are removed."""

    type: Literal["pruned"] = "pruned"
    key: str


class ConsentRecord(_Record):
    """The user agreed that the folder may cost up to `total` (its currency) for up to `jobs` jobs."""

    type: Literal["consent"] = "consent"
    total: float
    jobs: int
    images: int
    price: str  # `Price.label`, as the user saw it


Record = Annotated[
    RunRecord
    | IntentRecord
    | SubmittedRecord
    | FinishedRecord
    | FailedRecord
    | RefusedRecord
    | DeletedRecord
    | PrunedRecord
    | ConsentRecord,
    Field(discriminator="type"),
]
RECORD_ADAPTER: TypeAdapter[Record] = TypeAdapter(Record)
