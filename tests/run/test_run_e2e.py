"""`leapbatch run` end to end: the real CLI in a subprocess, against the real emulator on a loopback socket."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import trio

from leapbatch.emulator import EmulatorConfig, EmulatorHandle

if TYPE_CHECKING:
    from cli_support import Cli
from leapbatch.folder.ledger import FolderLock, read_ledger
from leapbatch.folder.state import Phase

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "manifests" / "example.yaml"
EXAMPLE_JOBS = 12
StartEmulator = Callable[..., Awaitable[EmulatorHandle]]


def sha256(path: Path) -> str:
    """Return a file's sha256."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def assert_complete(out: Path, jobs: int) -> None:
    """Assert every job finished and every image on disk matches its ledger record."""
    state = read_ledger(out)
    assert jobs == sum(1 for js in state.jobs.values() if js.phase is Phase.FINISHED)
    recorded = {image.path: image.sha256 for js in state.jobs.values() for image in js.images}
    on_disk = {p.relative_to(out).as_posix(): sha256(p) for p in (out / "images").iterdir()}
    assert recorded == on_disk
    results = json.loads((out / "results.json").read_text())
    assert {"finished": jobs} == results["counts"]


async def test_example_runs_locally_and_loads_as_a_dataset(cli: Cli, tmp_path: Path) -> None:
    """The Quick start command gives every image, each matching its ledger sha256, a loadable dataset (the gallery
    beside metadata.jsonl in no way disturbs it) and the gallery's page."""
    out = tmp_path / "example"
    done = await cli("run", "--local", "--gallery", str(EXAMPLE), "--out", str(out), env=cli.env())
    assert 0 == done.returncode, done.stderr.decode()
    assert b"Traceback" not in done.stderr
    assert b"done: 12 of 12 jobs finished, 12 images" in done.stderr
    assert_complete(out, EXAMPLE_JOBS)
    assert len(list((out / "gallery" / "thumbs").iterdir())) == EXAMPLE_JOBS

    def load() -> int:
        import datasets

        dataset = datasets.load_dataset("imagefolder", data_dir=str(out), split="train")
        assert {"image", "key", "prompt", "seed", "width"} <= set(dataset.column_names)
        assert (512, 512) == dataset[0]["image"].size
        return len(dataset)

    cache = tmp_path / "hf-cache"
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ["HF_DATASETS_CACHE"] = str(cache)
    assert EXAMPLE_JOBS == await trio.to_thread.run_sync(load)


async def test_two_runs_give_byte_identical_images(cli: Cli, tmp_path: Path) -> None:
    """The same manifest run into two folders gives the same file names with the same bytes."""
    for name in ("a", "b"):
        done = await cli("run", "--local", str(EXAMPLE), "--out", str(tmp_path / name), env=cli.env())
        assert 0 == done.returncode, done.stderr.decode()
    first = {p.name: p.read_bytes() for p in (tmp_path / "a" / "images").iterdir()}
    second = {p.name: p.read_bytes() for p in (tmp_path / "b" / "images").iterdir()}
    assert EXAMPLE_JOBS == len(first)
    assert first == second


async def test_without_a_key_the_error_mentions_local(cli: Cli, tmp_path: Path) -> None:
    """Without LEAP_API_KEY and without --local: exit 2, one clear error that points at --local."""
    done = await cli("run", str(EXAMPLE), "--out", str(tmp_path / "o"), env=cli.env())
    assert 2 == done.returncode
    assert b"error: LEAP_API_KEY is not set" in done.stderr
    assert b"--local" in done.stderr
    assert b"Traceback" not in done.stderr


async def test_a_locked_folder_exits_3_naming_it(cli: Cli, tmp_path: Path) -> None:
    """A second runner on a folder in use exits 3 at once and names the folder."""
    out = tmp_path / "busy"
    with FolderLock(out):
        done = await cli("run", "--local", str(EXAMPLE), "--out", str(out), env=cli.env())
    assert 3 == done.returncode
    assert f"the output folder {out} is in use".encode() in done.stderr


async def test_a_corrupt_ledger_exits_4_and_is_left_alone(cli: Cli, tmp_path: Path) -> None:
    """A bad record in the middle of the ledger stops the run with exit 4 and touches nothing."""
    out = tmp_path / "o"
    assert 0 == (await cli("run", "--local", str(EXAMPLE), "--out", str(out), env=cli.env())).returncode
    ledger = out / "ledger.jsonl"
    lines = ledger.read_bytes().split(b"\n")
    lines[3] = b"{not json"
    ledger.write_bytes(b"\n".join(lines))
    done = await cli("run", "--local", str(EXAMPLE), "--out", str(out), env=cli.env())
    assert 4 == done.returncode
    assert f"error: {ledger}:4: not JSON".encode() in done.stderr
    assert b"\n".join(lines) == ledger.read_bytes()


