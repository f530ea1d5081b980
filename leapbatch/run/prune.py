"""Remove from an output folder the jobs its manifest no longer has: the `prune` command's core.

The dataset is the manifest. Which jobs go (`plan_prune`, pure): every ledger job whose key the manifest does not
list and that is not pruned yet, whatever its phase (a finished job's images leave the dataset; a failed or
unsettled one owns no file). A manifest that lists none of the folder's jobs would empty the dataset: the plan says
so (`keeps_none`) and the command refuses it.

Write-ahead (`prune_jobs`): every job is recorded `pruned` **before** any of its files is removed, and the removal
then covers every pruned job of the ledger. A crash in between leaves pruned jobs with files on disk: `verify`
shows them as untracked (a pruned job owns no file) and the next `prune` removes them. Files are removed through
the folder's descriptor, never through a link (`ImageStore.discard_jobs`): a link among the names is refused (exit
2) before anything is removed, and the records already written stay true.

Remote jobs are never touched here: a pruned job keeps its inference id, so `delete`, or `prune --remote` (which
deletes them first through `leapbatch.run.delete`, `remote_targets`), removes them.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from leapbatch.folder.images import PART_SUFFIX, ImageStore
from leapbatch.folder.ledger import Ledger, now
from leapbatch.folder.records import PrunedRecord
from leapbatch.folder.results import dropped_jobs
from leapbatch.folder.state import JobState, LedgerState, Phase
from leapbatch.run.delete import Target


@dataclass(frozen=True, slots=True)
class PrunePlan:
    """The jobs to prune now (ledger order), and how many of the ledger's live jobs the manifest keeps."""

    jobs: tuple[JobState, ...]
    kept: int

    @property
    def images(self) -> int:
        """Return how many recorded images the jobs to prune own."""
        return sum(len(job.images) for job in self.jobs)

    @property
    def keeps_none(self) -> bool:
        """Return whether pruning would leave the folder without any job (the manifest lists none of them)."""
        return bool(self.jobs) and self.kept == 0


def plan_prune(state: LedgerState, manifest_keys: Collection[str]) -> PrunePlan:
    """Return which ledger jobs to prune: those `manifest_keys` (the manifest's jobs) does not list, not pruned yet."""
    jobs = tuple(dropped_jobs(state, manifest_keys))
    kept = sum(1 for job in state.jobs.values() if job.key in manifest_keys and job.phase is not Phase.PRUNED)
    return PrunePlan(jobs, kept)


def remote_targets(state: LedgerState, plan: PrunePlan) -> list[Target]:
    """Return the remote jobs of the jobs to prune and of jobs pruned earlier: current ids, then earlier attempts'."""
    jobs = [*plan.jobs, *(job for job in state.jobs.values() if job.phase is Phase.PRUNED)]
    current = [
        Target(job.key, job.model, job.inference_id, "dropped")
        for job in jobs
        if job.remote_exists and job.inference_id is not None
    ]
    earlier = [
        Target(job.key, job.model, orphan, "earlier attempt") for job in jobs if not job.local for orphan in job.orphans
    ]
    return current + earlier


@dataclass(frozen=True, slots=True)
class PruneOutcome:
    """What `prune_jobs` did: jobs recorded `pruned` now, and images removed (theirs and earlier pruned jobs')."""

    jobs: int
    images: int  # image files removed (a crash's `.part` files go too, uncounted)


def prune_jobs(ledger: Ledger, store: ImageStore, plan: PrunePlan) -> PruneOutcome:
    """Record every job of `plan` `pruned`, then remove the files of every pruned job of the ledger (write-ahead)."""
    for job in plan.jobs:
        ledger.append(PrunedRecord(t=now(), key=job.key))
    pruned = [key for key, job in ledger.state.jobs.items() if job.phase is Phase.PRUNED]
    removed = store.discard_jobs(pruned)
    return PruneOutcome(len(plan.jobs), sum(1 for path in removed if path.suffix != PART_SUFFIX))
