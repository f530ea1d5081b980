"""Specs of `open_folder`: a ledger under the folder's lock, both given back however the block ends."""

from __future__ import annotations

from pathlib import Path

import pytest

from leapbatch.errors import OutputLockedError
from leapbatch.folder.ledger import LEDGER_NAME, FolderLock, Ledger, open_folder
from leapbatch.folder.records import RunRecord

RUN = RunRecord(t=1.0, command="run", tool_version="test", base_url="http://127.0.0.1:1")


def test_open_folder_holds_the_lock_while_open(tmp_path: Path) -> None:
    """Inside the block a second locker is refused; the ledger takes appends."""
    with open_folder(tmp_path) as ledger:
        ledger.append(RUN)
        with pytest.raises(OutputLockedError):
            FolderLock(tmp_path).acquire()
    assert 1 == len(ledger.state.runs)


def test_open_folder_gives_both_back_when_the_block_fails(tmp_path: Path) -> None:
    """An error in the block closes the ledger (appends fail) and releases the lock (a new locker gets it)."""
    with pytest.raises(ZeroDivisionError), open_folder(tmp_path) as ledger:
        raise ZeroDivisionError
    with pytest.raises(RuntimeError, match="closed"):
        ledger.append(RUN)
    with FolderLock(tmp_path):
        pass


def test_a_ledger_cannot_be_opened_without_the_lock(tmp_path: Path) -> None:
    """Opening from a lock that is not held is a bug: refused before the file is created or repaired."""
    (tmp_path / LEDGER_NAME).write_bytes(b'{"v":1,"ty')  # a torn tail an open would cut off
    with pytest.raises(RuntimeError, match="without holding the folder lock"):
        Ledger.open(FolderLock(tmp_path))
    assert b'{"v":1,"ty' == (tmp_path / LEDGER_NAME).read_bytes()
    assert [] == list(tmp_path.glob("*.torn-*"))


def test_a_ledger_whose_lock_was_released_cannot_be_written(tmp_path: Path) -> None:
    """Once the lock is given back, another process may be writing: appends raise and the file is unchanged."""
    lock = FolderLock(tmp_path)
    lock.acquire()
    ledger = Ledger.open(lock)
    ledger.append(RUN)
    lock.release()
    before = (tmp_path / LEDGER_NAME).read_bytes()
    with pytest.raises(RuntimeError, match="was released"):
        ledger.append(RUN)
    ledger.close()
    assert before == (tmp_path / LEDGER_NAME).read_bytes()
