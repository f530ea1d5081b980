"""Where an output folder stands, from its ledger alone: the `status` report.

`status_report` is pure over the ledger state and a listing of the folder; `folder_usage` is the only I/O. Neither
takes the folder's lock, so `status` works while a run holds it. Status knows no manifest of its own: the caller
passes the manifest of the folder's last run (`DatasetManifest`), or why it cannot be read, so the report can count
the ledger jobs that manifest dropped (`not_in_manifest`) or say it cannot tell.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from leapbatch.errors import plural
from leapbatch.folder.results import dropped_jobs
from leapbatch.folder.state import JobState, LedgerState, Phase
from leapbatch.pricing import money

STATUS_VERSION = 1


@dataclass(frozen=True, slots=True)
class DatasetManifest:
    """The manifest a folder's dataset follows (its last run's): its jobs' keys, or why they are not known."""

    path: str | None  # as the `run` record names it
    keys: frozenset[str] | None  # None: cannot tell (`why`)
    why: str | None = None


@dataclass(frozen=True, slots=True)
class FolderUsage:
    """What is on disk in an output folder."""

    image_files: frozenset[str]  # paths relative to the folder, posix
    image_bytes: int
    total_bytes: int


def folder_usage(out_dir: Path) -> FolderUsage:
    """Return the image files under `OUT/images` and the bytes the folder uses (links are not followed or counted)."""
    images: set[str] = set()
    image_bytes = total = 0
    pending = [("", str(out_dir))]
    while pending:
        prefix, folder = pending.pop()
        try:
            listing = os.scandir(folder)
        except (FileNotFoundError, NotADirectoryError):
            continue
        with listing:
            for entry in listing:
                relative = prefix + entry.name
                if entry.is_dir(follow_symlinks=False):
                    pending.append((relative + "/", entry.path))
                    continue
                if not entry.is_file(follow_symlinks=False):
                    continue
                size = entry.stat(follow_symlinks=False).st_size
                total += size
                if relative.startswith("images/") and not relative.endswith(".part"):
                    images.add(relative)
                    image_bytes += size
    return FolderUsage(frozenset(images), image_bytes, total)


def status_report(
    out_dir: Path, state: LedgerState, usage: FolderUsage, resume: Mapping[str, int], dataset: DatasetManifest
) -> dict[str, Any]:
    """Return the status of a folder as a JSON-ready dict (its shape is documented in docs/cli.md).

    `resume` is what a run would do with each job (`leapbatch.run.resume.tally`): the folder knows what it holds,
    the run decides what that means. `dataset` is the manifest of the last run (see `DatasetManifest`).
    """
    jobs = list(state.jobs.values())
    by_phase = {phase.value: sum(1 for js in jobs if js.phase is phase) for phase in Phase}
    recorded = [image.path for js in jobs if js.phase is Phase.FINISHED for image in js.images]
    failures: dict[tuple[str, str], dict[str, Any]] = {}
    for js in jobs:
        if js.phase is Phase.FAILED and js.failure is not None:
            group = failures.setdefault(
                (js.failure.stage.value, js.failure.reason),
                {"stage": js.failure.stage.value, "reason": js.failure.reason, "count": 0, "example": js.key},
            )
            group["count"] += 1
    refusals: dict[str, int] = {}
    for js in jobs:
        if js.phase is Phase.REFUSED and js.refusal is not None:
            refusals[js.refusal.reason] = refusals.get(js.refusal.reason, 0) + 1
    remote = [js for js in jobs if js.remote_exists]
    last_run = state.runs[-1] if state.runs else None
    return {
        "version": STATUS_VERSION,
        "folder": str(out_dir),
        "last_run": None
        if last_run is None
        else {"manifest": last_run.manifest_path, "base_url": last_run.base_url, "local": last_run.local},
        "jobs": {"total": len(jobs), **by_phase},
        "images": {
            "recorded": len(recorded),
            "on_disk": len(usage.image_files & set(recorded)),
            "missing": len(set(recorded) - usage.image_files),
            "untracked": len(usage.image_files - set(recorded)),
            "bytes": usage.image_bytes,
        },
        "failures": sorted(failures.values(), key=lambda group: (-group["count"], group["stage"], group["reason"])),
        "refusals": [{"reason": reason, "count": count} for reason, count in sorted(refusals.items())],
        "remote": {
            "present": len(remote),
            "present_finished": sum(1 for js in remote if js.phase is Phase.FINISHED),
            "orphans": sum(len(js.orphans) for js in jobs if not js.local),
            "deleted": sum(1 for js in jobs if js.deleted),
        },
        "resume": {
            "poll": resume.get("poll", 0),
            "reconcile": resume.get("reconcile", 0),
            "create": resume.get("create", 0),
            "kept_failed": resume.get("failed", 0),
        },
        "not_in_manifest": _not_in_manifest(state, dataset),
        "spend": _spend(state),
        "disk_bytes": usage.total_bytes,
    }


