"""A compact checkpoint of a large folder's ledger state, read instead of replaying every record.

The ledger stays the source of truth; the checkpoint is a cache of its fold, and never more:
- `OUT/.leapbatch.checkpoint` holds two lines: a header, `{"v": 1, "ledger_bytes": N, "tail_sha256": ...,
  "jobs": ...}`, and the `LedgerState` of the ledger's first N bytes (`state.fold` of them), as JSON.
- It is used only when the ledger has at least N bytes and the sha256 of the `TAIL` bytes that end at N is the one
  recorded (a ledger replaced, cut short or rewritten under it does not match); then only the records after N are
  read and folded on top. Anything else about it (missing, a link or a FIFO at its name, unreadable, another
  format version, a state that does not validate) makes it ignored, never an error: the ledger is replayed whole.
- A writer refreshes it when it closes its ledger (`Ledger.close`), written atomically and never through a link, once
  the folder holds `MIN_JOBS` jobs and the checkpoint is missing or `STALE_AFTER` records behind. So a resume of a
  finished folder reads one file and a few records; `verify` still replays the ledger whole.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from pydantic import TypeAdapter, ValidationError

from leapbatch.errors import UsageError
from leapbatch.folder.atomic import open_file, write_atomic
from leapbatch.folder.state import LedgerState

CHECKPOINT_NAME = ".leapbatch.checkpoint"
FORMAT = 1
TAIL = 1 << 16  # bytes of the ledger, ending where the checkpoint does, whose sha256 it records
MIN_JOBS = 1000  # smaller folders replay fast enough: no checkpoint
STALE_AFTER = 1000  # records after the checkpoint before a writer rewrites it
_STATE: TypeAdapter[LedgerState] = TypeAdapter(LedgerState)


def tail_digest(fd: int, end: int) -> str:
    """Return the sha256 of the `TAIL` bytes of the file `fd` that end at offset `end` (fewer near its start)."""
    start = max(0, end - TAIL)
    return hashlib.sha256(os.pread(fd, end - start, start)).hexdigest()


def load(out_dir: Path, ledger_fd: int, ledger_size: int) -> tuple[LedgerState, int] | None:
    """Return the checkpointed state and the ledger offset it covers, or None if there is none it may be trusted for."""
    try:
        fd = open_file(out_dir / CHECKPOINT_NAME, os.O_RDONLY)
    except (OSError, UsageError):
        return None
    try:
        with os.fdopen(fd, "rb") as handle:
            header = json.loads(handle.readline())
            covered = header["ledger_bytes"]
            if header.get("v") != FORMAT or not isinstance(covered, int) or not 0 < covered <= ledger_size:
                return None
            if tail_digest(ledger_fd, covered) != header.get("tail_sha256"):
                return None
            return _STATE.validate_json(handle.read()), covered
    except (OSError, ValueError, KeyError, TypeError, ValidationError):  # json's errors are ValueErrors
        return None


def save(out_dir: Path, state: LedgerState, ledger_fd: int, ledger_size: int) -> None:
    """Write the checkpoint of `state`, the fold of the ledger's first `ledger_size` bytes; if it cannot be written
    (a link at its name, left alone: nothing is written through or over it; a full disk), write nothing."""
    header = {"v": FORMAT, "ledger_bytes": ledger_size, "tail_sha256": tail_digest(ledger_fd, ledger_size)}
    header["jobs"] = len(state.jobs)
    try:
        write_atomic(out_dir / CHECKPOINT_NAME, (json.dumps(header).encode() + b"\n", _STATE.dump_json(state)))
    except (UsageError, OSError):  # a link or a folder at its name, a full disk: the ledger alone is read next time
        return
