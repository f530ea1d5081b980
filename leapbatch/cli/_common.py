"""Small pieces the command modules share: the handler type and output helpers.

Everything shown goes through one translation, `leapbatch.manifest.template.printable`: text from outside
(manifests, paths, the server's messages) may hold escape sequences, C1 codes or bidi overrides, and the terminal
must show them, not obey them. `say` and `show` escape lines (`\\x1b`, `\\u202e`); `print_json` writes the same
characters as JSON escapes (`\\u001b`, `\\u202e`), so the document parses to exactly the data, and writes any
non-ASCII as `\\uXXXX` when stdout cannot encode it. Files (the ledger, results.json) keep the text as received.
"""

from __future__ import annotations

import argparse
import codecs
import json
import math
import operator
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias

from annotated_types import Ge, Gt, Le, Lt

from leapbatch.errors import UsageError
from leapbatch.manifest.models import Limits
from leapbatch.manifest.template import UNPRINTABLE, printable

Handler = Callable[[argparse.Namespace], int]
NumberType = Callable[[str], float]  # an argparse `type=`: text to number, or ArgumentTypeError with a message
# The bounds a manifest's limits carry (annotated_types), as `leapbatch validate` words them.
_BOUNDS = (
    (Gt, "gt", "more than", operator.gt),
    (Ge, "ge", "at least", operator.ge),
    (Lt, "lt", "less than", operator.lt),
    (Le, "le", "at most", operator.le),
)
# argparse exposes no public name for the object `add_subparsers` returns; it is generic only in the stubs.
if TYPE_CHECKING:
    SubParsers: TypeAlias = argparse._SubParsersAction[argparse.ArgumentParser]
else:
    SubParsers = argparse._SubParsersAction


class CommandModule(Protocol):
    """A module of this package that adds its subcommands (each sets `handler=`) to the parser."""

    def register(self, sub: SubParsers) -> None:
        """Add this module's subcommands."""


def _json_escape(match: re.Match[str]) -> str:
    char = match.group()
    return char if char == "\n" else f"\\u{ord(char):04x}"  # json.dumps escapes C0 in strings: "\n" is indent


def _encodes_unicode(stream: object) -> bool:
    try:
        return codecs.lookup(getattr(stream, "encoding", None) or "ascii").name.startswith("utf")
    except LookupError:
        return False


def print_json(value: Any) -> None:
    """Print one JSON document on stdout: terminal-safe and lossless (what could rewrite a terminal is escaped)."""
    text = json.dumps(value, indent=2, sort_keys=True, ensure_ascii=not _encodes_unicode(sys.stdout))
    sys.stdout.write(UNPRINTABLE.sub(_json_escape, text) + "\n")
    sys.stdout.flush()  # a reader gone (`| head`) is met here, inside the error boundary, not at exit


def show(text: str = "") -> None:
    """Print a line of data on stdout, escaped for the terminal (`printable`)."""
    print(printable(text), flush=True)  # a reader gone (`| head`) is met here, inside the error boundary, not at exit


def say(text: str = "") -> None:
    """Print a line for people on stderr (stdout is kept for data), escaped for the terminal (`printable`)."""
    print(printable(text), file=sys.stderr, flush=True)


def beside(out: Path, suffix: str, *, what: str) -> Path:
    """Return the folder beside `out` whose name adds `suffix` (`outputs/x` -> `outputs/x-local`); `what` needs it."""
    named = out if out.name not in ("", "..") else out.resolve()  # `.` and `..` have no name of their own
    if not named.name:
        raise UsageError(f"output.dir {out} is the root folder: {what} has no folder beside it", hint="pass --out")
    return named.with_name(named.name + suffix)


def number(noun: str = "a number", *, zero: bool = False, infinite: bool = False) -> NumberType:
    """Return the argparse type of a number option: above 0 (0 too if `zero`), finite unless `infinite`.

    Every refusal is a sentence (`argument --rps: expected a number, got 'x'`), never argparse's own words, which
    name the type function (`invalid _positive_float value`).
    """

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {noun}, got {text!r}") from None
        if math.isnan(value) or (math.isinf(value) and not infinite):
            raise argparse.ArgumentTypeError(f"expected {noun}, got {text!r}")
        if value < 0 or (value == 0 and not zero):
            raise argparse.ArgumentTypeError(f"must be {'0 or more' if zero else 'more than 0'}, got {text}")
        return value

    return parse


def count(text: str) -> int:
    """Parse a count option (the argparse type): a whole number, 0 or more."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def limit(field: str) -> Callable[[str], Any]:
    """Return the argparse type of the option that stands in for the manifest's `limits.<field>`.

    Its bounds are the manifest's, read from `leapbatch.manifest.models.Limits` (one source) and worded as
    `leapbatch validate` words them: `--rps 2000` is refused as `limits.requests_per_second: 2000` is.
    """
    info = Limits.model_fields[field]
    whole = info.annotation is int

    def parse(text: str) -> float | int:
        try:
            value: float | int = int(text) if whole else float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'a whole' if whole else 'a'} number, got {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}")
        for bound in info.metadata:
            refused = _out_of(bound, value)
            if refused:
                raise argparse.ArgumentTypeError(f"{refused}, got {text} (the bound of limits.{field} in a manifest)")
        return value

    return parse


def _out_of(bound: object, value: float) -> str | None:
    """Return how `value` misses one annotated_types bound (`must be at most 1000`), or None if it keeps it."""
    for kind, name, words, keeps in _BOUNDS:
        if isinstance(bound, kind):
            edge = getattr(bound, name)
            return None if keeps(value, edge) else f"must be {words} {edge}"
    return None
