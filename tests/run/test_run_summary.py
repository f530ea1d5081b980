"""Specs of the end-of-run summary `leapbatch run` prints, through the real CLI on the bundled emulator."""

from __future__ import annotations

from pathlib import Path

from cli_support import Cli

MANIFEST = """\
version: 1
name: summary
model: 26a1a203-3a46-42cb-8cfa-f4de075907d8
prompt: "summary {n}"
params: {width: 64, height: 64, steps: 5}
matrix:
  n: {range: [1, 3]}
"""


async def test_the_summary_names_the_main_failure_reasons_with_their_counts(cli: Cli, tmp_path: Path) -> None:
    """Every job failing the same way: the summary says the reason and how many jobs it failed, not only the stage."""
    manifest = tmp_path / "summary.yaml"
    manifest.write_text(MANIFEST)
    out = tmp_path / "out"

    done = await cli(
        "run", manifest, "--local", "--fail-rate", "1", "--speed", "inf", "--out", out, "--plain", env=Cli.env()
    )

    lines = done.stderr.decode().splitlines()
    assert 1 == done.returncode, lines
    assert "  x3: the job ended `failed` on the server" in lines
