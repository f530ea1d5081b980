"""The files of an output folder: verified image downloads, leftover sweeping, atomic writes.

Invariants, for every output folder `root`:

- A file at `images/<key>-<index>.<ext>` is complete and verified: it answered 200 with an image Content-Type,
  its magic bytes match that type, Pillow decodes every pixel, it has the requested size, and it was fsynced
  before `os.replace` moved it into place (then the folder is fsynced too). Nothing is ever written to the final
  path in place, so a crash leaves either the old state or the new file, never half of one.
- Bytes in flight live in `images/<key>-<index>.part`. Every failure, cancellation included, removes it; only a
  crash can leave one behind, and `sweep_parts` removes those when the next run starts (under the folder lock).
- Names derive only from job keys (64 lower-case hex digits) and integer indexes, never from prompt text, and
  every path is resolved (symlinks followed) and refused unless it stays inside `root`.
- Downloads use the caller's `httpx.AsyncClient` as it is (`leapbatch.api.client.download_http()`, which carries no
  Authorization header); no header is ever added here.

Blocking work. Chunks are written to the `.part` file from the event loop: a write of one network chunk lands in
the page cache in microseconds, less than a thread hop would cost, and it never waits for the disk. What can wait
(Pillow's full decode, a few ms per 512x512 image, and the fsyncs) runs in one `trio.to_thread.run_sync` hop per
image, together with the rename, so a cancellation can never separate "fsynced" from "renamed".

Which failures are `retriable` (worth fetching the same URI again, within the caller's budget):
yes: no response or a broken one (connect, reset, timeout, a body cut short), 5xx, 408/425/429, and 403/404
(an image host or CDN that has not caught up with a just-finished job); bytes that arrived complete but do not
decode (a partially propagated object looks exactly like this, and one more GET is cheap next to a lost paid
image). No: any other status, a non-image Content-Type, bytes that are no PNG/JPEG/WebP or disagree with the
Content-Type, a body over the byte cap, an image of the wrong size: the host serves the same bytes every time.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import httpx
import trio

from leapbatch import crashpoints
from leapbatch.errors import DownloadError, UsageError
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

IMAGES_DIR = "images"
PART_SUFFIX = ".part"
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
EXTENSIONS = frozenset({"png", "jpg", "webp"})
_KEY = re.compile(r"[0-9a-f]{64}")
_RETRIABLE_STATUSES = frozenset({403, 404, 408, 425, 429})


@dataclass(frozen=True)
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


@dataclass(frozen=True)
class ImageInfo:
    """What a file on disk holds; `problem` says why it is not a good image (None when it is)."""

    sha256: str
    bytes: int
    ext: str | None
    width: int | None
    height: int | None
    problem: str | None


class ImageStore:
    """The `images/` folder of one output folder: safe paths and verified downloads."""

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

    def discard_job(self, key: str) -> list[Path]:
        """Remove every image file of job `key` (a job that did not finish owns no file); return what was removed."""
        _stem(key, 0)  # validates the key: nothing but 64 hex digits reaches the pattern below
        removed = []
        if self.images.is_dir():
            for path in sorted(self.images.glob(f"{key}-*")):
                if path.is_file() or path.is_symlink():
                    path.unlink(missing_ok=True)
                    removed.append(path)
        return removed

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
        return path

    async def download(
        self,
        http: httpx.AsyncClient,
        uri: str,
        *,
        key: str,
        index: int,
        width: int,
        height: int,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> StoredImage:
        """Fetch one image, verify it, and move it into place; raise `DownloadError` and leave nothing otherwise."""
        where = f"image {index} from {_host(uri)}"
        part = _PartFile(self.part_path(key, index))
        try:
            content_type = await _receive(http, uri, part, where, max_bytes)
            fmt = _check_magic(part.head, content_type, where, uri)
            final, (got_width, got_height) = await trio.to_thread.run_sync(
                self._settle, part, key, index, fmt, (width, height)
            )
        except ImageError as exc:
            raise DownloadError(f"{where}: {exc}", uri=uri, retriable=isinstance(exc, UndecodableError)) from None
        finally:
            # After a success `_settle` has closed and renamed the file, and both steps are no-ops.
            part.discard()
        return StoredImage(
            path=self.relative(final),
            sha256=part.digest.hexdigest(),
            bytes=part.size,
            width=got_width,
            height=got_height,
            content_type=fmt.content_type,
            uri=uri,
            index=index,
        )

    def _settle(
        self, part: _PartFile, key: str, index: int, fmt: ImageFormat, expect: tuple[int, int]
    ) -> tuple[Path, tuple[int, int]]:
        """Decode, fsync and rename the `.part` file (in a worker thread: every step may block)."""
        size = part.verify_and_sync(fmt, expect)
        final = self.image_path(key, index, fmt.ext)
        os.replace(part.path, final)
        crashpoints.crashpoint("after-rename")
        fsync_dir(final.parent)
        return final, size


class _PartFile:
    """The `.part` file of one download, with the sha256, size and first bytes of what was written to it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.digest = hashlib.sha256()
        self.size = 0
        self.head = b""
        self._fh: BinaryIO | None = None

    def open(self) -> None:
        """Create the folder and the file (truncating a crash's leftover)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # O_NOFOLLOW: a planted symlink at the .part name must not redirect the write. Mode 0o666 lets the umask
        # decide, as for any file the user creates.
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
        self._fh = os.fdopen(os.open(self.path, flags, 0o666), "wb")

    def write(self, chunk: bytes) -> None:
        """Append a chunk, hashing it; the first one is flushed so a crash right after leaves it on disk."""
        if self._fh is None:
            raise RuntimeError("write to a .part file that is not open")
        first = self.size == 0
        self._fh.write(chunk)
        self.digest.update(chunk)
        self.size += len(chunk)
        if len(self.head) < MAGIC_LENGTH:
            self.head = (self.head + chunk)[:MAGIC_LENGTH]
        if first:
            self._fh.flush()
            crashpoints.crashpoint("mid-download")

    def verify_and_sync(self, fmt: ImageFormat, expect: tuple[int, int]) -> tuple[int, int]:
        """Decode the written bytes as `fmt` of size `expect`, then fsync and close the file."""
        if self._fh is None:
            raise RuntimeError("verify a .part file that was never opened")
        try:
            self._fh.flush()
            with self.path.open("rb") as fp:
                size = decode(fp, fmt, expect)
            os.fsync(self._fh.fileno())
        finally:
            self._fh.close()
        return size

    def discard(self) -> None:
        """Close and remove the file, if it is still there."""
        if self._fh is not None:
            self._fh.close()
        self.path.unlink(missing_ok=True)


async def _receive(http: httpx.AsyncClient, uri: str, part: _PartFile, where: str, max_bytes: int) -> str:
    """Stream the body of `uri` into `part` under the byte cap; return the media type the server declared."""
    try:
        async with http.stream("GET", uri) as response:
            content_type = _check_headers(response, where, uri, max_bytes)
            part.open()
            chunks = response.aiter_bytes()
            try:
                async for chunk in chunks:
                    try:
                        _take(chunk, part, content_type, where, uri, max_bytes)
                    except BaseException:
                        await _unwind(chunks)
                        raise
            except (httpx.RemoteProtocolError, httpx.ReadError):
                raise _cut_short(response, where, uri) from None
            except httpx.TimeoutException as exc:
                raise DownloadError(
                    f"{where}: no data in time after {response.num_bytes_downloaded}{_of(response)} bytes"
                    f" ({exc.__class__.__name__})",
                    uri=uri,
                    retriable=True,
                ) from None
            # h11 raises when the peer closes before Content-Length; this guards any transport that would not.
            declared = _declared_length(response)
            if declared is not None and response.num_bytes_downloaded < declared:
                raise _cut_short(response, where, uri)
            return content_type
    except httpx.HTTPError as exc:
        raise _transport_error(exc, where, uri) from None
    except httpx.InvalidURL as exc:
        raise DownloadError(f"{where}: invalid URL ({exc})", uri=uri, retriable=False) from None


def _take(chunk: bytes, part: _PartFile, content_type: str, where: str, uri: str, max_bytes: int) -> None:
    """Append one chunk to the .part file, refusing it if it passes the cap or the magic bytes are wrong."""
    if part.size + len(chunk) > max_bytes:
        raise DownloadError(f"{where}: body passed the {max_bytes}-byte cap", uri=uri, retriable=False)
    had_head = len(part.head) == MAGIC_LENGTH
    part.write(chunk)
    if not had_head and len(part.head) == MAGIC_LENGTH:
        # Refuse a mislabelled body as soon as its magic bytes are in, not after 64 MiB.
        _check_magic(part.head, content_type, where, uri)


async def _unwind(chunks: AsyncIterator[bytes]) -> None:
    """End httpx's chain of body generators from the inside, so that each one finishes now.

    httpx 0.28 nests async generators (aiter_bytes > aiter_raw > the transport's streams) and closing the outer one
    leaves the inner ones suspended until the garbage collector finds them, where trio warns (encode/httpx#3686).
    Running the chain on under a cancelled scope makes its next checkpoint, deep inside, raise `Cancelled`, which
    unwinds every generator on its way out; the scope then swallows it.
    """
    with trio.CancelScope() as scope:
        scope.cancel()
        async for _ in chunks:
            pass


def _stem(key: str, index: int) -> str:
    if not isinstance(key, str) or not _KEY.fullmatch(key):
        raise ValueError(f"a job key is 64 lower-case hex digits, got {key!r:.80}")
    if isinstance(index, bool) or not isinstance(index, int) or index < 0:
        raise ValueError(f"an image index is a non-negative integer, got {index!r}")
    return f"{key}-{index}"


def _host(uri: str) -> str:
    # Only the host goes into messages: a signed URL's query string (or userinfo) is nobody's business.
    try:
        return httpx.URL(uri).host or "an unknown host"
    except httpx.InvalidURL:
        return "an invalid URL"


def _check_headers(response: httpx.Response, where: str, uri: str, max_bytes: int) -> str:
    status = response.status_code
    if status != 200:
        retriable = status >= 500 or status in _RETRIABLE_STATUSES
        raise DownloadError(f"{where}: HTTP {status}", uri=uri, retriable=retriable)
    content_type = media_type(response.headers.get("content-type"))
    if content_type not in CONTENT_TYPES:
        raise DownloadError(
            f"{where}: content type {content_type or '(none)'} is not {', '.join(sorted(CONTENT_TYPES))}",
            uri=uri,
            retriable=False,
        )
    declared = _declared_length(response)
    if declared is not None and declared > max_bytes:
        raise DownloadError(
            f"{where}: announces {declared} bytes, over the {max_bytes}-byte cap", uri=uri, retriable=False
        )
    return content_type


def _declared_length(response: httpx.Response) -> int | None:
    value = response.headers.get("content-length", "").strip()
    return int(value) if value.isdigit() else None


def _check_magic(head: bytes, content_type: str, where: str, uri: str) -> ImageFormat:
    fmt = sniff(head)
    if not head:
        raise DownloadError(f"{where}: the body is empty", uri=uri, retriable=False)
    if fmt is None:
        raise DownloadError(
            f"{where}: bytes are not a PNG, JPEG or WebP ({describe_head(head)})", uri=uri, retriable=False
        )
    if fmt.content_type != content_type:
        raise DownloadError(
            f"{where}: bytes are a {fmt.name} but the content type says {content_type}", uri=uri, retriable=False
        )
    return fmt


def _of(response: httpx.Response) -> str:
    declared = _declared_length(response)
    return f" of {declared}" if declared is not None else ""


def _cut_short(response: httpx.Response, where: str, uri: str) -> DownloadError:
    return DownloadError(
        f"{where}: cut short after {response.num_bytes_downloaded}{_of(response)} bytes", uri=uri, retriable=True
    )


def _transport_error(exc: httpx.HTTPError, where: str, uri: str) -> DownloadError:
    name = exc.__class__.__name__
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.TooManyRedirects):
        return DownloadError(f"{where}: {exc} ({name})", uri=uri, retriable=False)
    if isinstance(exc, httpx.TimeoutException):
        return DownloadError(f"{where}: no answer in time ({name})", uri=uri, retriable=True)
    if isinstance(exc, httpx.DecodingError):
        return DownloadError(f"{where}: the body's content encoding is broken ({name})", uri=uri, retriable=True)
    return DownloadError(f"{where}: connection failed ({name})", uri=uri, retriable=True)


def inspect_file(path: Path) -> ImageInfo:
    """Hash and decode an image file on disk; raise `OSError` only if it cannot be read at all."""
    with path.open("rb") as fp:
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
    """Remove the `.part` files a crash left in `root/images` and return them (call it holding the folder lock)."""
    images = root / IMAGES_DIR
    if not images.is_dir():
        return []
    removed = []
    for path in sorted(images.glob(f"*{PART_SUFFIX}")):
        # Only regular files and links are removed: a folder named `x.part` is not ours to delete.
        if path.is_symlink() or path.is_file():
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def write_atomic(path: Path, data: bytes) -> None:
    """Replace `path` with `data` atomically: a crash leaves the old content or the new, never a mix."""
    # The temp file sits in the same folder (os.replace cannot cross file systems) under a dotted, random name.
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def write_text_atomic(path: Path, text: str) -> None:
    """Replace `path` with `text` (UTF-8) atomically."""
    write_atomic(path, text.encode("utf-8"))


def fsync_dir(path: Path) -> None:
    """Flush a folder's entries to disk, so a rename or a new file in it survives a power cut."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
