"""Thumbnails: WebP copies of the folder's images, at most `THUMB_SIDE` pixels a side, named by content.

A thumbnail's name is the first 32 hex digits of its image's sha256 (`gallery_data.thumb_name`), so it can never
show another image: an image that changes gets a new name, and one that exists is never made again (the gallery is
made incrementally). Before one is made, the image's bytes are read without following a link and checked against
the ledger (size and sha256): a missing or damaged image gets no thumbnail, and the gallery says so.

A thumbnail is a cache, not a record: it is written to a temporary name and renamed (never through a link), but
not fsynced one by one; an empty file at a thumbnail's name (what a crash can leave) is made again. An image whose
thumbnail exists is not read again: the gallery shows what the ledger recorded, `leapbatch verify` checks the disk.
"""

from __future__ import annotations

import hashlib
import io
import os
import secrets
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from leapbatch.errors import UsageError
from leapbatch.folder.atomic import lstat_or_none, open_file, refuse_link
from leapbatch.view.catalog import Picture
from leapbatch.view.gallery_data import thumb_name

THUMB_SIDE = 256
WEBP_QUALITY = 80
_WORKERS = max(1, min(8, os.cpu_count() or 1))


@dataclass(frozen=True, slots=True)
class ThumbResult:
    """What became of the thumbnails: how many were made now, and the images that could not be read as recorded."""

    made: int
    damaged: frozenset[str]  # sha256 of images missing on disk or differing from the ledger


def thumbnail(data: bytes) -> bytes:
    """Return the WebP thumbnail of an image's bytes (its longer side at most THUMB_SIDE pixels)."""
    with Image.open(io.BytesIO(data)) as image:
        image.draft("RGB", (THUMB_SIDE, THUMB_SIDE))  # JPEGs decode at a fraction of their size; PNGs ignore it
        small = image.convert("RGBA" if "A" in image.getbands() else "RGB")
        small.thumbnail((THUMB_SIDE, THUMB_SIDE), Image.Resampling.LANCZOS)
        out = io.BytesIO()
        small.save(out, "WEBP", quality=WEBP_QUALITY, method=3)
        return out.getvalue()


def read_checked(folder: Path, picture: Picture, size: int | None = None) -> bytes | None:
    """Return the image's bytes if its file is there, no link, and matches the record's sha256; else None."""
    try:
        fd = open_file(folder / picture.path, os.O_RDONLY)
    except (OSError, ValueError, UsageError):  # missing, or a link or FIFO at its name: not as recorded
        return None
    with os.fdopen(fd, "rb") as fh:
        data = fh.read()
    if (size is not None and len(data) != size) or hashlib.sha256(data).hexdigest() != picture.sha256:
        return None
    return data


def _present(path: Path) -> bool:
    found = lstat_or_none(path)
    return found is not None and found.st_size > 0 and not os.path.islink(path)


def _write(path: Path, data: bytes) -> None:
    refuse_link(path)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def make_thumbs(
    folder: Path, thumbs: Path, pictures: Iterable[Picture], *, tick: Callable[[], None] | None = None
) -> ThumbResult:
    """Make the thumbnails `thumbs/` lacks for `pictures` of the output folder `folder` (in worker threads)."""
    wanted: dict[str, Picture] = {}
    for picture in pictures:
        wanted.setdefault(picture.sha256, picture)
    todo = [p for p in wanted.values() if not _present(thumbs / thumb_name(p.sha256))]

    def one(picture: Picture) -> bool:
        data = read_checked(folder, picture)
        ok = False
        if data is not None:
            try:
                _write(thumbs / thumb_name(picture.sha256), thumbnail(data))
                ok = True
            except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
                ok = False
        if tick is not None:
            tick()
        return ok

    with ThreadPoolExecutor(_WORKERS) as pool:
        results = list(pool.map(one, todo))
    damaged = frozenset(p.sha256 for p, ok in zip(todo, results, strict=True) if not ok)
    return ThumbResult(sum(results), damaged)
