"""Say how many jobs wait past their time: the runner's pollers are asked once a second, the count sent on change.

A job is overdue when it has waited on the server twice its expected time and `SLOW_GRACE` seconds more
(`Poller.overdue_count`): stuck, or the server is slower than the run was told. The grace covers what the client
itself adds to a wait (polls spaced by a shared request rate, a retried listing), so a fast emulator's jobs of a
tenth of a second are not called slow for a second's wait. Asking costs one pass over the waiters; nothing is sent
while the count stays the same.
"""

from __future__ import annotations

from collections.abc import Mapping

import trio

from leapbatch.events import EventSink, JobsOverdue
from leapbatch.run.poller import Poller

CHECK_EVERY = 1.0  # seconds between two counts
SLOW_GRACE = 5.0  # seconds past twice its expected time before a waiting job counts as slow


def overdue_count(pollers: Mapping[str, Poller]) -> int:
    """Return how many jobs of all `pollers` are overdue now (on each poller's clock)."""
    return sum(poller.overdue_count(grace=SLOW_GRACE) for poller in pollers.values())


async def watch_overdue(pollers: Mapping[str, Poller], emit: EventSink, *, every: float = CHECK_EVERY) -> None:
    """Send `JobsOverdue` whenever the count of overdue jobs changes (run it in a nursery; cancel it at the end)."""
    shown = 0
    while True:
        await trio.sleep(every)
        count = overdue_count(pollers)
        if count != shown:
            shown = count
            emit(JobsOverdue(count))
