"""The one error boundary: whatever a command raised, one line on stderr, a hint, and an exit code.

trio's nurseries raise `ExceptionGroup`s, nested as deep as the nurseries were, even for a single error. The
boundary flattens a group into its leaves once, then picks the one leaf to show, deterministically:
a bug first (it must be seen, with its traceback), then a `LeapbatchError` (highest exit code, then message),
then an `OSError` (the file system said no: disk full, permissions, read-only), then `KeyboardInterrupt`.
Every leaf of a kind is rendered the same way, wherever it was raised. Every line is escaped for the terminal
(`leapbatch.manifest.template.printable`): messages carry the server's words, paths and manifest text, any of
which may hold escape sequences or bidi overrides.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

from leapbatch.errors import EXIT_INTERRUPTED, EXIT_USAGE, LeapbatchError, ManifestError
from leapbatch.manifest.template import printable

OS_HINT = "check the path, its permissions and the free space; LEAPBATCH_DEBUG=1 shows details"
INTERRUPT_HINT = "nothing was lost: the ledger is consistent; run the same command again to resume"


def leaves(exc: BaseException) -> Iterator[BaseException]:
    """Yield `exc`, or every exception inside it if it is a group (nested groups included)."""
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            yield from leaves(inner)
    else:
        yield exc


def _rank(exc: BaseException) -> tuple[int, int, str]:
    if isinstance(exc, LeapbatchError):
        return (1, -exc.exit_code, exc.message)
    if isinstance(exc, OSError):
        return (2, 0, str(exc))
    if isinstance(exc, KeyboardInterrupt):
        return (3, 0, "")
    return (0, 0, repr(exc))  # a bug


def chosen(exc: BaseException) -> BaseException:
    """Return the one leaf of `exc` the boundary shows."""
    return min(leaves(exc), key=_rank)


def is_expected(exc: BaseException) -> bool:
    """Return whether `exc` is a failure the boundary renders as a line (anything else is a bug)."""
    return isinstance(exc, LeapbatchError | OSError | KeyboardInterrupt)


def render(exc: BaseException) -> int:
    """Print an expected failure on stderr (escaped for the terminal) and return its exit code."""
    if isinstance(exc, ManifestError):
        for problem in exc.problems:
            _say(f"error: {problem}")
        count = len(exc.problems)
        _say(f"{count} problem{'s' if count != 1 else ''} found")
        return exc.exit_code
    if isinstance(exc, LeapbatchError):
        _say(f"error: {exc.message}")
        if exc.hint:
            _say(f"hint: {exc.hint}")
        return exc.exit_code
    if isinstance(exc, OSError):
        where = f": {exc.filename}" if exc.filename else ""
        _say(f"error: {exc.strerror or exc}{where}")
        _say(f"hint: {OS_HINT}")
        return EXIT_USAGE
    _say("interrupted")
    _say(f"hint: {INTERRUPT_HINT}")
    return EXIT_INTERRUPTED


def _say(line: str) -> None:
    with contextlib.suppress(OSError):  # stderr itself is gone (a closed pipe): nothing more can be said
        print(printable(line), file=sys.stderr, flush=True)
