"""Which manifest a folder's dataset follows: the one its last `run` recorded, if that file is still the same.

A `run` record names its manifest (`manifest_path`, as given on the command line, so a relative path is read from
the current folder) and its `manifest_sha256`. The dataset is that manifest's jobs. `status`, `verify` and `prune`
read it back: when the file is missing, unreadable, no longer a valid manifest, or its sha256 differs from the
recorded one, which jobs it lists cannot be told (`DatasetManifest.keys` is None and `why` says why). Only `run`
and `merge` records count: `delete` and `prune --remote` records name no manifest. A folder that holds one shard
of its manifest (`leapbatch.folder.shards`) has that shard's jobs as its dataset.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from leapbatch.errors import ManifestError, UsageError
from leapbatch.folder.records import RunRecord
from leapbatch.folder.shards import WORKING_COMMANDS, folder_holding
from leapbatch.folder.state import LedgerState
from leapbatch.folder.status import DatasetManifest
from leapbatch.jobs import Job
from leapbatch.manifest import Manifest, load_manifest
from leapbatch.manifest.expand import expand, in_shard
from leapbatch.view.catalog import Catalog, catalog


@dataclass(frozen=True, slots=True)
class RunManifest:
    """A manifest read back for a folder: its jobs when it could be read, and the `DatasetManifest` status shows."""

    dataset: DatasetManifest
    manifest: Manifest | None = None
    jobs: list[Job] = field(default_factory=list)
    matrix_jobs: int = 0  # the matrix's combinations after exclude (what `sample` picked from)

    @property
    def captions(self) -> dict[str, str | None] | None:
        """Return the caption of each job by key (None: its prompt), or None when the manifest is not known."""
        return None if self.manifest is None else {job.key: job.caption for job in self.jobs}


def last_run(state: LedgerState) -> RunRecord | None:
    """Return the folder's last `run` or `merge` record (not a `delete` or `prune` one), or None."""
    runs = [record for record in state.runs if record.command in WORKING_COMMANDS]
    return runs[-1] if runs else None


def unknown(path: str | None, why: str) -> RunManifest:
    """Return a manifest whose jobs cannot be told, and why."""
    return RunManifest(DatasetManifest(path, None, why))


def read_manifest(path: Path, state: LedgerState) -> RunManifest:
    """Load and expand the manifest at `path`, as far as the folder of `state` holds it (its shard, if it holds one);
    a `UsageError` or `ManifestError` if it is no manifest."""
    manifest = load_manifest(path)
    held = folder_holding(state)
    expansion = expand(manifest)
    jobs = in_shard(expansion, None if held is None else held.shard).jobs
    keys = frozenset(job.key for job in jobs)
    return RunManifest(DatasetManifest(str(path), keys), manifest, jobs, expansion.combinations - expansion.excluded)


def last_run_manifest(state: LedgerState) -> RunManifest:
    """Return the manifest of the folder's last run if its file is still the one recorded, else why not."""
    record = last_run(state)
    if record is None:
        return unknown(None, "no run is recorded")
    if record.manifest_path is None or record.manifest_sha256 is None:
        return unknown(record.manifest_path, "the last run recorded no manifest")
    shown = record.manifest_path
    try:
        found = read_manifest(Path(record.manifest_path), state)
    except UsageError:
        return unknown(shown, f"the last run's manifest {shown} cannot be read here")
    except ManifestError:
        return unknown(shown, f"the last run's manifest {shown} changed since (it is no longer valid)")
    if found.manifest is None or found.manifest.source_sha256 != record.manifest_sha256:
        return unknown(shown, f"the last run's manifest {shown} changed since (its sha256 differs)")
    return found


def folder_catalog(out: Path, state: LedgerState) -> Catalog:
    """Return the catalog of a folder (`leapbatch.view.catalog`): its manifest's jobs when it can be read back, else
    every job the ledger holds, with no rules (then an empty cell can only say that no job has its values)."""
    found = last_run_manifest(state)
    if found.manifest is None:
        return catalog(state, None, None, name=out.resolve().name, unknown_why=found.dataset.why or "")
    return catalog(state, found.jobs, found.manifest, name=found.manifest.name, matrix_jobs=found.matrix_jobs)
