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
fails or gets stuck (`leapbatch.emulator.faults`); its verdicts are counted under `faults` in the stats.

Invariants:
- an id is in `_jobs` exactly when it is listed under its model in `_models`; a deleted job is gone from both;
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
from typing import Any

import trio

from leapbatch.emulator.config import Clock, EmulatorConfig, JobFaultPlan, Stats
from leapbatch.wire import InferenceEntity, InferenceImage, InferenceState

QUEUED_SHARE = 0.1  # the first tenth of a job's duration is spent `queued`


@dataclass
class Job:
    """One inference job: its effective request, when it started and how it will end."""

    id: str
    model_id: str
    request: dict[str, Any]  # the effective body (camelCase, defaults filled in), without webhookUrl
    created_at: datetime  # wall clock, UTC: what the API reports
    started: float  # injected clock: what the lifecycle is derived from
    duration: float
    fails: bool
    webhook_url: str | None = None
    stuck: bool = False  # stays queued forever (a fault)
    rendered: dict[InferenceState, dict[str, Any]] = field(default_factory=dict, repr=False)

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


def image_path(inference_id: str, index: int) -> str:
    """Return the path of one image on the image host, as Leap's CDN lays it out."""
    return f"/image-gen-{inference_id}/generated_images/{index}.png"


def _iso(moment: datetime) -> str:
    return moment.isoformat()  # `+00:00`, as Leap writes it (pydantic's JSON mode would write `Z`)


class EmulatorState:
    """The job table of every model, with lifecycle, paging, webhook schedule and stats."""

    def __init__(self, config: EmulatorConfig, *, image_base_url: str, clock: Clock | None = None) -> None:
        self.config = config
        self.image_base_url = image_base_url.rstrip("/")
        self.clock: Clock = clock or trio.current_time
        self.stats = Stats(report_faults=config.faults is not None)
        self._job_faults = config.faults if isinstance(config.faults, JobFaultPlan) else None
        self._models: dict[str, dict[str, Job]] = {}
        self._jobs: dict[str, Job] = {}
        self._seen: Counter[str] = Counter()  # identical requests so far, so each draws its own fate
        self._webhooks: list[tuple[float, int, str]] = []  # heap of (ends, sequence, job id)
        self._sequence = 0
        self._listeners: list[Callable[[], None]] = []

    def create(self, model_id: str, request: dict[str, Any], *, webhook_url: str | None = None) -> Job:
        """Add a job for an already validated, defaults-filled request and return it."""
        fails, stuck = self._fate(model_id, request)
        job = Job(
            id=str(uuid.uuid4()),
            model_id=model_id,
            request=request,
            created_at=datetime.now(UTC),
            started=self.clock(),
            duration=self.config.duration(request["steps"], request["numberOfImages"]),
            fails=fails,
            webhook_url=webhook_url,
            stuck=stuck,
        )
        self._models.setdefault(model_id, {})[job.id] = job
        self._jobs[job.id] = job
        self.stats.jobs_created += 1
        if webhook_url is not None and not stuck:
            self._sequence += 1
            heapq.heappush(self._webhooks, (job.ends, self._sequence, job.id))
            for listener in self._listeners:
                listener()
        return job

    def _fate(self, model_id: str, request: dict[str, Any]) -> tuple[bool, bool]:
        """Return whether a new job fails and whether it gets stuck, drawn from its identity (not its arrival)."""
        plan = self._job_faults
        if self.config.fail_rate <= 0.0 and plan is None:
            return False, False
        text = json.dumps({"model": model_id, "request": request}, sort_keys=True, separators=(",", ":"))
        identity = hashlib.sha256(text.encode()).hexdigest()
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
        """Return the model's job with this id, or None (also for another model's job)."""
        job = self._jobs.get(inference_id)
        return job if job is not None and job.model_id == model_id else None

    def delete(self, model_id: str, inference_id: str) -> bool:
        """Remove the model's job with this id; return whether it existed."""
        job = self.get(model_id, inference_id)
        if job is None:
            return False
        del self._jobs[job.id]
        del self._models[model_id][job.id]
        self.stats.jobs_deleted += 1
        return True

    def page(self, model_id: str, *, page: int, page_size: int, only_finished: bool = False) -> list[Job]:
        """Return one page (from 1) of the model's jobs, newest first, optionally only the finished ones."""
        newest_first: Iterator[Job] = reversed(self._models.get(model_id, {}).values())
        if only_finished:
            now = self.clock()
            newest_first = (job for job in newest_first if job.state_at(now) is InferenceState.FINISHED)
        start = (page - 1) * page_size
        return list(islice(newest_first, start, start + page_size))

    def image_job(self, inference_id: str, index: int) -> Job | None:
        """Return the job whose image `index` exists now (the job is finished and has that many images)."""
        job = self._jobs.get(inference_id)
        if job is None or not 0 <= index < job.request["numberOfImages"]:
            return None
        return job if job.state_at(self.clock()) is InferenceState.FINISHED else None

    def state_of(self, job: Job) -> InferenceState:
        """Return the job's state now."""
        return job.state_at(self.clock())

    def render(self, job: Job, state: InferenceState | None = None) -> dict[str, Any]:
        """Return the job's InferenceEntity body (in `state`, by default its state now)."""
        state = self.state_of(job) if state is None else state
        cached = job.rendered.get(state)
        if cached is not None:
            return cached
        images: list[InferenceImage] = []
        if state is InferenceState.FINISHED:
            done = job.created_at + timedelta(seconds=job.duration)
            images = [
                InferenceImage(
                    id=str(uuid.uuid5(uuid.UUID(job.id), str(index))),
                    uri=self.image_base_url + image_path(job.id, index),
                    created_at=done,
                )
                for index in range(job.request["numberOfImages"])
            ]
        body = InferenceEntity(
            id=job.id,
            state=state,
            status=state,
            created_at=job.created_at,
            prompt=job.request["prompt"],
            negative_prompt=job.request["negativePrompt"],
            seed=job.request["seed"],
            width=job.request["width"],
            height=job.request["height"],
            prompt_strength=job.request["promptStrength"],
            number_of_images=job.request["numberOfImages"],
            steps=job.request["steps"],
            images=images,
            model_id=job.model_id,
            upscaling_option=job.request.get("upscaleBy", "x1"),
        ).to_wire()
        body["createdAt"] = _iso(job.created_at)
        for image, wire in zip(images, body["images"], strict=True):
            wire["createdAt"] = _iso(image.created_at or job.created_at)
        job.rendered[state] = body
        return body

    def on_webhook_scheduled(self, listener: Callable[[], None]) -> None:
        """Call `listener` whenever a job with a webhook is created (a webhook runner wakes up on it)."""
        self._listeners.append(listener)

    def next_webhook_due(self) -> float | None:
        """Return the clock time of the earliest pending webhook, or None."""
        return self._webhooks[0][0] if self._webhooks else None

    def take_due_webhooks(self) -> list[tuple[str, dict[str, Any]]]:
        """Remove and return `(url, entity body)` for every webhook due now (deleted jobs send none)."""
        now = self.clock()
        due: list[tuple[str, dict[str, Any]]] = []
        while self._webhooks and self._webhooks[0][0] <= now:
            _, _, inference_id = heapq.heappop(self._webhooks)
            job = self._jobs.get(inference_id)
            if job is not None and job.webhook_url is not None:
                due.append((job.webhook_url, self.render(job, job.outcome)))
        return due
