"""Specs of `leapbatch run`, as users run it, against a served emulator that misbehaves one hostile way at a time.

Each case is the real CLI in a subprocess against the emulator on 127.0.0.1 with one of its hostile faults forced
(docs/emulator.md). What is asserted is the promise: the exit code, jobs paid for (the server's count) against
jobs in the manifest, no traceback, the key in no output, and that the run ended (a hang would time the test out
at `trio.fail_after`, far past every deadline leapbatch sets here: a whole answer within 4 x --http-timeout).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import trio
from cli_support import Cli

from leapbatch.emulator import EmulatorConfig, EmulatorHandle, fault_plan
from leapbatch.folder.ledger import read_ledger
from leapbatch.folder.state import Phase

StartEmulator = Callable[..., Awaitable[EmulatorHandle]]
CANARY = "sk-canary-hostile-cli-0ddba11"
JOBS = 4
MANIFEST = """\
version: 1
name: hostile
model: 26a1a203-3a46-42cb-8cfa-f4de075907d8
prompt: "hostile image {{n}}"
params: {{width: 64, height: 64, steps: 5}}
matrix:
  n: {{range: [1, {jobs}]}}
"""
BOUND = 240.0  # seconds no case needs (the slowest, trickle, ends within ~30 s); past it the run is a hang

# fault -> (its plan's options, exit codes the run may end with, what the ledger must show)
CASES: dict[str, tuple[dict[str, Any], tuple[int, ...], str]] = {
    "slow_commit": ({"delay_seconds": 2.0}, (0,), "finished"),  # the answer comes after --http-timeout 1
    "list_lag": ({"list_lag_seconds": 3.0}, (0,), "finished"),
    "wrong_id": ({}, (0,), "finished"),
    "transient_404": ({}, (0,), "finished"),
    "page_ignored": ({}, (0,), "finished"),
    "extra_images": ({}, (1,), "failed"),
    "trickle": ({"trickle_rate": 1.0}, (1, 5), "any"),
}


async def run_once(cli: Cli, tmp_path: Path, handle: EmulatorHandle) -> tuple[int, str, Path]:
    """Run the manifest against `handle` and return the exit code, everything printed, and the output folder."""
    manifest = tmp_path / "hostile.yaml"
    manifest.write_text(MANIFEST.format(jobs=JOBS))
    out = tmp_path / "out"
    options = ["--out", str(out), "--plain", "--speed", "1000", "--http-timeout", "1", "--max-retry-after", "1"]
    with trio.fail_after(BOUND):
        done = await cli("run", manifest, *options, env=Cli.env(handle, key=CANARY))
    return done.returncode, (done.stdout + done.stderr).decode(), out


@pytest.mark.parametrize("fault", list(CASES))
async def test_a_run_against_a_hostile_server_ends_pays_once_and_records_no_lie(
    cli: Cli, tmp_path: Path, start_emulator: StartEmulator, fault: str
) -> None:
    """Against each hostile fault at rate 1: the run ends with a documented exit code, no job is paid for twice,
    nothing is printed as a traceback or with the key, and each job ends as the case says."""
    options, codes, expected = CASES[fault]
    plan = fault_plan(rates={fault: 1.0}, seed=7, **options)
    handle = await start_emulator(EmulatorConfig(speed=1000, seed=7, faults=plan))

    code, printed, out = await run_once(cli, tmp_path, handle)

    assert code in codes, printed
    assert "Traceback" not in printed
    assert CANARY not in printed
    assert handle.stats()["jobs"]["created"] <= JOBS, printed
    phases = {job.phase.value for job in read_ledger(out).jobs.values()}
    if expected != "any":
        assert {expected} == phases, printed
    ids = [job.inference_id for job in read_ledger(out).jobs.values() if job.phase is Phase.FINISHED]
    assert len(ids) == len(set(ids))  # no two jobs recorded with one id


async def test_a_create_answered_with_another_jobs_id_fails_that_job_and_the_run_ends(
    cli: Cli, tmp_path: Path, start_emulator: StartEmulator
) -> None:
    """duplicate_id: every create after the first answers the first job's id. Those jobs fail at create saying
    so (exit 1), one job finishes, and no id is recorded for two jobs."""
    handle = await start_emulator(EmulatorConfig(speed=1000, faults=fault_plan(rates={"duplicate_id": 1.0})))

    code, printed, out = await run_once(cli, tmp_path, handle)

    jobs = read_ledger(out).jobs.values()
    owned = [job.inference_id for job in jobs if job.inference_id is not None]
    assert 1 == code, printed
    assert len(owned) == len(set(owned))
    assert any(job.failure is not None and "already owns" in job.failure.reason for job in jobs)


async def test_repair_restores_the_other_jobs_when_one_is_gone_from_the_server(
    cli: Cli, tmp_path: Path, start_emulator: StartEmulator
) -> None:
    """`verify --repair` with two images deleted locally, one of whose jobs is gone from the server: the other
    image is fetched again (it used to stop at the first gone job and restore nothing)."""
    handle = await start_emulator(EmulatorConfig(speed=1000))
    code, printed, out = await run_once(cli, tmp_path, handle)
    assert 0 == code, printed
    jobs = list(read_ledger(out).jobs.values())[:2]
    for job in jobs:
        (out / job.images[0].path).unlink()
    assert jobs[0].inference_id is not None
    handle.emulator.state.delete(jobs[0].model, jobs[0].inference_id)

    repaired = await cli("verify", out, "--repair", "--json", env=Cli.env(handle, key=CANARY))

    report = json.loads(repaired.stdout)
    assert (out / jobs[1].images[0].path).is_file(), repaired.stderr.decode()
    assert not (out / jobs[0].images[0].path).exists()
    assert 1 == report.get("repaired"), report
