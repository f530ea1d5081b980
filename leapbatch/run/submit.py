"""Submit a job exactly once: intent -> create -> (on an unknown outcome) settle by listing -> adopt.

The API has no idempotency key, so a create whose answer is lost may or may not have made a paid job. The rules
(docs/reliability.md, rule 3):
- **Write-ahead.** An `intent` record is fsynced before every create; `submitted` follows the response.
- **Refusals are definite.** A 4xx (400 with the server's messages, 402, 404 `Model not found`...) never made a
  job: it fails the job at once. So does a create that provably never acted on the server (`provably_unserved`:
  no connection, 429, 503, already retried by the client's policy). Nothing is listed for them.
- **Refusals every job would share stop the batch once** (`leapbatch.run.refusal`: 404, 402, 401/403, no
  connection, the same 400 again and again): the job is recorded `refused` (not failed; the 400s fail), the
  `Breaker` trips, and no later create is sent in this run (`BatchStoppedError`, before any intent). Until one
  create of a model has succeeded in this run, its creates go one at a time, so such a refusal costs one create.
- **Budget caps** (`leapbatch.run.budget`) are checked before the intent: a create that would take the folder's
  committed spend past a cap is not sent (`BudgetStoppedError`), nor any later one; each intent records its cost.
- **Unknown outcomes are settled, not re-posted in haste.** Any other failure, or an intent left by a crash, is
  looked for by request fingerprint among the model's jobs the server stamped after the intent: the intent's time
  moved onto the server's clock as its own answers taught it (`ServerClock`: `Date` headers, the `createdAt` of
  creates; before any answer, 120 s either way). The oldest match is adopted (`submitted`, `adopted=true`). Not
  found at once, it is looked for again, the looks spaced over `settle_window` seconds from the intent, so a job
  committed late or listed late is still found.
- **A new create after an unknown outcome** is sent only once the intent is older than the settle window and
  every look of it was a complete listing that did not find its job (at most `MAX_CREATE_ATTEMPTS` creates per
  run). If a listing could not be read to its end, the job stays **unsettled** instead: no new create in this
  run, and the next run looks again first. The one case that pays twice: a server that commits a job (or lists
  it) later than the settle window after the create was sent.
- **Matches are unambiguous.** Jobs with the same fingerprint never have creates in flight at the same time (a
  lock per model and fingerprint), and an id another job of the ledger already owns is never adopted; a create
  that *answers* with such an id is a server error: the job fails (nothing is recorded as its remote job).
- **Listings are bounded** (`LeapClient.pages`: pages, time, a page that repeats the one before); they stop at a
  page whose jobs all predate the cutoff (listing order is undocumented). A listing that could not be read to
  its end never counts as "not found" for a new create.
"""

from __future__ import annotations

import math
from collections import defaultdict
from contextlib import AbstractAsyncContextManager, aclosing, nullcontext
from dataclasses import dataclass
from datetime import datetime

import trio

from leapbatch import errors
from leapbatch.api.client import LeapClient, inferences_path
from leapbatch.api.retry import provably_unserved
from leapbatch.crashpoints import crashpoint
from leapbatch.events import EventSink, JobSubmitted, Notice
from leapbatch.folder.ledger import Ledger, now
from leapbatch.folder.records import IntentRecord, RefusedRecord, SubmittedRecord
from leapbatch.jobs import Job, entity_fingerprint
from leapbatch.pricing import DEFAULT_PRICE
from leapbatch.run.budget import Budget, Caps
from leapbatch.run.refusal import Breaker, Refusal, RefusalKind
from leapbatch.run.resume import Action
from leapbatch.wire import InferenceEntity

MAX_CREATE_ATTEMPTS = 3
SETTLE_WINDOW = 30.0  # seconds from an intent over which a create with an unknown outcome is looked for
SETTLE_LOOKS = (1.0, 2.0, 4.0, 8.0, 15.0)  # the pauses between looks, then every last one until the window ends
LIST_PAGE_SIZE = 100
MAX_RECONCILE_PAGES = 100
RECONCILE_DEADLINE = 120.0  # seconds one look may take, page after page


@dataclass(frozen=True, slots=True)
class Submitted:
    """A job that exists remotely: its inference id and the server's createdAt (when known)."""

    inference_id: str
    created_at: datetime | None
    adopted: bool = False
    fresh: bool = False  # created by this run just now (its wait from here on is the job's duration)


class CreateFailedError(Exception):
    """Raised when the job cannot be created in this run: the server refused it, or creating kept failing."""

    def __init__(self, reason: str, status: int | None, attempts: int, *, no_job: bool = False) -> None:
        super().__init__(reason)
        self.reason, self.status, self.attempts = reason, status, attempts
        self.no_job = no_job  # the server surely made no job: refused, or never got the request


