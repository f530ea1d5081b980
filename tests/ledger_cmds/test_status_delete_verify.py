"""`status`, `delete` and `verify`: the ledger at work, through the real CLI against the real emulator."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path

from cli_support import Cli

from leapbatch.emulator import EmulatorHandle
from leapbatch.folder.ledger import FolderLock, read_ledger
from leapbatch.folder.state import Phase

StartEmulator = Callable[..., Awaitable[EmulatorHandle]]
JOBS = 4
MANIFEST = """\
version: 1
name: small
model: 26a1a203-3a46-42cb-8cfa-f4de075907d8
prompt: "a {{animal}}"
params: {{width: 64, height: 64, steps: 5}}
matrix:
  animal: [cat, dog]
  seed: [1, 2]
limits: {{requests_per_second: 200, burst: 50}}
{extra}
"""


async def leapbatch(*args: str | Path, handle: EmulatorHandle) -> subprocess.CompletedProcess[bytes]:
    """Run the CLI against `handle` (stdin empty, so there is no terminal to confirm on)."""
    return await Cli()(*args, env=Cli.env(handle))


async def generated(tmp_path: Path, handle: EmulatorHandle, extra: str = "") -> Path:
    """Run a small manifest against `handle` and return its output folder."""
    manifest = tmp_path / "small.yaml"
    manifest.write_text(MANIFEST.format(extra=extra))
    out = tmp_path / "out"
    done = await leapbatch("run", manifest, "--out", out, "--quiet", "--speed", "1000", handle=handle)
    assert 0 == done.returncode, done.stderr.decode()
    return out


def image_files(out: Path) -> list[Path]:
    """Return the images of a folder, sorted."""
    return sorted((out / "images").iterdir())


async def test_delete_leaves_nothing_remote_and_a_second_call_sends_nothing(
    tmp_path: Path, start_emulator: StartEmulator
) -> None:
    """`delete --yes` removes every job; the second call finds nothing to do and sends no DELETE."""
    handle = await start_emulator()
    out = await generated(tmp_path, handle)
    assert JOBS == handle.stats()["jobs"]["live"]
    first = await leapbatch("delete", out, "--yes", handle=handle)
    assert 0 == first.returncode, first.stderr.decode()
    assert f"deleted {JOBS}, already gone 0, failed 0".encode() in first.stderr
    assert 0 == handle.stats()["jobs"]["live"]
    deletes = handle.stats()["requests"]["delete"]
    second = await leapbatch("delete", out, "--yes", handle=handle)
    assert 0 == second.returncode
    assert b"nothing to delete" in second.stderr
    assert deletes == handle.stats()["requests"]["delete"]
    assert all(js.deleted for js in read_ledger(out).jobs.values())


async def test_delete_refuses_and_names_jobs_whose_images_are_missing(
    tmp_path: Path, start_emulator: StartEmulator
) -> None:
    """A finished job whose image is not on disk is not deleted (it would lose a paid image) and is named."""
    handle = await start_emulator()
    out = await generated(tmp_path, handle)
    lost = image_files(out)[0]
    lost.unlink()
    key = lost.name.split("-")[0]
    done = await leapbatch("delete", out, "--yes", handle=handle)
    assert 1 == done.returncode
    assert f"refused: job {key}: images/{lost.name}: the file is missing".encode() in done.stderr
    assert 1 == handle.stats()["jobs"]["live"]
    forced = await leapbatch("delete", out, "--yes", "--force", handle=handle)
    assert 0 == forced.returncode, forced.stderr.decode()
    assert 0 == handle.stats()["jobs"]["live"]


async def test_delete_dry_run_and_confirmation(tmp_path: Path, start_emulator: StartEmulator) -> None:
    """`--dry-run` lists and sends nothing; without a terminal, deleting needs --yes (exit 2)."""
    handle = await start_emulator()
    out = await generated(tmp_path, handle)
    dry = await leapbatch("delete", out, "--dry-run", handle=handle)
    assert 0 == dry.returncode
    assert JOBS == dry.stdout.count(b"would delete: ")
    unconfirmed = await leapbatch("delete", out, handle=handle)
    assert 2 == unconfirmed.returncode
    assert b"hint: pass --yes to confirm" in unconfirmed.stderr
    assert (0, JOBS) == (handle.stats()["requests"]["delete"], handle.stats()["jobs"]["live"])


async def test_cleanup_after_download_leaves_no_live_job(tmp_path: Path, start_emulator: StartEmulator) -> None:
    """With `cleanup: {delete_remote: after_download}`, each job is deleted once its images are verified."""
    handle = await start_emulator()
    out = await generated(tmp_path, handle, extra="cleanup: {delete_remote: after_download}")
    assert (JOBS, 0) == (handle.stats()["jobs"]["created"], handle.stats()["jobs"]["live"])
    assert all(js.deleted and js.phase is Phase.FINISHED for js in read_ledger(out).jobs.values())
    assert JOBS == len(image_files(out))


async def test_verify_detects_each_kind_of_damage_and_repair_restores(
    tmp_path: Path, start_emulator: StartEmulator
) -> None:
    """verify finds a flipped byte, a missing file, a truncated image and an extra file; --repair restores images."""
    handle = await start_emulator()
    out = await generated(tmp_path, handle)
    clean = await leapbatch("verify", out, handle=handle)
    assert 0 == clean.returncode, clean.stdout.decode()
    originals = {p.name: p.read_bytes() for p in image_files(out)}
    flipped, missing, truncated, _ = image_files(out)
    data = bytearray(flipped.read_bytes())
    data[len(data) // 2] ^= 0xFF
    flipped.write_bytes(bytes(data))
    missing.unlink()
    truncated.write_bytes(truncated.read_bytes()[:200])
    (out / "images" / "stray.png").write_bytes(b"not ours")

    found = await leapbatch("verify", out, "--json", handle=handle)
    assert 1 == found.returncode
    report = json.loads(found.stdout)
    by_path = {problem["path"]: problem["kind"] for problem in report["problems"]}
    assert {
        f"images/{flipped.name}": "damaged",
        f"images/{missing.name}": "missing",
        f"images/{truncated.name}": "damaged",
        "images/stray.png": "untracked",
    } == by_path
    assert (False, JOBS) == (report["ok"], report["images_checked"])

    repaired = await leapbatch("verify", out, "--repair", "--json", handle=handle)
    after = json.loads(repaired.stdout)
    assert 3 == after["repaired"]
    assert [{"kind": "untracked", "path": "images/stray.png"}] == [
        {"kind": p["kind"], "path": p["path"]} for p in after["problems"]
    ]
    assert originals == {p.name: p.read_bytes() for p in image_files(out) if p.name != "stray.png"}


async def test_verify_notices_derived_files_that_disagree(tmp_path: Path, start_emulator: StartEmulator) -> None:
    """A metadata.jsonl or results.json that disagrees with the ledger is reported, and --repair rewrites it."""
    handle = await start_emulator()
    out = await generated(tmp_path, handle)
    metadata = out / "metadata.jsonl"
    metadata.write_text("\n".join(metadata.read_text().splitlines()[1:]) + "\n")
    (out / "results.json").write_text("{}")
    found = await leapbatch("verify", out, "--json", handle=handle)
    kinds = sorted(problem["kind"] for problem in json.loads(found.stdout)["problems"])
    assert ["metadata", "results"] == kinds
    repaired = await leapbatch("verify", out, "--repair", handle=handle)
    assert 0 == repaired.returncode, repaired.stdout.decode()


async def test_status_reports_the_folder_and_works_during_a_run(tmp_path: Path, start_emulator: StartEmulator) -> None:
    """`status --json` has the documented shape and numbers, and needs no lock."""
    handle = await start_emulator()
    out = await generated(tmp_path, handle)
    with FolderLock(out):
        done = await leapbatch("status", out, "--json", handle=handle)
    assert 0 == done.returncode, done.stderr.decode()
    report = json.loads(done.stdout)
    zero = {"intent": 0, "submitted": 0, "failed": 0, "refused": 0, "pruned": 0}
    assert {"total": JOBS, "finished": JOBS, **zero} == report["jobs"]
    assert (JOBS, JOBS, 0, 0) == tuple(report["images"][k] for k in ("recorded", "on_disk", "missing", "untracked"))
    assert {"present": JOBS, "present_finished": JOBS, "orphans": 0, "deleted": 0} == report["remote"]
    assert {"poll": 0, "reconcile": 0, "create": 0, "kept_failed": 0} == report["resume"]
    assert [] == report["failures"]
    text = await leapbatch("status", out, handle=handle)
    assert f"jobs: {JOBS} in the ledger: {JOBS} finished".encode() in text.stdout


async def test_commands_on_a_folder_that_is_not_an_output_folder(tmp_path: Path, start_emulator: StartEmulator) -> None:
    """status, verify and delete on a folder with no ledger: exit 2 and a hint, no traceback."""
    handle = await start_emulator()
    for command in ("status", "verify", "delete"):
        done = await leapbatch(command, tmp_path, handle=handle)
        assert 2 == done.returncode
        assert b"has no ledger.jsonl" in done.stderr
        assert b"Traceback" not in done.stderr


async def test_an_edited_manifest_runs_only_its_new_jobs(tmp_path: Path, start_emulator: StartEmulator) -> None:
    """`plan` shows the diff against the ledger; the run after an edit creates only the new jobs."""
    handle = await start_emulator()
    out = await generated(tmp_path, handle)
    manifest = tmp_path / "small.yaml"
    manifest.write_text(manifest.read_text().replace("animal: [cat, dog]", "animal: [cat, fox]"))
    plan = await leapbatch("plan", manifest, "--out", out, "--json", handle=handle)
    assert 0 == plan.returncode, plan.stderr.decode()
    diff = json.loads(plan.stdout)["ledger"]
    assert {"new": 2, "done": 2, "in_flight": 0, "failed": 0, "not_in_manifest": 2} == {
        k: diff[k] for k in ("new", "done", "in_flight", "failed", "not_in_manifest")
    }
    done = await leapbatch("run", manifest, "--out", out, "--quiet", "--speed", "1000", handle=handle)
    assert 0 == done.returncode, done.stderr.decode()
    assert JOBS + 2 == handle.stats()["jobs"]["created"]
    results = json.loads((out / "results.json").read_text())
    assert (JOBS, JOBS, 2) == (results["jobs_total"], len(results["jobs"]), results["not_in_manifest"])


async def test_delete_and_repair_refuse_a_folder_made_on_another_server(
    tmp_path: Path, start_emulator: StartEmulator
) -> None:
    """A folder belongs to the server its jobs were made on: `delete` and `verify --repair` against another exit 2
    naming both, and send it nothing; the commands that send nothing work; on its own server all is well."""
    made, other = await start_emulator(), await start_emulator()
    out = await generated(tmp_path, made)
    manifest = tmp_path / "small.yaml"
    for command in (("status", out), ("verify", out), ("delete", out, "--dry-run"), ("plan", manifest, "--out", out)):
        assert 0 == (await leapbatch(*command, handle=other)).returncode, command
    refusal = f"error: {out} was made on {made.base_url}; this {{}} would use {other.base_url}\n"
    delete = await leapbatch("delete", out, "--yes", handle=other)
    assert (2, refusal.format("delete")) == (delete.returncode, delete.stderr.decode().splitlines(True)[0])
    assert f"hint: to continue it there, run `leapbatch delete` with LEAP_BASE_URL={made.base_url}".encode() in (
        delete.stderr
    )
    lost = image_files(out)[0]
    lost.unlink()
    repair = await leapbatch("verify", out, "--repair", handle=other)
    assert (2, refusal.format("verify --repair")) == (repair.returncode, repair.stderr.decode().splitlines(True)[0])
    assert (0, JOBS) == (sum(other.stats()["requests"].values()), made.stats()["jobs"]["live"])
    assert not any(js.deleted for js in read_ledger(out).jobs.values())
    assert not lost.exists()
    assert 0 == (await leapbatch("verify", out, "--repair", handle=made)).returncode
    assert 0 == (await leapbatch("delete", out, "--yes", handle=made)).returncode
    assert (True, 0) == (lost.exists(), made.stats()["jobs"]["live"])
