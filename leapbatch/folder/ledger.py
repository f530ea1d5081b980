"""The append-only JSON-lines ledger of an output folder, and the folder's lock.

Invariants:
- One writer per folder: `FolderLock` holds `fcntl.flock` on `OUT/.leapbatch.lock` for the writer's lifetime; the
  kernel releases it on kill -9. A `Ledger` is opened only from a held lock (`open_folder`), and refuses to append
  once that lock is released. Readers (`read_ledger`, for `status` and `plan`) take no lock.
- Every record is one `write()` of one line, then `fsync`: a record is either wholly in the file or torn at the end.
- On open, the longest valid prefix is kept. If what follows it is a single torn line (no newline at its end: a
  write torn by a crash; or a last line that is not JSON: garbage appended), that tail is copied aside to
  `ledger.jsonl.torn-N` and cut off, so later appends start on a clean line. A whole last line (newline-ended) that
  is JSON but not a record this leapbatch can read (an unknown type, an unknown field, a newer format version) was
  written whole, by a newer leapbatch or by hand, so it is never cut off. Such a line anywhere, or a bad record
  followed by good ones, makes the file corrupt: nothing is touched and `LedgerCorruptError` is raised (exit 4).
- A record is readable only if everything in it is: an intent's `request` must be a request this leapbatch can
  send (`CreateInferenceDto`), so no later step meets a request it cannot rebuild.
- No links (`leapbatch.folder.atomic`): the lock, the ledger and `ledger.jsonl.torn-N` are opened with O_NOFOLLOW
  (and O_EXCL where created); the ledger is read, cut and appended through the one descriptor it was opened with.
  A writer (`Ledger.open`) also refuses a folder whose `images` is a link or not a folder, or whose `results.json`
  or `metadata.jsonl` is a link or not a regular file, before it reads, cuts or sets aside anything, so no command
  pays for a job whose images or results it then cannot write.
"""

from __future__ import annotations

import fcntl
import itertools
import json
import os
import stat
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from pydantic import ValidationError

from leapbatch.crashpoints import crashpoint
from leapbatch.errors import LedgerCorruptError, OutputLockedError, UsageError
from leapbatch.folder import checkpoint
from leapbatch.folder.atomic import fsync_dir, kind_error, lstat_or_none, open_file, refuse_link
from leapbatch.folder.images import IMAGES_DIR
from leapbatch.folder.records import FORMAT_VERSION, RECORD_ADAPTER, IntentRecord, Record
from leapbatch.folder.results import METADATA_NAME, RESULTS_NAME
from leapbatch.folder.state import LedgerState, apply, fold
from leapbatch.wire import CreateInferenceDto

LEDGER_NAME = "ledger.jsonl"
LOCK_NAME = ".leapbatch.lock"
# The other names a writer may open, replace or delete in the folder: checked (no link, the right kind) first.
DERIVED_NAMES = (IMAGES_DIR, RESULTS_NAME, METADATA_NAME)
CORRUPT_HINT = "the ledger was left untouched; restore it from a backup, or move it away to start over"
UNREADABLE_HINT = (
    "the ledger was left untouched; if a newer leapbatch wrote this record, upgrade leapbatch; "
    "otherwise restore the ledger from a backup, or move it away to start over"
)


@dataclass(frozen=True, slots=True)
class Replay:
    """The readable part of a ledger file: its records, how many bytes they span, and any torn tail."""

    records: list[Record]
    valid_bytes: int
    tail: bytes


@dataclass(frozen=True, slots=True)
class _Unreadable:
    """Why a line is not a record; `whole` when it is JSON (written whole on purpose, so never a torn write)."""

    reason: str
    whole: bool


def _first_error(exc: ValidationError, prefix: str = "") -> str:
    first = exc.errors()[0]
    return prefix + (".".join(str(p) for p in first["loc"]) or "record") + f": {first['msg']}"


def _parse_line(line: bytes, source: str, number: int) -> Record | _Unreadable:
    """Return the record on `line`, or why it is not one (a record from a newer leapbatch is never cut off)."""
    try:
        record = RECORD_ADAPTER.validate_json(line)  # the fast path: a good record, parsed and checked at once
    except ValidationError:
        return _explain_line(line, source, number)
    return _checked_request(record)


