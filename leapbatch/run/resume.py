"""Pure: given the manifest's jobs and the ledger's state, decide what each job needs.

Rules (the resume contract): a finished job costs nothing; a submitted job is polled by its id, never created
again; an intent without `submitted` is settled by listing (adopt, or create only if absent); a job that failed while
downloading is re-polled for free (it is paid and finished remotely); any other failed job stays failed unless
`retry_failed`; a new job, or one whose create was refused for a reason every job shares (`refused`: no job
was made), is created. Jobs left unfinished by a `run --local` are created again: the emulator that
held them ended with that run (and charges nothing). A job `prune` removed from the dataset (its manifest had
dropped it) that the manifest lists again is created anew: that pays for it again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from leapbatch.folder.records import FailStage
from leapbatch.folder.state import JobState, LedgerState, Phase
from leapbatch.jobs import Job


class Action(StrEnum):
    """What a job needs in this run."""

    DONE = "done"
    POLL = "poll"
    RECONCILE = "reconcile"
    CREATE = "create"
    KEEP_FAILED = "failed"


def action_for(state: JobState | None, *, retry_failed: bool) -> Action:
    """Return what a job in `state` needs."""
    if state is None:
        return Action.CREATE
    if state.phase is Phase.FINISHED:
        return Action.DONE
    if state.phase is Phase.REFUSED:
        return Action.CREATE
    if state.phase is Phase.PRUNED:  # its files are gone: a new job, paid again
        return Action.CREATE
    if state.local and state.phase in (Phase.SUBMITTED, Phase.INTENT):
        return Action.CREATE
    if state.phase is Phase.SUBMITTED:
        return Action.POLL
    if state.phase is Phase.INTENT:
        return Action.RECONCILE
    failure = state.failure
    if failure is not None and failure.stage is FailStage.DOWNLOAD and state.remote_exists:
        return Action.POLL
    return Action.CREATE if retry_failed else Action.KEEP_FAILED


@dataclass
class ResumePlan:
    """The jobs of a manifest sorted by what they need, plus ledger jobs the manifest no longer has (not pruned)."""

    by_action: dict[Action, list[Job]] = field(default_factory=lambda: {action: [] for action in Action})
    not_in_manifest: list[JobState] = field(default_factory=list)

    def count(self, action: Action) -> int:
        """Return how many jobs need `action`."""
        return len(self.by_action[action])

    @property
    def to_run(self) -> list[tuple[Action, Job]]:
        """Return the jobs this run works on with what each needs: jobs already submitted first, then new ones."""
        busy = (Action.POLL, Action.RECONCILE, Action.CREATE)
        return [(action, job) for action in busy for job in self.by_action[action]]


def classify(jobs: Sequence[Job], state: LedgerState, *, retry_failed: bool = False) -> ResumePlan:
    """Return what every job needs, given the ledger."""
    plan = ResumePlan()
    keys = set()
    for job in jobs:
        keys.add(job.key)
        plan.by_action[action_for(state.jobs.get(job.key), retry_failed=retry_failed)].append(job)
    plan.not_in_manifest = [js for key, js in state.jobs.items() if key not in keys and js.phase is not Phase.PRUNED]
    return plan


def tally(state: LedgerState) -> dict[str, int]:
    """Return how many of the ledger's jobs a plain rerun (no `--retry-failed`) would give each action.

    Pruned jobs are no job of the dataset any more: a rerun meets them only if its manifest lists them again.
    """
    counts = dict.fromkeys((action.value for action in Action), 0)
    for job in state.jobs.values():
        if job.phase is not Phase.PRUNED:
            counts[action_for(job, retry_failed=False).value] += 1
    return counts


def ledger_diff(plan: ResumePlan) -> dict[str, int]:
    """Return what a run would find: new jobs, done, in flight, failed, and ledger jobs the manifest dropped."""
    return {
        "new": plan.count(Action.CREATE),
        "done": plan.count(Action.DONE),
        "in_flight": plan.count(Action.POLL) + plan.count(Action.RECONCILE),
        "failed": plan.count(Action.KEEP_FAILED),
        "not_in_manifest": len(plan.not_in_manifest),
    }
