"""The command line: the only place that reads argv, prints, calls `trio.run` and chooses exit codes.

`main(argv) -> int` is the one error boundary (`_boundary`): it unwraps trio's exception groups once, picks one
leaf deterministically, and renders it: a `LeapbatchError` prints `error: <what, where>` and `hint: <what to do>`
on stderr and returns its exit code; an OSError (disk full, permissions) exits 2; Ctrl-C returns 130, and SIGTERM
or SIGHUP end a command the same way (`signals`: exit 143, 129); anything else is a bug and shows its traceback.
`LEAPBATCH_DEBUG=1` re-raises everything. Each subcommand lives in a small module of this package that exposes
`register(subparsers)`.

Output survives any stream encoding: `main` first sets stdout and stderr to write what their encoding cannot hold
as escapes (`\\xe9`, `errors="backslashreplace"`), so `LANG=C` or `PYTHONIOENCODING=ascii` never crashes a
command; `print_json` writes such characters as JSON escapes instead, so the document stays exact.

Exit codes: 0 all done, 1 some jobs failed (or `verify` found problems), 2 bad manifest or usage, 3 output folder
locked, 4 ledger corrupt, 5 API unavailable (key refused, server unreachable), 130 interrupted (Ctrl-C), 129 and 143
ended by SIGHUP and SIGTERM (as Ctrl-C: results written, resume by running again).
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import sys
from collections.abc import Sequence

from leapbatch import __version__
from leapbatch.cli import (
    emulator_cmd,
    export_cmd,
    gallery_cmd,
    ledger_cmds,
    manifest_cmds,
    merge_cmd,
    prune_cmd,
    run_cmd,
    sheet_cmd,
    signals,
)
from leapbatch.cli._boundary import chosen, is_expected, render
from leapbatch.cli._common import CommandModule, Handler
from leapbatch.errors import EXIT_USAGE, Terminated

EPILOG = """\
exit codes: 0 done, 1 some jobs failed, 2 bad manifest or usage, 3 output folder locked,
            4 ledger corrupt, 5 API unavailable, 130 interrupted (Ctrl-C), 143 SIGTERM, 129 SIGHUP
environment: LEAP_API_KEY (the key; never pass it on the command line), LEAP_BASE_URL
             (default https://api.tryleap.ai), LEAPBATCH_DEBUG=1 (show tracebacks)
docs: docs/manifest.md (every manifest key), docs/cli.md (every command)"""


def build_parser() -> argparse.ArgumentParser:
    """Return the parser of every subcommand."""
    parser = argparse.ArgumentParser(
        prog="leapbatch",
        description="Generate image datasets on Leap's image API from a YAML manifest: plan, run, resume, "
        "verify and clean up, with a local emulator for trying it for free.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"leapbatch {__version__}")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    modules: list[CommandModule] = [
        manifest_cmds,
        run_cmd,
        ledger_cmds,
        merge_cmd,
        prune_cmd,
        export_cmd,
        gallery_cmd,
        sheet_cmd,
        emulator_cmd,
    ]
    for module in modules:
        module.register(sub)
    return parser


def tolerate_encodings() -> None:
    """Make stdout and stderr write what their encoding cannot hold as backslash escapes, never raise on it."""
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper) and stream.errors != "backslashreplace":
            stream.reconfigure(errors="backslashreplace")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return its exit code: the one error boundary (see `leapbatch.cli._boundary`)."""
    tolerate_encodings()
    logging.getLogger("httpx").setLevel(logging.WARNING)  # httpx logs full URLs at INFO
    logging.getLogger("hypercorn").setLevel(logging.WARNING)
    debug = os.environ.get("LEAPBATCH_DEBUG") == "1"
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse: --help, --version, usage errors
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    handler: Handler = args.handler
    try:
        with signals.terminable():
            return handler(args)
    except (Exception, KeyboardInterrupt, Terminated, BaseExceptionGroup) as exc:
        leaf = chosen(exc)
        if debug or not is_expected(leaf):
            raise
        return render(leaf)


def entry_point() -> None:
    """Run `main` with `sys.argv` and exit with its code (the console script)."""
    sys.exit(main())
