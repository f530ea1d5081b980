"""The one error boundary, through the real CLI: failures deep inside trio's nurseries are one line and an exit code."""

from __future__ import annotations

import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

from leapbatch.emulator import EmulatorConfig, EmulatorHandle
from leapbatch.folder.ledger import read_ledger
from leapbatch.folder.state import Phase

if TYPE_CHECKING:
    from cli_support import Cli

StartEmulator = Callable[..., Awaitable[EmulatorHandle]]
ONE_JOB = """\
version: 1
name: one
model: 26a1a203-3a46-42cb-8cfa-f4de075907d8
prompt: "a fox"
params: {steps: 20, width: 64, height: 64, seed: 7}
"""
FAST = ("--rps", "200", "--speed", "1000")


def one_job_manifest(tmp_path: Path) -> Path:
    """Write a manifest of a single job and return its path."""
    path = tmp_path / "one.yaml"
    path.write_text(ONE_JOB)
    return path


async def test_resuming_with_a_wrong_key_is_one_line_with_a_hint(
    cli: Cli, tmp_path: Path, start_emulator: StartEmulator
) -> None:
    """A submitted job resumed with a refused key (the poller's path): exit 5, the key-refused line and its hint."""
    handle = await start_emulator(EmulatorConfig(token="the-right-one", speed=1000))
    manifest, out = one_job_manifest(tmp_path), tmp_path / "out"
    killed = await cli(
        "run",
        manifest,
        "--out",
        out,
        *FAST,
        env=cli.env(handle, key="the-right-one", LEAPBATCH_CRASH_AT="mid-download"),
    )
    assert -signal.SIGKILL == killed.returncode
    assert [Phase.SUBMITTED] == [js.phase for js in read_ledger(out).jobs.values()]

    done = await cli("run", manifest, "--out", out, *FAST, env=cli.env(handle, key="sk-wrong-canary"))

    lines = done.stderr.decode().splitlines()
    assert 5 == done.returncode
    assert [True, True] == [
        any(line.startswith("error: the API key was refused (HTTP 401 from GET") for line in lines),
        any(line.startswith("hint: check LEAP_API_KEY") for line in lines),
    ]
    assert b"Traceback" not in done.stderr
    assert b"sk-wrong-canary" not in done.stderr


async def test_an_unusable_images_folder_during_a_run_is_one_line(cli: Cli, tmp_path: Path) -> None:
    """`images` that is not a folder is refused before any job is paid for: exit 2, one line naming it, a hint, no
    traceback (nothing created on the server)."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "images").write_text("not a folder")

    done = await cli("run", "--local", one_job_manifest(tmp_path), "--out", out, env=cli.env())

    assert 2 == done.returncode, done.stderr.decode()
    assert f"error: {out / 'images'} is not a folder".encode() in done.stderr
    assert b"hint: move it away: leapbatch keeps its own entry under that name" in done.stderr
    assert b"Traceback" not in done.stderr
