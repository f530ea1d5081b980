"""Specs of the plain progress lines (`RunProgress` on a non-terminal): slow jobs, and an ETA from what the run saw.

The display is fed the runner's events and a fake clock; every line it prints is read back.
"""

from __future__ import annotations

import io

from leapbatch.cli.progress import PLAIN_EVERY, RunProgress
from leapbatch.events import Event, JobFailed, JobFinished, JobsOverdue, JobSubmitted, JobUnsettled, RunPlanned


class Display:
    """A plain `RunProgress` on a fake clock, and the lines it printed."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.stream = io.StringIO()
        self.progress = RunProgress(self.stream, plain=True, clock=lambda: self.now)

    def send(self, *events: Event) -> None:
        for event in events:
            self.progress(event)

    def line_at(self, moment: float) -> str:
        """Move the clock to `moment` seconds after the start, tick, and return the line printed."""
        self.now = 1000.0 + moment
        before = self.stream.getvalue()
        self.progress.tick()
        return self.stream.getvalue()[len(before) :].strip()


def planned(total: int) -> RunPlanned:
    return RunPlanned(total=total, done=0, failed=0, to_run=total, images_total=total, images_done=0)


def submitted(n: int) -> list[Event]:
    return [JobSubmitted(f"k{i}", f"id{i}", adopted=False) for i in range(n)]


def test_jobs_past_twice_their_expected_time_show_as_slow() -> None:
    """`JobsOverdue(2)` with 3 jobs in flight reads `3 in flight, 2 slow`; back to 0, the words go."""
    display = Display()
    display.send(planned(10), *submitted(3), JobsOverdue(2))
    slow = display.line_at(PLAIN_EVERY)
    display.send(JobsOverdue(0))
    calm = display.line_at(2 * PLAIN_EVERY)

    assert "0/10 jobs done, 0/10 images, 3 in flight, 2 slow, 0 failed, -- jobs/s, ETA --" == slow
    assert "0/10 jobs done, 0/10 images, 3 in flight, 0 failed, -- jobs/s, ETA --" == calm


def test_slow_jobs_never_outnumber_the_jobs_in_flight() -> None:
    """A slow count the runner sent before its jobs ended is not shown past them."""
    display = Display()
    display.send(planned(2), *submitted(2), JobsOverdue(2), JobFailed("k0", "timeout", "t"), JobFailed("k1", "t", "t"))

    assert "0/2 jobs done, 0/2 images, 0 in flight, 2 failed, -- jobs/s" == display.line_at(PLAIN_EVERY)


def test_the_eta_comes_from_the_jobs_that_ended_and_grows_while_none_does() -> None:
    """No ETA before three jobs ended; then the jobs left over the observed rate, rising while nothing ends."""
    display = Display()
    display.send(planned(13), *submitted(4))
    display.now = 1001.0
    display.send(JobFinished("k0", 1), JobFinished("k1", 1))
    early = display.line_at(PLAIN_EVERY)
    display.now = 1008.0
    display.send(JobFailed("k2", "generate", "failed"))  # a failed job has ended too: 3 ends in 8 s
    lines = [display.line_at(moment) for moment in (10.0, 15.0, 20.0)]

    assert early.endswith("-- jobs/s, ETA --")
    assert "2/13 jobs done, 2/13 images, 1 in flight, 1 failed, 0.3 jobs/s, ETA 33 s" == lines[0]  # 10 left, 3 in 10 s
    assert ["ETA 33 s", "ETA 50 s", "ETA 67 s"] == [line.split(", ")[-1] for line in lines]


def test_unsettled_jobs_are_not_waited_for() -> None:
    """A job left for the next run has ended for this one: it is not among the jobs left."""
    display = Display()
    display.send(planned(4), *submitted(4))
    display.now = 1004.0
    display.send(JobFinished("k0", 1), JobFinished("k1", 1), JobUnsettled("k2", "its create"))

    assert "2/4 jobs done, 2/4 images, 1 in flight, 0 failed, 0.6 jobs/s, ETA 2 s" == display.line_at(PLAIN_EVERY)
