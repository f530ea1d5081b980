"""The append-only JSON-lines ledger of an output folder, and the folder's lock.

Invariants:
- One writer per folder: `FolderLock` holds `fcntl.flock` on `OUT/.leapbatch.lock` for the writer's lifetime; the
  kernel releases it on kill -9. A `Ledger` is opened only from a held lock (`open_folder`), and refuses to append
  once that lock is released. Readers (`read_ledger`, for `status` and `plan`) take no lock.
- Every record is one `write()` of one line, then `fsync`: a record is either wholly in the file or torn at the end.
- On open, the longest valid prefix is kept. If what follows it is a single line (a write torn by a crash, or
  garbage appended), that tail is copied aside to `ledger.jsonl.torn-N` and cut off, so later appends start on a
  clean line. If a bad record is followed by good ones, the file is corrupt: nothing is touched and
  `LedgerCorruptError` is raised (exit 4).
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from pydantic import ValidationError

from leapbatch.crashpoints import crashpoint
from leapbatch.errors import LedgerCorruptError, OutputLockedError, UsageError
from leapbatch.folder.records import FORMAT_VERSION, RECORD_ADAPTER, Record
from leapbatch.folder.state import LedgerState, apply, fold

LEDGER_NAME = "ledger.jsonl"
LOCK_NAME = ".leapbatch.lock"


@dataclass(frozen=True, slots=True)
class Replay:
    """The readable part of a ledger file: its records, how many bytes they span, and any torn tail."""

    records: list[Record]
    valid_bytes: int
    tail: bytes


def _parse_line(line: bytes, source: str, number: int) -> Record | str:
    """Return the record on `line`, or why it is not one (a record from a newer leapbatch is never cut off)."""
    try:
        data = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return f"not JSON ({exc.msg if isinstance(exc, json.JSONDecodeError) else 'bad UTF-8'})"
    if isinstance(data, dict) and isinstance(data.get("v"), int) and data["v"] > FORMAT_VERSION:
        raise LedgerCorruptError(
            f"{source}:{number}: record format version {data['v']} is newer than this leapbatch understands",
            hint="upgrade leapbatch to work on this folder",
        )
    try:
        return RECORD_ADAPTER.validate_python(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "record"
        return f"not a ledger record ({where}: {first['msg']})"


def parse_ledger(data: bytes, source: str = LEDGER_NAME) -> Replay:
    """Return the longest valid prefix of `data`, raising `LedgerCorruptError` if a bad record sits in the middle."""
    records: list[Record] = []
    offset = 0
    lines = data.split(b"\n")
    # Every complete line ends with "\n"; the last element is what follows the last newline (usually b"").
    for number, line in enumerate(lines[:-1], start=1):
        if not line.strip():
            offset += len(line) + 1
            continue
        parsed = _parse_line(line, source, number)
        if isinstance(parsed, str):
            rest = b"\n".join(lines[number:]).strip()
            if rest:  # good or bad records follow: this is not a torn tail
                raise LedgerCorruptError(
                    f"{source}:{number}: {parsed}",
                    hint="the ledger was left untouched; restore it from a backup, or move it away to start over",
                )
            return Replay(records, offset, data[offset:])
        records.append(parsed)
        offset += len(line) + 1
    return Replay(records, offset, data[offset:])


def read_ledger(out_dir: Path) -> LedgerState:
    """Return the state of the folder's ledger without locking or repairing it (empty if there is none)."""
    path = out_dir / LEDGER_NAME
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return LedgerState()
    return fold(parse_ledger(data, str(path)).records)


class FolderLock:
    """An exclusive OS lock on an output folder, held while a process writes to it."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        """Whether this process holds the lock now."""
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock, creating the folder if needed, or raise `OutputLockedError` at once."""
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"cannot create the output folder {self.out_dir}: {exc.strerror}") from None
        fd = os.open(self.out_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise OutputLockedError(
                f"the output folder {self.out_dir} is in use by another leapbatch process (pid {holder})",
                hint="wait for it to finish, or stop it; `leapbatch status` works while it runs",
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        """Give the lock back."""
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> FolderLock:
        self.acquire()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


def _set_aside(path: Path, tail: bytes) -> Path:
    number = 1
    while (aside := path.with_name(f"{path.name}.torn-{number}")).exists():
        number += 1
    aside.write_bytes(tail)
    return aside


class Ledger:
    """The writable ledger of a locked folder: replayed on open, then appended to one fsynced line at a time."""

    def __init__(self, lock: FolderLock, path: Path, state: LedgerState, set_aside: Path | None) -> None:
        self._lock = lock
        self.path = path
        self.state = state
        self.set_aside = set_aside  # where a torn tail was moved on open, if there was one
        self._fd: int | None = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    @classmethod
    def open(cls, lock: FolderLock) -> Ledger:
        """Replay the locked folder's ledger, cut off (and keep aside) a torn tail, and open it for appending."""
        if not lock.held:
            raise RuntimeError(f"the ledger of {lock.out_dir} was opened without holding the folder lock")
        path = lock.out_dir / LEDGER_NAME
        data = path.read_bytes() if path.exists() else b""
        replay = parse_ledger(data, str(path))
        aside = None
        if replay.tail.strip():
            aside = _set_aside(path, replay.tail)
            crashpoint("ledger-recovery")
        if replay.tail:
            with path.open("r+b") as handle:
                handle.truncate(replay.valid_bytes)
                handle.flush()
                os.fsync(handle.fileno())
        return cls(lock, path, fold(replay.records), aside)

    def append(self, record: Record) -> None:
        """Write `record` as one line, fsync it, and fold it into `state`."""
        if self._fd is None:
            raise RuntimeError("the ledger is closed")
        if not self._lock.held:
            raise RuntimeError(f"the lock on {self._lock.out_dir} was released; the ledger can no longer be written")
        line = record.model_dump_json(exclude_none=True).encode("utf-8") + b"\n"
        view = memoryview(line)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        os.fsync(self._fd)
        apply(self.state, record)

    def close(self) -> None:
        """Close the file (appends after this raise)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


@contextmanager
def open_folder(out_dir: Path) -> Iterator[Ledger]:
    """Take the folder's lock, open its ledger for writing, and close both on the way out (whatever happens)."""
    with FolderLock(out_dir) as lock:
        ledger = Ledger.open(lock)
        try:
            yield ledger
        finally:
            ledger.close()


def now() -> float:
    """Return the wall-clock time records are stamped with."""
    return time.time()
