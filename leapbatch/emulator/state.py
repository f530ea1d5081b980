"""The emulator's model: its configuration, the job table, the lifecycle of each job, and the counters.

Design. Nothing here touches the network or sleeps; time comes from an injected clock (`Callable[[], float]`, by
default `trio.current_time`, so tests can use trio's `MockClock` or a hand-driven clock). A job stores only when it
was created and how long it takes; its state is derived from the clock each time it is read, so thousands of jobs
cost no timers:

    elapsed < 10% of duration   -> queued
    elapsed < duration          -> processing
    otherwise                   -> finished (or failed, if the job's fate says so)
    a stuck job                 -> queued, forever

A duration is `leapbatch.wire.expected_generation_seconds(steps, numberOfImages) / speed` (0 when speed is `inf`).
Whether a job fails is decided once, at creation, from a RNG seeded with the emulator seed and the request itself
(plus how many identical requests came before), so a run is reproducible whatever order concurrent creates
arrive in. A fault plan that is also a `JobFaultPlan` is asked, with that same identity as key, whether the job
fails or gets stuck (`leapbatch.emulator.faults`); its verdicts are counted under `faults` in the stats. An
omitted seed is drawn the same way (from the emulator seed, the rest of the request and its occurrence), as Leap
drew a random one.

A fault's `Twist` bends a create: the job commits late (`commit_after`: neither found nor listed until then, and
its clocks start then), is listed late (`list_lag`), takes the id of the model's newest live job (`reuse_id`: the
two share the id; findOne answers the newest, listings show both, a delete removes both), or lists more images
than it was asked for (`extra_images`, which the image host serves). Each is counted under `faults` when it takes
effect. The server's wall clock is `wall()`: the real one plus `config.clock_offset`.

Invariants:
- a live job is in `_models[model]` under its serial; `_jobs[id]` is the newest live job with that id and
  `_twins[id]` the older ones sharing it; a deleted job is gone from all three and marked `deleted`;
- per model, `_models[model]` is in creation order (dicts keep insertion order), so newest first is `reversed`;
- a rendered body is cached per (job, state) and never changes afterwards (image URIs need `image_base_url`,
  which is set once, before any job exists);
- a stuck job never ends, so it has no webhook scheduled and never has images.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import math
import random
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import islice
from typing import TYPE_CHECKING, Any

import trio

from leapbatch.emulator.config import Clock, EmulatorConfig, JobFaultPlan, Stats
from leapbatch.emulator.render import render_entity
from leapbatch.wire import InferenceState

if TYPE_CHECKING:
    from leapbatch.emulator.asgi import Twist

QUEUED_SHARE = 0.1  # the first tenth of a job's duration is spent `queued`
SEED_RANGE = 2**32  # an omitted seed is drawn below this (Leap's one captured drawn seed was 3340821524)


@dataclass
class Job:
    """One inference job: its effective request, when it started and how it will end."""

    id: str
    model_id: str
    request: dict[str, Any]  # the effective body (camelCase, defaults filled in), without webhookUrl
    created_at: datetime  # the server's wall clock, UTC: what the API reports
    started: float  # injected clock: what the lifecycle is derived from (also when the job becomes visible)
    duration: float
    fails: bool
    webhook_url: str | None = None
    stuck: bool = False  # stays queued forever (a fault)
    serial: int = 0  # creation order, unique (ids may repeat under `reuse_id`)
    listed_from: float = -math.inf  # injected clock: listings show the job from then on
    extra_images: int = 0  # images listed beyond numberOfImages (a fault)
    deleted: bool = False
    rendered: dict[InferenceState, dict[str, Any]] = field(default_factory=dict, repr=False)

    @property
    def image_count(self) -> int:
        """Return how many images the finished job lists."""
        return int(self.request["numberOfImages"]) + self.extra_images

    @property
    def ends(self) -> float:
        """Return the clock time at which the job reaches its terminal state (inf for a stuck job)."""
        return math.inf if self.stuck else self.started + self.duration

    @property
    def outcome(self) -> InferenceState:
        """Return the terminal state the job reaches."""
        return InferenceState.FAILED if self.fails else InferenceState.FINISHED

    def state_at(self, now: float) -> InferenceState:
        """Return the job's state at clock time `now`."""
        if self.stuck:
            return InferenceState.QUEUED
        if now >= self.ends:
            return self.outcome
        if now < self.started + self.duration * QUEUED_SHARE:
            return InferenceState.QUEUED
        return InferenceState.PROCESSING


