"""The server's clock, learned from its own answers: how far its `createdAt` stamps are from ours.

Why. A create whose answer was lost is settled by listing the jobs made after its intent, and the server stamps
`createdAt` with its clock while the intent carries ours: with a server clock 5 minutes behind, a fixed allowance
of 2 minutes misses the job and pays for it again. So the offset is measured, not assumed.

How. Every API answer's `Date` header says the server's time to the second, taken between our send and our
receipt of that answer; a create's `createdAt` says it more precisely. Each observation bounds the offset
(server - local) to an interval; the estimate is the median of the last `WINDOW` midpoints, and its uncertainty
the largest half-width among them, plus how far the midpoints stray from that median (a front end whose `Date`
disagrees with the database that stamps `createdAt` widens the allowance to cover both, rather than choosing
one), plus `SLACK`. With no observation yet, the offset is unknown and `FALLBACK` seconds either way are allowed.
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime

WINDOW = 16
SLACK = 5.0  # seconds added to the measured uncertainty
FALLBACK = 120.0  # seconds allowed either way before any observation


@dataclass(frozen=True, slots=True)
class Offset:
    """The server's clock minus ours, in seconds, and how far off that estimate may be."""

    seconds: float
    uncertainty: float


def date_header_time(value: str | None) -> float | None:
    """Return the POSIX time an HTTP `Date` header names, or None when it is absent or unreadable."""
    if not value:
        return None
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:
        return None
    stamp = moment.timestamp()
    return stamp if math.isfinite(stamp) else None


class ServerClock:
    """Learn the server's clock offset from what its answers say (see the module docstring)."""

    def __init__(self) -> None:
        self._samples: deque[tuple[float, float]] = deque(maxlen=WINDOW)  # (midpoint, half-width)

    def observe(self, server_low: float, server_high: float, sent: float, received: float) -> None:
        """Note that the server's clock read within [server_low, server_high] between our `sent` and `received`."""
        if not (server_low <= server_high and sent <= received):
            return
        low, high = server_low - received, server_high - sent  # the offsets this observation allows
        self._samples.append(((low + high) / 2, (high - low) / 2))

    def observe_date(self, header: str | None, sent: float, received: float) -> None:
        """Note an answer's `Date` header (whole seconds: the true time is up to a second later)."""
        stamp = date_header_time(header)
        if stamp is not None:
            self.observe(stamp, stamp + 1.0, sent, received)

    def observe_created(self, created_at: datetime | None, sent: float, received: float) -> None:
        """Note the `createdAt` of a job our create made between `sent` and `received`."""
        if created_at is not None and created_at.tzinfo is not None:
            stamp = created_at.timestamp()
            self.observe(stamp, stamp, sent, received)

    def offset(self) -> Offset:
        """Return the current estimate (unknown: 0 give or take `FALLBACK`)."""
        if not self._samples:
            return Offset(0.0, FALLBACK)
        middle = statistics.median(mid for mid, _ in self._samples)
        width = max(half for _, half in self._samples)
        stray = max(abs(mid - middle) for mid, _ in self._samples)
        return Offset(middle, width + stray + SLACK)

    def earliest_server_time(self, local: float) -> float:
        """Return the earliest server time that our local moment `local` may correspond to."""
        estimate = self.offset()
        return local + estimate.seconds - estimate.uncertainty
