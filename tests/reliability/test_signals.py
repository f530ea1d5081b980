"""Specs of SIGTERM and SIGHUP (docker stop, systemd, Slurm, a closed terminal): a command ends as Ctrl-C ends it.

The real CLI in a subprocess against a served emulator: the signal is sent once the ledger (or the server) shows the
command at work, never after a fixed sleep. What must hold: exit 128 + the signal number, one line naming the signal
and the resume hint, no traceback, results.json and metadata.jsonl written and parsing, a ledger that folds, and a
second run that finishes every job with one create each.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path

import pytest
import trio
from cli_support import Cli

from leapbatch.emulator import EmulatorConfig, EmulatorHandle, fault_plan, serve_emulator
from leapbatch.folder.ledger import read_ledger
from leapbatch.folder.state import Phase

StartEmulator = Callable[..., Awaitable[EmulatorHandle]]
ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "manifests" / "example.yaml"
JOBS = 12
HINT = b"hint: nothing was lost: the ledger is consistent; run the same command again to resume"
SIGNALS = [pytest.param(signal.SIGTERM, 143, id="SIGTERM"), pytest.param(signal.SIGHUP, 129, id="SIGHUP")]


async def submitted(out: Path) -> int:
    """Return how many jobs the folder's ledger records as submitted (0 before the ledger exists)."""
    if not (out / "ledger.jsonl").exists():
        return 0
    return sum(1 for js in read_ledger(out).jobs.values() if js.inference_id)


async def signalled(cmd: list[str], env: dict[str, str], signum: int, ready: Callable[[], Awaitable[bool]]) -> bytes:
    """Start `cmd`, send it `signum` once `ready()` is true, and return its stderr (the exit code is checked by the
    caller through the returned process's code, appended as the last line `exit: N`)."""
    process = await trio.lowlevel.open_process(cmd, env=env, stdin=-1, stdout=-1, stderr=-1)
    assert process.stdout is not None
    assert process.stderr is not None
    chunks: list[bytes | bytearray] = []

    async def drain(stream: trio.abc.ReceiveStream, keep: bool) -> None:
        async with stream:
            while chunk := await stream.receive_some():
                if keep:
                    chunks.append(chunk)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(drain, process.stdout, False)
        nursery.start_soon(drain, process.stderr, True)
        with trio.fail_after(30):
            while not await ready():
                assert process.poll() is None, b"".join(chunks).decode()  # it must not end on its own first
                await trio.sleep(0.02)
        process.send_signal(signum)
        with trio.fail_after(30):
            code = await process.wait()
    return b"".join(chunks) + f"exit: {code}\n".encode()


def assert_derived_files_parse(out: Path) -> None:
    """Assert results.json and every line of metadata.jsonl parse as JSON, and results.json lists every job."""
    assert JOBS == json.loads((out / "results.json").read_text())["jobs_total"]
    for line in (out / "metadata.jsonl").read_text().splitlines():
        json.loads(line)


@pytest.mark.parametrize(("signum", "code"), SIGNALS)
async def test_a_signal_during_run_ends_it_as_ctrl_c_does(
    cli: Cli, tmp_path: Path, start_emulator: StartEmulator, signum: int, code: int
) -> None:
    """SIGTERM or SIGHUP part-way through `run`: exit 128 + n, `interrupted by SIG...` and the resume hint, results
    written, the ledger folds; running again finishes every job with one create each."""
    handle = await start_emulator(EmulatorConfig(speed=5.0))
    out = tmp_path / "o"
    env = cli.env(handle)
    cmd = [sys.executable, "-m", "leapbatch", "run", str(EXAMPLE), "--out", str(out), "--plain", "--speed", "5"]

    stderr = await signalled(cmd, env, signum, lambda: _at_least(out, 3))

    name = signal.Signals(signum).name
    assert f"exit: {code}".encode() == stderr.splitlines()[-1], stderr.decode()
    assert f"interrupted by {name}\n{HINT.decode()}\n".encode() in stderr
    assert b"Traceback" not in stderr
    assert_derived_files_parse(out)
    state = read_ledger(out)
    assert JOBS > sum(1 for js in state.jobs.values() if js.phase is Phase.FINISHED)
    assert JOBS > handle.stats()["jobs"]["created"]

    # A create cut off before it was sent is looked for during the settle window before it is sent again; this
    # emulator lists a job the moment it commits, so a short window is enough and the test stays fast.
    resume = ("--speed", "5", "--rps", "200", "--settle-window", "1")
    again = await cli("run", str(EXAMPLE), "--out", str(out), *resume, env=env)
    assert 0 == again.returncode, again.stderr.decode()
    assert JOBS == sum(1 for js in read_ledger(out).jobs.values() if js.phase is Phase.FINISHED)
    assert {"finished": JOBS} == json.loads((out / "results.json").read_text())["counts"]
    assert JOBS == handle.stats()["jobs"]["created"]


