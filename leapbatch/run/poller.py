"""Learn when submitted jobs end, spending as few requests as possible.

One `Poller` serves every waiting job of one model. A waiter's job is `work` seconds on Leap's clock
(`expected_generation_seconds`); the poller's `Pace` (`leapbatch.run.pace`) says how long that takes on this server:
at first work / speed, then what the jobs it saw finish showed, so no `--speed` is needed. The waiter `expected`s its
job to take that long and polls at an `interval` of a quarter of it, growing by half each time; once the pace is
learned, its first look is at `LEARNED_FIRST_LOOK` of the expected time and its interval starts at a tenth of it.
- With few waiters (< `list_threshold`), each gets one findOne at its expected finish time, then per interval.
- With many, one sweep of findAll(onlyFinished) pages resolves every finished waiter it lists, whatever its
  expectations (a server faster than expected is noticed after one sweep); sweeps stop at a page whose jobs all
  predate the oldest waiter, or at an empty page. Sweeps are spaced by `sweep_spacing`: a quarter of the shortest
  expected time, closer with many waiters (so a finished job waits little) but never so close that sweeps cost
  more than `SWEEPS_PER_JOB` request per job that finishes meanwhile, nor closer than a tenth of it. Until its
  expected time a waiter is due at every sweep; past it, at its own growing interval. A waiter no sweep finds gets
  findOne only once it is well past its expected time: that is how `failed` and stuck jobs are seen, as
  onlyFinished never lists them.
A waiter past its deadline gets one last findOne and resolves to None (timed out) only if that does not show
its job ended: a sweep or retry that slept past deadlines (a long `Retry-After`) never times out jobs that
finished meanwhile. Request errors other than an unusable API leave the
waiter waiting; `ApiUnavailableError` (the key refused, or the API dead) ends the poller, and so the run.
A 404 for a paid job is not believed at once: a job is declared gone only after `CONFIRM_404S` findOne answers
in a row said so, the later ones at the waiter's interval, and a listing of the model's jobs (back to the job's
own createdAt, bounded like every listing) does not show it either. A sweep is bounded by `MAX_SWEEP_PAGES`, a
deadline and a page that repeats the page before (`LeapClient.pages`).
"""

from __future__ import annotations

import math
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from dataclasses import dataclass, field
from datetime import datetime

import trio

from leapbatch.api.client import LeapClient
from leapbatch.errors import ApiError, ApiUnavailableError, NotFoundError
from leapbatch.run.pace import Pace
from leapbatch.wire import InferenceEntity, InferenceState

PAGE_SIZE = 100
MAX_SWEEP_PAGES = 20
SWEEP_DEADLINE = 60.0  # seconds one sweep (or one confirming listing) may take, page after page
CONFIRM_404S = 3  # findOne answers of 404 in a row before a listing is asked whether the job is really gone
MIN_INTERVAL = 0.05
MAX_INTERVAL = 10.0
LEARNED_FIRST_LOOK = 0.75  # with a learned pace, the first look comes at this share of the expected time
SWEEPS_PER_JOB = 0.1  # sweeps may cost at most this many requests per job expected to finish meanwhile


def sweep_spacing(expected: float, waiters: int) -> float:
    """Return the seconds between sweeps for `waiters` jobs whose shortest expected time is `expected`."""
    budget = expected / (SWEEPS_PER_JOB * max(waiters, 1))  # waiters / expected jobs finish per second
    return max(expected * 0.1, min(expected * 0.25, budget), MIN_INTERVAL)


@dataclass(eq=False)
class _Waiter:
    inference_id: str
    created: float | None  # server createdAt, unix seconds
    started: float  # trio clock when waiting began
    work: float  # seconds the job takes on Leap's clock
    expected: float  # seconds the job should take here (the pace's)
    deadline: float  # trio clock
    due: float  # trio clock
    interval: float
    running_at: float = -math.inf  # the latest look (trio clock) that saw the job not ended yet
    done: trio.Event = field(default_factory=trio.Event)
    result: InferenceEntity | None = None
    error: ApiError | None = None
    missing: int = 0  # findOne 404s in a row

    def resolve(self, entity: InferenceEntity | None = None, error: ApiError | None = None) -> None:
        self.result, self.error = entity, error
        self.done.set()

    def overdue(self, now: float) -> bool:
        return now >= self.started + 2 * self.expected + 1.0


class JobVanishedError(Exception):
    """Raised by `wait` when the server no longer knows a job (404): someone deleted it."""


