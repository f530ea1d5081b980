"""`leapbatch status`, `delete` and `verify`: the ledger at work."""

from __future__ import annotations

from leapbatch.cli._common import SubParsers


def register(sub: SubParsers) -> None:
    """Add this module's subcommands (none yet)."""
