"""What every export format shares: its options, and what it tells the dataset card.

A format is a module with `write(splits, staging, options) -> Layout`: it lays the images of each split (in the
order given) out in the staging folder and returns where each split's data files are, for the card's `configs`.
Sharded formats cut a split with `shard_ranges`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from leapbatch.export.images import ExportImage
from leapbatch.export.staging import Staging

DEFAULT_SHARD_BYTES = 500 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class ExportOptions:
    """How to lay an export out (each format reads the options it has)."""

    name: str  # the dataset's name
    shard_bytes: int = DEFAULT_SHARD_BYTES  # webdataset, parquet: image bytes per shard, at most (one image more)
    repeats: int = 1  # kohya: how many times a training epoch repeats each image
    class_name: str | None = None  # kohya: the class token (default: the dataset's name)


@dataclass(frozen=True, slots=True)
class Layout:
    """Where an export's data files are, for the dataset card: split -> a glob relative to the export's root."""

    data_files: dict[str, str] = field(default_factory=dict)
    loader: str | None = None  # the `datasets` builder that reads them (None: not a `datasets` layout)


def shard_ranges(sizes: Sequence[int], shard_bytes: int) -> list[range]:
    """Return the shards of items of `sizes`, in order: each ends before the item that would pass `shard_bytes`."""
    out: list[range] = []
    start, total = 0, 0
    for i, size in enumerate(sizes):
        if i > start and total + size > shard_bytes:
            out.append(range(start, i))
            start, total = i, 0
        total += size
    if start < len(sizes):
        out.append(range(start, len(sizes)))
    return out


class Format(Protocol):
    """An export format's `write`."""

    def __call__(
        self, splits: Mapping[str, Sequence[ExportImage]], staging: Staging, options: ExportOptions
    ) -> Layout: ...
