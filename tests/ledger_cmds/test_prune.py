"""The dataset is the manifest: an axis cut from 4 values to 2, then `plan`, `status`, `prune`, through the real CLI.

Every test runs `python -m leapbatch` in a subprocess against a served emulator (instant jobs).
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import trio
from cli_support import Cli

from leapbatch.emulator import EmulatorHandle
from leapbatch.folder.ledger import FolderLock, read_ledger
from leapbatch.folder.state import JobState, Phase

StartEmulator = Callable[..., Awaitable[EmulatorHandle]]
MODEL = "26a1a203-3a46-42cb-8cfa-f4de075907d8"
ALL, KEPT = "[red, green, blue, gold]", "[red, green]"
MANIFEST = f"""\
version: 1
name: cubes
model: {MODEL}
prompt: "a {{color}} cube"
params: {{width: 64, height: 64, steps: 5}}
matrix:
  color: {ALL}
  seed: [1, 2]
limits: {{requests_per_second: 500, burst: 100}}
"""


async def leapbatch(*args: str | Path, handle: EmulatorHandle) -> subprocess.CompletedProcess[bytes]:
    """Run the CLI against `handle` in `args`' folder (stdin empty: no terminal to confirm on)."""
    return await Cli()(*args, env=Cli.env(handle))


async def run(manifest: Path, out: Path, handle: EmulatorHandle) -> None:
    """Run the manifest into `out`; every job must finish."""
    done = await leapbatch("run", manifest, "--out", out, "--quiet", "--speed", "1000", handle=handle)
    assert 0 == done.returncode, done.stderr.decode()


async def cut(tmp_path: Path, handle: EmulatorHandle, *, rerun: bool = True) -> tuple[Path, Path]:
    """Run 4 colours x 2 seeds, cut the colours to 2 (and run again); return the manifest and the folder."""
    manifest, out = tmp_path / "cubes.yaml", tmp_path / "out"
    manifest.write_text(MANIFEST)
    await run(manifest, out, handle)
    manifest.write_text(MANIFEST.replace(ALL, KEPT))
    if rerun:
        await run(manifest, out, handle)
    return manifest, out


def jobs_by_colour(out: Path) -> dict[str, list[JobState]]:
    """Return the ledger's jobs by the colour they were made with."""
    by: dict[str, list[JobState]] = {}
    for job in read_ledger(out).jobs.values():
        by.setdefault(str(job.variables["color"]), []).append(job)
    return by


def dropped(out: Path) -> list[JobState]:
    """Return the jobs of the colours the cut dropped."""
    by = jobs_by_colour(out)
    return by["blue"] + by["gold"]


def images(out: Path) -> set[str]:
    """Return the names in `images/`."""
    return {path.name for path in (out / "images").iterdir()}


def load_colours(out: Path, cache: Path) -> list[str]:
    """Return the `var_color` column of the dataset `datasets.load_dataset("imagefolder")` reads from `out`."""
    import datasets

    os.environ["HF_DATASETS_OFFLINE"] = "1"
    os.environ["HF_DATASETS_CACHE"] = str(cache)
    dataset = datasets.load_dataset("imagefolder", data_dir=str(out), split="train")
    return sorted(dataset["var_color"])


async def test_a_cut_axis_leaves_the_dataset_and_plan_and_status_count_the_dropped_jobs(
    tmp_path: Path, start_emulator: StartEmulator
) -> None:
    """After the cut the dataset holds the 2 remaining colours only; plan and status count 4 dropped jobs."""
    handle = await start_emulator()
    manifest, out = await cut(tmp_path, handle)

    colours = await trio.to_thread.run_sync(load_colours, out, tmp_path / "hf-cache")
    assert ["green", "green", "red", "red"] == colours
    results = json.loads((out / "results.json").read_text())
    assert (4, 4, 4) == (results["jobs_total"], len(results["jobs"]), results["not_in_manifest"])
    plan = await leapbatch("plan", manifest, "--out", out, handle=handle)
    assert b"4 in the ledger but no longer in the manifest" in plan.stdout
    assert f"`leapbatch prune {out} --manifest {manifest}`".encode() in plan.stdout
    shown = await leapbatch("status", out, "--json", handle=handle)
    expected = {"manifest": str(manifest), "known": True, "why_unknown": None, "jobs": 4, "images": 4, "remote": 4}
    assert expected == json.loads(shown.stdout)["not_in_manifest"]
    text = await leapbatch("status", out, handle=handle)
    assert f"4 jobs (4 images, 4 still on the server) no longer in {manifest}; `leapbatch prune {out}`".encode() in (
        text.stdout
    )
    assert 0 == (await leapbatch("verify", out, handle=handle)).returncode
    with manifest.open("a") as edited:
        edited.write("# edited after the run\n")
    assert 0 == (await leapbatch("verify", out, handle=handle)).returncode  # the jobs results.json lists


