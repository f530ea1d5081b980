"""Which shard of its manifest an output folder holds: a pure rule over its ledger (no network, no environment).

A folder made by `run --shard I/N` holds shard I of N; one made by a plain `run`, or by `merge`, holds the whole
manifest. The folder's shard is that of its last `run` or `merge` record, once the ledger holds a job that may exist
on a server; before that (no run yet, or only runs whose every create was refused) any shard may start it. A run of
another shard in it would count the other shard's jobs as no part of its manifest (the callers refuse it: exit 2).
"""

from __future__ import annotations

from dataclasses import dataclass

from leapbatch.folder.state import LedgerState, Phase
from leapbatch.jobs import Shard

WORKING_COMMANDS = ("run", "merge")  # the commands whose record says what the folder's jobs are


@dataclass(frozen=True, slots=True)
class Holding:
    """What a folder holds: one shard of its manifest, or all of its jobs (`shard` None)."""

    shard: Shard | None

    def __str__(self) -> str:
        return "the whole manifest" if self.shard is None else f"shard {self.shard}"


def folder_holding(state: LedgerState) -> Holding | None:
    """Return what the folder holds, or None while it holds no job (see the module's rules)."""
    if not any(job.phase is not Phase.REFUSED or job.orphans for job in state.jobs.values()):
        return None
    runs = [run for run in state.runs if run.command in WORKING_COMMANDS]
    if not runs or runs[-1].shard is None:
        return Holding(None)
    try:
        return Holding(Shard.parse(runs[-1].shard))
    except ValueError:
        return Holding(None)  # a hand-edited record: the folder is taken for a whole one, and checked as such


def other_holding(state: LedgerState, shard: Shard | None) -> Holding | None:
    """Return what the folder holds when it is not `shard` (the caller must refuse), else None."""
    held = folder_holding(state)
    return held if held is not None and held.shard != shard else None
