"""A test-only hook that kills the process with SIGKILL at a named point, to prove crash safety.

Set `LEAPBATCH_CRASH_AT=<point>[:<n>]` and the process SIGKILLs itself the n-th time (default 1st) it passes
`crashpoint("<point>")`. Unset (always, for users), a crashpoint costs one dictionary lookup. The named points are
listed in `POINTS`; the crash campaigns in `tests/` walk every one of them.
"""

from __future__ import annotations

import os
import signal
from collections import Counter

ENV_VAR = "LEAPBATCH_CRASH_AT"

POINTS = (
    "after-intent",  # intent record fsynced, create not sent yet
    "after-create-sent",  # create request sent (the server has the job), response not read
    "before-submitted",  # create response read, `submitted` record not written
    "mid-download",  # some image bytes written to the .part file
    "after-rename",  # image renamed into place, `finished` record not written
    "before-delete",  # about to send a DELETE
    "after-delete",  # DELETE answered, `deleted` record not written
    "ledger-recovery",  # while the ledger is being replayed on open
)

_hits: Counter[str] = Counter()


def _target() -> tuple[str, int] | None:
    spec = os.environ.get(ENV_VAR, "")
    if not spec:
        return None
    name, _, count = spec.partition(":")
    return name, int(count) if count.isdigit() else 1


def crashpoint(name: str) -> None:
    """SIGKILL this process if `LEAPBATCH_CRASH_AT` names this point and its count is reached."""
    target = _target()
    if target is None or target[0] != name:
        return
    _hits[name] += 1
    if _hits[name] >= target[1]:
        os.kill(os.getpid(), signal.SIGKILL)
