"""Results for people and tools, derived from the ledger: `results.json` and `metadata.jsonl`.

Both are pure functions of the manifest's jobs and the ledger state, written atomically (temp file, fsync,
rename) at the end of a run and on interrupt, so a reader never sees half a file, and never through a link (a link
at either name is refused: `leapbatch.folder.atomic`). Every request they rebuild was checked to be a
`CreateInferenceDto` when the ledger was read (`leapbatch.folder.ledger`), so rebuilding one cannot fail here.
`metadata.jsonl` follows the Hugging Face `imagefolder` convention (`file_name` relative to the folder, then one
column per field, the same columns on every row), so `datasets.load_dataset("imagefolder", data_dir=OUT)` loads
the dataset.

The dataset is the manifest: both files hold the manifest's jobs only. Ledger jobs the manifest dropped (an axis
cut, a prompt edited) are counted in `results.json` (`not_in_manifest`), never listed, and their images have no
metadata row, until `leapbatch prune` removes them; pruned jobs are no part of either file.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from leapbatch import __version__
from leapbatch.errors import UsageError
from leapbatch.folder.atomic import lstat_or_none, open_file, write_text_atomic
from leapbatch.folder.records import ImageRecord
from leapbatch.folder.state import JobState, LedgerState, Phase
from leapbatch.jobs import Job
from leapbatch.wire import SPEC_DEFAULTS, CreateInferenceDto

RESULTS_NAME = "results.json"
METADATA_NAME = "metadata.jsonl"
RESULTS_VERSION = 1
STAMP_NAME = ".leapbatch.derived"  # what the derived files were written for (see `write_results`)
# The request fields that are columns of every metadata row, whether or not a job sets them (docs/dataset.md).
REQUEST_COLUMNS = (
    "prompt",
    "negative_prompt",
    "seed",
    "steps",
    "number_of_images",
    "prompt_strength",
    "version",
    "enhance_prompt",
    "restore_faces",
    "upscale_by",
    "sampler",
)
# Names a variable may share with a request field (an axis named `seed` sets the seed): their values are in the
# request columns already, so they get no `var_` column of their own.
_WIRE = {name: field.alias or name for name, field in CreateInferenceDto.model_fields.items()}
_DEFAULT_STRENGTH = float(cast(int, SPEC_DEFAULTS["promptStrength"]))
REQUEST_NAMES = frozenset({"model", *CreateInferenceDto.model_fields})


def _snake_request(request: dict[str, Any]) -> dict[str, Any]:
    dto = CreateInferenceDto.model_validate(request)
    return dto.model_dump(exclude={"webhook_url"}, exclude_none=True)


def job_of(state: JobState) -> Job:
    """Return the job a ledger state records, rebuilt from its request as sent."""
    return Job(state.key, state.model, CreateInferenceDto.model_validate(state.request), state.variables)


def _job_entry(job: Job, state: JobState | None) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "key": job.key,
        "model": job.model_id,
        "request": _snake_request(job.request.to_wire()),
        "variables": dict(job.variables),
        "state": state.phase.value if state is not None else "pending",
        "inference_id": state.inference_id if state is not None else None,
        "remote_deleted": state.deleted if state is not None else False,
        "files": [image.path for image in state.images] if state is not None else [],
        "images": [image.model_dump() for image in state.images] if state is not None else [],
    }
    if state is not None and state.failure is not None and state.phase is Phase.FAILED:
        failure = state.failure
        entry["failure"] = {"stage": failure.stage.value, "reason": failure.reason, "http_status": failure.http_status}
    return entry


def results_document(jobs: Sequence[Job], state: LedgerState, *, name: str) -> dict[str, Any]:
    """Return `results.json`: every job of the manifest with its outcome, and how many ledger jobs it dropped."""
    entries = [_job_entry(job, state.jobs.get(job.key)) for job in jobs]
    counts: dict[str, int] = {}
    for entry in entries:
        counts[entry["state"]] = counts.get(entry["state"], 0) + 1
    return {
        "version": RESULTS_VERSION,
        "tool": f"leapbatch {__version__}",
        "name": name,
        "written_at": datetime.now(UTC).isoformat(),
        "jobs_total": len(jobs),
        "counts": counts,
        "images": sum(len(entry["files"]) for entry in entries),
        "not_in_manifest": len(dropped_jobs(state, {job.key for job in jobs})),
        "jobs": entries,
    }


def dropped_jobs(state: LedgerState, keys: Collection[str]) -> list[JobState]:
    """Return the ledger's jobs that are not among `keys` (the manifest's) and not pruned yet, in ledger order."""
    return [js for js in state.jobs.values() if js.key not in keys and js.phase is not Phase.PRUNED]


def metadata_row(js: JobState, image: ImageRecord, text: str, variable_names: Sequence[str]) -> dict[str, Any]:
    """Return the metadata row of one image: the same columns, in the same order, with the same types, on every row
    of every folder (variables aside: one `var_<name>` column per name of `variable_names`, text or null)."""
    request = js.request
    row: dict[str, Any] = {"file_name": image.path, "text": text, "key": js.key, "index": image.index}
    row["model_id"] = js.model
    row["inference_id"] = js.inference_id
    for name in REQUEST_COLUMNS:
        row[name] = request.get(_WIRE[name])
    row["negative_prompt"] = row["negative_prompt"] or ""
    row["prompt_strength"] = float(request.get("promptStrength", _DEFAULT_STRENGTH))  # 7 and 7.0 alike: a float
    row["width"], row["height"] = image.width, image.height
    for name in variable_names:
        value = js.variables.get(name)
        row[f"var_{name}"] = None if value is None else str(value)
    row["sha256"] = image.sha256
    return row


def variable_columns(jobs: Iterable[JobState]) -> list[str]:
    """Return the names of the `var_` columns of `jobs`' rows: their variables that are not request fields, sorted."""
    return sorted({name for js in jobs for name in js.variables} - REQUEST_NAMES)


