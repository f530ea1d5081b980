"""Check an output folder against its ledger: the `verify` command's core.

Every image recorded as finished must exist, hash to its recorded sha256, have its recorded size, decode, and
have the recorded dimensions; `images/` must hold nothing else; `metadata.jsonl` and `results.json` must agree with
the ledger over the dataset's jobs (`dataset_keys`: the manifest's). Pruned jobs own no file: their images are not
looked for, and a file of theirs left by a crash is untracked. The checks only read; `leapbatch.cli.ledger_cmds`
does the repairs.
"""

from __future__ import annotations

import json
import os
from collections.abc import Collection, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from leapbatch.errors import plural
from leapbatch.folder.atomic import open_dir, open_file, refuse_link
from leapbatch.folder.images import inspect_file
from leapbatch.folder.records import ImageRecord
from leapbatch.folder.results import METADATA_NAME, RESULTS_NAME, metadata_rows
from leapbatch.folder.state import JobState, LedgerState, Phase

VERIFY_VERSION = 1
IMAGE_KINDS = ("missing", "damaged")


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong in the folder; `kind` is missing, damaged, untracked, metadata or results."""

    kind: str
    detail: str
    path: str | None = None
    key: str | None = None
    index: int | None = None


def check_image(out_dir: Path, job: JobState, image: ImageRecord) -> Problem | None:
    """Return what is wrong with one recorded image on disk, or None if it is exactly as recorded."""
    path = out_dir / image.path
    if not path.is_file():
        return Problem("missing", "the file is missing", image.path, job.key, image.index)
    info = inspect_file(path)
    if info.problem is not None:
        return Problem("damaged", f"does not decode: {info.problem}", image.path, job.key, image.index)
    if info.bytes != image.bytes:
        return Problem(
            "damaged", f"{plural(info.bytes, 'byte')}, recorded {image.bytes}", image.path, job.key, image.index
        )
    if info.sha256 != image.sha256:
        return Problem("damaged", "sha256 differs from the ledger", image.path, job.key, image.index)
    if (info.width, info.height) != (image.width, image.height):
        return Problem(
            "damaged",
            f"decodes to {info.width}x{info.height}, recorded {image.width}x{image.height}",
            image.path,
            job.key,
            image.index,
        )
    return None


def _read_bytes(path: Path) -> bytes | None:
    """Return the bytes of the regular file at `path` (None when absent); a link or FIFO is a `UsageError`."""
    if not refuse_link(path):
        return None
    with os.fdopen(open_file(path, os.O_RDONLY), "rb") as handle:
        return handle.read()


def dataset_keys(out_dir: Path, state: LedgerState, manifest_keys: Collection[str] | None) -> frozenset[str]:
    """Return the keys of the dataset's jobs: the manifest's when known, else those `results.json` lists, else all.

    "All" is every ledger job not pruned: what a folder whose `results.json` is missing or unreadable can still hold.
    """
    if manifest_keys is not None:
        return frozenset(manifest_keys)
    try:
        data = _read_bytes(out_dir / RESULTS_NAME)
        if data is not None:
            return frozenset(str(entry["key"]) for entry in json.loads(data.decode("utf-8"))["jobs"])
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError):
        pass  # `_check_results` reports it
    return frozenset(key for key, job in state.jobs.items() if job.phase is not Phase.PRUNED)


def _check_metadata(
    out_dir: Path, state: LedgerState, keys: Collection[str], captions: Mapping[str, str | None] | None
) -> list[Problem]:
    """Compare `metadata.jsonl` with the rows the ledger gives; its `text` column only when the captions are known."""
    path = out_dir / METADATA_NAME
    expected = metadata_rows(state, captions if captions is not None else dict.fromkeys(keys))
    data = _read_bytes(path)
    if data is None:
        return [Problem("metadata", f"{METADATA_NAME} is missing", METADATA_NAME)] if expected else []
    try:
        rows = [json.loads(line) for line in data.decode("utf-8").split("\n") if line.strip()]
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return [Problem("metadata", f"{METADATA_NAME} is not JSON lines ({exc})", METADATA_NAME)]
    if captions is None:  # which caption the manifest gave cannot be told: any text will do
        rows = [{**row, "text": None} if isinstance(row, dict) else row for row in rows]
        expected = [{**row, "text": None} for row in expected]
    if rows != json.loads(json.dumps(expected)):
        have = {row.get("file_name") for row in rows if isinstance(row, dict)}
        want = {row["file_name"] for row in expected}
        detail = (
            f"{METADATA_NAME} disagrees with the ledger: {plural(len(want - have), 'image')} missing, "
            f"{len(have - want)} extra, {plural(len(rows), 'row')} for {plural(len(expected), 'image')}"
        )
        return [Problem("metadata", detail, METADATA_NAME)]
    return []


def _check_results(out_dir: Path, state: LedgerState, keys: Collection[str]) -> list[Problem]:
    path = out_dir / RESULTS_NAME
    data = _read_bytes(path)
    if data is None:
        return [Problem("results", f"{RESULTS_NAME} is missing", RESULTS_NAME)] if state.jobs else []
    try:
        document = json.loads(data.decode("utf-8"))
        entries = {entry["key"]: entry for entry in document["jobs"]}
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as exc:
        return [Problem("results", f"{RESULTS_NAME} is unreadable ({exc.__class__.__name__})", RESULTS_NAME)]
    wrong = []
    for key, job in state.jobs.items():
        if key not in keys:
            continue  # a job the manifest dropped (counted, not listed) or pruned
        entry = entries.get(key)
        files = [image.path for image in job.images]
        if entry is None or entry.get("state") != job.phase.value or entry.get("files") != files:
            wrong.append(key)
    if wrong:
        return [
            Problem(
                "results",
                f"{RESULTS_NAME} disagrees with the ledger on {plural(len(wrong), 'job')}",
                RESULTS_NAME,
                wrong[0],
            )
        ]
    return []


def verify_folder(
    out_dir: Path,
    state: LedgerState,
    manifest_keys: Collection[str] | None = None,
    captions: Mapping[str, str | None] | None = None,
) -> tuple[list[Problem], int]:
    """Return every problem in the folder, and how many images were checked (`manifest_keys`: see `dataset_keys`;
    `captions`: the manifest's, by key, when it is known)."""
    pairs = [(job, image) for job in state.jobs.values() if job.phase is Phase.FINISHED for image in job.images]
    recorded = {image.path for _, image in pairs}
    checked = len(pairs)
    problems = [problem for pair in pairs if (problem := check_image(out_dir, *pair)) is not None]
    images_dir = out_dir / "images"
    if refuse_link(images_dir) and images_dir.is_dir():
        descriptor = open_dir(images_dir)
        try:
            names = sorted(entry.name for entry in os.scandir(descriptor))
        finally:
            os.close(descriptor)
        for name in names:
            relative = f"images/{name}"
            if relative not in recorded:
                problems.append(Problem("untracked", "not in the ledger", relative))
    keys = dataset_keys(out_dir, state, manifest_keys)
    problems += _check_metadata(out_dir, state, keys, captions)
    problems += _check_results(out_dir, state, keys)
    return problems, checked


def verify_report(out_dir: Path, problems: list[Problem], checked: int, repaired: int = 0) -> dict[str, Any]:
    """Return the JSON shape of `verify --json` (documented in docs/cli.md)."""
    return {
        "version": VERIFY_VERSION,
        "folder": str(out_dir),
        "ok": not problems,
        "images_checked": checked,
        "repaired": repaired,
        "problems": [asdict(problem) for problem in problems],
    }
