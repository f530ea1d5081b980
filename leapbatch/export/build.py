"""`export_dataset`: a folder's images -> a finished export at DEST, or nothing at DEST at all.

The steps are the room's pipeline (`leapbatch.export`): list the images, optionally re-caption them, split them by
job, let the format lay them out in a `Staging` folder, add the card, commit. Any failure (an image that differs
from the ledger, a full disk, Ctrl-C) discards the staging folder and leaves DEST as it was.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path

from leapbatch.errors import UsageError
from leapbatch.export.card import CardFacts, card_text
from leapbatch.export.formats import ExportOptions, Format
from leapbatch.export.images import ExportImage
from leapbatch.export.split import assign
from leapbatch.export.staging import Staging

FORMATS = ("imagefolder", "kohya", "parquet", "webdataset")  # each a module of this package
CARD_NAME = "README.md"


@dataclass(frozen=True, slots=True)
class ExportSummary:
    """What an export wrote: images and jobs per split, and its files."""

    dest: Path
    splits: dict[str, tuple[int, int]]  # split -> (jobs, images)
    files: int
    bytes: int


def split_images(
    images: Sequence[ExportImage], parts: Sequence[tuple[str, Fraction]], seed: int, stratify: str | None
) -> dict[str, list[ExportImage]]:
    """Return the images of each split: jobs are split (`leapbatch.export.split`), their images follow them."""
    by_job: dict[str, list[ExportImage]] = {}
    for image in images:
        by_job.setdefault(image.key, []).append(image)
    if stratify is not None and not any(stratify in group[0].variables for group in by_job.values()):
        known = sorted({name for group in by_job.values() for name in group[0].variables})
        raise UsageError(
            f"--stratify {stratify}: no job has a variable of that name",
            hint="variables: " + (", ".join(known) if known else "none (the manifest has no axes)"),
        )

    def stratum(group: list[ExportImage]) -> str:
        value = group[0].variables.get(stratify or "")
        return "" if value is None else repr(value)

    groups = assign(list(by_job.values()), lambda g: g[0].key, parts, seed, stratum if stratify else None)
    return {split: [image for group in chosen for image in group] for split, chosen in groups.items()}


def export_dataset(
    images: Sequence[ExportImage],
    dest: Path,
    fmt: str,
    options: ExportOptions,
    facts: CardFacts,
    *,
    parts: Sequence[tuple[str, Fraction]],
    seed: int = 0,
    stratify: str | None = None,
) -> ExportSummary:
    """Write the export of `images` at `dest` (replacing an earlier export there) and return what it holds."""
    splits = split_images(images, parts, seed, stratify)
    staging = Staging(dest)
    try:
        layout = writer(fmt)(splits, staging, options)
        staging.write(CARD_NAME, card_text(replace(facts, format=fmt), splits, layout).encode("utf-8"))
        staging.commit()
    except BaseException:
        staging.discard()
        raise
    counts = {split: (len({i.key for i in chosen}), len(chosen)) for split, chosen in splits.items()}
    return ExportSummary(dest, counts, len(staging.sums) + 1, sum(size for _, size in staging.sums.values()))


def writer(fmt: str) -> Format:
    """Return the `write` of an export format, imported when first used (parquet's pulls in pyarrow)."""
    if fmt not in FORMATS:
        raise ValueError(f"no export format {fmt!r}")
    module = importlib.import_module(f"leapbatch.export.{fmt}")
    write: Format = module.write
    return write
