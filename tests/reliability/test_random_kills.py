"""Random kill -9 campaign under the chaos profile: kill runs (resumes included) at random moments, then finish.

Sized for CI by default; run it bigger by hand:

    LEAPBATCH_CAMPAIGN_JOBS=300 LEAPBATCH_CAMPAIGN_KILLS=30 pytest tests/reliability/test_random_kills.py

The kill moments and the emulator's faults are seeded, so a failing campaign can be replayed with its seed.
"""

from __future__ import annotations

import os
import random
import signal
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trio
from cli_support import Cli
from invariants import violations

from leapbatch.emulator import EmulatorConfig, EmulatorHandle
from leapbatch.emulator.faults import fault_plan

StartEmulator = Callable[..., Awaitable[EmulatorHandle]]
CANARY = "sk-canary-random-kills-51c0ffee"
JOBS = int(os.environ.get("LEAPBATCH_CAMPAIGN_JOBS", "40"))
KILLS = int(os.environ.get("LEAPBATCH_CAMPAIGN_KILLS", "6"))
MANIFEST = """\
version: 1
name: chaos
model: 26a1a203-3a46-42cb-8cfa-f4de075907d8
prompt: "chaos image {{n}}"
params: {{width: 64, height: 64, steps: 5, number_of_images: 2}}
matrix:
  n: {{range: [1, {jobs}]}}
limits: {{requests_per_second: 1000, burst: 200, max_in_flight: 16, job_timeout: 8}}
"""


def command(manifest: Path, out: Path) -> list[str]:
    """Return the run command of the campaign (short HTTP timeout, so delayed answers count as lost)."""
    run = [sys.executable, "-m", "leapbatch", "run", str(manifest), "--out", str(out), "--plain"]
    return [*run, "--speed", "1000", "--http-timeout", "1", "--max-retry-after", "2"]


async def run_and_kill(cmd: list[str], env: dict[str, str], after: float) -> bytes:
    """Start a run, SIGKILL it after `after` seconds (unless it ended), and return its stderr."""
    process = await trio.lowlevel.open_process(cmd, env=env, stdout=-1, stderr=-1)
    assert process.stdout is not None
    assert process.stderr is not None
    chunks: list[bytes | bytearray] = []

    async def drain(stream: trio.abc.ReceiveStream) -> None:
        async with stream:
            while chunk := await stream.receive_some():
                chunks.append(chunk)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(drain, process.stdout)
        nursery.start_soon(drain, process.stderr)
        with trio.move_on_after(after):
            await process.wait()
        if process.returncode is None:
            process.send_signal(signal.SIGKILL)
        await process.wait()
    return b"".join(chunks)


@dataclass(frozen=True)
class Campaign:
    """What a finished campaign left: its folder, the emulator's counters, and the run command and environment."""

    out: Path
    stats: dict[str, Any]
    cmd: list[str]
    env: dict[str, str]


async def campaign(tmp_path: Path, handle: EmulatorHandle, *, seed: int, name: str) -> Campaign:
    """Run the manifest KILLS times, each killed -9 at a random moment, then once to the end; assert every
    invariant of docs/reliability.md and return what the campaign left."""
    rng = random.Random(seed)
    manifest = tmp_path / f"{name}.yaml"
    manifest.write_text(MANIFEST.format(jobs=JOBS))
    out = tmp_path / "out"
    cmd, env = command(manifest, out), Cli.env(handle, key=CANARY)
    outputs = [await run_and_kill(cmd, env, rng.uniform(0.3, 2.5)) for _ in range(KILLS)]
    final = await trio.run_process(cmd, env=env, capture_stdout=True, capture_stderr=True, check=False)
    outputs += [final.stdout, final.stderr]
    assert final.returncode in (0, 1), final.stderr.decode()
    stats = handle.stats()
    found = violations(out, jobs=JOBS, stats=stats, outputs=outputs, canary=CANARY, sandbox=tmp_path)
    print(
        f"{name} campaign: {JOBS} jobs, {KILLS} kills, seed {seed}, {stats['jobs']['created']} created, "
        f"{stats.get('ambiguous_creates', 0)} ambiguous creates, faults {stats.get('faults')}"
    )
    assert [] == found, f"seed {seed}: " + "; ".join(found)
    return Campaign(out, stats, cmd, env)


@pytest.mark.slow
async def test_random_kills_under_chaos_keep_every_invariant(tmp_path: Path, start_emulator: StartEmulator) -> None:
    """Kill -9 at random moments under chaos, resume each time; at the end every invariant holds."""
    seed = int(os.environ.get("LEAPBATCH_CAMPAIGN_SEED", "20261124"))
    handle = await start_emulator(
        EmulatorConfig(speed=1000, seed=seed, faults=fault_plan("chaos", seed=seed, delay_seconds=1.5))
    )
    await campaign(tmp_path, handle, seed=seed, name="chaos")


# The hostile servers leapbatch must not pay twice for: creates committed after the client gave up, listings that
# lag behind creates, and a clock five minutes behind ours; on top of chaos's faults.
HOSTILE_RATES = {"slow_commit": 0.05, "list_lag": 0.15}


@pytest.mark.slow
async def test_random_kills_against_a_slow_lagging_skewed_server_pay_once(
    tmp_path: Path, start_emulator: StartEmulator
) -> None:
    """Kill -9 at random moments against a server with slow commits, lagging listings and a clock 300 s behind;
    at the end every invariant holds, no job was paid for twice (ambiguous creates adopted, not re-paid), and
    `delete --yes --include-failed` leaves nothing on the server."""
    seed = int(os.environ.get("LEAPBATCH_CAMPAIGN_SEED", "20261203"))
    plan = fault_plan("chaos", HOSTILE_RATES, seed=seed, delay_seconds=1.5, list_lag_seconds=3.0)
    handle = await start_emulator(EmulatorConfig(speed=1000, seed=seed, faults=plan, clock_offset=-300.0))

    done = await campaign(tmp_path, handle, seed=seed, name="hostile")

    assert done.stats["jobs"]["created"] <= JOBS, f"seed {seed}: paid twice: {done.stats['jobs']['created']} created"
    delete = [sys.executable, "-m", "leapbatch", "delete", str(done.out), "--yes", "--include-failed"]
    deleted = await trio.run_process(delete, env=done.env, capture_stdout=True, capture_stderr=True, check=False)
    assert 0 == handle.stats()["jobs"]["live"], deleted.stderr.decode()
