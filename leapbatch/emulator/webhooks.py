"""Deliver webhooks: POST a job's InferenceEntity to its `webhookUrl` when it reaches a terminal state.

Job states are derived lazily from the clock, so nothing happens by itself when a job ends. `run_webhooks` is the
one background task that makes it happen: it sleeps until the earliest pending terminal time (or until a job with
an earlier one is created), then delivers everything due, each in its own task. Delivery is best effort, as on
Leap: one attempt, a short timeout, no signature; every failure (no connection, timeout, non-2xx answer, bad URL)
is swallowed and counted in the stats, never raised.
"""

from __future__ import annotations

from typing import Any

import httpx
import trio

from leapbatch.emulator.state import EmulatorState


class _Wakeup:
    """A re-armable trio event: `set` wakes the current waiter, `reset` arms a new one."""

    def __init__(self) -> None:
        self.event = trio.Event()

    def set(self) -> None:
        self.event.set()

    def reset(self) -> None:
        if self.event.is_set():
            self.event = trio.Event()


async def deliver(http: httpx.AsyncClient, state: EmulatorState, url: str, body: dict[str, Any]) -> None:
    """POST one webhook and count whether it was delivered (a 2xx answer) or not."""
    try:
        response = await http.post(url, json=body, timeout=state.config.webhook_timeout)
    except Exception:  # best effort, as on Leap: whatever goes wrong is counted, never raised
        state.stats.webhooks_failed += 1
        return
    if response.is_success:
        state.stats.webhooks_delivered += 1
    else:
        state.stats.webhooks_failed += 1


async def run_webhooks(state: EmulatorState, client: httpx.AsyncClient | None = None) -> None:
    """Deliver every due webhook as jobs end, until cancelled (`client`, if given, is used and left open)."""
    wakeup = _Wakeup()
    state.on_webhook_scheduled(wakeup.set)
    http: httpx.AsyncClient | None = client
    owned: httpx.AsyncClient | None = None
    try:
        async with trio.open_nursery() as nursery:
            while True:
                wakeup.reset()
                due_now = state.take_due_webhooks()
                if due_now:
                    if http is None:
                        # Built on first use: a client costs ~50 ms (its TLS context); most runs send no webhook.
                        http = owned = httpx.AsyncClient()
                    for url, body in due_now:
                        nursery.start_soon(deliver, http, state, url, body)
                due = state.next_webhook_due()
                # The delay is measured on the injected clock and slept on trio's: the same clock unless a test
                # injected its own, in which case creating a job (the listener) still wakes this loop.
                delay = float("inf") if due is None else max(0.0, due - state.clock())
                with trio.move_on_after(delay):
                    await wakeup.event.wait()
    finally:
        if owned is not None:  # closed only after every delivery task has ended
            with trio.CancelScope(shield=True):
                await owned.aclose()
