"""Submit a job exactly once: intent -> create -> (on an unknown outcome) reconcile -> adopt.

The API has no idempotency key, so a create whose answer is lost may or may not have made a paid job. The rules
(docs/reliability.md, rule 3):
- **Write-ahead.** An `intent` record is fsynced before every create; `submitted` follows the response.
- **Refusals are definite.** A 400 fails the job with the server's messages; a create that provably never acted
  on the server (`provably_unserved`: no connection, 429, 503, already retried by the client's policy) fails it
  for now, and nothing is listed.
- **Unknown outcomes are settled by listing.** Any other failure, or an intent left by a crash, is matched by
  request fingerprint among the model's jobs created after the intent (less `CLOCK_SKEW`, since the server
  stamps `createdAt` with its clock and the intent uses ours); the oldest match is adopted (`submitted`,
  `adopted=true`). A new create is sent only if none matches, at most `MAX_CREATE_ATTEMPTS` times.
- **Matches are unambiguous.** Jobs with the same fingerprint never have creates in flight at the same time (a
  lock per model and fingerprint), and an id another job of the ledger already owns is never adopted.
- Listings read page after page until a page whose jobs all predate the cutoff (listing order is undocumented).
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

import trio

from leapbatch import errors
from leapbatch.api.backoff import backoff_delay
from leapbatch.api.client import LeapClient
from leapbatch.api.retry import provably_unserved
from leapbatch.crashpoints import crashpoint
from leapbatch.events import EventSink, JobSubmitted, Notice
from leapbatch.folder.ledger import Ledger, now
from leapbatch.folder.records import IntentRecord, SubmittedRecord
from leapbatch.jobs import Job, entity_fingerprint
from leapbatch.run.resume import Action
from leapbatch.wire import InferenceEntity

MAX_CREATE_ATTEMPTS = 3
# The server stamps createdAt with its clock; the intent uses ours. Allow this much skew when matching.
CLOCK_SKEW = 120.0
LIST_PAGE_SIZE = 100


@dataclass(frozen=True, slots=True)
class Submitted:
    """A job that exists remotely: its inference id and the server's createdAt (when known)."""

    inference_id: str
    created_at: datetime | None
    adopted: bool = False


class CreateFailedError(Exception):
    """Raised when the job cannot be created in this run: the server refused it, or creating kept failing."""

    def __init__(self, reason: str, status: int | None, attempts: int) -> None:
        super().__init__(reason)
        self.reason, self.status, self.attempts = reason, status, attempts


def _created(entity: InferenceEntity) -> float:
    return entity.created_at.timestamp() if entity.created_at else math.inf


class Submitter:
    """Bring jobs to `submitted` against one API, recording every step in the ledger."""

    def __init__(self, client: LeapClient, ledger: Ledger, *, events: EventSink, rng: random.Random | None = None):
        self._client = client
        self._ledger = ledger
        self._emit = events
        self._rng = rng or random.Random()  # jitter only
        self._locks: defaultdict[tuple[str, str], trio.Lock] = defaultdict(trio.Lock)

    async def ensure_submitted(self, job: Job, action: Action) -> Submitted:
        """Return the remote job of `job`: the one on record (POLL), one adopted (RECONCILE), or a new one."""
        known = self._ledger.state.jobs.get(job.key)
        if action is Action.POLL and known is not None and known.inference_id is not None:
            created = datetime.fromisoformat(known.created_at) if known.created_at else None
            return Submitted(known.inference_id, created)
        async with self._locks[(job.model_id, job.fingerprint)]:
            if action is Action.RECONCILE and known is not None:
                adopted = await self.reconcile(job, since=known.intent_time)
                if adopted is not None:
                    return adopted
            return await self._create(job)

    async def _create(self, job: Job) -> Submitted:
        for attempt in range(1, MAX_CREATE_ATTEMPTS + 1):
            intent = IntentRecord(
                t=now(),
                key=job.key,
                model=job.model_id,
                fingerprint=job.fingerprint,
                request=job.request.to_wire(),
                variables=dict(job.variables),
            )
            self._ledger.append(intent)
            crashpoint("after-intent")
            try:
                entity = await self._client.create(job.model_id, job.request)
            except errors.BadRequestError as exc:
                raise CreateFailedError("; ".join(exc.messages), exc.status, attempt) from None
            except errors.ApiError as exc:
                if provably_unserved(exc):  # the client's policy already retried it: give up on it for now
                    raise CreateFailedError(exc.message, errors.status_of(exc), attempt) from None
                self._emit(Notice(f"create of job {job.key[:12]} had an unknown outcome ({exc.message}); listing"))
                adopted = await self.reconcile(job, since=intent.t)
                if adopted is not None:
                    return adopted
                if attempt == MAX_CREATE_ATTEMPTS:
                    raise CreateFailedError(exc.message, errors.status_of(exc), attempt) from None
                await trio.sleep(backoff_delay(attempt, base=0.5, cap=10.0, rng=self._rng))
                continue
            crashpoint("before-submitted")
            return self._record(job, entity, adopted=False)
        raise AssertionError("unreachable")  # pragma: no cover

    async def reconcile(self, job: Job, *, since: float) -> Submitted | None:
        """Find the job a create with an unknown outcome may have made; adopt it (record `submitted`) if found."""
        claimed = self._ledger.state.claimed_ids()
        cutoff = since - CLOCK_SKEW
        matches: list[InferenceEntity] = []
        page = 1
        while batch := await self._client.find_all(job.model_id, page=page, page_size=LIST_PAGE_SIZE):
            matches += [
                e
                for e in batch
                if _created(e) >= cutoff and e.id not in claimed and entity_fingerprint(e) == job.fingerprint
            ]
            # Listing order is undocumented: stop only at a page whose jobs all predate the intent.
            if all(_created(e) < cutoff for e in batch):
                break
            page += 1
        found = min(matches, key=_created, default=None)  # the oldest match after the intent is the one we made
        if found is None:
            return None
        return self._record(job, found, adopted=True)

    def _record(self, job: Job, entity: InferenceEntity, *, adopted: bool) -> Submitted:
        """Record that `job` exists remotely as `entity` (created now, or adopted), and say so."""
        created_at = entity.created_at.isoformat() if entity.created_at else None
        self._ledger.append(
            SubmittedRecord(t=now(), key=job.key, inference_id=entity.id, created_at=created_at, adopted=adopted)
        )
        self._emit(JobSubmitted(job.key, entity.id, adopted=adopted))
        return Submitted(entity.id, entity.created_at, adopted=adopted)
