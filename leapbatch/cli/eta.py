"""The ETA of a run from what it observed: jobs that ended per second lately, and the jobs left.

`eta_seconds` is pure (callers pass every time), `Throughput` keeps the end times it needs. The estimate:
- the sample is the jobs that ended (finished, failed or left unsettled) in the `window` seconds up to the *last*
  end, counted from the start of that window (or of the run, if younger); if fewer than `min_ends` ended there, the
  last `min_ends`, counted from the end before them (or the run's start). The rate is the sample's size over the
  time from there up to *now*;
- before `min_ends` jobs ended in this run there is no estimate (None: the display shows `ETA --`);
- between two ends the sample stays the same and only *now* moves, so while nothing ends the rate falls and the ETA
  grows, steadily: it never sits at a fixed value, nor shrinks, while the run is stuck.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

WINDOW = 60.0  # seconds of recent ends the rate is measured over
MIN_ENDS = 3  # ends in this run before any estimate


def end_rate(
    ends: Sequence[float], *, started: float, now: float, window: float = WINDOW, min_ends: int = MIN_ENDS
) -> float | None:
    """Return recent jobs ended per second, from the sorted end times `ends`; None before `min_ends` ends."""
    min_ends = max(min_ends, 1)
    if len(ends) < min_ends:
        return None
    last = ends[-1]
    recent = sum(1 for t in ends if t > last - window)
    if recent >= min_ends:
        count, origin = recent, max(last - window, started)
    else:  # too few in the window: the last min_ends, from the end before them (or the start)
        count = min_ends
        origin = ends[-count - 1] if count < len(ends) else started
    span = now - origin
    return count / span if span > 0 else None


def eta_seconds(
    ends: Sequence[float],
    *,
    started: float,
    now: float,
    left: int,
    window: float = WINDOW,
    min_ends: int = MIN_ENDS,
) -> float | None:
    """Return the seconds until the `left` jobs have ended at the recent rate; 0 with none left; None if unknown."""
    if left <= 0:
        return 0.0
    rate = end_rate(ends, started=started, now=now, window=window, min_ends=min_ends)
    return None if rate is None else left / rate


def eta_text(seconds: float | None) -> str:
    """Return an ETA for people: `--` when unknown, else seconds, minutes or hours."""
    if seconds is None or math.isnan(seconds):
        return "--"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.0f} h" if math.isfinite(seconds) else "--"


class Throughput:
    """The end times of one run's jobs (on the caller's clock), kept only as far back as the estimate looks."""

    def __init__(self, started: float, *, window: float = WINDOW, min_ends: int = MIN_ENDS) -> None:
        self.started = started
        self._window = window
        self._min_ends = min_ends
        self._ends: list[float] = []

    def ended(self, at: float) -> None:
        """Note that a job ended at `at`."""
        self._ends.append(max(at, self._ends[-1]) if self._ends else at)
        keep_after = self._ends[-1] - self._window
        # Older ends count only as the fallback sample: the last min_ends and the end before them.
        while len(self._ends) > self._min_ends + 1 and self._ends[0] <= keep_after:
            del self._ends[0]

    def rate(self, now: float) -> float | None:
        """Return recent jobs ended per second (see `end_rate`)."""
        return end_rate(self._ends, started=self.started, now=now, window=self._window, min_ends=self._min_ends)

    def eta(self, now: float, left: int) -> float | None:
        """Return the seconds until `left` jobs have ended (see `eta_seconds`)."""
        return eta_seconds(
            self._ends, started=self.started, now=now, left=left, window=self._window, min_ends=self._min_ends
        )
