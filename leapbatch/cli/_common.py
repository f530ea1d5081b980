"""Small pieces the command modules share: the handler type and output helpers."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias

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


def print_json(value: Any) -> None:
    """Print one JSON document on stdout."""
    json.dump(value, sys.stdout, indent=2, sort_keys=True, ensure_ascii=False)
    sys.stdout.write("\n")


def say(text: str = "") -> None:
    """Print a line for people on stderr (stdout is kept for data)."""
    print(text, file=sys.stderr, flush=True)
