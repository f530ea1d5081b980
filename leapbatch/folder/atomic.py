"""Files in an output folder: replaced atomically, and never opened, written or deleted through a link.

Atomic: a crash leaves the old content or the new, never a mix (STYLE.md habit 6).

No links: every name leapbatch opens, creates, replaces or deletes inside an output folder is looked at without
following a symbolic link (`O_NOFOLLOW`, `O_EXCL`, `lstat`, or a directory's own file descriptor), and a link
there, dangling or not, to a file or a folder, is refused with a `UsageError` (exit 2) naming the path, before
anything is read, written or deleted through it. A FIFO, socket or device under such a name is refused the same
way (it could hang a read or a write). The output folder's own path may be a link (e.g. `outputs -> /data`): only
the last component of each name is checked, so the folder is the user's choice and its entries are leapbatch's.
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
from collections.abc import Iterable
from pathlib import Path

from leapbatch.errors import UsageError

LINK_HINT = "remove the link; leapbatch never writes through links in an output folder (the folder itself may be one)"


def shown(path: Path | str) -> str:
    """Return a path fit for a one-line message: as is when printable, else with its escapes (a name may be hostile)."""
    text = str(path)
    return text if text.isprintable() else ascii(text)


def link_error(path: Path) -> UsageError:
    """Return the error for a symbolic link met where leapbatch keeps one of its files or folders."""
    return UsageError(f"{shown(path)} is a symbolic link", hint=LINK_HINT)


def kind_error(path: Path, mode: int, *, want_dir: bool = False) -> UsageError:
    """Return the error for an entry of the wrong kind (a file where a folder belongs, a FIFO where a file does)."""
    if stat.S_ISLNK(mode):
        return link_error(path)
    wanted = "a folder" if want_dir else "a regular file"
    return UsageError(
        f"{shown(path)} is not {wanted}", hint="move it away: leapbatch keeps its own entry under that name"
    )


def lstat_or_none(path: Path) -> os.stat_result | None:
    """Return `path`'s own status (a link is not followed), or None when nothing is there."""
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None


def refuse_link(path: Path) -> bool:
    """Raise `UsageError` if `path` is a symbolic link; return whether anything is there."""
    found = lstat_or_none(path)
    if found is not None and stat.S_ISLNK(found.st_mode):
        raise link_error(path)
    return found is not None


def open_file(path: Path, flags: int, mode: int = 0o644) -> int:
    """Open the regular file at `path` without following a link at its name, and return the descriptor.

    A link (`O_NOFOLLOW` says ELOOP, even for a dangling one with `O_CREAT`), a FIFO, a socket or a device is refused
    with a `UsageError`; `O_NONBLOCK` keeps a planted FIFO from hanging the open, and is cleared once the file is
    known to be regular. A folder is the system's `IsADirectoryError`, as is any other failure (missing, permissions).
    """
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, mode)
    except OSError:
        found = lstat_or_none(path)
        if found is not None and not stat.S_ISREG(found.st_mode) and not stat.S_ISDIR(found.st_mode):
            raise kind_error(path, found.st_mode) from None
        raise
    opened = os.fstat(fd).st_mode
    if not stat.S_ISREG(opened):
        os.close(fd)
        if stat.S_ISDIR(opened):  # opened read-only: say what the system says when writing
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
        raise kind_error(path, opened)
    os.set_blocking(fd, True)
    return fd


def open_dir(path: Path) -> int:
    """Open the folder at `path` (not a link to one) for `scandir` and `dir_fd` calls; FileNotFoundError if absent."""
    try:
        return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        found = lstat_or_none(path)
        if found is not None and not stat.S_ISDIR(found.st_mode):
            raise kind_error(path, found.st_mode, want_dir=True) from None
        raise


def make_dir(path: Path) -> None:
    """Create the folder `path` (its parent may be a link; `path` itself must be a real folder if it exists)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.mkdir(path)
    except FileExistsError:
        found = os.lstat(path)
        if not stat.S_ISDIR(found.st_mode):
            raise kind_error(path, found.st_mode, want_dir=True) from None


def write_atomic(path: Path, data: bytes | Iterable[bytes]) -> None:
    """Replace `path` with `data` (bytes, or chunks of them written as they come) atomically: temp file in the same
    folder, fsync, `os.replace`, fsync the folder.

    A link at `path` is refused before anything is written. The temp file is created with O_EXCL | O_NOFOLLOW, so
    a link planted at its name is never followed; and `os.replace` renames over a name without following it, so a
    link planted at `path` after the check is replaced, never written through.
    """
    refuse_link(path)
    # The temp file sits in the same folder (os.replace cannot cross file systems) under a dotted, random name.
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666)
    try:
        with os.fdopen(fd, "wb") as fh:
            for chunk in (data,) if isinstance(data, bytes) else data:
                fh.write(chunk)
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
    """Flush a folder's entries to disk, so a rename or a new file in it survives a power cut (it only reads)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
