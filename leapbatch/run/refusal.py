"""Pure: which create refusals will be the same for every job, and when they stop the batch.

Some answers to a create say nothing about the job and everything about the account, the model or the network:
sending the other jobs would only collect the same answer (and, on a manifest of thousands, thousands of failed
jobs to retry by hand). The rules (docs/cli.md, "Refusals that stop the batch"):

| answer to a create                                | kind          | the job is recorded    | the batch            |
|---------------------------------------------------|---------------|------------------------|----------------------|
| 404 (Leap: `Model not found`)                     | `model`       | `refused`              | stops at once        |
| 402 (billing limit, plan)                         | `billing`     | `refused`              | stops at once        |
| 401, 403 (the key)                                | `key`         | `refused`              | ends at once         |
| no connection (refused, DNS), its retries spent   | `unreachable` | `refused`              | stops at once        |
| 400 with the same messages as the last            | `request`     | `failed` (its request) | stops at the         |
| `REPEATS - 1` creates of the model, no success    |               |                        | `REPEATS`th          |
| between                                           |               |                        |                      |

A `refused` job made no job on the server (a definite answer, or no connection at all), so it is not failed: the
next run creates it again, no `--retry-failed` needed. "Stops" means no new create is sent; jobs already on the
server are still polled and downloaded. `key` ends the batch there and then (no request can work with a refused
key). Until one create of a model has succeeded in a run, its creates go one at a time
(`leapbatch.run.submit.Submitter`), so a wrong model id, an empty account or a dead host costs one create.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from enum import StrEnum

from leapbatch import errors

REPEATS = 3  # creates of one model in a row answered 400 with the same messages: the manifest's mistake


class RefusalKind(StrEnum):
    """Why every job's create would be refused."""

    MODEL = "model"
    BILLING = "billing"
    KEY = "key"
    UNREACHABLE = "unreachable"
    REQUEST = "request"


HINTS = {
    RefusalKind.MODEL: "check the manifest's `model` (a model id your key can use)",
    RefusalKind.BILLING: "check the account's plan and billing at Leap (a budget cap stops a run before it)",
    RefusalKind.KEY: "check LEAP_API_KEY",
    RefusalKind.UNREACHABLE: "check the network and LEAP_BASE_URL",
    RefusalKind.REQUEST: "fix what the server's message names in the manifest (`leapbatch validate` checks it)",
}


@dataclass(frozen=True, slots=True)
class Refusal:
    """A refusal every job of the batch would get: its kind, the model, the status (None: unreachable), the words."""

    kind: RefusalKind
    model_id: str
    status: int | None
    message: str

    def describe(self, host: str) -> str:
        """Return the one line that says who refused what, in the server's words (`host`: the configured server)."""
        said = {
            RefusalKind.MODEL: f"{host} does not know model {self.model_id}",
            RefusalKind.BILLING: f"spend limit reached on the server side: {host} refused to bill another job",
            RefusalKind.KEY: f"{host} refused the API key",
            RefusalKind.UNREACHABLE: f"{host} could not be reached (creating jobs of model {self.model_id})",
            RefusalKind.REQUEST: f"{host} refused every create of model {self.model_id} alike",
        }[self.kind]
        return f"{said}: {self.message}"

    @property
    def hint(self) -> str:
        """Return what to fix, and that the next run resumes the jobs that were not sent."""
        return (
            f"{HINTS[self.kind]}; then run the same command again: jobs not submitted (and `refused` ones) run then,"
            " without --retry-failed"
        )


def persistent_kind(exc: errors.LeapbatchError) -> RefusalKind | None:
    """Return the kind of a create failure every job would share, or None when it may be this job's own."""
    if isinstance(exc, errors.KeyRefusedError):
        return RefusalKind.KEY
    if isinstance(exc, errors.ConnectError):
        return RefusalKind.UNREACHABLE
    status = errors.status_of(exc) if isinstance(exc, errors.ApiError) else None
    if status == 404:
        return RefusalKind.MODEL
    if status == 402:
        return RefusalKind.BILLING
    return None


class Breaker:
    """The batch's record of create answers: trips on the first refusal every job would share (see the table)."""

    def __init__(self, repeats: int = REPEATS) -> None:
        self._repeats = repeats
        self._bad_requests: dict[str, deque[tuple[str, ...]]] = {}
        self.tripped: Refusal | None = None

    def created(self, model_id: str) -> None:
        """Note a create the server accepted: a streak of 400s for the model ends."""
        self._bad_requests.pop(model_id, None)

    def refused(self, model_id: str, exc: errors.LeapbatchError) -> Refusal | None:
        """Note a create the server refused with `exc`; return the refusal every job shares, if it is one."""
        kind = persistent_kind(exc)
        if kind is not None:
            return self._trip(Refusal(kind, model_id, _status(exc), _words(exc)))
        if not isinstance(exc, errors.BadRequestError):
            return None
        streak = self._bad_requests.setdefault(model_id, deque(maxlen=self._repeats))
        streak.append(tuple(exc.messages))
        if len(streak) == self._repeats and len(set(streak)) == 1:
            return self._trip(Refusal(RefusalKind.REQUEST, model_id, exc.status, _words(exc)))
        return None

    def _trip(self, refusal: Refusal) -> Refusal:
        if self.tripped is None:
            self.tripped = refusal
        return refusal


def _status(exc: errors.LeapbatchError) -> int | None:
    return getattr(exc, "status", None)


def _words(exc: errors.LeapbatchError) -> str:
    """Return what the server said (`HTTP 404: Model not found`), without the request's path."""
    if isinstance(exc, errors.HTTPStatusError):
        return f"HTTP {exc.status}: {'; '.join(exc.messages) or 'no message'}"
    return exc.message
