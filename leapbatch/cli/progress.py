"""Progress for people: a rich display on a terminal, a plain line every few seconds elsewhere.

`RunProgress` is an event sink (`leapbatch.events`): it keeps counters from the runner's events and renders them.
It never touches the runner; `tick(now)` is called by the command every second so a quiet stretch (long jobs)
still shows the clock moving. Notes carry the server's words, so they are escaped for the terminal (`printable`).
The ETA and jobs/s come from the jobs that ended lately (`leapbatch.cli.eta`), the slow count from `JobsOverdue`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import TracebackType
from typing import TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from leapbatch.cli.eta import Throughput, eta_text
from leapbatch.events import (
    Event,
    JobFailed,
    JobFinished,
    JobsOverdue,
    JobSubmitted,
    JobUnsettled,
    Notice,
    RunPlanned,
)
from leapbatch.manifest.template import printable

PLAIN_EVERY = 5.0


@dataclass
class Counters:
    """What the progress display shows."""

    total: int = 0
    done: int = 0
    failed: int = 0
    in_flight: int = 0
    images: int = 0
    images_total: int = 0
    done_at_start: int = 0
    unsettled: int = 0  # left for the next run: they end nothing more in this one
    overdue: int = 0  # submitted jobs waiting more than twice their expected time (`JobsOverdue`)

    def apply(self, event: Event) -> None:
        """Update the counters from one event."""
        if isinstance(event, RunPlanned):
            self.total, self.done, self.failed = event.total, event.done, event.failed
            self.images, self.images_total, self.done_at_start = event.images_done, event.images_total, event.done
        elif isinstance(event, JobSubmitted):
            self.in_flight += 1
        elif isinstance(event, JobFinished):
            self.done += 1
            self.images += event.images
            self.in_flight = max(self.in_flight - 1, 0)
        elif isinstance(event, JobFailed):
            self.failed += 1
            self.in_flight = max(self.in_flight - 1, 0)
        elif isinstance(event, JobUnsettled):
            self.unsettled += 1
            self.in_flight = max(self.in_flight - 1, 0)
        elif isinstance(event, JobsOverdue):
            self.overdue = event.count

    @property
    def left(self) -> int:
        """Return how many jobs this run may still end."""
        return max(self.total - self.done - self.failed - self.unsettled, 0)

    @property
    def slow(self) -> int:
        """Return how many jobs in flight wait more than twice their expected time (none once they ended)."""
        return min(self.overdue, self.in_flight)

    def line(self, *, rate: float | None, eta: float | None) -> str:
        """Return a one-line summary for logs, with the recent rate and the ETA (None: not known yet)."""
        speed = "--" if rate is None else f"{rate:.1f}"
        slow = f", {self.slow} slow" if self.slow else ""
        until = f", ETA {eta_text(eta)}" if self.left else ""
        return (
            f"{self.done}/{self.total} jobs done, {self.images}/{self.images_total} images, "
            f"{self.in_flight} in flight{slow}, {self.failed} failed, {speed} jobs/s{until}"
        )


class RunProgress:
    """Render run progress on `stream`: rich bars if it is a terminal, plain lines if not (or if `plain`)."""

    def __init__(
        self,
        stream: TextIO,
        *,
        plain: bool | None = None,
        quiet: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.counters = Counters()
        self._console = Console(file=stream, stderr=True)
        self._plain = (not self._console.is_terminal) if plain is None else plain
        self._quiet = quiet
        self._stream = stream
        self._clock = clock
        self._started = clock()
        self._last_line = self._started
        self.throughput = Throughput(self._started)
        self._progress: Progress | None = None
        self._task: TaskID | None = None

    def __enter__(self) -> RunProgress:
        if not self._plain and not self._quiet:
            self._progress = Progress(
                SpinnerColumn(),
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn(
                    "{task.fields[images]} images · {task.fields[in_flight]} in flight{task.fields[slow]}"
                    " · {task.fields[failed]} failed"
                ),
                TimeElapsedColumn(),
                TextColumn("ETA {task.fields[eta]}"),
                console=self._console,
                transient=False,
            )
            self._progress.start()
            self._task = self._progress.add_task(
                "jobs", total=None, images="0", in_flight=0, slow="", failed=0, eta=eta_text(None)
            )
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._render()
        if self._progress is not None:
            self._progress.stop()

    def __call__(self, event: Event) -> None:
        """Take one event from the runner."""
        self.counters.apply(event)
        if isinstance(event, JobFinished | JobFailed | JobUnsettled):
            self.throughput.ended(self._clock())
        if isinstance(event, Notice) and not self._quiet:
            self._note(event.message)
        if isinstance(event, JobUnsettled) and not self._quiet:
            self._note(f"job {event.key[:12]} is left for the next run: {event.reason}")
        self._render()

    def _note(self, text: str) -> None:
        # One line whatever its length (the terminal wraps it, a log keeps it whole), escaped for the terminal.
        self._console.print(printable(f"note: {text}"), markup=False, highlight=False, soft_wrap=True)

    def tick(self) -> None:
        """Refresh the display; on a non-terminal, print a line if the last one is old enough."""
        self._render()

    def _render(self) -> None:
        c = self.counters
        now = self._clock()
        if self._progress is not None and self._task is not None:
            self._progress.update(
                self._task,
                total=c.total or None,
                completed=c.done + c.failed,
                images=f"{c.images}/{c.images_total}",
                in_flight=c.in_flight,
                slow=f" ({c.slow} slow)" if c.slow else "",
                failed=c.failed,
                eta=eta_text(self.throughput.eta(now, c.left)) if c.left else "0 s",
            )
            return
        if self._quiet:
            return
        if now - self._last_line >= PLAIN_EVERY:
            self._last_line = now
            line = c.line(rate=self.throughput.rate(now), eta=self.throughput.eta(now, c.left))
            print(line, file=self._stream, flush=True)

    @property
    def elapsed(self) -> float:
        """Return the seconds since the display started."""
        return self._clock() - self._started


@contextmanager
def counting(label: str, total: int | None, *, quiet: bool) -> Iterator[Callable[[], None] | None]:
    """Show a bar counting `label` items on a terminal's stderr while the block runs; yield the tick that advances
    it, or None (not a terminal, or `quiet`: nothing is shown)."""
    columns = (TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    bar = Progress(*columns, console=Console(stderr=True), transient=True)
    if quiet or not bar.console.is_terminal:
        yield None
        return
    with bar:
        task = bar.add_task(label, total=total)
        yield lambda: bar.advance(task)