def metadata_rows(state: LedgerState, captions: Mapping[str, str | None]) -> list[dict[str, Any]]:
    """Return one `imagefolder` metadata row per image of the dataset's finished jobs, in ledger order.

    `captions` maps the dataset's job keys (the manifest's) to their captions (None: the prompt).
    """
    finished = [js for js in state.jobs.values() if js.phase is Phase.FINISHED and js.key in captions]
    names = variable_columns(finished)
    rows: list[dict[str, Any]] = []
    for js in finished:
        caption = captions[js.key]
        text = str(js.request.get("prompt", "")) if caption is None else caption
        rows.extend(metadata_row(js, image, text, names) for image in js.images)
    return rows


def results_text(document: dict[str, Any]) -> str:
    """Return `results.json`'s text: the document indented, each job on one line of its own (json's C encoder
    writes those; an indented dump of every job would be done in Python, 10x slower)."""
    head = {name: value for name, value in document.items() if name != "jobs"}
    text = json.dumps(head, indent=2, ensure_ascii=False)
    entries = ",\n".join("    " + json.dumps(entry, ensure_ascii=False) for entry in document["jobs"])
    listed = f"[\n{entries}\n  ]" if entries else "[]"
    return f'{text[:-2]},\n  "jobs": {listed}\n}}\n'


def _stamp(jobs: Sequence[Job], state: LedgerState, name: str) -> dict[str, Any]:
    """Return what the derived files are a function of: the dataset's name and jobs, and the ledger's job changes."""
    listed = "\n".join(job.key if job.caption is None else f"{job.key}\t{job.caption}" for job in jobs)
    keys = hashlib.sha256(listed.encode("utf-8", "surrogatepass")).hexdigest()
    return {"v": 2, "name": name, "jobs_sha256": keys, "changes": state.changes}


def _files(out_dir: Path) -> list[list[int]] | None:
    """Return the size and modification time of the derived files (None if either is not a regular file)."""
    found = [lstat_or_none(out_dir / name) for name in (RESULTS_NAME, METADATA_NAME)]
    if any(entry is None or not stat.S_ISREG(entry.st_mode) for entry in found):
        return None
    return [[entry.st_size, entry.st_mtime_ns] for entry in found if entry is not None]


def _unchanged(out_dir: Path, stamp: dict[str, Any]) -> bool:
    """Return whether the derived files are the ones the stamp beside them says were written for `stamp`."""
    try:
        with os.fdopen(open_file(out_dir / STAMP_NAME, os.O_RDONLY), "rb") as handle:
            written = json.loads(handle.read(4096))
    except (OSError, ValueError, UsageError):
        return False
    files = _files(out_dir)
    return isinstance(written, dict) and files is not None and written == {**stamp, "files": files}


def write_results(out_dir: Path, jobs: Sequence[Job], state: LedgerState, *, name: str) -> None:
    """Write `results.json` and `metadata.jsonl` of the manifest's `jobs` atomically, unless they are already
    what they would be: the stamp beside them (`STAMP_NAME`) names the dataset and the ledger's job changes they
    were written for, and their size and time, so a resume that changed no job rewrites nothing, and a file
    edited or replaced since is written again."""
    stamp = _stamp(jobs, state, name)
    if _unchanged(out_dir, stamp):
        return
    document = results_document(jobs, state, name=name)
    write_text_atomic(out_dir / RESULTS_NAME, results_text(document))
    rows = metadata_rows(state, {job.key: job.caption for job in jobs})
    lines = [json.dumps(row, ensure_ascii=False, sort_keys=False) for row in rows]
    write_text_atomic(out_dir / METADATA_NAME, "".join(line + "\n" for line in lines))
    files = _files(out_dir)
    if files is not None:
        try:
            write_text_atomic(out_dir / STAMP_NAME, json.dumps({**stamp, "files": files}))
        except (UsageError, OSError):  # a link or a folder at its name: left alone; the files are written every time
            return
