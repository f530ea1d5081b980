"""How long `run --local` waits on its own emulator: the waits that guard against a real server, cut to what the
bundled emulator can provably need. An option given on the command line always wins.

- **Retry-After is honoured up to 2 s** (`LOCAL_MAX_RETRY_AFTER`, not 120 s). The emulator's 429s are drawn faults,
  not a load it sheds: its honest `Retry-After` asks for 1 s or a date 1-2 s ahead; its `86400` (and `soon`) are the
  faults that test a client's cap and parser. A wait honoured or not changes no payment and no record, only
  politeness; and a 120 s wait blocks whatever request met it (a listing that answers for every waiting job of its
  model, a create holding a job slot), so under `--faults chaos` a run sat still for minutes.
- **The settle window is 12 s** (`LOCAL_SETTLE_WINDOW`, not 30 s). The emulator runs a create's handler before any
  fault breaks its answer, so a lost answer is seen after the job was made (or never made: a 500, 502 or 504 of
  `server_error` runs no handler). From the handler on, the job is listed at most `slow_commit`'s delay plus
  `list_lag`'s lag later (`--fault-delay` 2 s and the list lag 5 s, fixed for `run --local`; each is one request's
  fault, the sum bounds both). 12 s is that bound plus 5 s; the looks (at 0, 1, 3, 7 and 12 s) fall after it. The
  window is counted on trio's clock, the emulator's own, so a busy machine delays the looks, not the bound.
"""

from __future__ import annotations

from leapbatch.api.backoff import MAX_RETRY_AFTER
from leapbatch.cli.emulator_cmd import DEFAULT_FAULT_DELAY, DEFAULT_LIST_LAG
from leapbatch.run.submit import SETTLE_WINDOW

LOCAL_MAX_RETRY_AFTER = 2.0
SETTLE_MARGIN = 5.0  # seconds past the emulator's longest listing lag before a lost create counts as not made
LOCAL_SETTLE_WINDOW = DEFAULT_FAULT_DELAY + DEFAULT_LIST_LAG + SETTLE_MARGIN


def max_retry_after(given: float | None, *, local: bool) -> float:
    """Return the longest `Retry-After` honoured: `given` if set, else 2 s on the local emulator, 120 s elsewhere."""
    if given is not None:
        return given
    return LOCAL_MAX_RETRY_AFTER if local else MAX_RETRY_AFTER


def settle_window(given: float | None, *, local: bool) -> float:
    """Return the settle window: `given` if set, else 12 s on the local emulator, 30 s elsewhere."""
    if given is not None:
        return given
    return LOCAL_SETTLE_WINDOW if local else SETTLE_WINDOW
