"""SIGTERM and SIGHUP end a command the way Ctrl-C does: `Terminated(signum)` unwinds it to the CLI's boundary.

docker stop, systemd and Slurm's preemption send SIGTERM; a closed terminal or SSH session sends SIGHUP. Left to
their default action they end the process on the spot: no results.json, no metadata.jsonl, no line saying what
happened. Here each becomes `leapbatch.errors.Terminated`, which the boundary renders as `interrupted by SIGTERM`,
the resume hint, and exit 128 + the signal number (143, 129), the way `KeyboardInterrupt` becomes exit 130.

Where the exception is raised is the whole design, in two places:

- Outside an event loop (loading a manifest, opening the folder, writing results), `terminable()` installs a plain
  handler that raises it where the main thread is, which is what Python does with SIGINT.
- Inside `trio.run`, an exception raised at an arbitrary bytecode could land in trio's own scheduler. `run` (use it
  in place of `trio.run`) holds the signals from before the loop starts until after it ends, and inside the loop
  a task reads them from `trio.open_signal_receiver` and raises `Terminated` from itself: its nursery cancels the
  command's tasks, which unwind at their checkpoints, as trio delivers Ctrl-C to its main task. A signal that came
  before the receiver opened is raised as soon as it has; one that came after it closed (trio hands its pending
  signals back) is raised once `trio.run` has returned.

A second signal while the loop's tasks wind down changes nothing (the first is already on its way out); one after
the loop (while `run` writes results.json and metadata.jsonl) raises again where it lands, as a second Ctrl-C does,
and those files are written atomically (temp file, then `os.replace`): each keeps its old content or gets the new.
A signal the process was started ignoring (`nohup` ignores SIGHUP) stays ignored. A `trio.run` not started through
`run` (the emulator command, which stops cleanly on its own receiver) keeps the default action for a signal its own
receiver does not take: raising inside such a loop would be the unsafe case above.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from types import FrameType
from typing import TypeVar, TypeVarTuple

import trio

from leapbatch.errors import Terminated

SIGNALS = (signal.SIGTERM, signal.SIGHUP)

T = TypeVar("T")
Ts = TypeVarTuple("Ts")
_Handler = Callable[[int, FrameType | None], object] | int | None


def _raise(signum: int, frame: FrameType | None) -> None:
    if trio.lowlevel.in_trio_run():  # a loop not started by `run`: end as the signal's default action would
        signal.signal(signum, signal.SIG_DFL)
        signal.raise_signal(signum)
        return
    raise Terminated(signum)


@contextlib.contextmanager
def _handling(handler: _Handler) -> Iterator[list[signal.Signals]]:
    """Install `handler` for every signal of SIGNALS not ignored; yield those signals; restore the old handlers."""
    if threading.current_thread() is not threading.main_thread():  # only the main thread receives signals
        yield []
        return
    previous = {signum: signal.getsignal(signum) for signum in SIGNALS}
    # An ignored signal stays ignored (nohup); a handler installed outside Python (None) cannot be put back.
    taken = [signum for signum, old in previous.items() if old is not signal.SIG_IGN and old is not None]
    try:
        for signum in taken:
            signal.signal(signum, handler)
        yield taken
    finally:
        for signum in taken:
            signal.signal(signum, previous[signum])


@contextlib.contextmanager
def terminable() -> Iterator[None]:
    """Raise `Terminated` on SIGTERM or SIGHUP while the block runs (outside an event loop: see `run` for inside)."""
    with _handling(_raise):
        yield


def run(async_fn: Callable[[*Ts], Awaitable[T]], *args: *Ts) -> T:
    """Return `trio.run(async_fn, *args)`, ended by `Terminated` from a task of its own on SIGTERM or SIGHUP."""
    held: list[int] = []
    with _handling(lambda signum, _frame: held.append(signum)) as taken:
        result = trio.run(_guarded, taken, held, async_fn, *args)
    if held:  # came after the loop's receiver closed
        raise Terminated(held[0])
    return result


async def _guarded(
    taken: list[signal.Signals], held: list[int], async_fn: Callable[[*Ts], Awaitable[T]], *args: *Ts
) -> T:
    if not taken:  # not the main thread, or every signal ignored
        return await async_fn(*args)
    with trio.open_signal_receiver(*taken) as received:
        if held:  # came before the receiver opened
            raise Terminated(held.pop(0))
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_raise_on_first, received)
            result = await async_fn(*args)
            nursery.cancel_scope.cancel()
    return result


async def _raise_on_first(received: AsyncIterator[int]) -> None:
    async for signum in received:
        raise Terminated(signum)
