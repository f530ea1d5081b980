"""Which manifest a folder's dataset follows: the one its last `run` recorded, if that file is still the same.

A `run` record names its manifest (`manifest_path`, as given on the command line, so a relative path is read from
the current folder) and its `manifest_sha256`. The dataset is that manifest's jobs. `status`, `verify` and `prune`
read it back: when the file is missing, unreadable, no longer a valid manifest, or its sha256 differs from the
recorded one, which jobs it lists cannot be told (`DatasetManifest.keys` is None and `why` says why). Only `run`
and `merge` records count: `delete` and `prune --remote` records name no manifest. A folder that holds one shard
of its manifest (`leapbatch.folder.shards`) has that shard's jobs as its dataset.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from leapbatch import __version__
from leapbatch.errors import ManifestError, UsageError
from leapbatch.folder.keys_cache import load_keys
from leapbatch.folder.records import RunRecord
from leapbatch.folder.shards import WORKING_COMMANDS, folder_holding
from leapbatch.folder.state import LedgerState
from leapbatch.folder.status import DatasetManifest
from leapbatch.jobs import Job, Shard
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
    return _expanded(path, load_manifest(path), state)


def _expanded(path: Path, manifest: Manifest, state: LedgerState) -> RunManifest:
    expansion = expand(manifest)
    jobs = in_shard(expansion, _held_shard(state)).jobs
    keys = frozenset(job.key for job in jobs)
    return RunManifest(DatasetManifest(str(path), keys), manifest, jobs, expansion.combinations - expansion.excluded)


def _held_shard(state: LedgerState) -> Shard | None:
    held = folder_holding(state)
    return None if held is None else held.shard


def expansion_digest(manifest: Manifest, shard: Shard | None) -> str:
    """Return what names the keys `manifest` expands to in `shard` (`leapbatch.folder.keys_cache`): its sources, the
    shard, and this leapbatch's version (which decides how keys are made)."""
    named = f"{__version__}\0{manifest.source_sha256}\0{'' if shard is None else shard}"
    return hashlib.sha256(named.encode()).hexdigest()


def _recorded(state: LedgerState) -> tuple[Path, Manifest] | RunManifest:
    """Return the manifest of the folder's last run, loaded, if its file is still the one recorded; else why not."""
    record = last_run(state)
    if record is None:
        return unknown(None, "no run is recorded")
    if record.manifest_path is None or record.manifest_sha256 is None:
        return unknown(record.manifest_path, "the last run recorded no manifest")
    shown = record.manifest_path
    try:
        manifest = load_manifest(Path(shown))
    except UsageError:
        return unknown(shown, f"the last run's manifest {shown} cannot be read here")
    except ManifestError:
        return unknown(shown, f"the last run's manifest {shown} changed since (it is no longer valid)")
    if manifest.source_sha256 != record.manifest_sha256:
        return unknown(shown, f"the last run's manifest {shown} changed since (its sha256 differs)")
    return Path(shown), manifest


def last_run_manifest(state: LedgerState) -> RunManifest:
    """Return the manifest of the folder's last run if its file is still the one recorded, else why not."""
    found = _recorded(state)
    return found if isinstance(found, RunManifest) else _expanded(*found, state)


def last_run_dataset(out: Path, state: LedgerState) -> DatasetManifest:
    """Return the keys of the folder's last run's manifest (as `last_run_manifest(state).dataset`), read from the
    keys `run` left in `out` when they are for this manifest, shard and version, else by expanding it."""
    found = _recorded(state)
    if isinstance(found, RunManifest):
        return found.dataset
    path, manifest = found
    keys = load_keys(out, expansion_digest(manifest, _held_shard(state)))
    return _expanded(path, manifest, state).dataset if keys is None else DatasetManifest(str(path), keys)


def folder_catalog(out: Path, state: LedgerState) -> Catalog:
    """Return the catalog of a folder (`leapbatch.view.catalog`): its manifest's jobs when it can be read back, else
    every job the ledger holds, with no rules (then an empty cell can only say that no job has its values)."""
    found = last_run_manifest(state)
    if found.manifest is None:
        return catalog(state, None, None, name=out.resolve().name, unknown_why=found.dataset.why or "")
    return catalog(state, found.jobs, found.manifest, name=found.manifest.name, matrix_jobs=found.matrix_jobs)
