"""Write the gallery folder: the page shipped with leapbatch, thumbnails named by content, and the data script.

    <dest>/index.html, gallery.js, gallery.css   the page (leapbatch/view/static/), rewritten only when they differ
    <dest>/thumbs/<sha256[:32]>.webp              made for images that have none yet
    <dest>/data.js                                 the catalog (`gallery_data`), written last and atomically

The order is what keeps an open page whole: thumbnails first, then the data that names them, in one rename; a
page that reloads `data.js` sees the old catalog or the new one, never a name without its file. Every path the
page uses is relative (the folder is found from the gallery as `folder` in the data), so the gallery works from
`file://`, from any static host, and after the output folder is moved with it. Nothing is written through a link:
a link at `<dest>` or at any name in it is refused (`leapbatch.folder.atomic`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path

from leapbatch.folder.atomic import make_dir, open_file, write_atomic
from leapbatch.view.catalog import Catalog, Entry
from leapbatch.view.gallery_data import document, script
from leapbatch.view.thumbs import make_thumbs

PAGE_FILES = ("index.html", "gallery.js", "gallery.css")
DATA_NAME = "data.js"
THUMBS_DIR = "thumbs"
DAMAGED_REASON = "an image is missing on disk or differs from the ledger: `leapbatch verify OUT --repair` mends it"


@dataclass(frozen=True, slots=True)
class GalleryResult:
    """What a build wrote: the page's path, the images shown, thumbnails made now, and images that could not be."""

    index: Path
    images: int
    thumbs_made: int
    damaged: int
    revision: str


def page_file(name: str) -> bytes:
    """Return one of the page's files as shipped with leapbatch."""
    return resources.files("leapbatch.view").joinpath("static", name).read_bytes()


def _same(path: Path, data: bytes) -> bool:
    try:
        fd = open_file(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    with os.fdopen(fd, "rb") as fh:
        return fh.read() == data


def _without_damaged(catalog: Catalog, damaged: frozenset[str]) -> Catalog:
    """Return the catalog with the pictures that could not be read dropped, and their entries saying so."""
    if not damaged:
        return catalog
    entries: list[Entry] = []
    for entry in catalog.entries:
        kept = tuple(p for p in entry.pictures if p.sha256 not in damaged)
        if len(kept) != len(entry.pictures):
            entry = replace(entry, pictures=kept, reason=DAMAGED_REASON)
        entries.append(entry)
    return replace(catalog, entries=tuple(entries))


def build_gallery(
    folder: Path, dest: Path, catalog: Catalog, *, tick: Callable[[], None] | None = None
) -> GalleryResult:
    """Write the gallery of the output folder `folder` to `dest` (see the module docstring)."""
    make_dir(dest)
    make_dir(dest / THUMBS_DIR)
    for name in PAGE_FILES:
        data = page_file(name)
        if not _same(dest / name, data):
            write_atomic(dest / name, data)
    pictures = [p for entry in catalog.entries for p in entry.pictures]
    made = make_thumbs(folder, dest / THUMBS_DIR, pictures, tick=tick)
    shown = _without_damaged(catalog, made.damaged)
    relative = os.path.relpath(folder.resolve(), dest.resolve()).replace(os.sep, "/")
    doc = document(shown, folder=relative.rstrip("/") + "/")
    text = script(doc).encode("utf-8")
    if not _same(dest / DATA_NAME, text):  # an open page reloads it only when its revision changed anyway
        write_atomic(dest / DATA_NAME, text)
    images = sum(len(entry.pictures) for entry in shown.entries)
    return GalleryResult(dest / "index.html", images, made.made, len(made.damaged), str(doc["revision"]))
