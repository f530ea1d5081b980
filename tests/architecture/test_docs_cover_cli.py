"""docs/cli.md documents every command and every option the parser has (a new option without docs fails here);
the emulator's options are in docs/emulator.md."""

from __future__ import annotations

import argparse
from pathlib import Path

from leapbatch.cli import build_parser

DOCS = (Path(__file__).parents[2] / "docs" / "cli.md").read_text()
EMULATOR_DOCS = (Path(__file__).parents[2] / "docs" / "emulator.md").read_text()


def commands() -> dict[str, argparse.ArgumentParser]:
    """Return every subcommand's parser by name."""
    actions = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(actions[0].choices)


def test_every_command_has_a_line_in_the_table() -> None:
    """The table at the top of docs/cli.md has a row for every command."""
    missing = [name for name in commands() if f"| `leapbatch {name}" not in DOCS]
    assert [] == missing


def test_every_option_of_every_command_is_documented() -> None:
    """Each option string (`--shard`) of each command appears in its docs."""
    missing = []
    for name, parser in commands().items():
        docs = EMULATOR_DOCS if name == "emulator" else DOCS
        options = [option for action in parser._actions for option in action.option_strings]
        missing += [
            f"{name} {option}"
            for option in options
            if option.startswith("--") and option != "--help" and f"`{option}" not in docs and f"{option} " not in docs
        ]
    assert [] == missing
