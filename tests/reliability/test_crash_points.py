"""Every crash point, then resume: SIGKILL at each named point of a run (and of recovery), run again, check.

The runner kills itself with SIGKILL where `LEAPBATCH_CRASH_AT=<point>:<n>` says (see leapbatch/crashpoints.py).
Each case kills a run at its n-th pass of the point, resumes until done, and checks every invariant.
"""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from cli_support import Cli
from invariants import violations

from leapbatch.crashpoints import POINTS
from leapbatch.emulator import EmulatorHandle
from leapbatch.folder.ledger import LEDGER_NAME

StartEmulator = Callable[..., Awaitable[EmulatorHandle]]
CANARY = "sk-canary-3f9a1c7e0b2d4e6f"
JOBS = 6
MANIFEST = """\
version: 1
name: crashy
model: 26a1a203-3a46-42cb-8cfa-f4de075907d8
prompt: "a {animal} at {time}"
params: {width: 64, height: 64, steps: 5, number_of_images: 2}
matrix:
  animal: [cat, dog, fox]
  time: [dawn, dusk]
limits: {requests_per_second: 500, burst: 100, max_in_flight: 3}
cleanup: {delete_remote: after_download}
"""


def env_for(handle: EmulatorHandle, crash: str | None = None) -> dict[str, str]:
    """Return the environment of a run against `handle` with the canary key, and a crash point if given."""
    return Cli.env(handle, key=CANARY, **({"LEAPBATCH_CRASH_AT": crash} if crash else {}))


async def run(manifest: Path, out: Path, env: dict[str, str]) -> subprocess.CompletedProcess[bytes]:
    """Run the manifest once in a subprocess."""
    return await Cli()("run", manifest, "--out", out, "--plain", "--speed", "1000", env=env)


CASES = [f"{point}:{n}" for point in POINTS if point != "ledger-recovery" for n in (1, 4)]


@pytest.mark.parametrize("crash", CASES)
async def test_kill_at_a_point_then_resume_keeps_every_invariant(
    tmp_path: Path, start_emulator: StartEmulator, crash: str
) -> None:
    """SIGKILL at the point, run again until done: every invariant holds."""
    handle = await start_emulator()
    manifest = tmp_path / "crashy.yaml"
    manifest.write_text(MANIFEST)
    out = tmp_path / "out"
    killed = await run(manifest, out, env_for(handle, crash))
    assert -signal.SIGKILL == killed.returncode, killed.stderr.decode()
    resumed = await run(manifest, out, env_for(handle))
    assert 0 == resumed.returncode, resumed.stderr.decode()
    outputs = [killed.stdout, killed.stderr, resumed.stdout, resumed.stderr]
    assert [] == violations(out, jobs=JOBS, stats=handle.stats(), outputs=outputs, canary=CANARY, sandbox=tmp_path)
    assert 0 == handle.stats()["jobs"]["live"]


async def test_kill_during_ledger_recovery_then_resume(tmp_path: Path, start_emulator: StartEmulator) -> None:
    """A torn ledger tail, a kill while it is being set aside, and a resume: every invariant holds."""
    handle = await start_emulator()
    manifest = tmp_path / "crashy.yaml"
    manifest.write_text(MANIFEST)
    out = tmp_path / "out"
    first = await run(manifest, out, env_for(handle, "after-rename:3"))
    assert -signal.SIGKILL == first.returncode
    with (out / LEDGER_NAME).open("ab") as ledger:
        ledger.write(b'{"v":1,"t":1.0,"type":"submitted","key":"')  # a write torn by the kill
    during = await run(manifest, out, env_for(handle, "ledger-recovery:1"))
    assert -signal.SIGKILL == during.returncode
    resumed = await run(manifest, out, env_for(handle))
    assert 0 == resumed.returncode, resumed.stderr.decode()
    assert b"the ledger's last line was torn" in resumed.stderr
    outputs = [first.stderr, during.stderr, resumed.stdout, resumed.stderr]
    assert [] == violations(out, jobs=JOBS, stats=handle.stats(), outputs=outputs, canary=CANARY, sandbox=tmp_path)