def _explain_line(line: bytes, source: str, number: int) -> Record | _Unreadable:
    """Return why `line` is not a record (or raise for a newer format), the slow way: JSON first, then the model."""
    try:
        data = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return _Unreadable(f"not JSON ({exc.msg if isinstance(exc, json.JSONDecodeError) else 'bad UTF-8'})", False)
    if isinstance(data, dict) and isinstance(data.get("v"), int) and data["v"] > FORMAT_VERSION:
        raise LedgerCorruptError(
            f"{source}:{number}: record format version {data['v']} is newer than this leapbatch understands",
            hint="upgrade leapbatch to work on this folder",
        )
    try:
        record = RECORD_ADAPTER.validate_python(data)
    except ValidationError as exc:
        return _Unreadable(f"not a ledger record ({_first_error(exc)})", True)
    return _checked_request(record)


def _checked_request(record: Record) -> Record | _Unreadable:
    """Return `record`, or why it is unreadable if it is an intent whose request this leapbatch cannot send."""
    if isinstance(record, IntentRecord):  # every later step rebuilds the request from it
        try:
            CreateInferenceDto.model_validate(record.request)
        except ValidationError as exc:
            return _Unreadable(f"not a ledger record ({_first_error(exc, 'request.')})", True)
    return record


def parse_ledger(data: bytes, source: str = LEDGER_NAME) -> Replay:
    """Return the longest valid prefix of `data` and the torn tail after it, or raise `LedgerCorruptError`.

    The tail is what follows the last newline, or a last whole line that is not JSON. A bad record followed by
    anything, or a whole last line that is JSON but not a readable record, is corruption.
    """
    records: list[Record] = []
    offset = 0
    lines = data.split(b"\n")
    # Every complete line ends with "\n"; the last element is what follows the last newline (usually b"").
    for number, line in enumerate(lines[:-1], start=1):
        if not line.strip():
            offset += len(line) + 1
            continue
        parsed = _parse_line(line, source, number)
        if isinstance(parsed, _Unreadable):
            rest = b"\n".join(lines[number:]).strip()
            if rest or parsed.whole:  # records follow, or it was written whole: either way not a torn tail
                hint = UNREADABLE_HINT if parsed.whole else CORRUPT_HINT
                raise LedgerCorruptError(f"{source}:{number}: {parsed.reason}", hint=hint)
            return Replay(records, offset, data[offset:])
        records.append(parsed)
        offset += len(line) + 1
    return Replay(records, offset, data[offset:])


def read_all(fd: int, offset: int = 0) -> bytes:
    """Return the bytes of the file `fd` from `offset` to its end."""
    chunks = []
    while chunk := os.pread(fd, 1 << 20, offset):
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks)


def read_ledger(out_dir: Path, *, whole: bool = False) -> LedgerState:
    """Return the state of the folder's ledger without locking or repairing it (empty if there is none); `whole`
    replays every record, never starting from the checkpoint (`verify` does).

    The ledger is opened with O_NOFOLLOW: a link at its name is refused (`UsageError`), never read.
    """
    path = out_dir / LEDGER_NAME
    try:
        fd = open_file(path, os.O_RDONLY)
    except FileNotFoundError:
        return LedgerState()
    try:
        return _replay(fd, out_dir, str(path), whole=whole)[0]
    finally:
        os.close(fd)


def _replay(fd: int, out_dir: Path, source: str, *, whole: bool = False) -> tuple[LedgerState, Replay, int]:
    """Return the state of the ledger `fd`, its replay after the checkpoint it started from, and that checkpoint's
    offset (0: none; `leapbatch.folder.checkpoint`). A corrupt ledger is reported as a whole replay reports it."""
    found = None if whole else checkpoint.load(out_dir, fd, os.fstat(fd).st_size)
    if found is None:
        replay = parse_ledger(read_all(fd), source)
        return fold(replay.records), replay, 0
    state, start = found
    try:
        replay = parse_ledger(read_all(fd, start), source)
    except LedgerCorruptError:
        parse_ledger(read_all(fd), source)  # raises with the line number counted from the start
        raise
    for record in replay.records:
        apply(state, record)
    return state, replay, start


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
        fd = open_file(self.out_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)  # a link there is refused
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip()
            holder = holder if holder.isdigit() else "unknown"  # shown on a terminal: a pid or nothing
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