def _spend(state: LedgerState) -> dict[str, Any]:
    """Return the report's `spend`: what the creates committed, and what the last run's caps leave."""
    spend = state.spend.to_json()
    run = next((run for run in reversed(state.runs) if run.command == "run"), None)
    max_usd, max_images = (None, None) if run is None else (run.max_usd, run.max_images)
    remaining_usd = None
    if max_usd is not None:
        remaining_usd = max(0.0, float(Decimal(repr(max_usd)) - state.spend.committed_cost))
    remaining_images = None if max_images is None else max(0, max_images - spend["images"])
    return {
        **spend,
        "price": None if run is None else run.price,
        "budget": {
            "max_usd": max_usd,
            "max_images": max_images,
            "remaining_usd": remaining_usd,
            "remaining_images": remaining_images,
        },
    }


def _spend_lines(report: dict[str, Any]) -> list[str]:
    spend = report["spend"]
    price = spend["price"] or {}
    currency = price.get("currency", "USD")

    def amount(value: float) -> str:
        return money(Decimal(repr(value)), currency)

    lines = [
        f"spend: {amount(spend['spent']['cost'])} spent ({plural(spend['spent']['images'], 'image')} made), "
        f"{amount(spend['cost'])} committed (with {plural(spend['unknown']['images'], 'image')} whose create has"
        " no answer yet, counted as spent)" + (f"; at {price['label']}" if price else "")
    ]
    budget = spend["budget"]
    left = []
    if budget["max_usd"] is not None:
        left.append(f"{amount(budget['remaining_usd'])} of {amount(budget['max_usd'])}")
    if budget["max_images"] is not None:
        left.append(f"{budget['remaining_images']:,} of {plural(budget['max_images'], 'image', grouped=True)}")
    if left:
        lines.append(f"budget: {' and '.join(left)} remaining (the last run's caps)")
    return lines


def _not_in_manifest(state: LedgerState, dataset: DatasetManifest) -> dict[str, Any]:
    """Return the report's `not_in_manifest`: the ledger jobs (not pruned) the dataset's manifest dropped."""
    dropped: Sequence[JobState] = [] if dataset.keys is None else dropped_jobs(state, dataset.keys)
    known = dataset.keys is not None
    return {
        "manifest": dataset.path,
        "known": known,
        "why_unknown": dataset.why,
        "jobs": len(dropped) if known else None,
        "images": sum(len(js.images) for js in dropped) if known else None,
        "remote": sum(1 for js in dropped if js.remote_exists) if known else None,
    }


def _dropped_lines(report: dict[str, Any]) -> list[str]:
    dropped, pruned = report["not_in_manifest"], report["jobs"]["pruned"]
    done = f"; {pruned} pruned earlier" if pruned else ""
    if not dropped["known"]:
        return [f"not in the manifest: cannot tell which jobs the manifest dropped ({dropped['why_unknown']}){done}"]
    if not dropped["jobs"]:
        return [f"not in the manifest: none (every job is in {dropped['manifest']}){done}"]
    return [
        f"not in the manifest: {plural(dropped['jobs'], 'job')} ({plural(dropped['images'], 'image')}, "
        f"{dropped['remote']} still on the server) no longer in {dropped['manifest']}{done}; "
        f"`leapbatch prune {report['folder']}` removes them"
    ]


def status_lines(report: dict[str, Any]) -> list[str]:
    """Return the status report as lines for people."""
    jobs, images, remote, resume = report["jobs"], report["images"], report["remote"], report["resume"]
    lines = [
        f"folder: {report['folder']}",
        f"jobs: {jobs['total']} in the ledger: {jobs['finished']} finished, {jobs['failed']} failed, "
        f"{jobs['submitted']} submitted (in flight), {jobs['intent']} awaiting confirmation, {jobs['refused']} refused",
        f"images: {images['on_disk']} of {images['recorded']} recorded on disk ({_size(images['bytes'])}); "
        f"{images['missing']} missing, {images['untracked']} untracked",
    ]
    for group in report["failures"]:
        lines.append(f"  failed ({group['stage']}) x{group['count']}: {group['reason']} (e.g. job {group['example']})")
    for group in report["refusals"]:
        lines.append(f"  refused x{group['count']}: {group['reason']} (no job was made; the next run creates it)")
    lines.append(
        f"remote: {plural(remote['present'], 'job')} still on the server ({remote['present_finished']} finished), "
        f"{remote['orphans']} from earlier attempts, {remote['deleted']} deleted"
    )
    lines += _dropped_lines(report)
    lines += _spend_lines(report)
    lines.append(
        f"on resume: {resume['poll']} polled, {resume['reconcile']} settled by listing, {resume['create']} created, "
        f"{resume['kept_failed']} kept failed (--retry-failed resubmits them)"
    )
    lines.append(f"disk used: {_size(report['disk_bytes'])}")
    return lines


def _size(count: int) -> str:
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")  # pragma: no cover
