"""Merging output folders (the shards of a manifest) into a new one: ledgers unioned, images copied, files derived.

The rules (docs/cli.md, "merge"):
- **Sources** are output folders with a ledger. Each is locked while it is read (one still running is refused:
  exit 3) and only read: never repaired, cut or changed. A torn last line is left out, as a reader leaves it out.
- **The target** is a new folder, or one with no ledger yet (an empty ledger counts as none); it is locked
  throughout, and written in an order a crash cannot misreport: the images (each copied through a `.part` file and
  checked against its record), then `results.json` and `metadata.jsonl`, then the ledger, atomically, last. A
  folder with a ledger is a whole merge; a merge cut short leaves no ledger, so the same merge can run again.
- **One job per key**: keys are content hashes, so a job in two sources is one job. The records of the source where
  it got furthest (finished, then submitted, in flight, failed, refused, pruned; the first source given on a tie)
  decide its state: they come after the other sources' records of it, so the other attempts' remote jobs become
  its orphans (`delete` removes them) and what they committed is still counted as spent.
- **One server**: every source must have been made on the same server (`leapbatch.folder.server`).
- The ledger keeps each source's records in their order, with its `run` records (so what ran on the local emulator
  stays local), leaves out `consent` records (a consent covered one shard's plan, not the whole), and ends with a
  `merge` record that names the manifest when every source last ran the same one, and no shard.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from leapbatch import __version__
from leapbatch.errors import UsageError
from leapbatch.folder.atomic import fsync_dir, lstat_or_none, make_dir, open_file, shown, write_atomic
from leapbatch.folder.images import IMAGES_DIR, ImageStore, sweep_parts
from leapbatch.folder.ledger import LEDGER_NAME, FolderLock, check_entries, now, parse_ledger, read_all
from leapbatch.folder.records import ConsentRecord, Record, RunRecord
from leapbatch.folder.results import job_of, write_results
from leapbatch.folder.server import LOCAL_EMULATOR, folder_server
from leapbatch.folder.shards import WORKING_COMMANDS, folder_holding
from leapbatch.folder.state import LedgerState, Phase, fold

# How far a job got, best first: the source where it got furthest decides its state.
_RANK = {
    Phase.FINISHED: 0,
    Phase.SUBMITTED: 1,
    Phase.INTENT: 2,
    Phase.FAILED: 3,
    Phase.REFUSED: 4,
    Phase.PRUNED: 5,
}


@dataclass(frozen=True, slots=True)
class Source:
    """One folder to merge: where it is, its records, and their fold."""

    path: Path
    records: list[Record]
    state: LedgerState


@dataclass(frozen=True, slots=True)
class Merged:
    """What a merge made: the merged state, and how many jobs were in more than one source."""

    state: LedgerState
    duplicates: int
    missing_shards: tuple[str, ...]  # shards of the sources' manifest no source holds (`2/4`), when all are shards


def _check_source(path: Path) -> None:
    """Refuse a path that is no output folder (before its lock is taken, which would create a file in it)."""
    if not os.path.isdir(path):
        raise UsageError(f"{shown(path)}: no such folder", hint="pass the output folders of the shards' runs")
    if lstat_or_none(path / LEDGER_NAME) is None:
        raise UsageError(
            f"{shown(path)}: not an output folder (it has no {LEDGER_NAME})",
            hint="pass the output folders of the shards' runs",
        )


def read_source(path: Path) -> Source:
    """Read the ledger of an output folder (the caller holds its lock); `UsageError` if it is no output folder."""
    _check_source(path)
    fd = open_file(path / LEDGER_NAME, os.O_RDONLY)
    try:
        records = parse_ledger(read_all(fd), str(path / LEDGER_NAME)).records
    finally:
        os.close(fd)
    return Source(path, records, fold(records))


def choose(sources: Sequence[Source]) -> dict[str, int]:
    """Return, for every job key, the index of the source whose records decide its state (see the module)."""
    chosen: dict[str, int] = {}
    for i, source in enumerate(sources):
        for key, job in source.state.jobs.items():
            best = chosen.get(key)
            if best is None or _RANK[job.phase] < _RANK[sources[best].state.jobs[key].phase]:
                chosen[key] = i
    return chosen


def merged_records(sources: Sequence[Source], chosen: dict[str, int]) -> Iterator[Record]:
    """Yield the merged ledger's records but the last: each source's records of the jobs it does not decide, then
    each source's records of the jobs it decides, every pass with the source's `run` records in place."""

    def part(i: int, deciding: bool) -> Iterator[Record]:
        for record in sources[i].records:
            if isinstance(record, ConsentRecord):
                continue
            key = getattr(record, "key", None)
            if key is None or (chosen.get(key) == i) == deciding:
                yield record

    for i, source in enumerate(sources):
        if any(chosen[key] != i for key in source.state.jobs):
            yield from part(i, deciding=False)
    for i in range(len(sources)):
        yield from part(i, deciding=True)


def _missing_shards(sources: Sequence[Source]) -> tuple[str, ...]:
    held = [folder_holding(source.state) for source in sources]
    shards = [h.shard for h in held if h is not None]
    if not shards or len(shards) < len(held) or any(s is None for s in shards):
        return ()
    counts = {s.count for s in shards if s is not None}
    if len(counts) != 1:
        return ()
    (count,) = counts
    have = {s.index for s in shards if s is not None}
    return tuple(f"{i}/{count}" for i in range(1, count + 1) if i not in have)


def _merge_record(sources: Sequence[Source], jobs: int) -> RunRecord:
    last = [next((r for r in reversed(s.state.runs) if r.command in WORKING_COMMANDS), None) for s in sources]
    runs = [r for r in last if r is not None]
    manifests = {(r.manifest_path, r.manifest_sha256) for r in runs}
    path, sha = manifests.pop() if len(manifests) == 1 else (None, None)
    names = [r.name for r in runs if r.name]
    server = {folder_server(s.state) for s in sources} - {None}
    return RunRecord(
        t=now(),
        command="merge",
        tool_version=__version__,
        base_url=runs[-1].base_url if runs else "",
        manifest_path=path,
        manifest_sha256=sha,
        jobs=jobs,
        local=server == {LOCAL_EMULATOR},
        name=names[0] if names else None,
    )


def _check_sources(paths: Sequence[Path], into: Path) -> None:
    seen: dict[Path, Path] = {}
    for path in paths:
        real = path.resolve()
        if real in seen:
            raise UsageError(f"{shown(path)} is given twice (as {shown(seen[real])})", hint="name each folder once")
        seen[real] = path
    if into.resolve() in seen:
        raise UsageError(f"--into {shown(into)} is one of the folders to merge", hint="merge into a new folder")


def _check_servers(sources: Sequence[Source]) -> None:
    servers = [(source, folder_server(source.state)) for source in sources]
    made = [(source, server) for source, server in servers if server is not None]
    if len({server for _, server in made}) > 1:
        (a, on_a), (b, on_b) = made[0], next(pair for pair in made if pair[1] != made[0][1])
        raise UsageError(
            f"{shown(a.path)} was made on {on_a}, {shown(b.path)} on {on_b}: one folder holds one server's jobs",
            hint="merge the folders of each server apart",
        )


def merge(paths: Sequence[Path], into: Path) -> Merged:
    """Merge the output folders `paths` into the new folder `into` (see the module's rules) and return the result."""
    if not paths:
        raise UsageError("no folder to merge", hint="pass the output folders of the shards' runs")
    _check_sources(paths, into)
    with ExitStack() as locks:
        for path in paths:
            _check_source(path)
            locks.enter_context(FolderLock(path))
        sources = [read_source(path) for path in paths]
        _check_servers(sources)
        locks.enter_context(FolderLock(into))
        found = lstat_or_none(into / LEDGER_NAME)
        if found is not None and found.st_size:
            raise UsageError(
                f"{shown(into)} already holds a ledger: a merge writes a new folder",
                hint="pass another --into, or move that folder away to merge again",
            )
        check_entries(into)
        return _write(sources, into)


def _write(sources: Sequence[Source], into: Path) -> Merged:
    chosen = choose(sources)
    records = list(merged_records(sources, chosen))
    jobs_state = fold(records)
    kept = sorted((job for job in jobs_state.jobs.values() if job.phase is not Phase.PRUNED), key=lambda job: job.key)
    records.append(_merge_record(sources, len(kept)))
    state = fold(records)
    make_dir(into / IMAGES_DIR)
    sweep_parts(into)
    store = ImageStore(into)
    for job in kept:
        for image in job.images:
            store.copy_in(sources[chosen[job.key]].path, job.key, image)
    fsync_dir(into / IMAGES_DIR)
    name = state.runs[-1].name or into.resolve().name
    write_results(into, [job_of(job) for job in kept], state, name=name)
    write_atomic(into / LEDGER_NAME, (r.model_dump_json(exclude_none=True).encode() + b"\n" for r in records))
    duplicates = sum(1 for key in chosen if sum(key in s.state.jobs for s in sources) > 1)
    return Merged(state, duplicates, _missing_shards(sources))
