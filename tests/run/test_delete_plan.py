"""Specs of `plan_deletes`: which remote jobs `delete` removes, which it refuses, and which it leaves alone."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from leapbatch.folder.records import FailedRecord, FailStage, ImageRecord
from leapbatch.folder.state import JobState, LedgerState, Phase
from leapbatch.run.delete import DeletePlan, Target, plan_deletes

KEY = "a" * 64
INFERENCE_ID = "inf-1"
IN_FLIGHT = "still in flight: its images are not downloaded yet (run again first)"
SECOND_IMAGE = f"images/{KEY}-1.png"

Disk = Literal["verified", "missing", "damaged"]  # what became of the second of a finished job's two images
Remote = Literal["live", "deleted", "local", "no-id"]  # what became of the job's current remote job


def write_png(path: Path, note: str) -> None:
    """Write an 8x6 PNG whose text chunk holds `note` (same-length notes give files of the same size)."""
    info = PngInfo()
    info.add_text("note", note)
    Image.new("RGB", (8, 6), "red").save(path, "PNG", pnginfo=info)


def recorded_image(out_dir: Path, index: int) -> ImageRecord:
    """Write image `index` of the job into `out_dir` and return its ledger record."""
    relative = f"images/{KEY}-{index}.png"
    path = out_dir / relative
    path.parent.mkdir(exist_ok=True)
    write_png(path, "original")
    data = path.read_bytes()
    return ImageRecord(
        index=index,
        uri=f"https://img/{index}",
        path=relative,
        sha256=hashlib.sha256(data).hexdigest(),
        bytes=len(data),
        width=8,
        height=6,
    )


def job_state(
    out_dir: Path,
    phase: Phase,
    *,
    disk: Disk = "verified",
    remote: Remote = "live",
    orphans: tuple[str, ...] = (),
) -> JobState:
    """Return one job's state; a finished job has two images on disk, the second as `disk` says."""
    images: tuple[ImageRecord, ...] = ()
    if phase is Phase.FINISHED:
        images = (recorded_image(out_dir, 0), recorded_image(out_dir, 1))
        if disk == "missing":
            (out_dir / SECOND_IMAGE).unlink()
        elif disk == "damaged":
            write_png(out_dir / SECOND_IMAGE, "tampered")  # same size, same pixels, another sha256
    inference_id = None if remote == "no-id" else INFERENCE_ID
    failure = None
    if phase is Phase.FAILED:
        failure = FailedRecord(t=3.0, key=KEY, stage=FailStage.GENERATE, reason="it broke", inference_id=inference_id)
    return JobState(
        key=KEY,
        model="m",
        request={"prompt": "a red fox"},
        fingerprint="fp",
        variables={},
        phase=phase,
        intent_time=1.0,
        inference_id=inference_id,
        images=images,
        failure=failure,
        deleted=remote == "deleted",
        orphans=orphans,
        local=remote == "local",
    )


@dataclass(frozen=True)
class Seen:
    """What a plan says about one job: (inference id, why) per target, refusal reasons, failed jobs skipped."""

    targets: tuple[tuple[str, str], ...] = ()
    refused: tuple[str, ...] = ()
    skipped_failed: int = 0


def seen_of(plan: DeletePlan) -> Seen:
    """Return what `plan` says about the job `KEY`."""
    assert all(target.key == KEY for target in plan.targets)
    assert all(key == KEY for key, _ in plan.refused)
    return Seen(
        targets=tuple((target.inference_id, target.why) for target in plan.targets),
        refused=tuple(reason for _, reason in plan.refused),
        skipped_failed=plan.skipped_failed,
    )


FINISHED = Seen(targets=((INFERENCE_ID, "finished"),))
NOTHING = Seen()
EARLIER = (("old-1", "earlier attempt"), ("old-2", "earlier attempt"))
ORPHANS = ("old-1", "old-2")
MISSING = f"{SECOND_IMAGE}: the file is missing"
DAMAGED = f"{SECOND_IMAGE}: sha256 differs from the ledger"
FLAGS = [(False, False), (True, False), (False, True), (True, True)]  # (include_failed, force)


def flags_id(include_failed: bool, force: bool) -> str:
    """Return the id part that names the flags."""
    return "-".join([*(["include-failed"] if include_failed else []), *(["force"] if force else [])]) or "plain"


def row(
    name: str,
    phase: Phase,
    include_failed: bool,
    force: bool,
    expected: Seen,
    *,
    disk: Disk = "verified",
    remote: Remote = "live",
    orphans: tuple[str, ...] = (),
) -> object:
    """Return one row of the table (the job is built in the test, where `tmp_path` exists)."""
    return pytest.param(
        phase, disk, remote, orphans, include_failed, force, expected, id=f"{name}-{flags_id(include_failed, force)}"
    )