def _create_aside(path: Path) -> tuple[Path, int]:
    """Create the first free `<ledger>.torn-N` and return it open; a link at any taken name on the way is refused."""
    for number in itertools.count(1):
        aside = path.with_name(f"{path.name}.torn-{number}")
        if refuse_link(aside):
            continue  # an earlier set-aside
        try:  # O_EXCL: a name taken meanwhile (even by a link) is never opened
            return aside, open_file(aside, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            continue
    raise AssertionError("unreachable")


def _set_aside(path: Path, tail: bytes) -> Path:
    """Write `tail` to the first free `<ledger>.torn-N`, fsynced, and fsync the folder; return where it went."""
    aside, fd = _create_aside(path)
    try:
        view = memoryview(tail)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    fsync_dir(path.parent)  # the tail is on disk before the ledger loses it
    return aside


def check_entries(out_dir: Path) -> None:
    """Refuse a folder whose `images` is not a real folder, or whose derived files are not regular files (or absent)."""
    for name in DERIVED_NAMES:
        found = lstat_or_none(out_dir / name)
        want_dir = name == IMAGES_DIR
        if found is not None and not (stat.S_ISDIR(found.st_mode) if want_dir else stat.S_ISREG(found.st_mode)):
            raise kind_error(out_dir / name, found.st_mode, want_dir=want_dir)


class Ledger:
    """The writable ledger of a locked folder: replayed on open, then appended to one fsynced line at a time."""

    def __init__(
        self,
        lock: FolderLock,
        path: Path,
        state: LedgerState,
        set_aside: Path | None,
        fd: int,
        *,
        size: int = 0,
        behind: int | None = None,
    ) -> None:
        self._lock = lock
        self.path = path
        self.state = state
        self.set_aside = set_aside  # where a torn tail was moved on open, if there was one
        self._fd: int | None = fd  # opened O_APPEND by `open`: every write lands at the end
        self._size = size  # the ledger's bytes, as this handle wrote them: `state` is their fold
        self._behind = behind  # records since the checkpoint (None: no checkpoint was used)

    @classmethod
    def open(cls, lock: FolderLock) -> Ledger:
        """Replay the locked folder's ledger, cut off (and keep aside) a torn tail, and open it for appending.

        The folder's entries are checked first (no link, the right kind); the ledger is read, cut and later appended
        through the one descriptor opened here, so it is never looked up by name again.
        """
        if not lock.held:
            raise RuntimeError(f"the ledger of {lock.out_dir} was opened without holding the folder lock")
        path = lock.out_dir / LEDGER_NAME
        check_entries(lock.out_dir)
        fd = open_file(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            state, replay, start = _replay(fd, lock.out_dir, str(path))
            aside = None
            if replay.tail.strip():
                aside = _set_aside(path, replay.tail)
                crashpoint("ledger-recovery")
            if replay.tail:
                os.ftruncate(fd, start + replay.valid_bytes)
                os.fsync(fd)
        except BaseException:
            os.close(fd)
            raise
        behind = len(replay.records) if start else None
        return cls(lock, path, state, aside, fd, size=start + replay.valid_bytes, behind=behind)

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
        self._size += len(line)
        if self._behind is not None:
            self._behind += 1

    def close(self) -> None:
        """Refresh the folder's checkpoint if it is missing or stale (`leapbatch.folder.checkpoint`), and close the
        file (appends after this raise)."""
        if self._fd is None:
            return
        try:
            stale = self._behind is None or self._behind >= checkpoint.STALE_AFTER
            whole = os.fstat(self._fd).st_size == self._size  # no append was cut short: `state` is the file's fold
            if stale and whole and self._lock.held and len(self.state.jobs) >= checkpoint.MIN_JOBS:
                checkpoint.save(self._lock.out_dir, self.state, self._fd, self._size)
        finally:
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
