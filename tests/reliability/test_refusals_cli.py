"""Specs of refusals every job would share, through the real CLI against a served emulator (docs/cli.md,
"Refusals that stop the batch"): the batch stops once, with one line naming the host, the model and the server's
words, exit 5, and the jobs it did not create run on the next run without `--retry-failed`.
"""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path

from cli_support import Cli

from leapbatch.emulator import EmulatorConfig, EmulatorHandle
from leapbatch.folder.ledger import read_ledger
from leapbatch.folder.state import Phase

StartEmulator = Callable[..., Awaitable[EmulatorHandle]]
MODEL = "26a1a203-3a46-42cb-8cfa-f4de075907d8"
OTHER_MODEL = "00000000-0000-4000-8000-000000000000"
MANIFEST = """\
version: 1
name: refusals
model: {model}
prompt: "refusal {{n}}"
params: {{width: 64, height: 64, steps: 5}}
limits: {{requests_per_second: 1000, burst: 100, max_in_flight: 16}}
matrix:
  n: {{range: [1, {jobs}]}}
"""
FAST = ["--plain", "--speed", "1000"]


def manifest(tmp_path: Path, jobs: int, model: str = MODEL) -> Path:
    """Write a manifest of `jobs` one-image jobs of `model` and return its path."""
    path = tmp_path / "refusals.yaml"
    path.write_text(MANIFEST.format(model=model, jobs=jobs))
    return path


def lines_of(done: subprocess.CompletedProcess[bytes]) -> list[str]:
    """Return the lines a finished CLI process printed on stderr."""
    return done.stderr.decode().splitlines()


def error_lines(lines: list[str]) -> list[str]:
    """Return the `error:` lines."""
    return [line for line in lines if line.startswith("error:")]


def free_port() -> int:
    """Return a loopback port nothing listens on (bound once by the OS, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def test_a_wrong_model_id_on_500_jobs_stops_at_once_with_one_line_and_fails_no_job(
    cli: Cli, tmp_path: Path, start_emulator: StartEmulator
) -> None:
    """404 `Model not found`: exit 5 after fewer than 10 creates, one error line naming the host, the model and the
    server's message, no note per job, and no job recorded failed (the one refused job runs again next time)."""
    handle = await start_emulator(EmulatorConfig(speed=1000, models=frozenset({OTHER_MODEL})))
    out = tmp_path / "out"

    done = await cli("run", manifest(tmp_path, 500), "--out", out, *FAST, env=Cli.env(handle))

    lines = lines_of(done)
    assert 5 == done.returncode, lines
    assert handle.stats()["requests"]["create"] < 10
    [error] = error_lines(lines)
    assert handle.base_url.rstrip("/") in error, error
    assert MODEL in error
    assert "Model not found" in error
    assert "500 of 500 jobs not created" in error
    assert len([line for line in lines if line.startswith("note:")]) <= 1, lines
    phases = [job.phase for job in read_ledger(out).jobs.values()]
    assert Phase.FAILED not in phases
    assert {Phase.REFUSED} == set(phases)


async def test_after_a_wrong_model_the_fixed_server_creates_every_job_without_retry_failed(
    cli: Cli, tmp_path: Path, start_emulator: StartEmulator
) -> None:
    """The same folder, once the model exists: every job is created and finished, no `--retry-failed`."""
    refusing = await start_emulator(EmulatorConfig(speed=1000, models=frozenset({OTHER_MODEL})))
    out = tmp_path / "out"
    path = manifest(tmp_path, 12)
    first = await cli("run", path, "--out", out, *FAST, env=Cli.env(refusing))
    assert 5 == first.returncode, lines_of(first)
    fixed = await start_emulator(EmulatorConfig(speed=1000))

    again = await cli("run", path, "--out", out, *FAST, env=Cli.env(fixed))

    assert 0 == again.returncode, lines_of(again)
    assert 12 == fixed.stats()["jobs"]["created"]
    assert {Phase.FINISHED} == {job.phase for job in read_ledger(out).jobs.values()}


async def test_a_billing_limit_of_n_images_stops_the_batch_at_n(
    cli: Cli, tmp_path: Path, start_emulator: StartEmulator
) -> None:
    """402 after 7 images on a 40-job manifest: 7 jobs finished and downloaded, exit 5 naming the 402, the other 33
    jobs not failed; with the limit raised, the next run creates exactly those 33 (40 in all)."""
    limited = await start_emulator(EmulatorConfig(speed=1000, billing_limit=7))
    out = tmp_path / "out"
    path = manifest(tmp_path, 40)

    done = await cli("run", path, "--out", out, *FAST, env=Cli.env(limited))

    lines = lines_of(done)
    assert 5 == done.returncode, lines
    [error] = error_lines(lines)
    assert "HTTP 402" in error, error
    assert "spend limit reached on the server side" in error, error
    assert "33 of 40 jobs not created" in error
    state = read_ledger(out)
    assert 7 == sum(job.phase is Phase.FINISHED for job in state.jobs.values())
    assert not any(job.phase is Phase.FAILED for job in state.jobs.values())
    assert 7 == len(list((out / "images").iterdir()))
    limited.emulator.state.config = replace(limited.emulator.state.config, billing_limit=None)  # the plan upgraded
    again = await cli("run", path, "--out", out, *FAST, env=Cli.env(limited))
    assert 0 == again.returncode, lines_of(again)
    assert 40 == limited.stats()["jobs"]["created"]


async def test_an_unreachable_host_exits_5_naming_it_and_a_later_run_finishes_every_job(
    cli: Cli, tmp_path: Path, start_emulator: StartEmulator
) -> None:
    """Nothing listens at LEAP_BASE_URL: exit 5 with one line naming the host, no job failed. The folder made no
    job there, so it is no folder of that host's: with LEAP_BASE_URL corrected to a working server, the same
    command finishes every job with no `--retry-failed`."""
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    out = tmp_path / "out"
    path = manifest(tmp_path, 12)
    env = Cli.env(key="test-key", LEAP_BASE_URL=base_url, LEAP_API_KEY="test-key")

    done = await cli("run", path, "--out", out, *FAST, env=env)

    lines = lines_of(done)
    assert 5 == done.returncode, lines
    [error] = error_lines(lines)
    assert base_url in error, error
    assert "could not be reached" in error
    assert not any(job.phase is Phase.FAILED for job in read_ledger(out).jobs.values())
    server = await start_emulator(EmulatorConfig(speed=1000))
    again = await cli("run", path, "--out", out, *FAST, env=Cli.env(server))
    assert 0 == again.returncode, lines_of(again)
    assert 12 == server.stats()["jobs"]["created"]
