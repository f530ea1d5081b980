"""The one error boundary: whatever a command raised, one line on stderr, a hint, and an exit code.

trio's nurseries raise `ExceptionGroup`s, nested as deep as the nurseries were, even for a single error. The
boundary flattens a group into its leaves once, then picks the one leaf to show, deterministically:
a bug first (it must be seen, with its traceback), then a `LeapbatchError` (highest exit code, then message),
then an `OSError` (the file system said no: disk full, permissions, read-only), then an interruption: Ctrl-C
(`KeyboardInterrupt`, exit 130) or SIGTERM/SIGHUP (`Terminated`, exit 128 + the signal number), highest code first.
A `BrokenPipeError` is no failure but a reader that stopped early (`leapbatch status OUT | head -1`): nothing is
printed, stdout is pointed at /dev/null (so the interpreter's last flush cannot fail again, as Python's docs on
SIGPIPE advise) and the exit code is 141, 128 + SIGPIPE, what a shell shows for any command its pipe cut short.
Every leaf of a kind is rendered the same way, wherever it was raised. Every line is escaped for the terminal
(`leapbatch.manifest.template.printable`): messages carry the server's words, paths and manifest text, any of
which may hold escape sequences or bidi overrides.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

from leapbatch.errors import EXIT_INTERRUPTED, EXIT_USAGE, LeapbatchError, ManifestError, Terminated, plural
from leapbatch.manifest.template import printable

OS_HINT = "check the path, its permissions and the free space; LEAPBATCH_DEBUG=1 shows details"
INTERRUPT_HINT = "nothing was lost: the ledger is consistent; run the same command again to resume"
EXIT_OUTPUT_CLOSED = 141  # 128 + SIGPIPE: the reader of stdout (or stderr) went away before the command ended


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
    if isinstance(exc, Terminated):
        return (3, -exc.exit_code, "")
    if isinstance(exc, KeyboardInterrupt):
        return (3, -EXIT_INTERRUPTED, "")
    return (0, 0, repr(exc))  # a bug


def chosen(exc: BaseException) -> BaseException:
    """Return the one leaf of `exc` the boundary shows."""
    return min(leaves(exc), key=_rank)


def is_expected(exc: BaseException) -> bool:
    """Return whether `exc` is a failure the boundary renders as a line (anything else is a bug)."""
    return isinstance(exc, LeapbatchError | OSError | KeyboardInterrupt | Terminated)


def render(exc: BaseException) -> int:
    """Print an expected failure on stderr (escaped for the terminal) and return its exit code."""
    if isinstance(exc, ManifestError):
        for problem in exc.problems:
            _say(f"error: {problem}")
        _say(f"{plural(len(exc.problems), 'problem')} found")
        return exc.exit_code
    if isinstance(exc, LeapbatchError):
        _say(f"error: {exc.message}")
        if exc.hint:
            _say(f"hint: {exc.hint}")
        return exc.exit_code
    if isinstance(exc, BrokenPipeError):
        return _output_closed()
    if isinstance(exc, OSError):
        where = f": {exc.filename}" if exc.filename else ""
        _say(f"error: {exc.strerror or exc}{where}")
        _say(f"hint: {OS_HINT}")
        return EXIT_USAGE
    if isinstance(exc, Terminated):
        _say(f"interrupted by {exc.name}")
        _say(f"hint: {INTERRUPT_HINT}")
        return exc.exit_code
    _say("interrupted")
    _say(f"hint: {INTERRUPT_HINT}")
    return EXIT_INTERRUPTED


def _say(line: str) -> None:
    with contextlib.suppress(OSError):  # stderr itself is gone (a closed pipe): nothing more can be said
        print(printable(line), file=sys.stderr, flush=True)


def _output_closed() -> int:
    """Return 141, quietly; if stdout is the stream whose reader went away, point it at /dev/null first.

    Then the interpreter's last flush at exit has somewhere to go (Python's docs on SIGPIPE), whatever is left in
    stdout's buffer. A stdout that still flushes (it was stderr that closed) is left as it is: its reader gets it all.
    """
    try:
        sys.stdout.flush()
    except (OSError, ValueError):
        with contextlib.suppress(OSError, ValueError):  # no file descriptor behind stdout (a test's capture)
            devnull = os.open(os.devnull, os.O_WRONLY)
            try:
                os.dup2(devnull, sys.stdout.fileno())
            finally:
                os.close(devnull)
    return EXIT_OUTPUT_CLOSED
