"""Pure: how long jobs take on this server, learned from the jobs seen to finish (one `Pace` per model).

A job's **work** is what Leap documents it takes (`wire.expected_generation_seconds`: 4-20 s per image). Its
**expected** duration starts as work / `speed` (the run's `--speed`, default 1: Leap itself), the prior. Every job
this run created and then saw finish adds one sample, `seconds seen / work`, where the seconds run from its create's
answer to the look that found it finished. Once `MIN_SAMPLES` samples are in, a job's expected duration is its work
times the median of the last `WINDOW` samples: no `--speed` is needed for a server faster or slower than Leap, one
stuck or instant job does not move it (the median), and a server that changes pace is followed within a window.

A sample overstates the true duration by the gap between two looks (a quarter of the expected time at first), so on
a server much faster than the prior the estimate falls by about that factor per round of jobs, and settles a
look's gap above the truth. Jobs that failed, timed out, or were created by an earlier run are no samples.
"""

from __future__ import annotations

import math
from collections import deque
from statistics import median

MIN_SAMPLES = 3
WINDOW = 64


class Pace:
    """The expected duration of a model's jobs on this server: a prior, then what finished jobs showed."""

    def __init__(self, speed: float = 1.0) -> None:
        self._prior = 0.0 if math.isinf(speed) else 1.0 / speed  # seconds per second of work
        self._samples: deque[float] = deque(maxlen=WINDOW)
        self._ratio: float | None = None

    @property
    def learned(self) -> bool:
        """Return whether enough jobs finished to trust what they showed over the prior."""
        return self._ratio is not None

    def expected(self, work: float) -> float:
        """Return how long a job of `work` seconds (on Leap's clock) should take here."""
        return work * (self._prior if self._ratio is None else self._ratio)

    def observe(self, work: float, seconds: float) -> None:
        """Learn from a job of `work` seconds that was seen finished `seconds` after it was created."""
        if work <= 0 or not math.isfinite(seconds) or seconds < 0:
            return
        self._samples.append(seconds / work)
        if len(self._samples) >= MIN_SAMPLES:
            self._ratio = median(self._samples)