PLAN_TABLE = [
    # A finished job whose images are all verified on disk is deleted, whatever the flags.
    *(row("finished-verified", Phase.FINISHED, i, f, FINISHED) for i, f in FLAGS),
    # A finished job with a missing or damaged image is refused (it would throw a paid image away) unless forced.
    row("finished-missing", Phase.FINISHED, False, False, Seen(refused=(MISSING,)), disk="missing"),
    row("finished-missing", Phase.FINISHED, True, False, Seen(refused=(MISSING,)), disk="missing"),
    row("finished-missing", Phase.FINISHED, False, True, FINISHED, disk="missing"),
    row("finished-damaged", Phase.FINISHED, False, False, Seen(refused=(DAMAGED,)), disk="damaged"),
    row("finished-damaged", Phase.FINISHED, True, False, Seen(refused=(DAMAGED,)), disk="damaged"),
    row("finished-damaged", Phase.FINISHED, False, True, FINISHED, disk="damaged"),
    # A failed job is only counted, unless asked for with include_failed (force does not ask for it).
    row("failed", Phase.FAILED, False, False, Seen(skipped_failed=1)),
    row("failed", Phase.FAILED, False, True, Seen(skipped_failed=1)),
    row("failed", Phase.FAILED, True, False, Seen(targets=((INFERENCE_ID, "failed"),))),
    row("failed", Phase.FAILED, True, True, Seen(targets=((INFERENCE_ID, "failed"),))),
    # A failed create has no remote job: nothing to delete, nothing to count.
    *(row("failed-no-id", Phase.FAILED, i, f, NOTHING, remote="no-id") for i, f in FLAGS),
    # A job in flight is refused (its images are not downloaded yet) unless forced.
    row("submitted", Phase.SUBMITTED, False, False, Seen(refused=(IN_FLIGHT,))),
    row("submitted", Phase.SUBMITTED, True, False, Seen(refused=(IN_FLIGHT,))),
    row("submitted", Phase.SUBMITTED, False, True, Seen(targets=((INFERENCE_ID, "in flight"),))),
    row("intent-with-id", Phase.INTENT, False, False, Seen(refused=(IN_FLIGHT,))),
    row("intent-with-id", Phase.INTENT, False, True, Seen(targets=((INFERENCE_ID, "in flight"),))),
    *(row("intent", Phase.INTENT, i, f, NOTHING, remote="no-id") for i, f in FLAGS),
    # Earlier attempts' remote jobs are targets only with include_failed, listed before the job's own.
    row("orphans-of-intent", Phase.INTENT, False, True, NOTHING, remote="no-id", orphans=ORPHANS),
    row("orphans-of-intent", Phase.INTENT, True, False, Seen(targets=EARLIER), remote="no-id", orphans=ORPHANS),
    row(
        "orphans-of-submitted",
        Phase.SUBMITTED,
        False,
        False,
        Seen(refused=(IN_FLIGHT,)),
        orphans=ORPHANS,
    ),
    row(
        "orphans-of-submitted",
        Phase.SUBMITTED,
        True,
        False,
        Seen(targets=EARLIER, refused=(IN_FLIGHT,)),
        orphans=ORPHANS,
    ),
    row(
        "orphans-of-failed",
        Phase.FAILED,
        True,
        False,
        Seen(targets=(*EARLIER, (INFERENCE_ID, "failed"))),
        orphans=ORPHANS,
    ),
    row("orphans-of-deleted", Phase.FAILED, True, False, Seen(targets=EARLIER), remote="deleted", orphans=ORPHANS),
    # A job of `run --local` never counts, nor do its orphans (as `status` does not count them either).
    *(row("local-finished", Phase.FINISHED, i, f, NOTHING, remote="local") for i, f in FLAGS),
    *(row("local-failed", Phase.FAILED, i, f, NOTHING, remote="local") for i, f in FLAGS),
    *(row("local-submitted", Phase.SUBMITTED, i, f, NOTHING, remote="local") for i, f in FLAGS),
    *(row("local-orphans", Phase.INTENT, i, f, NOTHING, remote="local", orphans=ORPHANS) for i, f in FLAGS),
    # A deleted job is gone already, even with a damaged image.
    *(row("deleted-finished", Phase.FINISHED, i, f, NOTHING, remote="deleted") for i, f in FLAGS),
    *(row("deleted-damaged", Phase.FINISHED, i, f, NOTHING, disk="damaged", remote="deleted") for i, f in FLAGS),
    *(row("deleted-failed", Phase.FAILED, i, f, NOTHING, remote="deleted") for i, f in FLAGS),
    *(row("deleted-submitted", Phase.SUBMITTED, i, f, NOTHING, remote="deleted") for i, f in FLAGS),
]


@pytest.mark.parametrize(("phase", "disk", "remote", "orphans", "include_failed", "force", "expected"), PLAN_TABLE)
def test_plan_deletes_table(
    tmp_path: Path,
    phase: Phase,
    disk: Disk,
    remote: Remote,
    orphans: tuple[str, ...],
    include_failed: bool,
    force: bool,
    expected: Seen,
) -> None:
    """Verified finished jobs go; failed and earlier attempts only when asked; unverified or in flight only forced."""
    state = LedgerState(jobs={KEY: job_state(tmp_path, phase, disk=disk, remote=remote, orphans=orphans)})

    plan = plan_deletes(tmp_path, state, include_failed=include_failed, force=force)

    assert expected == seen_of(plan)


def test_a_target_names_the_job_and_its_model(tmp_path: Path) -> None:
    """Each target carries the job key and model the delete request needs."""
    state = LedgerState(jobs={KEY: job_state(tmp_path, Phase.FINISHED)})

    plan = plan_deletes(tmp_path, state, include_failed=False, force=False)

    assert [Target(KEY, "m", INFERENCE_ID, "finished")] == plan.targets


def test_skipped_failed_counts_every_failed_job(tmp_path: Path) -> None:
    """Without include_failed, each failed job with a live remote job adds one to `skipped_failed`."""
    one = job_state(tmp_path, Phase.FAILED)
    jobs = {key: replace(one, key=key, inference_id=f"inf-{key}") for key in ("x", "y", "z")}

    plan = plan_deletes(tmp_path, LedgerState(jobs=jobs), include_failed=False, force=False)

    assert (3, [], []) == (plan.skipped_failed, plan.targets, plan.refused)


def test_an_empty_ledger_plans_nothing(tmp_path: Path) -> None:
    """With no jobs there is nothing to delete or refuse."""
    assert DeletePlan() == plan_deletes(tmp_path, LedgerState(), include_failed=True, force=True)