class JobRefusedError(Exception):
    """Raised when the job's create got a refusal every job would share: recorded `refused`, the batch stops."""

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(refusal.message)
        self.refusal = refusal


class BatchStoppedError(Exception):
    """Raised instead of a create once the batch has stopped (see `leapbatch.run.refusal`): nothing was recorded."""


class BudgetStoppedError(Exception):
    """Raised instead of a create that would cross a budget cap (`Budget.reached`), or any create after it."""


class CreateUnsettledError(errors.ApiError):
    """Raised when a create's outcome is still unknown after the settle window: the next run looks again first."""


@dataclass(frozen=True, slots=True)
class Look:
    """What one listing found: the oldest match (or None), and whether the listing was read to the cutoff."""

    found: InferenceEntity | None
    complete: bool


def _created(entity: InferenceEntity) -> float:
    return entity.created_at.timestamp() if entity.created_at else math.inf


class Submitter:
    """Bring jobs to `submitted` against one API, recording every step in the ledger."""

    def __init__(
        self,
        client: LeapClient,
        ledger: Ledger,
        *,
        events: EventSink,
        settle_window: float = SETTLE_WINDOW,
        budget: Budget | None = None,
    ) -> None:
        self._client = client
        self.budget = budget or Budget(Caps(), DEFAULT_PRICE)
        self._ledger = ledger
        self._emit = events
        self._settle_window = settle_window
        self._locks: defaultdict[tuple[str, str], trio.Lock] = defaultdict(trio.Lock)
        self.breaker = Breaker()
        self._first_contact: defaultdict[str, trio.Lock] = defaultdict(trio.Lock)
        self._proven: set[str] = set()  # models with a create accepted in this run: their creates go in parallel

    async def ensure_submitted(self, job: Job, action: Action) -> Submitted:
        """Return the remote job of `job`: the one on record (POLL), one adopted (RECONCILE), or a new one."""
        known = self._ledger.state.jobs.get(job.key)
        if action is Action.POLL and known is not None and known.inference_id is not None:
            created = datetime.fromisoformat(known.created_at) if known.created_at else None
            return Submitted(known.inference_id, created)
        async with self._locks[(job.model_id, job.fingerprint)]:
            if action is Action.RECONCILE and known is not None:
                return await self._settle_earlier(job, known.intent_time)
            return await self._create(job)

    async def _settle_earlier(self, job: Job, intent_time: float) -> Submitted:
        """Settle an intent an earlier run left: adopt its job, keep looking while young, or create anew."""
        age = max(0.0, now() - intent_time)
        outcome = await self._settle(job, since=intent_time, window=max(0.0, self._settle_window - age))
        if isinstance(outcome, Submitted):
            return outcome
        if not outcome.complete:
            raise self._unsettled(job, "an earlier run's create")
        return await self._create(job)

    def _gate(self, model_id: str) -> AbstractAsyncContextManager[object]:
        """Return the lock a create of `model_id` holds until one such create was accepted, then no lock."""
        return nullcontext() if model_id in self._proven else self._first_contact[model_id]

    async def _send(self, job: Job) -> tuple[IntentRecord, InferenceEntity | errors.ApiError]:
        """Write the intent and send one create (unless the batch stopped); return the entity or the API error."""
        async with self._gate(job.model_id):
            if self.breaker.tripped is not None:
                raise BatchStoppedError(self.breaker.tripped.message)
            admitted = self.budget.admit(self._ledger.state.spend, job.request.steps, job.image_count)
            if admitted is None:
                raise BudgetStoppedError()
            cost, free = admitted
            intent = IntentRecord(
                t=now(),
                key=job.key,
                model=job.model_id,
                fingerprint=job.fingerprint,
                request=job.request.to_wire(),
                variables=dict(job.variables),
                cost=float(cost),
                free_images=free,
            )
            self._ledger.append(intent)
            crashpoint("after-intent")
            try:
                entity = await self._client.create(job.model_id, job.request)
            except errors.KeyRefusedError as exc:
                self._refused(job, exc)
                raise
            except errors.ApiError as exc:
                if (refusal := self._refused(job, exc)) is not None:
                    raise JobRefusedError(refusal) from None
                return intent, exc
            self._proven.add(job.model_id)
            self.breaker.created(job.model_id)
            return intent, entity

    def _refused(self, job: Job, exc: errors.LeapbatchError) -> Refusal | None:
        """Note a refused create; record the job `refused` and return the refusal if every job would share it."""
        first = self.breaker.tripped is None
        refusal = self.breaker.refused(job.model_id, exc)
        if refusal is None:
            return None
        if first and refusal.kind is not RefusalKind.KEY:  # a refused key ends the run at once, saying so
            self._emit(Notice(f"no more creates in this run: {refusal.message}"))
        if refusal.kind is RefusalKind.REQUEST:
            return None  # a 400 is this job's request refused: it fails, and the batch stops
        self._ledger.append(RefusedRecord(t=now(), key=job.key, reason=refusal.message, http_status=refusal.status))
        return refusal

    async def _create(self, job: Job) -> Submitted:
        for attempt in range(1, MAX_CREATE_ATTEMPTS + 1):
            intent, answer = await self._send(job)
            if isinstance(answer, errors.ApiError):
                exc = answer
                status = errors.status_of(exc)
                if isinstance(exc, errors.BadRequestError):
                    raise CreateFailedError("; ".join(exc.messages), status, attempt, no_job=True) from None
                if provably_unserved(exc) or (status is not None and 400 <= status < 500):
                    raise CreateFailedError(exc.message, status, attempt, no_job=True) from None  # no job was made
                self._emit(Notice(f"create of job {job.key[:12]} had an unknown outcome ({exc.message}); listing"))
                outcome = await self._settle(job, since=intent.t, window=self._settle_window)
                if isinstance(outcome, Submitted):
                    return outcome
                if not outcome.complete:
                    raise self._unsettled(job, f"its create ({exc.message})") from None
                if attempt == MAX_CREATE_ATTEMPTS:
                    raise CreateFailedError(exc.message, status, attempt) from None
                continue
            crashpoint("before-submitted")
            return self._check_and_record(job, answer)
        raise AssertionError("unreachable")  # pragma: no cover

    def _check_and_record(self, job: Job, entity: InferenceEntity) -> Submitted:
        owner = self._ledger.state.owner_of(entity.id)
        if owner is not None and owner != job.key:
            reason = f"the server answered the create with id {entity.id}, which job {owner[:12]} already owns"
            raise CreateFailedError(reason + " (a server error; not recorded as this job's)", None, 1)
        return self._record(job, entity, adopted=False)

    async def _settle(self, job: Job, *, since: float, window: float) -> Submitted | Look:
        """Look for the job of an intent at `since`, again and again until `window` seconds have passed."""
        ends = trio.current_time() + window
        pauses = iter(SETTLE_LOOKS)
        while True:
            look = await self.look(job, since=since)
            if look.found is not None:
                return self._record(job, look.found, adopted=True)
            left = ends - trio.current_time()
            if left <= 0:
                return look
            await trio.sleep(min(next(pauses, SETTLE_LOOKS[-1]), left))

    async def look(self, job: Job, *, since: float) -> Look:
        """List the model's jobs stamped after `since` (on the server's clock) and find the oldest unowned match."""
        claimed = self._ledger.state.claimed_ids()
        matches: list[InferenceEntity] = []
        pages = self._client.pages(
            job.model_id, page_size=LIST_PAGE_SIZE, max_pages=MAX_RECONCILE_PAGES, deadline=RECONCILE_DEADLINE
        )
        try:
            async with aclosing(pages):
                async for batch in pages:
                    cutoff = self._client.clock.earliest_server_time(since)  # each answer teaches the clock
                    matches += [
                        e
                        for e in batch
                        if _created(e) >= cutoff and e.id not in claimed and entity_fingerprint(e) == job.fingerprint
                    ]
                    # Listing order is undocumented: stop only at a page whose jobs all predate the intent.
                    if all(e.created_before(cutoff) for e in batch):
                        break
        except errors.ApiUnavailableError:
            raise
        except errors.ApiError as exc:
            self._emit(Notice(f"listing for job {job.key[:12]} stopped early ({exc.message})"))
            return Look(min(matches, key=_created, default=None), complete=False)
        # The oldest match is the one we made; matches are checked again against the final cutoff.
        cutoff = self._client.clock.earliest_server_time(since)
        matches = [e for e in matches if _created(e) >= cutoff]
        return Look(min(matches, key=_created, default=None), complete=True)

    def _unsettled(self, job: Job, what: str) -> CreateUnsettledError:
        return CreateUnsettledError(
            f"the outcome of {what} for job {job.key[:12]} is unknown: no listing could be read to its end",
            method="POST",
            path=inferences_path(job.model_id),
            hint="run the same command again later: leapbatch looks for the job before it pays for a new one",
        )

    def _record(self, job: Job, entity: InferenceEntity, *, adopted: bool) -> Submitted:
        """Record that `job` exists remotely as `entity` (created now, or adopted), and say so."""
        created_at = entity.created_at.isoformat() if entity.created_at else None
        self._ledger.append(
            SubmittedRecord(t=now(), key=job.key, inference_id=entity.id, created_at=created_at, adopted=adopted)
        )
        self._emit(JobSubmitted(job.key, entity.id, adopted=adopted))
        return Submitted(entity.id, entity.created_at, adopted=adopted, fresh=not adopted)
