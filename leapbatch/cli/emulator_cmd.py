"""`leapbatch emulator`: serve the local Leap emulator."""

from __future__ import annotations

from leapbatch.cli._common import SubParsers


def register(sub: SubParsers) -> None:
    """Add this module's subcommands (none yet)."""