async def test_prune_removes_the_dropped_files_and_nothing_else(tmp_path: Path, start_emulator: StartEmulator) -> None:
    """`prune --yes` removes the dropped jobs' images only; the rest verifies; their remote jobs stay until delete."""
    handle = await start_emulator()
    _, out = await cut(tmp_path, handle)
    gone = {image.path.removeprefix("images/") for job in dropped(out) for image in job.images}
    before = images(out)

    done = await leapbatch("prune", out, "--yes", handle=handle)

    assert 0 == done.returncode, done.stderr.decode()
    assert b"pruned 4 jobs (4 images)\n" in done.stderr
    assert f"note: 4 pruned jobs still on the server; `leapbatch delete {out}` removes them".encode() in done.stderr
    assert before - gone == images(out)
    assert {Phase.PRUNED} == {job.phase for job in dropped(out)}
    assert 0 == (await leapbatch("verify", out, handle=handle)).returncode
    report = json.loads((await leapbatch("status", out, "--json", handle=handle)).stdout)
    assert (4, 0, 0) == (report["jobs"]["pruned"], report["not_in_manifest"]["jobs"], report["images"]["missing"])
    assert 8 == handle.stats()["jobs"]["live"]
    assert b"nothing to prune" in (await leapbatch("prune", out, "--yes", handle=handle)).stderr
    removed = await leapbatch("delete", out, "--yes", handle=handle)
    assert 0 == removed.returncode, removed.stderr.decode()
    assert [None] * 4 == [handle.emulator.state.get(MODEL, str(job.inference_id)) for job in dropped(out)]


async def test_prune_remote_deletes_the_dropped_jobs_on_the_server(
    tmp_path: Path, start_emulator: StartEmulator
) -> None:
    """`prune --remote --yes` deletes the dropped jobs' remote jobs first, then prunes them; the kept jobs stay."""
    handle = await start_emulator()
    _, out = await cut(tmp_path, handle)

    done = await leapbatch("prune", out, "--remote", "--yes", handle=handle)

    assert 0 == done.returncode, done.stderr.decode()
    assert b"deleted 4, already gone 0, failed 0\npruned 4 jobs (4 images)\n" in done.stderr
    assert 4 == handle.stats()["jobs"]["live"]
    assert [None] * 4 == [handle.emulator.state.get(MODEL, str(job.inference_id)) for job in dropped(out)]
    kept = [*jobs_by_colour(out)["red"], *jobs_by_colour(out)["green"]]
    assert all(handle.emulator.state.get(MODEL, str(job.inference_id)) is not None for job in kept)
    assert all(job.deleted and job.phase is Phase.PRUNED for job in dropped(out))
    report = json.loads((await leapbatch("status", out, "--json", handle=handle)).stdout)
    assert (True, 0) == (report["not_in_manifest"]["known"], report["remote"]["present"] - 4)


async def test_a_pruned_value_added_back_is_created_again(tmp_path: Path, start_emulator: StartEmulator) -> None:
    """A colour put back after its jobs were pruned is created anew (paid again) and is in the dataset again."""
    handle = await start_emulator()
    manifest, out = await cut(tmp_path, handle)
    assert 0 == (await leapbatch("prune", out, "--yes", handle=handle)).returncode

    manifest.write_text(MANIFEST)
    await run(manifest, out, handle)

    assert 12 == handle.stats()["jobs"]["created"]
    assert 8 == len((out / "metadata.jsonl").read_text().splitlines())
    assert {Phase.FINISHED} == {job.phase for job in read_ledger(out).jobs.values()}
    assert 0 == (await leapbatch("verify", out, handle=handle)).returncode


