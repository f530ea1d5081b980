"""Delete the remote jobs a ledger knows: the `delete` command's core.

Which jobs: finished jobs whose images are all on disk and verified; failed jobs and the remote leftovers of
earlier attempts only when asked (`include_failed`); jobs still in flight, and finished jobs whose images are not
verified on disk, only when forced (deleting them would throw away a paid image). Pruned jobs (`leapbatch prune`:
their manifest dropped them and their files are gone) have nothing left to lose: their remote jobs are deleted too.
Jobs of `run --local` never count: their emulator ended with the run.

Deleting is idempotent: 404 means already gone, and every outcome is recorded as a `deleted` ledger record, so a
second call finds nothing to do.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import trio

from leapbatch import errors
from leapbatch.api.client import LeapClient
from leapbatch.crashpoints import crashpoint
from leapbatch.folder.ledger import Ledger, now
from leapbatch.folder.records import DeletedRecord
from leapbatch.folder.state import LedgerState, Phase
from leapbatch.folder.verify import check_image

Outcome = Literal["deleted", "already_gone"]


@dataclass(frozen=True, slots=True)
class Target:
    """One remote job to delete."""

    key: str
    model: str
    inference_id: str
    why: str  # finished, failed, in flight, earlier attempt, pruned (or dropped, by `prune --remote`)


@dataclass
class DeletePlan:
    """What `delete` will do: targets, and the jobs it refuses (with the reason)."""

    targets: list[Target] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)
    skipped_failed: int = 0


def plan_deletes(out_dir: Path, state: LedgerState, *, include_failed: bool, force: bool) -> DeletePlan:
    """Return which remote jobs to delete and which to refuse."""
    plan = DeletePlan()
    for job in state.jobs.values():
        if include_failed and not job.local:
            plan.targets += [Target(job.key, job.model, orphan, "earlier attempt") for orphan in job.orphans]
        if not job.remote_exists or job.inference_id is None:
            continue
        if job.phase is Phase.PRUNED:
            plan.targets.append(Target(job.key, job.model, job.inference_id, "pruned"))
        elif job.phase is Phase.FINISHED:
            bad = [p for p in (check_image(out_dir, job, image) for image in job.images) if p is not None]
            if bad and not force:
                plan.refused.append((job.key, f"{bad[0].path}: {bad[0].detail}"))
                continue
            plan.targets.append(Target(job.key, job.model, job.inference_id, "finished"))
        elif job.phase is Phase.FAILED:
            if include_failed:
                plan.targets.append(Target(job.key, job.model, job.inference_id, "failed"))
            else:
                plan.skipped_failed += 1
        elif force:
            plan.targets.append(Target(job.key, job.model, job.inference_id, "in flight"))
        else:
            plan.refused.append((job.key, "still in flight: its images are not downloaded yet (run again first)"))
    return plan


async def delete_remote(client: LeapClient, ledger: Ledger, target: Target) -> Outcome:
    """Delete one remote job (404 counts as already gone) and record the outcome in the ledger.

    Raises `ApiUnavailableError` if the API is unusable (key refused, or dead), and `ApiError` if the delete failed
    (nothing is recorded then).
    """
    crashpoint("before-delete")
    result: Outcome
    try:
        await client.remove(target.model, target.inference_id)
        result = "deleted"
    except errors.NotFoundError:
        result = "already_gone"
    crashpoint("after-delete")
    ledger.append(DeletedRecord(t=now(), key=target.key, inference_id=target.inference_id, outcome=result))
    return result


@dataclass
class DeleteOutcome:
    """What the deletes did."""

    deleted: int = 0
    already_gone: int = 0
    errors: list[tuple[str, str]] = field(default_factory=list)


async def run_deletes(
    client: LeapClient,
    ledger: Ledger,
    targets: list[Target],
    *,
    concurrency: int = 16,
    on_done: Callable[[], None] = lambda: None,
) -> DeleteOutcome:
    """Delete every target concurrently, recording each outcome; an unusable API ends it at once."""
    outcome = DeleteOutcome()
    slots = trio.CapacityLimiter(concurrency)

    async def delete_one(target: Target) -> None:
        async with slots:
            try:
                result = await delete_remote(client, ledger, target)
            except errors.ApiError as exc:
                outcome.errors.append((target.key, exc.message))
            else:
                if result == "deleted":
                    outcome.deleted += 1
                else:
                    outcome.already_gone += 1
            on_done()

    async with trio.open_nursery() as nursery:
        for target in targets:
            nursery.start_soon(delete_one, target)
    return outcome
