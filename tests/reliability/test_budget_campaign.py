"""Budget caps hold against the emulator's image counter (docs/cli.md, "Budget"): a 40-image manifest capped at 10
images (or $0.10 at pay as you go) makes at most 10, on a plain server and under the chaos faults with kill -9 at
random moments between resumes, and the ledger never counts fewer images than the server made.

The judge is the emulator's `stats()["images"]["made"]`: what the account was billed for. The kill campaign is
seeded like tests/reliability/test_random_kills.py (whose run-and-kill helpers it uses); replay one with

    LEAPBATCH_CAMPAIGN_SEED=... LEAPBATCH_BUDGET_KILLS=8 pytest tests/reliability/test_budget_campaign.py
"""

from __future__ import annotations

import os
import random
import subprocess
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest
import trio
from cli_support import Cli
from test_random_kills import command, run_and_kill

from leapbatch.emulator import EmulatorConfig, EmulatorHandle
from leapbatch.emulator.faults import fault_plan
from leapbatch.folder.ledger import read_ledger

StartEmulator = Callable[..., Awaitable[EmulatorHandle]]
PAYG = Decimal("0.01")  # pay as you go, the default price: $0.01 per image
KILLS = int(os.environ.get("LEAPBATCH_BUDGET_KILLS", "6"))
MANIFEST = """\
version: 1
name: capped
model: 26a1a203-3a46-42cb-8cfa-f4de075907d8
prompt: "capped image {{n}}"
params: {{width: 64, height: 64, steps: 5, number_of_images: {images}}}
matrix:
  n: {{range: [1, {jobs}]}}
limits: {{requests_per_second: 1000, burst: 200, max_in_flight: {in_flight}, job_timeout: 8}}
budget: {budget}
"""


@dataclass(frozen=True)
class Cap:
    """A budget over a manifest of `jobs` jobs of `images` images each, and the most images it lets be made."""

    budget: str  # the manifest's `budget:` value
    images: int  # numberOfImages of every job
    most: int  # the images the cap admits (whole jobs only)
    key: str  # the manifest key the error line names
    jobs: int = 40

    def manifest(self, tmp_path: Path, *, in_flight: int = 8) -> Path:
        """Write the manifest (`in_flight` jobs at a time: fewer than the cap admits, so creates overlap before it is
        reached) and return its path."""
        path = tmp_path / "capped.yaml"
        path.write_text(MANIFEST.format(images=self.images, jobs=self.jobs, budget=self.budget, in_flight=in_flight))
        return path

    @property
    def jobs_left(self) -> int:
        """Return the jobs the cap keeps from being created."""
        return self.jobs - self.most // self.images


CAPS = {
    "max_images": Cap("{max_images: 10}", images=1, most=10, key="max_images"),
    "max_usd": Cap("{max_usd: 0.10}", images=1, most=10, key="max_usd"),
    # 2 images a job at $0.01 each: 7 jobs commit $0.14, the 8th would cross $0.15 half-way, so it is not sent.
    "max_usd_mid_job": Cap("{max_usd: 0.15}", images=2, most=14, key="max_usd"),
}


def made(handle: EmulatorHandle) -> int:
    """Return the images the emulator made (what the account was billed for)."""
    count: int = handle.stats()["images"]["made"]
    return count


def budget_line(done: subprocess.CompletedProcess[bytes]) -> str:
    """Return the run's `error: budget reached: ...` line (empty when it printed none)."""
    lines = [line for line in done.stderr.decode().splitlines() if line.startswith("error: budget reached: ")]
    return lines[0] if lines else ""