async def _at_least(out: Path, count: int) -> bool:
    return await submitted(out) >= count


@pytest.mark.parametrize(("signum", "code"), SIGNALS)
async def test_a_signal_during_delete_ends_it_as_ctrl_c_does(cli: Cli, tmp_path: Path, signum: int, code: int) -> None:
    """SIGTERM or SIGHUP while `delete` waits on the server: it stops there (no answer waited for, no outcome
    recorded), exit 128 + n, the signal named with the resume hint, no traceback, and the ledger folds."""
    out = tmp_path / "o"
    async with trio.open_nursery() as nursery:
        fast: EmulatorHandle = await nursery.start(partial(serve_emulator, EmulatorConfig(speed=1000)))
        done = await cli("run", str(EXAMPLE), "--out", str(out), "--speed", "1000", "--rps", "200", env=cli.env(fast))
        assert 0 == done.returncode, done.stderr.decode()
        nursery.cancel_scope.cancel()
    port = int(fast.base_url.rsplit(":", 1)[1])  # the folder belongs to this server: serve a slow one there
    slow_plan = fault_plan("none", {"delay": 1.0}, delay_seconds=5.0)
    async with trio.open_nursery() as nursery:
        slow: EmulatorHandle = await nursery.start(
            partial(serve_emulator, EmulatorConfig(speed=1000, faults=slow_plan), port=port)
        )
        cmd = [sys.executable, "-m", "leapbatch", "delete", str(out), "--yes"]

        async def deleting() -> bool:
            return bool(slow.stats()["requests"]["delete"] >= 1)

        stderr = await signalled(cmd, cli.env(slow), signum, deleting)
        nursery.cancel_scope.cancel()

    name = signal.Signals(signum).name
    assert f"exit: {code}".encode() == stderr.splitlines()[-1], stderr.decode()
    assert f"interrupted by {name}\n{HINT.decode()}\n".encode() in stderr
    assert b"Traceback" not in stderr
    state = read_ledger(out)
    assert (JOBS, []) == (len(state.jobs), [js.key for js in state.jobs.values() if js.deleted])


async def test_a_signal_before_the_event_loop_ends_run_the_same_way(cli: Cli, tmp_path: Path) -> None:
    """SIGTERM while `run` still reads its manifest (here a FIFO nobody writes): exit 143, the signal named with the
    hint, no traceback, and no folder made."""
    manifest = tmp_path / "manifest.yaml"
    os.mkfifo(manifest)
    out = tmp_path / "o"
    writer: list[int] = []

    async def reading() -> bool:  # a FIFO opens for writing without blocking only once a reader has it open
        try:
            writer.append(os.open(manifest, os.O_WRONLY | os.O_NONBLOCK))
        except OSError as exc:
            if exc.errno != errno.ENXIO:  # ENXIO: no reader yet
                raise
            return False
        return True

    cmd = [sys.executable, "-m", "leapbatch", "run", "--local", str(manifest), "--out", str(out)]
    try:
        stderr = await signalled(cmd, cli.env(), signal.SIGTERM, reading)
    finally:
        for fd in writer:
            os.close(fd)

    assert b"exit: 143" == stderr.splitlines()[-1], stderr.decode()
    assert f"interrupted by SIGTERM\n{HINT.decode()}\n".encode() in stderr
    assert b"Traceback" not in stderr
    assert not out.exists()


FOREIGN_LOOP = """\
import signal, trio
from leapbatch.cli import signals

async def main():
    signal.raise_signal(signal.SIGHUP)
    await trio.sleep(5)
    print("went on")

with signals.terminable():
    trio.run(main)
"""


async def test_a_loop_not_started_by_signals_run_keeps_the_default_action() -> None:
    """A `trio.run` of its own (the emulator's) is never interrupted at a random bytecode: SIGHUP ends the process
    as its default action does, with no traceback."""
    done = await trio.run_process(
        [sys.executable, "-c", FOREIGN_LOOP], capture_stdout=True, capture_stderr=True, check=False
    )
    assert (-signal.SIGHUP, b"", b"") == (done.returncode, done.stdout, done.stderr)
