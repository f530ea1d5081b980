"""The `images/` folder of an output folder: safe paths, `.part` files, verified images moved into place.

Invariants, for every output folder `root`:

- A file at `images/<key>-<index>.<ext>` is complete and verified: it answered 200 with an image Content-Type,
  its magic bytes match that type, Pillow decodes every pixel, it has the requested size, and it was fsynced
  before `os.replace` moved it into place (then the folder is fsynced too). Nothing is ever written to the final
  path in place, so a crash leaves either the old state or the new file, never half of one.
- Bytes in flight live in `images/<key>-<index>.part` (a `PartFile`). Every failure, cancellation included,
  removes it; only a crash can leave one behind, and `sweep_parts` removes those when the next run starts (under
  the folder lock). A `.part` file is opened with O_NOFOLLOW and read back through the same descriptor: a
  planted link never redirects the write, and the bytes verified are the bytes written.
- Names derive only from job keys (64 lower-case hex digits) and integer indexes, never from prompt text, and
  every path is resolved (symlinks followed) and refused unless it stays inside `root`.
- No links (`leapbatch.folder.atomic`): `images` must be a real folder and nothing leapbatch opens, renames over or
  deletes in it may be a symbolic link. `sweep_parts`, the check a run makes before it starts, refuses a folder
  whose `images` is a link or not a folder, or holds any link at all, before it deletes anything; `discard_job`
  also checks every name before it deletes one; the final name of an image is checked before the rename. Deleting
  a link would be harmless (unlink removes the link, never its target), but leapbatch never made one, so a link
  there was planted: it is refused and left for the user to look at, never silently removed.

Nothing here touches the network: `leapbatch.api.download` streams a body into a `PartFile`, and
`leapbatch.run.fetch` joins the two. Decoding and the fsyncs block, so `ImageStore.settle` is meant for a worker
thread, where it also renames: a cancellation can never separate "fsynced" from "renamed".
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from leapbatch import crashpoints
from leapbatch.errors import DownloadError, DownloadFailure, UsageError
from leapbatch.folder.atomic import (
    fsync_dir,
    kind_error,
    link_error,
    lstat_or_none,
    make_dir,
    open_dir,
    open_file,
    shown,
)
from leapbatch.folder.imagecheck import (
    CONTENT_TYPES,
    MAGIC_LENGTH,
    ImageError,
    ImageFormat,
    UndecodableError,
    decode,
    describe_head,
    media_type,
    sniff,
)
from leapbatch.folder.records import ImageRecord

IMAGES_DIR = "images"
PART_SUFFIX = ".part"
EXTENSIONS = frozenset({"png", "jpg", "webp"})
_KEY = re.compile(r"[0-9a-f]{64}")
_COPY_HINT = "run `leapbatch verify` on that folder (with --repair) first"


@dataclass(frozen=True, slots=True)
class StoredImage:
    """One verified image in place: where (relative posix path), what (sha256, size) and whence (uri, index)."""

    path: str
    sha256: str
    bytes: int
    width: int
    height: int
    content_type: str
    uri: str
    index: int


@dataclass(frozen=True, slots=True)
class ImageInfo:
    """What a file on disk holds; `problem` says why it is not a good image (None when it is)."""

    sha256: str
    bytes: int
    ext: str | None
    width: int | None
    height: int | None
    problem: str | None


class PartFile:
    """The `.part` file of one download: a body sink that checks the type and magic bytes as they arrive.

    It hashes and counts what it is given; `where` and `uri` go into the `DownloadError`s it raises.
    """

    def __init__(self, path: Path, *, where: str, uri: str) -> None:
        self.path = path
        self.where = where
        self.uri = uri
        self.digest = hashlib.sha256()
        self.size = 0
        self.head = b""
        self.content_type = ""
        self._fh: BinaryIO | None = None

    def accept(self, content_type: str | None) -> None:
        """Refuse a Content-Type that is not an accepted image type."""
        bare = media_type(content_type)
        if bare not in CONTENT_TYPES:
            raise self._error(
                f"content type {bare or '(none)'} is not {', '.join(sorted(CONTENT_TYPES))}",
                DownloadFailure.NOT_AN_IMAGE,
            )
        self.content_type = bare

    def write(self, chunk: bytes) -> None:
        """Append a chunk, hashing it; refuse the body as soon as its magic bytes disagree with its type."""
        if self._fh is None:
            self._open()
        assert self._fh is not None
        first = self.size == 0
        had_head = len(self.head) == MAGIC_LENGTH
        self._fh.write(chunk)
        self.digest.update(chunk)
        self.size += len(chunk)
        if not had_head:
            self.head = (self.head + chunk)[:MAGIC_LENGTH]
        if first:
            self._fh.flush()  # so a crash right after leaves it on disk
            crashpoints.crashpoint("mid-download")
        if not had_head and len(self.head) == MAGIC_LENGTH:
            self.format()  # refuse a mislabelled body now, not after 64 MiB

    def format(self) -> ImageFormat:
        """Return the format the first bytes name, or raise if they name none or disagree with the type."""
        fmt = sniff(self.head)
        if not self.head:
            raise self._error("the body is empty", DownloadFailure.BAD_BYTES)
        if fmt is None:
            raise self._error(
                f"bytes are not a PNG, JPEG or WebP ({describe_head(self.head)})", DownloadFailure.BAD_BYTES
            )
        if fmt.content_type != self.content_type:
            raise self._error(
                f"bytes are a {fmt.name} but the content type says {self.content_type}", DownloadFailure.BAD_BYTES
            )
        return fmt

    def verify_and_sync(self, fmt: ImageFormat, expect: tuple[int, int]) -> tuple[int, int]:
        """Decode the written bytes as `fmt` of size `expect`, then fsync and close the file."""
        if self._fh is None:
            raise RuntimeError("verify a .part file that was never written")
        try:
            self._fh.flush()
            size = decode(self._fh, fmt, expect)  # the same descriptor: never the name again
            os.fsync(self._fh.fileno())
        except ImageError as exc:
            failure = DownloadFailure.UNDECODABLE if isinstance(exc, UndecodableError) else DownloadFailure.WRONG_SIZE
            raise self._error(str(exc), failure) from None
        finally:
            self._fh.close()
        return size

    def discard(self) -> None:
        """Close and remove the file, if it is still there."""
        if self._fh is not None:
            self._fh.close()
        self.path.unlink(missing_ok=True)

    def _open(self) -> None:
        make_dir(self.path.parent)  # `images` itself: a link or a file there is refused
        # open_file adds O_NOFOLLOW: a planted symlink at the .part name must not redirect the write. Mode 0o666 lets
        # the umask decide, as for any file the user creates. O_TRUNC: a crash's leftover is overwritten. O_RDWR:
        # `verify_and_sync` decodes what was written through this descriptor, not by opening the name again.
        flags = os.O_RDWR | os.O_CREAT | os.O_TRUNC
        self._fh = os.fdopen(open_file(self.path, flags, 0o666), "w+b")

    def _error(self, text: str, failure: DownloadFailure) -> DownloadError:
        return DownloadError(f"{self.where}: {text}", uri=self.uri, failure=failure)


class ImageStore:
    """The `images/` folder of one output folder: safe paths, `.part` files, and verified images put in place."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.images = root / IMAGES_DIR

    def image_path(self, key: str, index: int, ext: str = "png") -> Path:
        """Return the path of image `index` of job `key`, refusing anything that could leave the folder."""
        if ext not in EXTENSIONS:
            raise ValueError(f"image extension must be one of {sorted(EXTENSIONS)}, got {ext!r}")
        return self._inside(f"{_stem(key, index)}.{ext}")

    def part_path(self, key: str, index: int) -> Path:
        """Return the temporary path an image is downloaded to before it is verified."""
        return self._inside(f"{_stem(key, index)}{PART_SUFFIX}")

    def part(self, key: str, index: int, *, where: str, uri: str) -> PartFile:
        """Return the `.part` file for image `index` of job `key` (its path is checked before any byte is sent)."""
        return PartFile(self.part_path(key, index), where=where, uri=uri)

    def settle(self, part: PartFile, key: str, index: int, expect: tuple[int, int]) -> StoredImage:
        """Verify a complete `.part` file, fsync it, move it into place and fsync the folder (blocks: use a thread).

        A link at the final name is refused (`image_path`); `os.replace` never follows one at either name.
        """
        fmt = part.format()
        width, height = part.verify_and_sync(fmt, expect)
        final = self.image_path(key, index, fmt.ext)
        os.replace(part.path, final)
        crashpoints.crashpoint("after-rename")
        fsync_dir(final.parent)
        return StoredImage(
            path=self.relative(final),
            sha256=part.digest.hexdigest(),
            bytes=part.size,
            width=width,
            height=height,
            content_type=fmt.content_type,
            uri=part.uri,
            index=index,
        )

    def copy_in(self, source: Path, key: str, image: ImageRecord) -> None:
        """Copy a recorded image of another folder (`source`, that folder) into place here, exactly as recorded.

        The source file is opened without following a link and hashed as it is copied into a `.part` file; only
        when its size and sha256 are the record's is it fsynced and renamed to its final name (a link there is
        refused). Otherwise nothing is placed and `UsageError` names the file. The caller fsyncs `images/` once
        after the last copy (`fsync_dir`).
        """
        name = PurePosixPath(image.path)
        ext = name.suffix.removeprefix(".")
        expected = f"{_stem(key, image.index)}.{ext}"
        if name.parent != PurePosixPath(IMAGES_DIR) or name.name != expected or ext not in EXTENSIONS:
            raise UsageError(f"{shown(source / image.path)}: not a name leapbatch gives an image", hint=_COPY_HINT)
        final = self.image_path(key, image.index, ext)
        part = self.part_path(key, image.index)
        try:
            copied = _copy_synced(source / image.path, part)
        except FileNotFoundError:
            raise UsageError(f"{shown(source / image.path)}: the image is missing", hint=_COPY_HINT) from None
        if copied != (image.bytes, image.sha256):
            part.unlink(missing_ok=True)
            raise UsageError(
                f"{shown(source / image.path)}: not the image its ledger recorded (size or sha256 differs)",
                hint=_COPY_HINT,
            )
        os.replace(part, final)

    def discard_job(self, key: str) -> list[Path]:
        """Remove every image file of job `key` (a job that did not finish owns no file); return what was removed.

        Every name is checked before any is removed: a link among them is refused and nothing is deleted.
        """
        _stem(key, 0)  # validates the key: nothing but 64 hex digits reaches the prefix below
        return _remove_files(self.images, lambda name: name.startswith(f"{key}-"))

    def discard_jobs(self, keys: Collection[str]) -> list[Path]:
        """Remove every file of the jobs `keys` in one pass over `images/`, checked as `discard_job` checks one job's.

        A name is a job's when it starts with its key and a `-`; a link among any of them is refused before anything
        is deleted.
        """
        wanted = frozenset(keys)
        for key in wanted:
            _stem(key, 0)  # validates the key: 64 hex digits, so a job's names are `<64 digits>-...`
        return _remove_files(self.images, lambda name: name[64:65] == "-" and name[:64] in wanted)

    def relative(self, path: Path) -> str:
        """Return `path` relative to the output folder, as a posix string (the form the ledger records)."""
        try:
            return path.relative_to(self.root).as_posix()
        except ValueError:
            raise ValueError(f"{path} is not inside the output folder {self.root}") from None

    def _inside(self, name: str) -> Path:
        path = self.images / name
        root = self.root.resolve()
        resolved = path.resolve()
        if not resolved.is_relative_to(root):
            raise UsageError(
                f"{path} resolves to {resolved}, outside the output folder {root}",
                hint=f"make {self.images} a plain folder inside {root}, not a link to elsewhere",
            )
        for own in (self.images, path):  # a link that stays inside the folder is refused all the same
            found = lstat_or_none(own)
            if found is not None and stat.S_ISLNK(found.st_mode):
                raise link_error(own)
        return path


