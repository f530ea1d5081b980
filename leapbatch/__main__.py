"""`python -m leapbatch` runs the CLI."""

from leapbatch.cli import entry_point

entry_point()
