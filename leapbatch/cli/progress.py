"""Progress for people: a rich display on a terminal, a plain line every few seconds elsewhere.

`RunProgress` is an event sink (`leapbatch.events`): it keeps counters from the runner's events and renders them.
It never touches the runner; `tick(now)` is called by the command every second so a quiet stretch (long jobs)
still shows the clock moving. Notes carry the server's words, so they are escaped for the terminal (`printable`).
"""

from __future__ import annotations

import time
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
    TimeRemainingColumn,
)

from leapbatch.events import (
    Event,
    JobFailed,
    JobFinished,
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
            self.in_flight = max(self.in_flight - 1, 0)

    def line(self, elapsed: float) -> str:
        """Return a one-line summary for logs."""
        fresh = self.done - self.done_at_start
        rate = fresh / elapsed if elapsed > 0 else 0.0
        left = self.total - self.done - self.failed
        eta = f", ETA {left / rate:.0f} s" if rate > 0 and left else ""
        return (
            f"{self.done}/{self.total} jobs done, {self.images}/{self.images_total} images, "
            f"{self.in_flight} in flight, {self.failed} failed, {rate:.1f} jobs/s{eta}"
        )


class RunProgress:
    """Render run progress on `stream`: rich bars if it is a terminal, plain lines if not (or if `plain`)."""

    def __init__(self, stream: TextIO, *, plain: bool | None = None, quiet: bool = False) -> None:
        self.counters = Counters()
        self._console = Console(file=stream, stderr=True)
        self._plain = (not self._console.is_terminal) if plain is None else plain
        self._quiet = quiet
        self._stream = stream
        self._started = time.monotonic()
        self._last_line = self._started
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
                    "{task.fields[images]} images · {task.fields[in_flight]} in flight · {task.fields[failed]} failed"
                ),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=self._console,
                transient=False,
            )
            self._progress.start()
            self._task = self._progress.add_task("jobs", total=None, images="0", in_flight=0, failed=0)
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
        if self._progress is not None and self._task is not None:
            self._progress.update(
                self._task,
                total=c.total or None,
                completed=c.done + c.failed,
                images=f"{c.images}/{c.images_total}",
                in_flight=c.in_flight,
                failed=c.failed,
            )
            return
        if self._quiet:
            return
        now = time.monotonic()
        if now - self._last_line >= PLAIN_EVERY:
            self._last_line = now
            print(self.counters.line(now - self._started), file=self._stream, flush=True)

    @property
    def elapsed(self) -> float:
        """Return the seconds since the display started."""
        return time.monotonic() - self._started
