"""The canary key campaign: with errors forced on every route, the key shows up nowhere but its header.

A recognisable key (the canary) is used for runs, `status`, `verify` and `delete` against an emulator that fails
requests on every route; then every byte the processes printed and every file they wrote is searched for it, and
the image host's counter of requests that carried Authorization must be 0.
"""

from __future__ import annotations

import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from cli_support import Cli
from invariants import violations

from leapbatch.emulator import EmulatorConfig, EmulatorHandle
from leapbatch.emulator.faults import fault_plan

StartEmulator = Callable[..., Awaitable[EmulatorHandle]]
CANARY = "sk-canary-0d15ea5e-never-print-me"
JOBS = 12
MANIFEST = """\
version: 1
name: canary
model: 26a1a203-3a46-42cb-8cfa-f4de075907d8
prompt: "canary {n}"
params: {width: 64, height: 64, steps: 5}
matrix:
  n: {range: [1, 12]}
limits: {requests_per_second: 1000, burst: 200, max_in_flight: 12, job_timeout: 8}
"""
EVERY_ROUTE = {
    "reset_before": 0.1,
    "reset_after": 0.05,
    "throttle": 0.1,
    "server_error": 0.1,
    "malformed": 0.1,
    "image_404": 0.2,
    "image_cut": 0.1,
    "image_wrong_type": 0.1,
}


async def leapbatch(*args: str | Path, handle: EmulatorHandle, key: str = CANARY) -> subprocess.CompletedProcess[bytes]:
    """Run the CLI with the canary key against `handle`."""
    return await Cli()(*args, env=Cli.env(handle, key=key))


@pytest.mark.parametrize("seed", [1, 2])
async def test_the_key_appears_nowhere_with_errors_on_every_route(
    tmp_path: Path, start_emulator: StartEmulator, seed: int
) -> None:
    """Runs, status, verify and delete under forced errors leave the key in no output and no file."""
    plan = fault_plan("none", EVERY_ROUTE, seed=seed, delay_seconds=0.5)
    handle = await start_emulator(EmulatorConfig(speed=1000, seed=seed, faults=plan))
    manifest = tmp_path / "canary.yaml"
    manifest.write_text(MANIFEST)
    out = tmp_path / "out"
    fast = ("--speed", "1000", "--http-timeout", "1", "--max-retry-after", "1", "--plain")
    done = [await leapbatch("run", manifest, "--out", out, *fast, handle=handle)]
    while done[-1].returncode != 0 and len(done) < 6:
        done.append(await leapbatch("run", manifest, "--out", out, "--retry-failed", *fast, handle=handle))
    done.append(await leapbatch("status", out, "--json", handle=handle))
    done.append(await leapbatch("verify", out, "--json", handle=handle))
    done.append(await leapbatch("delete", out, "--yes", "--include-failed", "--max-retry-after", "1", handle=handle))
    refused = await leapbatch("delete", out, "--yes", "--force", handle=handle, key=CANARY + "-wrong")
    outputs = [stream for process in [*done, refused] for stream in (process.stdout, process.stderr)]
    assert 0 == done[-4].returncode, done[-4].stderr.decode()
    # --retry-failed may resubmit each job once per rerun: the bound on creates allows it.
    resubmitted = JOBS * (len(done) - 4)
    stats = handle.stats()
    assert [] == violations(out, jobs=JOBS, stats=stats, outputs=outputs, canary=CANARY, resubmitted=resubmitted)
    assert 0 == handle.stats()["image_requests_with_authorization"]


async def test_a_refused_key_is_not_repeated_in_the_error(tmp_path: Path, start_emulator: StartEmulator) -> None:
    """The server refusing the canary key: the message says so without quoting the key."""
    handle = await start_emulator(EmulatorConfig(speed=1000, token="another-key"))
    manifest = tmp_path / "canary.yaml"
    manifest.write_text(MANIFEST)
    done = await leapbatch("run", manifest, "--out", tmp_path / "out", "--speed", "1000", handle=handle)
    assert 5 == done.returncode
    assert CANARY.encode() not in done.stdout + done.stderr
    assert CANARY.encode() not in (tmp_path / "out" / "ledger.jsonl").read_bytes()
