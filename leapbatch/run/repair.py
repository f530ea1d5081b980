"""Repair an output folder after `verify`: fetch missing or damaged images again, rewrite derived files.

An image can be fetched again only while its remote job exists (not deleted, not from a `run --local`); the new
bytes are verified like any download. A job the server no longer has (or will not answer for) is skipped: the
other jobs' images are still restored. If they differ from the recorded sha256 (the server re-encoded them), a new
`finished` record states the new truth. `metadata.jsonl` and `results.json` are derived from the ledger, so they
are simply written again, for the dataset's jobs (the manifest's: `leapbatch.folder.verify.dataset_keys`).
Untracked files are reported by `verify` but never deleted: they are not ours to delete.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from leapbatch import errors
from leapbatch.api.client import LeapClient
from leapbatch.api.download import recorded_uri
from leapbatch.folder.images import ImageStore
from leapbatch.folder.ledger import Ledger, now
from leapbatch.folder.records import FinishedRecord, ImageRecord
from leapbatch.folder.results import job_of, write_results
from leapbatch.folder.state import LedgerState
from leapbatch.folder.verify import IMAGE_KINDS, Problem, dataset_keys
from leapbatch.jobs import Job
from leapbatch.run.fetch import download_image

if TYPE_CHECKING:
    import httpx  # the download client's type only: httpx's home is leapbatch.api


def fetchable(state: LedgerState, problems: Sequence[Problem]) -> list[Problem]:
    """Return the image problems whose remote job still exists, so the image can be fetched again."""
    return [p for p in problems if p.kind in IMAGE_KINDS and p.key is not None and state.jobs[p.key].remote_exists]


async def refetch_images(
    out_dir: Path,
    ledger: Ledger,
    problems: Sequence[Problem],
    *,
    client: LeapClient,
    downloads: httpx.AsyncClient,
) -> int:
    """Fetch the images of `problems` again and record them; return how many images were restored."""
    store = ImageStore(out_dir)
    by_job: defaultdict[str, set[int]] = defaultdict(set)
    for problem in problems:
        if problem.key is not None and problem.index is not None:
            by_job[problem.key].add(problem.index)
    restored = 0
    for key, indexes in by_job.items():
        job = ledger.state.jobs[key]
        assert job.inference_id is not None
        try:
            entity = await client.find_one(job.model, job.inference_id)
        except errors.ApiUnavailableError:
            raise
        except errors.ApiError:
            continue  # gone from the server, or it will not say: the other jobs are still worth restoring
        images: list[ImageRecord] = list(job.images)
        for position, image in enumerate(images):
            if image.index not in indexes or image.index >= len(entity.images):
                continue
            uri = entity.images[image.index].uri
            try:
                stored = await download_image(
                    downloads, store, uri, key=key, index=image.index, width=image.width, height=image.height
                )
            except errors.DownloadError:
                continue
            images[position] = ImageRecord(
                index=image.index,
                uri=recorded_uri(uri),
                path=stored.path,
                sha256=stored.sha256,
                bytes=stored.bytes,
                width=stored.width,
                height=stored.height,
            )
            restored += 1
        if images != list(job.images):
            ledger.append(FinishedRecord(t=now(), key=key, inference_id=job.inference_id, images=images))
    return restored


def rewrite_derived(out_dir: Path, state: LedgerState, jobs: Sequence[Job] | None, *, name: str) -> None:
    """Write `metadata.jsonl` and `results.json` again from the ledger, for the manifest's `jobs`.

    With `jobs` None (the manifest is not known), for the ledger's jobs among those `results.json` lists (or, if it
    lists none, every job not pruned).
    """
    if jobs is None:
        keys = dataset_keys(out_dir, state, None)
        jobs = [job_of(js) for js in state.jobs.values() if js.key in keys]
    write_results(out_dir, jobs, state, name=name)
