"""Writing an export so that no reader ever sees half of one, and nothing is written through a link.

A `Staging` is a fresh folder beside the destination (`.<name>.part-<pid>`, created exclusively). Formats add files
to it by relative path; each file's sha256 and size are kept as it is written. `commit` writes `SHA256SUMS` (the
export's own manifest of hashes, in `sha256sum -c` form, sorted by path), flushes everything to disk once, and
only then puts the folder at the destination: renamed into place, or, when the destination is an earlier export,
swapped with it (the old one is removed after). A destination that is a link, a file, or a folder with anything
but an earlier export in it is refused before any work. `discard` (on any failure) removes the staging folder; one
left by a killed export is named as partial and removed by the next export to the same place.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from leapbatch.errors import UsageError
from leapbatch.folder.atomic import kind_error, lstat_or_none, shown

SUMS_NAME = "SHA256SUMS"
_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def check_destination(dest: Path) -> bool:
    """Raise `UsageError` unless `dest` may receive an export; return whether an earlier export is there."""
    found = lstat_or_none(dest)
    if found is None:
        return False
    if not stat.S_ISDIR(found.st_mode):
        raise kind_error(dest, found.st_mode, want_dir=True)
    entries = os.listdir(dest)
    if not entries:
        return False
    if SUMS_NAME not in entries:
        raise UsageError(
            f"{shown(dest)} holds files that are not a leapbatch export",
            hint="export to a new or empty folder (--to); an earlier export there is replaced",
        )
    return True


def _sweep(dest: Path) -> None:
    """Remove the staging folders a killed export to `dest` left (their process is gone)."""
    prefix = f".{dest.name}.part-"
    for entry in os.scandir(dest.parent):
        pid = entry.name.removeprefix(prefix)
        if entry.name.startswith(prefix) and pid.isdigit() and not _alive(int(pid)) and entry.is_dir():
            shutil.rmtree(entry.path, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Staging:
    """A folder an export is written into, then committed at `dest` whole."""

    def __init__(self, dest: Path) -> None:
        self.dest = dest
        self.replaces = check_destination(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        _sweep(dest)
        self.root = dest.parent / f".{dest.name}.part-{os.getpid()}"
        if lstat_or_none(self.root) is not None:
            shutil.rmtree(self.root)
        os.mkdir(self.root)
        self.sums: dict[str, tuple[str, int]] = {}  # relative path -> (sha256, size)
        self._dirs: set[str] = {""}

    def _path(self, relative: str) -> Path:
        parts = relative.split("/")
        if relative in self.sums or relative == SUMS_NAME or any(p in ("", ".", "..") for p in parts):
            raise ValueError(f"bad or repeated export path {relative!r}")
        for i in range(1, len(parts)):
            folder = "/".join(parts[:i])
            if folder not in self._dirs:
                os.mkdir(self.root / folder)
                self._dirs.add(folder)
        return self.root / relative

    def write(self, relative: str, data: bytes) -> None:
        """Write a file of the export at `relative` (a `/`-separated path inside it)."""
        with os.fdopen(os.open(self._path(relative), _FLAGS, 0o644), "wb") as handle:
            handle.write(data)
        self.sums[relative] = (hashlib.sha256(data).hexdigest(), len(data))

    @contextmanager
    def open(self, relative: str) -> Iterator[BinaryIO]:
        """Open a file of the export for writing in pieces (a tar or Parquet shard); hashed once it is closed."""
        path = self._path(relative)
        with os.fdopen(os.open(path, _FLAGS, 0o644), "wb") as handle:
            yield handle
        digest, size = hashlib.sha256(), 0
        with path.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
                size += len(chunk)
        self.sums[relative] = (digest.hexdigest(), size)

    def commit(self) -> None:
        """Write `SHA256SUMS`, flush the export to disk, and put it at the destination (replacing an earlier one)."""
        listing = "".join(f"{digest}  {path}\n" for path, (digest, _) in sorted(self.sums.items()))
        with os.fdopen(os.open(self.root / SUMS_NAME, _FLAGS, 0o644), "w", encoding="utf-8") as handle:
            handle.write(listing)
        os.sync()  # one flush of everything written: cheaper than a fsync per file, as safe before the rename
        if self.replaces and check_destination(self.dest):
            old = self.dest.parent / f".{self.dest.name}.old-{os.getpid()}"
            os.rename(self.dest, old)
            os.rename(self.root, self.dest)
            shutil.rmtree(old, ignore_errors=True)
        else:
            if lstat_or_none(self.dest) is not None:
                os.rmdir(self.dest)  # empty (checked): rename cannot replace a folder with another
            os.rename(self.root, self.dest)
        fd = os.open(self.dest.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def discard(self) -> None:
        """Remove the staging folder (the destination is left as it was)."""
        shutil.rmtree(self.root, ignore_errors=True)