def _copy_synced(source: Path, part: Path) -> tuple[int, str]:
    """Copy `source` to the new file `part` (neither through a link), fsync it; return its size and sha256."""
    digest = hashlib.sha256()
    size = 0
    with os.fdopen(open_file(source, os.O_RDONLY), "rb") as src:
        try:
            with os.fdopen(open_file(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644), "wb") as dst:
                while chunk := src.read(1 << 20):
                    digest.update(chunk)
                    dst.write(chunk)
                    size += len(chunk)
                dst.flush()
                os.fsync(dst.fileno())
        except BaseException:
            part.unlink(missing_ok=True)
            raise
    return size, digest.hexdigest()


def _stem(key: str, index: int) -> str:
    if not isinstance(key, str) or not _KEY.fullmatch(key):
        raise ValueError(f"a job key is 64 lower-case hex digits, got {key!r:.80}")
    if isinstance(index, bool) or not isinstance(index, int) or index < 0:
        raise ValueError(f"an image index is a non-negative integer, got {index!r}")
    return f"{key}-{index}"


def inspect_file(path: Path) -> ImageInfo:
    """Hash and decode an image file on disk; raise `OSError` only if it cannot be read at all.

    The file is opened with O_NOFOLLOW: a link (or a FIFO) at its name is refused with a `UsageError`, never read.
    """
    with os.fdopen(open_file(path, os.O_RDONLY), "rb") as fp:
        digest = hashlib.file_digest(fp, "sha256").hexdigest()
        size = os.fstat(fp.fileno()).st_size
        fp.seek(0)
        head = fp.read(MAGIC_LENGTH)
        fmt = sniff(head)
        if fmt is None:
            problem = "the file is empty" if not head else f"not a PNG, JPEG or WebP ({describe_head(head)})"
            return ImageInfo(sha256=digest, bytes=size, ext=None, width=None, height=None, problem=problem)
        try:
            width, height = decode(fp, fmt)
        except ImageError as exc:
            return ImageInfo(sha256=digest, bytes=size, ext=fmt.ext, width=None, height=None, problem=str(exc))
    return ImageInfo(sha256=digest, bytes=size, ext=fmt.ext, width=width, height=height, problem=None)