def _identity(model_id: str, request: dict[str, Any]) -> str:
    text = json.dumps({"model": model_id, "request": request}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


class EmulatorState:
    """The job table of every model, with lifecycle, paging, webhook schedule and stats."""

    def __init__(self, config: EmulatorConfig, *, image_base_url: str, clock: Clock | None = None) -> None:
        self.config = config
        self.image_base_url = image_base_url.rstrip("/")
        self.clock: Clock = clock or trio.current_time
        self.stats = Stats(report_faults=config.faults is not None or config.has_triggers)
        self._job_faults = config.faults if isinstance(config.faults, JobFaultPlan) else None
        self._offset = timedelta(seconds=config.clock_offset)
        self._models: dict[str, dict[int, Job]] = {}
        self._jobs: dict[str, Job] = {}
        self._twins: dict[str, list[Job]] = {}
        self._seen: Counter[str] = Counter()  # identical requests so far, so each draws its own fate
        self._webhooks: list[tuple[float, int, Job]] = []  # heap of (ends, serial, job)
        self._serial = 0
        self._lagging = False  # whether any job was ever hidden from listings (the fast path skips the filter)
        self._listeners: list[Callable[[], None]] = []

    def wall(self) -> datetime:
        """Return the server's wall clock (UTC, `clock_offset` applied)."""
        return datetime.now(UTC) + self._offset

    def create(
        self,
        model_id: str,
        request: dict[str, Any],
        *,
        webhook_url: str | None = None,
        draw_seed: bool = False,
        twist: Twist | None = None,
    ) -> Job:
        """Add a job for an already validated, defaults-filled request and return it.

        `draw_seed`: the request left the seed out, so one is drawn (reproducibly) in place of the default.
        """
        if draw_seed:
            request["seed"] = self._draw_seed(model_id, request)
        fails, stuck = self._fate(model_id, request)
        commit_after = twist.commit_after if twist is not None else 0.0
        now = self.clock()
        self._serial += 1
        job = Job(
            id=self._new_id(model_id, twist),
            model_id=model_id,
            request=request,
            created_at=self.wall() + timedelta(seconds=commit_after),
            started=now + commit_after,
            duration=self.config.duration(request["steps"], request["numberOfImages"]),
            fails=fails,
            webhook_url=webhook_url,
            stuck=stuck,
            serial=self._serial,
        )
        if twist is not None:
            self._bend(job, twist, now)
        if self.config.clock_offset:
            self.stats.faults["clock_offset"] += 1  # a job stamped by the offset clock
        self._add(job)
        return job

    def _new_id(self, model_id: str, twist: Twist | None) -> str:
        live = self._models.get(model_id)
        if twist is not None and twist.reuse_id and live:
            self.stats.faults["duplicate_id"] += 1
            return next(reversed(live.values())).id
        return str(uuid.uuid4())

    def _bend(self, job: Job, twist: Twist, now: float) -> None:
        """Apply a create's twist to the new job, counting each part that takes effect."""
        if twist.commit_after > 0.0:
            job.listed_from = job.started
            self.stats.faults["slow_commit"] += 1
        if twist.list_lag > 0.0:
            job.listed_from = max(job.listed_from, now + twist.list_lag)
            self.stats.faults["list_lag"] += 1
        if twist.extra_images > 0:
            job.extra_images = twist.extra_images
            self.stats.faults["extra_images"] += 1
        self._lagging = self._lagging or job.listed_from > now

    def _add(self, job: Job) -> None:
        self._models.setdefault(job.model_id, {})[job.serial] = job
        earlier = self._jobs.get(job.id)
        if earlier is not None:
            self._twins.setdefault(job.id, []).append(earlier)
        self._jobs[job.id] = job
        self.stats.jobs_created += 1
        self.stats.images_made += int(job.request["numberOfImages"])
        if job.webhook_url is not None and not job.stuck:
            heapq.heappush(self._webhooks, (job.ends, job.serial, job))
            for listener in self._listeners:
                listener()

    def _draw_seed(self, model_id: str, request: dict[str, Any]) -> int:
        identity = "seed:" + _identity(model_id, {k: v for k, v in request.items() if k != "seed"})
        occurrence = self._seen[identity]
        self._seen[identity] += 1
        return random.Random(f"{self.config.seed}:{identity}:{occurrence}").randrange(SEED_RANGE)

    def _fate(self, model_id: str, request: dict[str, Any]) -> tuple[bool, bool]:
        """Return whether a new job fails and whether it gets stuck, drawn from its identity (not its arrival)."""
        plan = self._job_faults
        if self.config.fail_rate <= 0.0 and plan is None:
            return False, False
        identity = _identity(model_id, request)
        key = f"{identity}:{self._seen[identity]}"
        self._seen[identity] += 1
        # A string seed is hashed with sha512 by `random`, so the draw is the same in every process.
        rate = self.config.fail_rate
        fails = rate > 0.0 and random.Random(f"{self.config.seed}:{key}").random() < rate
        fate = plan.job_fate(key) if plan is not None else None
        if fate is not None:
            self.stats.faults[fate] += 1
        return fails or fate == "fail", fate == "stuck"

    def get(self, model_id: str, inference_id: str) -> Job | None:
        """Return the model's job with this id, or None (also for another model's job, or one not yet committed)."""
        job = self._jobs.get(inference_id)
        if job is None or job.model_id != model_id or self.clock() < job.started:
            return None
        return job

    def other_job(self, job: Job) -> Job | None:
        """Return the newest visible job of the same model with another id, or None (for `wrong_id`)."""
        now = self.clock()
        for other in reversed(self._models.get(job.model_id, {}).values()):
            if other.id != job.id and now >= other.started:
                return other
        return None

    def delete(self, model_id: str, inference_id: str) -> bool:
        """Remove the model's job with this id (and any older job sharing it); return whether one existed."""
        job = self.get(model_id, inference_id)
        if job is None:
            return False
        for gone in [job, *self._twins.pop(job.id, [])]:
            gone.deleted = True
            del self._models[model_id][gone.serial]
            self.stats.jobs_deleted += 1
        del self._jobs[job.id]
        return True

    def page(self, model_id: str, *, page: int, page_size: int, only_finished: bool = False) -> list[Job]:
        """Return one page (from 1) of the model's listed jobs, newest first, optionally only the finished ones."""
        newest_first: Iterator[Job] = reversed(self._models.get(model_id, {}).values())
        now = self.clock()
        if self._lagging:
            newest_first = (job for job in newest_first if job.listed_from <= now)
        if only_finished:
            newest_first = (job for job in newest_first if job.state_at(now) is InferenceState.FINISHED)
        start = (page - 1) * page_size
        return list(islice(newest_first, start, start + page_size))

    def image_job(self, inference_id: str, index: int) -> Job | None:
        """Return the job whose image `index` exists now (the job is finished and lists that many images)."""
        job = self._jobs.get(inference_id)
        if job is None or not 0 <= index < job.image_count:
            return None
        return job if job.state_at(self.clock()) is InferenceState.FINISHED else None

    def state_of(self, job: Job) -> InferenceState:
        """Return the job's state now."""
        return job.state_at(self.clock())

    def render(self, job: Job, state: InferenceState | None = None) -> dict[str, Any]:
        """Return the job's InferenceEntity body (in `state`, by default its state now), cached per state."""
        state = self.state_of(job) if state is None else state
        cached = job.rendered.get(state)
        if cached is None:
            cached = job.rendered[state] = render_entity(job, state, self.image_base_url, self.config)
        return cached

    def on_webhook_scheduled(self, listener: Callable[[], None]) -> None:
        """Call `listener` whenever a job with a webhook is created (a webhook runner wakes up on it)."""
        self._listeners.append(listener)

    def next_webhook_due(self) -> float | None:
        """Return the clock time of the earliest pending webhook, or None."""
        return self._webhooks[0][0] if self._webhooks else None

    def take_due_webhooks(self) -> list[tuple[str, dict[str, Any]]]:
        """Remove and return `(url, body)` for every webhook due now (deleted jobs send none)."""
        now = self.clock()
        due: list[tuple[str, dict[str, Any]]] = []
        while self._webhooks and self._webhooks[0][0] <= now:
            _, _, job = heapq.heappop(self._webhooks)
            if not job.deleted and job.webhook_url is not None:
                entity = self.render(job, job.outcome)
                due.append((job.webhook_url, entity if self.config.webhook_shape == "bare" else {"result": entity}))
        return due
