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
import re
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias

from leapbatch.manifest.template import UNPRINTABLE, printable

Handler = Callable[[argparse.Namespace], int]
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


def show(text: str = "") -> None:
    """Print a line of data on stdout, escaped for the terminal (`printable`)."""
    print(printable(text))


def say(text: str = "") -> None:
    """Print a line for people on stderr (stdout is kept for data), escaped for the terminal (`printable`)."""
    print(printable(text), file=sys.stderr, flush=True)