@pytest.mark.parametrize("change", ["edited", "missing"])
async def test_prune_refuses_without_a_manifest_that_matches_the_last_run(
    tmp_path: Path, start_emulator: StartEmulator, change: str
) -> None:
    """The last run's manifest edited since (sha256 differs) or gone: prune exits 2 touching nothing, status cannot
    tell; `--manifest FILE` names the manifest instead."""
    handle = await start_emulator()
    manifest, out = await cut(tmp_path, handle, rerun=False)
    if change == "missing":
        manifest = manifest.rename(tmp_path / "elsewhere.yaml")
    before = images(out)

    refused = await leapbatch("prune", out, "--yes", handle=handle)

    assert 2 == refused.returncode
    why = "changed since (its sha256 differs)" if change == "edited" else "cannot be read here"
    assert why.encode() in refused.stderr
    assert b"hint: pass the manifest whose jobs stay with --manifest FILE, or run it first" in refused.stderr
    assert (before, set()) == (images(out), {job.phase for job in read_ledger(out).jobs.values()} - {Phase.FINISHED})
    shown = await leapbatch("status", out, "--json", handle=handle)
    assert (0, False, None) == (
        shown.returncode,
        json.loads(shown.stdout)["not_in_manifest"]["known"],
        json.loads(shown.stdout)["not_in_manifest"]["jobs"],
    )
    assert b"cannot tell which jobs the manifest dropped" in (await leapbatch("status", out, handle=handle)).stdout
    given = await leapbatch("prune", out, "--manifest", manifest, "--yes", handle=handle)
    assert (0, 4) == (given.returncode, len(images(out)))


async def test_prune_asks_first_and_dry_run_changes_nothing(tmp_path: Path, start_emulator: StartEmulator) -> None:
    """Without --yes and without a terminal prune refuses (exit 2); --dry-run lists the jobs and changes nothing."""
    handle = await start_emulator()
    _, out = await cut(tmp_path, handle)
    ledger = (out / "ledger.jsonl").read_bytes()

    unconfirmed = await leapbatch("prune", out, handle=handle)
    dry = await leapbatch("prune", out, "--dry-run", "--remote", handle=handle)

    assert (2, b"hint: pass --yes to confirm") == (unconfirmed.returncode, unconfirmed.stderr.splitlines()[-1][:27])
    assert (0, 4, 4) == (dry.returncode, dry.stdout.count(b"would prune: "), dry.stdout.count(b"would delete: "))
    assert (ledger, 8, 8) == ((out / "ledger.jsonl").read_bytes(), len(images(out)), handle.stats()["jobs"]["live"])


async def test_prune_takes_the_folder_lock(tmp_path: Path, start_emulator: StartEmulator) -> None:
    """While another process holds the folder, prune exits 3 and removes nothing."""
    handle = await start_emulator()
    _, out = await cut(tmp_path, handle)

    with FolderLock(out):
        done = await leapbatch("prune", out, "--yes", handle=handle)

    assert (3, 8) == (done.returncode, len(images(out)))


async def test_pruned_is_recorded_before_the_files_go_and_a_rerun_finishes(
    tmp_path: Path, start_emulator: StartEmulator
) -> None:
    """A link among the files stops the removal (exit 2) after the `pruned` records: verify calls the files left
    untracked, not missing; once the link is gone, prune removes them."""
    handle = await start_emulator()
    _, out = await cut(tmp_path, handle)
    link = out / "images" / f"{dropped(out)[0].key}-7.png"
    link.symlink_to(tmp_path / "cubes.yaml")

    stopped = await leapbatch("prune", out, "--yes", handle=handle)

    assert 2 == stopped.returncode
    assert str(link).encode() in stopped.stderr
    assert ({Phase.PRUNED}, 9) == ({job.phase for job in dropped(out)}, len(images(out)))
    checked = await leapbatch("verify", out, "--json", handle=handle)
    kinds = [problem["kind"] for problem in json.loads(checked.stdout)["problems"]]
    assert (1, ["untracked"] * 5) == (checked.returncode, kinds)
    link.unlink()
    rerun = await leapbatch("prune", out, "--yes", handle=handle)
    assert (0, b"pruned 0 jobs (4 images)") == (rerun.returncode, rerun.stderr.splitlines()[0])
    assert 0 == (await leapbatch("verify", out, handle=handle)).returncode


async def test_prune_refuses_a_manifest_that_keeps_none_of_the_jobs(
    tmp_path: Path, start_emulator: StartEmulator
) -> None:
    """A --manifest listing none of the folder's jobs (a wrong file) would empty the dataset: exit 2, nothing goes."""
    handle = await start_emulator()
    _, out = await cut(tmp_path, handle)
    other = tmp_path / "other.yaml"
    other.write_text(MANIFEST.replace(ALL, "[pink]"))

    done = await leapbatch("prune", out, "--manifest", other, "--yes", handle=handle)

    assert (2, 8) == (done.returncode, len(images(out)))
    assert f"error: {other} has none of the 8 jobs of {out}: pruning would empty the dataset".encode() in done.stderr