class Poller:
    """Wait for the jobs of one model to reach a terminal state."""

    def __init__(
        self,
        client: LeapClient,
        model_id: str,
        *,
        list_threshold: int = 2,
        clock: Callable[[], float] = trio.current_time,
        pace: Pace | None = None,
    ) -> None:
        self._client = client
        self._model = model_id
        self._threshold = list_threshold
        self._clock = clock
        self.pace = pace or Pace()
        self._waiters: dict[str, _Waiter] = {}
        self._changed = trio.Event()
        self._last_sweep = -math.inf

    async def wait(
        self,
        inference_id: str,
        *,
        created_at: datetime | None,
        work: float,
        timeout: float,
        learn: bool = False,
    ) -> InferenceEntity | None:
        """Return the job once `finished` or `failed`, or None once `timeout` seconds have passed.

        `work` is the job's duration on Leap's clock; with `learn` (the job was created just now, by this run) the
        time until it is seen finished teaches the pace.
        """
        now = self._clock()
        expected = self.pace.expected(work)
        learned = self.pace.learned
        interval = min(max(expected * (0.1 if learned else 0.25), MIN_INTERVAL), MAX_INTERVAL)
        first = max(expected * LEARNED_FIRST_LOOK, interval) if learned else interval
        waiter = _Waiter(
            inference_id=inference_id,
            created=created_at.timestamp() if created_at else None,
            started=now,
            work=work,
            expected=expected,
            deadline=now + timeout,
            due=now + min(first, timeout),
            interval=interval,
        )
        self._waiters[inference_id] = waiter
        self._changed.set()
        try:
            await waiter.done.wait()
        finally:
            self._waiters.pop(inference_id, None)
        if learn and waiter.result is not None and waiter.result.state is InferenceState.FINISHED:
            # It ended between the last look that saw it running (or its start) and the look that found it.
            since = max(waiter.running_at, waiter.started)
            self.pace.observe(work, (since + self._clock()) / 2 - waiter.started)
        if waiter.error is not None:
            if isinstance(waiter.error, NotFoundError):
                raise JobVanishedError(inference_id)
            raise waiter.error
        return waiter.result

    def overdue_count(self, now: float | None = None, *, grace: float = 1.0) -> int:
        """Return how many jobs have waited twice their expected time and `grace` seconds more: stuck, or slow.

        With the default grace this is the poller's own "well past its expected time" (`_Waiter.overdue`).
        """
        moment = (self._clock() if now is None else now) - grace
        return sum(1 for w in self._waiters.values() if not w.done.is_set() and moment >= w.started + 2 * w.expected)

    async def run(self) -> None:
        """Check due waiters forever (run it in a nursery; cancel it when the run ends)."""
        while True:
            if not self._waiters:
                self._changed = trio.Event()
                await self._changed.wait()
                continue
            now = self._clock()
            pending = [w for w in self._waiters.values() if not w.done.is_set()]
            if not pending:
                await trio.lowlevel.checkpoint()
                continue
            next_due = min(min(w.due, w.deadline) for w in pending)
            if next_due > now:
                self._changed = trio.Event()
                with trio.move_on_after(next_due - now):
                    await self._changed.wait()
                continue
            await self._check(now)

    async def _check(self, now: float) -> None:
        await trio.lowlevel.checkpoint()  # let resolved waiters leave before the next look
        await self._expire(now)
        due = [w for w in self._waiters.values() if w.due <= now and not w.done.is_set()]
        if not due:
            return
        sweep_mode = len(self._waiters) >= self._threshold
        spacing = sweep_spacing(min(w.expected for w in self._waiters.values()), len(self._waiters))
        if sweep_mode:
            # One sweep answers for every waiter (see `sweep_spacing`).
            if now < self._last_sweep + spacing:
                for waiter in due:
                    waiter.due = self._last_sweep + spacing
                return
            self._last_sweep = now
            await self._sweep()
            singles = [w for w in due if not w.done.is_set() and w.overdue(now)]
            checked = due
        else:
            # A findOne costs one request per job: spend it only from the expected finish time on.
            early = [w for w in due if now < w.started + w.expected]
            for waiter in early:
                waiter.due = waiter.started + waiter.expected
            singles = checked = [w for w in due if w not in early]
        async with trio.open_nursery() as nursery:
            for waiter in singles:
                nursery.start_soon(self._find_one, waiter)
        later = self._clock()
        for waiter in checked:
            if waiter.done.is_set():
                continue
            if sweep_mode and later < waiter.started + waiter.expected:
                waiter.due = later + spacing  # a shared sweep is cheap: look often until the job is due
            else:
                waiter.due = later + waiter.interval
                waiter.interval = min(waiter.interval * 1.5, MAX_INTERVAL)

    async def _find_one(self, waiter: _Waiter) -> None:
        asked = self._clock()
        try:
            entity = await self._client.find_one(self._model, waiter.inference_id)
        except NotFoundError as exc:
            waiter.missing += 1
            if waiter.missing >= CONFIRM_404S:
                await self._confirm_gone(waiter, exc)
            return
        except ApiUnavailableError:
            raise
        except ApiError:
            return  # retried already by the client's policy; try again at the next interval
        waiter.missing = 0
        if entity.state.is_terminal:
            waiter.resolve(entity)
        else:
            waiter.running_at = asked

    async def _expire(self, now: float) -> None:
        """Give every waiter past its deadline its last look."""
        expired = [w for w in self._waiters.values() if w.deadline <= now and not w.done.is_set()]
        async with trio.open_nursery() as nursery:
            for waiter in expired:
                nursery.start_soon(self._last_look, waiter)

    async def _last_look(self, waiter: _Waiter) -> None:
        """Resolve a waiter past its deadline: with its job if one findOne shows it ended, else as timed out."""
        try:
            entity = await self._client.find_one(self._model, waiter.inference_id)
        except ApiUnavailableError:
            raise
        except ApiError:
            entity = None  # no answer (or 404): the deadline stands
        waiter.resolve(entity if entity is not None and entity.state.is_terminal else None)

    async def _confirm_gone(self, waiter: _Waiter, exc: NotFoundError) -> None:
        """Resolve the waiter as vanished unless a listing still shows its job (then findOne's 404s were wrong)."""
        try:
            async with aclosing(self._pages(only_finished=False)) as pages:
                async for batch in pages:
                    listed = next((e for e in batch if e.id == waiter.inference_id), None)
                    if listed is not None:
                        waiter.missing = 0
                        if listed.state.is_terminal:
                            waiter.resolve(listed)
                        return
                    if waiter.created is not None and all(e.created_before(waiter.created) for e in batch):
                        break
        except ApiUnavailableError:
            raise
        except ApiError:
            return  # the listing could not say: ask findOne again at the next interval
        waiter.resolve(error=exc)

    def _pages(self, *, only_finished: bool) -> AsyncGenerator[list[InferenceEntity]]:
        return self._client.pages(
            self._model,
            only_finished=only_finished,
            page_size=PAGE_SIZE,
            max_pages=MAX_SWEEP_PAGES,
            deadline=SWEEP_DEADLINE,
        )

    async def _sweep(self) -> None:
        oldest = min((w.created for w in self._waiters.values() if w.created is not None), default=None)
        unknown_age = any(w.created is None for w in self._waiters.values())
        asked = self._clock()
        try:
            async with aclosing(self._pages(only_finished=True)) as pages:
                async for batch in pages:
                    for entity in batch:
                        waiter = self._waiters.get(entity.id)
                        if waiter is not None and entity.state.is_terminal and not waiter.done.is_set():
                            waiter.resolve(entity)
                    if all(w.done.is_set() for w in self._waiters.values()):
                        return
                    # Listing order is undocumented: stop only at a page whose jobs all predate every waiter.
                    if oldest is not None and not unknown_age and all(e.created_before(oldest) for e in batch):
                        break
                else:
                    return  # the listing ended without reaching past the waiters (empty, or cut short): no news
        except ApiUnavailableError:
            raise
        except ApiError:
            return
        for waiter in self._waiters.values():  # read to the oldest waiter: those not listed had not finished
            if not waiter.done.is_set():
                waiter.running_at = asked


def expected_seconds(seconds: float, speed: float) -> float:
    """Return the expected duration of a job on a server running `speed` times faster than Leap."""
    return 0.0 if math.isinf(speed) else seconds / speed


JOB_TIMEOUT_FLOOR = 60.0  # a faster server shortens job_timeout, but never below this (a client's own waits)


def job_timeout_seconds(job_timeout: float, speed: float) -> float:
    """Return how long to wait for a job on a server `speed` times faster than Leap, given Leap's `job_timeout`.

    job_timeout is counted on Leap's clock: at speed 50 the default 600 s is 12 s of the server's work, but a run
    also waits on its own retries and rate limits, so the wait never drops below `JOB_TIMEOUT_FLOOR` (or
    job_timeout itself, if that is shorter).
    """
    return max(expected_seconds(job_timeout, speed), min(job_timeout, JOB_TIMEOUT_FLOOR))