@pytest.mark.parametrize("cap", CAPS.values(), ids=CAPS.keys())
async def test_a_capped_run_makes_exactly_what_the_cap_admits_then_stops_with_exit_6(
    tmp_path: Path, start_emulator: StartEmulator, cli: Cli, cap: Cap
) -> None:
    """A run of a 40-job manifest under a cap creates exactly the whole jobs the cap admits, exits 6 saying how many
    jobs are left and which key to raise; a second run of the folder creates nothing more and exits 6 again."""
    handle = await start_emulator(EmulatorConfig(speed=1000))
    manifest, out, env = cap.manifest(tmp_path), tmp_path / "out", Cli.env(handle)

    first = await cli("run", manifest, "--out", out, "--plain", "--speed", "1000", env=env)

    assert (6, cap.most) == (first.returncode, made(handle)), first.stderr.decode()
    expected = f"error: budget reached: {cap.jobs_left} jobs left ("
    assert budget_line(first).startswith(expected), first.stderr.decode()
    assert f"raise budget.{cap.key} and run again" in budget_line(first)
    spend = read_ledger(out).spend
    assert (cap.most, cap.most * PAYG) == (spend.committed_images, spend.committed_cost)

    second = await cli("run", manifest, "--out", out, "--plain", "--speed", "1000", env=env)

    assert (6, cap.most) == (second.returncode, made(handle)), second.stderr.decode()
    assert budget_line(second).startswith(expected), second.stderr.decode()


@pytest.mark.parametrize("cap", CAPS.values(), ids=CAPS.keys())
async def test_creates_still_in_flight_count_against_the_cap(
    tmp_path: Path, start_emulator: StartEmulator, cli: Cli, cap: Cap
) -> None:
    """Every answer 0.3 s late and 8 jobs at a time, so several creates are in flight when the cap comes near: those
    count from their intent, and the server still makes exactly the images the cap admits."""
    slow = fault_plan("none", {"delay": 1.0}, delay_seconds=0.3)
    handle = await start_emulator(EmulatorConfig(speed=1000, faults=slow))
    out = tmp_path / "out"

    done = await cli("run", cap.manifest(tmp_path), "--out", out, "--plain", "--speed", "1000", env=Cli.env(handle))

    assert (6, cap.most) == (done.returncode, made(handle)), done.stderr.decode()
    assert cap.most == read_ledger(out).spend.committed_images


@pytest.mark.slow
@pytest.mark.parametrize("cap", CAPS.values(), ids=CAPS.keys())
async def test_caps_hold_under_chaos_and_kill_9_between_resumes(
    tmp_path: Path, start_emulator: StartEmulator, cap: Cap
) -> None:
    """Under the chaos faults, kill -9 at random moments between resumes, then a final run: the server made no more
    images than the cap admits, and the ledger's committed images (and money) are never fewer than it made."""
    seed = int(os.environ.get("LEAPBATCH_CAMPAIGN_SEED", "20261207"))
    rng = random.Random(f"{seed}:{cap.budget}")
    faults = fault_plan("chaos", seed=seed, delay_seconds=1.5)
    handle = await start_emulator(EmulatorConfig(speed=1000, seed=seed, faults=faults))
    out = tmp_path / "out"
    # chaos lists every job its handler made at once (no slow commits, no list lag): a lost create is known unmade
    # after its answer's 1.5 s delay, so a 4 s settle window (not 30 s) keeps the final run short.
    cmd, env = [*command(cap.manifest(tmp_path), out), "--settle-window", "4"], Cli.env(handle)

    for _ in range(KILLS):
        await run_and_kill(cmd, env, rng.uniform(0.2, 1.5))
        assert made(handle) <= cap.most, f"seed {seed}: {made(handle)} images made between kills"
    final = await trio.run_process(cmd, env=env, capture_stdout=True, capture_stderr=True, check=False)

    billed, spend = made(handle), read_ledger(out).spend
    counted = handle.stats().get("faults")
    print(f"{cap.budget} x {cap.images}: seed {seed}, {billed} images made, ledger {spend.to_json()}, faults {counted}")
    assert 6 == final.returncode, f"seed {seed}: " + final.stderr.decode()
    assert billed <= cap.most, f"seed {seed}: the server made {billed} images under {cap.budget}"
    assert spend.committed_images >= billed, f"seed {seed}: the ledger committed {spend.committed_images} of {billed}"
    assert spend.committed_cost >= billed * PAYG, f"seed {seed}: the ledger committed {spend.committed_cost}"