def sweep_parts(root: Path) -> list[Path]:
    """Remove the `.part` files a crash left in `root/images` and return them (call it holding the folder lock).

    This is the check a run makes of `images` before it starts: a link or a non-folder at `images`, or a link
    anywhere in it, is refused with a `UsageError`, and then nothing at all is deleted.
    """
    return _remove_files(root / IMAGES_DIR, lambda name: name.endswith(PART_SUFFIX), refuse_any_link=True)


def _remove_files(images: Path, wanted: Callable[[str], bool], *, refuse_any_link: bool = False) -> list[Path]:
    """Remove the regular files of `images` whose names are `wanted`, after checking every name; return them.

    The folder is opened once without following a link, and every entry is listed and removed through that
    descriptor, so nothing outside it is reached even if `images` is swapped for a link meanwhile. A link among the
    `wanted` names (or, with `refuse_any_link`, among all names), or a FIFO, socket or device among the `wanted`
    names, is refused before anything is removed. Only regular files are removed: a folder named `x.part` is not
    ours to delete, and is left alone.
    """
    try:
        fd = open_dir(images)
    except FileNotFoundError:
        return []
    try:
        with os.scandir(fd) as listing:
            entries = sorted(listing, key=lambda entry: entry.name)
        for entry in entries:
            if refuse_any_link and entry.is_symlink():
                raise link_error(images / entry.name)
            if wanted(entry.name) and not (entry.is_file(follow_symlinks=False) or entry.is_dir(follow_symlinks=False)):
                raise kind_error(images / entry.name, entry.stat(follow_symlinks=False).st_mode)  # a link, a FIFO
        doomed = [entry.name for entry in entries if wanted(entry.name) and entry.is_file(follow_symlinks=False)]
        for name in doomed:
            os.unlink(name, dir_fd=fd)
    finally:
        os.close(fd)
    return [images / name for name in doomed]
