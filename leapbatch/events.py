"""Frozen records of what a run did, emitted by the runner; the progress display and logs are sinks.

Events carry no I/O and no clock reads beyond what the emitter put in them, so sinks can be tested alone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RunPlanned:
    """The run knows what it will do: `to_run` of `total` jobs need work; the rest are done or failed already."""

    total: int
    done: int
    failed: int
    to_run: int
    images_total: int
    images_done: int


@dataclass(frozen=True, slots=True)
class JobSubmitted:
    """A job exists remotely (created now, or adopted after an unknown outcome)."""

    key: str
    inference_id: str
    adopted: bool


@dataclass(frozen=True, slots=True)
class JobFinished:
    """Every image of a job is verified on disk."""

    key: str
    images: int


@dataclass(frozen=True, slots=True)
class JobFailed:
    """A job cannot finish (for now)."""

    key: str
    stage: str
    reason: str


@dataclass(frozen=True, slots=True)
class JobUnsettled:
    """A job's requests kept failing this run; its ledger state is kept for the next run to settle."""

    key: str
    reason: str


@dataclass(frozen=True, slots=True)
class JobDeleted:
    """A job's remote copy is gone."""

    key: str


@dataclass(frozen=True, slots=True)
class RequestRetried:
    """A request failed in a way that is safe to retry, and will be sent again after `delay` seconds."""

    method: str
    path: str
    attempt: int
    delay: float
    reason: str


@dataclass(frozen=True, slots=True)
class Notice:
    """Something a person should know (a torn ledger tail set aside, a job adopted, ...)."""

    message: str


@dataclass(frozen=True, slots=True)
class JobsOverdue:
    """`count` submitted jobs have waited more than twice their expected time (stuck, or a slow server); sent when
    the count changes, back to 0 too."""

    count: int


Event = (
    RunPlanned
    | JobSubmitted
    | JobFinished
    | JobFailed
    | JobUnsettled
    | JobDeleted
    | RequestRetried
    | Notice
    | JobsOverdue
)
EventSink = Callable[[Event], None]


def discard(event: Event) -> None:
    """Ignore an event (the sink for quiet use)."""