async def wait_for_submitted(out: Path, count: int) -> None:
    """Return once the folder's ledger records `count` submitted jobs."""
    while True:
        state = read_ledger(out) if (out / "ledger.jsonl").exists() else None
        if state is not None and sum(1 for js in state.jobs.values() if js.inference_id) >= count:
            return
        await trio.sleep(0.02)


async def test_ctrl_c_then_run_again_resumes_without_paying_twice(
    cli: Cli, tmp_path: Path, start_emulator: StartEmulator
) -> None:
    """Ctrl-C part-way exits 130 with a consistent ledger; running again finishes with one create per job.

    The child gets SIGINT at its default, as a terminal's process does: a suite started in the background by a
    shell without job control inherits SIGINT ignored, and Python then keeps it ignored (no KeyboardInterrupt)."""
    handle = await start_emulator(EmulatorConfig(speed=5.0))
    out = tmp_path / "o"
    env = cli.env(handle)
    process = await trio.lowlevel.open_process(
        [sys.executable, "-m", "leapbatch", "run", str(EXAMPLE), "--out", str(out), "--plain"],
        env=env,
        stderr=-1,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    with trio.fail_after(30):
        await wait_for_submitted(out, 3)
    process.send_signal(signal.SIGINT)
    assert process.stderr is not None
    stderr = b""
    async with process.stderr:
        while chunk := await process.stderr.receive_some():
            stderr += chunk
    assert 130 == await process.wait()
    assert b"run the same command again to resume" in stderr
    assert b"Traceback" not in stderr
    assert json.loads((out / "results.json").read_text())["jobs_total"] == EXAMPLE_JOBS
    assert handle.stats()["jobs"]["created"] < EXAMPLE_JOBS

    again = await cli("run", str(EXAMPLE), "--out", str(out), "--rps", "200", env=env)
    assert 0 == again.returncode, again.stderr.decode()
    assert_complete(out, EXAMPLE_JOBS)
    assert EXAMPLE_JOBS == handle.stats()["jobs"]["created"]


@pytest.mark.parametrize("point", ["after-intent:3", "after-create-sent:3", "before-submitted:3"])
async def test_kill_between_intent_and_submitted_then_resume(
    cli: Cli, tmp_path: Path, start_emulator: StartEmulator, point: str
) -> None:
    """SIGKILL between `intent` and `submitted`: the resume adopts the job if it exists, else creates it once."""
    handle = await start_emulator()
    out = tmp_path / "o"
    fast = ("--rps", "200", "--speed", "1000")
    killed = await cli("run", str(EXAMPLE), "--out", str(out), *fast, env=cli.env(handle, LEAPBATCH_CRASH_AT=point))
    assert -signal.SIGKILL == killed.returncode
    orphans = [js for js in read_ledger(out).jobs.values() if js.phase is Phase.INTENT]
    assert 1 <= len(orphans)
    again = await cli("run", str(EXAMPLE), "--out", str(out), *fast, env=cli.env(handle))
    assert 0 == again.returncode, again.stderr.decode()
    assert_complete(out, EXAMPLE_JOBS)
    assert EXAMPLE_JOBS == handle.stats()["jobs"]["created"]


async def test_a_refused_key_exits_5_with_one_clear_line(
    cli: Cli, tmp_path: Path, start_emulator: StartEmulator
) -> None:
    """A server that refuses the key stops the batch: exit 5, `the API key was refused`, no traceback, no key."""
    handle = await start_emulator(EmulatorConfig(token="the-right-one", speed=1000))
    env = cli.env(handle, key="sk-wrong-canary-key")
    done = await cli("run", str(EXAMPLE), "--out", str(tmp_path / "o"), "--speed", "1000", env=env)
    assert 5 == done.returncode
    assert b"error: the API key was refused (HTTP 401" in done.stderr
    assert b"hint: check LEAP_API_KEY" in done.stderr
    assert b"Traceback" not in done.stderr
    assert b"sk-wrong-canary-key" not in done.stderr + (tmp_path / "o" / "ledger.jsonl").read_bytes()


async def test_a_file_system_refusal_is_one_clear_line(cli: Cli, tmp_path: Path) -> None:
    """An unusable output folder (here the ledger's path is a directory): exit 2, one line naming it, no traceback."""
    out = tmp_path / "odd"
    (out / "ledger.jsonl").mkdir(parents=True)
    done = await cli("run", "--local", str(EXAMPLE), "--out", str(out), env=cli.env())
    assert 2 == done.returncode
    assert f"error: Is a directory: {out / 'ledger.jsonl'}".encode() in done.stderr
    assert b"Traceback" not in done.stderr
