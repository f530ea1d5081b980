"""The trio orchestration of a batch: create -> poll -> download -> record, for many jobs at once.

The runner knows jobs, never manifests. It receives everything it touches (API client, download client, ledger,
image store, job-slot limiter, event sink) so tests can drive it. Its rules, from docs/reliability.md:
- **Submitted exactly once:** write-ahead intents, and reconciliation instead of blind re-posts, in
  `leapbatch.run.submit`.
- **Resume is running again:** see `leapbatch.run.resume`.
- **Downloads are verified before they count** (`leapbatch.run.fetch`); a retriable failure is fetched again up to
  `MAX_DOWNLOAD_ATTEMPTS` times, and a job that failed to download owns no image file.
- **Jobs in flight** are bounded by the `AdaptiveLimiter`; every API request passes the client's token bucket.
- **A refusal every job would share stops the batch once** (`leapbatch.run.refusal`): no new create is sent,
  jobs already on the server are still polled and downloaded, and the summary says why (`stopped`).
- A job past `job_timeout` (Leap's seconds: shorter on a faster server, see `poller.job_timeout_seconds`) is
  deleted remotely and recorded as failed (timeout).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import trio

from leapbatch import errors
from leapbatch.api.backoff import backoff_delay
from leapbatch.api.client import DEFAULT_MAX_CONNECTIONS, LeapClient
from leapbatch.api.download import recorded_uri
from leapbatch.api.ratelimit import AdaptiveLimiter
from leapbatch.events import (
    EventSink,
    JobDeleted,
    JobFailed,
    JobFinished,
    JobUnsettled,
    Notice,
    RunPlanned,
    discard,
)
from leapbatch.folder.images import ImageStore, StoredImage
from leapbatch.folder.ledger import Ledger, now
from leapbatch.folder.records import FailedRecord, FailStage, FinishedRecord, ImageRecord
from leapbatch.jobs import Job, entity_fingerprint
from leapbatch.pricing import DEFAULT_PRICE, Price
from leapbatch.run.budget import Budget, BudgetStop, Caps
from leapbatch.run.delete import Target, delete_remote
from leapbatch.run.fetch import download_image
from leapbatch.run.overdue import watch_overdue
from leapbatch.run.pace import Pace
from leapbatch.run.poller import JobVanishedError, Poller, job_timeout_seconds
from leapbatch.run.refusal import Refusal
from leapbatch.run.resume import Action, classify
from leapbatch.run.submit import (
    SETTLE_WINDOW,
    BatchStoppedError,
    BudgetStoppedError,
    CreateFailedError,
    JobRefusedError,
    Submitter,
)
from leapbatch.wire import DEFAULT_SIDE, InferenceEntity, InferenceState, expected_generation_seconds

if TYPE_CHECKING:
    import httpx  # the download client's type only: httpx's home is leapbatch.api


MAX_DOWNLOAD_ATTEMPTS = 4


@dataclass(frozen=True, slots=True)
class RunOptions:
    """How a run behaves (limits come from the manifest, overridden by the command line)."""

    job_timeout: float = 600.0  # on Leap's clock: see `poller.job_timeout_seconds` for a faster server
    retry_failed: bool = False
    delete_after_download: bool = False
    speed: float = 1.0  # how much faster than Leap the server is (the emulator's speed factor; 1 for Leap)
    list_threshold: int = 2  # from this many jobs waiting on one model, one listing beats a findOne each
    settle_window: float = SETTLE_WINDOW  # seconds a create with an unknown outcome is looked for (see submit.py)
    caps: Caps = field(default_factory=Caps)  # the folder's budget (see budget.py)
    price: Price = DEFAULT_PRICE  # what each create commits


@dataclass
class RunSummary:
    """What a run did."""

    total: int = 0
    finished: int = 0
    finished_before: int = 0  # already finished when the run started
    failed: int = 0
    images: int = 0
    adopted: int = 0
    unsettled: int = 0  # jobs whose requests kept failing this run; the next run settles them
    failures: dict[str, int] = field(default_factory=dict)
    reasons: dict[str, int] = field(default_factory=dict)  # failures of this run by reason
    refused: int = 0  # jobs whose create got a refusal every job would share (recorded `refused`)
    not_submitted: int = 0  # jobs this run did not send once it stopped (left as they were)
    stopped: Refusal | None = None  # why the batch stopped sending creates, if it did
    over_budget: int = 0  # jobs not sent because a budget cap was reached (left as they were)
    budget: BudgetStop | None = None  # the cap reached, if one was

    @property
    def all_finished(self) -> bool:
        """Return whether every job of the manifest is finished."""
        return self.finished == self.total


class Runner:
    """Run jobs to completion against one API, recording everything in the ledger."""

    def __init__(
        self,
        *,
        client: LeapClient,
        downloads: httpx.AsyncClient,
        ledger: Ledger,
        store: ImageStore,
        limiter: AdaptiveLimiter,
        options: RunOptions,
        events: EventSink = discard,
    ) -> None:
        self._client = client
        self._downloads = downloads
        self._ledger = ledger
        self._store = store
        self._limiter = limiter
        self._options = options
        self._emit = events
        self._pollers: dict[str, Poller] = {}
        budget = Budget(options.caps, options.price, free_used=ledger.state.spend.free_images)
        self._submitter = Submitter(client, ledger, events=events, settle_window=options.settle_window, budget=budget)
        self._nursery: trio.Nursery | None = None
        # Downloads queue here, not in httpcore's pool (see client.DEFAULT_MAX_CONNECTIONS).
        self._download_slots = trio.CapacityLimiter(DEFAULT_MAX_CONNECTIONS)
        self.summary = RunSummary()

    async def run(self, jobs: Sequence[Job]) -> RunSummary:
        """Bring every job to `finished` or `failed`, and return what happened."""
        plan = classify(jobs, self._ledger.state, retry_failed=self._options.retry_failed)
        state = self._ledger.state.jobs
        done = plan.by_action[Action.DONE]
        self.summary = RunSummary(
            total=len(jobs),
            finished=len(done),
            finished_before=len(done),
            failed=plan.count(Action.KEEP_FAILED),
            images=sum(len(state[job.key].images) for job in done),
        )
        self._emit(
            RunPlanned(
                total=len(jobs),
                done=len(done),
                failed=plan.count(Action.KEEP_FAILED),
                to_run=len(plan.to_run),
                images_total=sum(job.image_count for job in jobs),
                images_done=self.summary.images,
            )
        )
        async with trio.open_nursery() as background:
            self._nursery = background
            background.start_soon(watch_overdue, self._pollers, self._emit)  # JobsOverdue on change
            async with trio.open_nursery() as work:
                if self._options.delete_after_download:
                    # Finished in an earlier run that stopped before its cleanup: delete them now.
                    for job in done:
                        known = state[job.key]
                        if known.remote_exists and known.inference_id is not None:
                            work.start_soon(self._delete, job, known.inference_id)
                for action, job in plan.to_run:
                    borrower = object()
                    await self._limiter.acquire(borrower)
                    work.start_soon(self._job_task, job, action, borrower)
            background.cancel_scope.cancel()
        self.summary.stopped = self._submitter.breaker.tripped
        self.summary.budget = self._submitter.budget.reached
        return self.summary

    def _poller(self, model_id: str) -> Poller:
        poller = self._pollers.get(model_id)
        if poller is None:
            poller = Poller(
                self._client, model_id, list_threshold=self._options.list_threshold, pace=Pace(self._options.speed)
            )
            self._pollers[model_id] = poller
            assert self._nursery is not None
            self._nursery.start_soon(poller.run)
        return poller

    async def _job_task(self, job: Job, action: Action, borrower: object) -> None:
        try:
            await self._process(job, action)
        except JobRefusedError:
            self.summary.refused += 1
        except BatchStoppedError:
            self.summary.not_submitted += 1
        except BudgetStoppedError:
            self.summary.over_budget += 1
        except errors.ApiError as exc:
            # Retries are spent on one job's request: its ledger state is safe to resume from, so the batch goes
            # on and the next run settles this job.
            self.summary.unsettled += 1
            self._emit(JobUnsettled(job.key, exc.message))
        finally:
            self._limiter.release(borrower)

    async def _process(self, job: Job, action: Action) -> None:
        try:
            submitted = await self._submitter.ensure_submitted(job, action)
        except CreateFailedError as exc:
            self._fail(
                job, FailStage.CREATE, exc.reason, None, status=exc.status, attempts=exc.attempts, no_job=exc.no_job
            )
            return
        if submitted.adopted:
            self.summary.adopted += 1
        inference_id = submitted.inference_id
        work = expected_generation_seconds(job.request.steps, job.request.number_of_images)
        try:
            entity = await self._poller(job.model_id).wait(
                inference_id,
                created_at=submitted.created_at,
                work=work,
                timeout=self._job_timeout,
                learn=submitted.fresh,
            )
        except JobVanishedError:
            self._fail(job, FailStage.GENERATE, "the job disappeared from the server (404)", inference_id, status=404)
            return
        if entity is None:
            await self._time_out(job, inference_id)
        elif entity.state is InferenceState.FAILED:
            self._fail(job, FailStage.GENERATE, "the job ended `failed` on the server", inference_id)
        else:
            await self._finish(job, entity)

    # -- finish: download, verify, record ---------------------------------------------------------------------------

    def _expected_size(self, job: Job) -> tuple[int, int]:
        # The legacy `upscaleBy` field's effect on image size is undocumented; the emulator keeps the requested
        # size, and so does the check.
        return job.request.width or DEFAULT_SIDE, job.request.height or DEFAULT_SIDE

    async def _download(self, job: Job, index: int, uri: str) -> StoredImage:
        width, height = self._expected_size(job)
        for attempt in range(1, MAX_DOWNLOAD_ATTEMPTS + 1):
            try:
                async with self._download_slots:
                    return await download_image(
                        self._downloads, self._store, uri, key=job.key, index=index, width=width, height=height
                    )
            except errors.DownloadError as exc:
                if not exc.retriable or attempt == MAX_DOWNLOAD_ATTEMPTS:
                    raise
                await trio.sleep(backoff_delay(attempt, base=0.5, cap=10.0, rng=_rng))
        raise AssertionError("unreachable")  # pragma: no cover

    def _doubt(self, job: Job, entity: InferenceEntity) -> str | None:
        """Return why the server's finished job cannot be this job's (a server error), or None."""
        if not entity.images:
            return "the job finished without images"
        if entity_fingerprint(entity) != job.fingerprint:
            return f"the server answered for {entity.id} with another request (a server error; nothing downloaded)"
        if len(entity.images) > job.image_count:
            return (
                f"the server listed {len(entity.images)} images for a job that asked for {job.image_count}"
                " (a server error; nothing downloaded)"
            )
        return None

    async def _finish(self, job: Job, entity: InferenceEntity) -> None:
        doubt = self._doubt(job, entity)
        if doubt is not None:
            self._fail(job, FailStage.DOWNLOAD, doubt, entity.id)
            return
        stored: list[StoredImage] = []
        problem: errors.DownloadError | None = None
        try:
            async with trio.open_nursery() as nursery:
                for index, image in enumerate(entity.images):
                    nursery.start_soon(self._download_into, stored, job, index, image.uri)
        except* errors.DownloadError as group:
            first = group.exceptions[0]
            assert isinstance(first, errors.DownloadError)
            problem = first
        if problem is not None:
            self._fail(job, FailStage.DOWNLOAD, problem.message, entity.id)
            return
        stored.sort(key=lambda s: s.index)
        images = [
            ImageRecord(
                index=s.index,
                uri=recorded_uri(s.uri),
                path=s.path,
                sha256=s.sha256,
                bytes=s.bytes,
                width=s.width,
                height=s.height,
            )
            for s in stored
        ]
        self._ledger.append(FinishedRecord(t=now(), key=job.key, inference_id=entity.id, images=images))
        self.summary.finished += 1
        self.summary.images += len(images)
        self._emit(JobFinished(job.key, len(images)))
        if self._options.delete_after_download:
            await self._delete(job, entity.id)

    async def _download_into(self, out: list[StoredImage], job: Job, index: int, uri: str) -> None:
        out.append(await self._download(job, index, uri))

    # -- failures, timeouts, deletes -----------------------------------------------------------------------------------

    def _fail(
        self,
        job: Job,
        stage: FailStage,
        reason: str,
        inference_id: str | None,
        *,
        status: int | None = None,
        attempts: int = 1,
        no_job: bool = False,
    ) -> None:
        record = FailedRecord(
            t=now(),
            key=job.key,
            stage=stage,
            reason=reason,
            inference_id=inference_id,
            http_status=status,
            attempts=attempts,
            no_job=no_job,
        )
        self._ledger.append(record)
        self._store.discard_job(job.key)  # images an attempt verified before another failed are not the job's
        self.summary.failed += 1
        self.summary.failures[stage.value] = self.summary.failures.get(stage.value, 0) + 1
        self.summary.reasons[reason] = self.summary.reasons.get(reason, 0) + 1
        self._emit(JobFailed(job.key, stage.value, reason))

    async def _time_out(self, job: Job, inference_id: str) -> None:
        await self._delete(job, inference_id)
        self._fail(job, FailStage.TIMEOUT, f"not finished after {self._job_timeout:g} s (job_timeout)", inference_id)

    @property
    def _job_timeout(self) -> float:
        return job_timeout_seconds(self._options.job_timeout, self._options.speed)

    async def _delete(self, job: Job, inference_id: str) -> None:
        """Delete the remote job and record it; a failure is only noted (`leapbatch delete` can finish it)."""
        try:
            await delete_remote(self._client, self._ledger, Target(job.key, job.model_id, inference_id, "run"))
        except errors.ApiError as exc:
            self._emit(Notice(f"could not delete job {job.key[:12]} remotely: {exc.message}"))
            return
        self._emit(JobDeleted(job.key))


_rng = random.Random()  # jitter only
