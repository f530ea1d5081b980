"""Specs of the checkpoint (`leapbatch.folder.checkpoint`) and of the derived files' stamp (`folder.results`): caches
of what the ledger says, used only when they provably match it, and ignored (never an error) otherwise.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from leapbatch.errors import LedgerCorruptError
from leapbatch.folder import checkpoint
from leapbatch.folder.checkpoint import CHECKPOINT_NAME
from leapbatch.folder.ledger import LEDGER_NAME, open_folder, parse_ledger, read_ledger
from leapbatch.folder.records import (
    DeletedRecord,
    FinishedRecord,
    ImageRecord,
    IntentRecord,
    Record,
    RunRecord,
    SubmittedRecord,
)
from leapbatch.folder.results import METADATA_NAME, RESULTS_NAME, STAMP_NAME, job_of, write_results
from leapbatch.folder.state import LedgerState, Phase, fold


@pytest.fixture(autouse=True)
def small_folders_get_checkpoints(monkeypatch: pytest.MonkeyPatch) -> None:
    """Checkpoint folders of 3 jobs or more, and rewrite it 2 records after it, so small ledgers show the rules."""
    monkeypatch.setattr(checkpoint, "MIN_JOBS", 3)
    monkeypatch.setattr(checkpoint, "STALE_AFTER", 2)


def key(n: int) -> str:
    """Return the job key of job `n`."""
    return hashlib.sha256(str(n).encode()).hexdigest()


def job_records(n: int) -> list[Record]:
    """Return the records of job `n`, created and finished."""
    k = key(n)
    image = ImageRecord(index=0, uri="u", path=f"images/{k}-0.png", sha256="0" * 64, bytes=1, width=1, height=1)
    return [
        IntentRecord(t=1.0, key=k, model="m", fingerprint="f", request={"prompt": f"p{n}"}, cost=0.01),
        SubmittedRecord(t=2.0, key=k, inference_id=f"id-{n}"),
        FinishedRecord(t=3.0, key=k, inference_id=f"id-{n}", images=[image]),
    ]


def run_record() -> RunRecord:
    """Return a `run` record."""
    return RunRecord(t=0.0, command="run", tool_version="0", base_url="http://127.0.0.1:1", local=True)


def write(folder: Path, records: list[Record]) -> LedgerState:
    """Append `records` through a writer (which refreshes the checkpoint on close) and return its state."""
    with open_folder(folder) as ledger:
        for record in records:
            ledger.append(record)
        return ledger.state


def all_records(folder: Path) -> list[Record]:
    """Return the folder's records, parsed without any checkpoint."""
    return parse_ledger((folder / LEDGER_NAME).read_bytes()).records


def test_a_writer_leaves_a_checkpoint_that_reads_as_the_ledger_does(tmp_path: Path) -> None:
    """After a writer closes, the checkpoint exists, and the state read with it equals the fold of every record."""
    write(tmp_path, [run_record(), *[r for n in range(4) for r in job_records(n)]])

    assert (tmp_path / CHECKPOINT_NAME).exists()
    assert fold(all_records(tmp_path)) == read_ledger(tmp_path)


def test_records_after_the_checkpoint_are_folded_on_top_of_it(tmp_path: Path) -> None:
    """A record appended after the checkpoint (one, fewer than STALE_AFTER: the checkpoint is kept) is read."""
    write(tmp_path, [run_record(), *[r for n in range(3) for r in job_records(n)]])
    before = (tmp_path / CHECKPOINT_NAME).read_bytes()
    write(tmp_path, job_records(9)[:1])

    assert before == (tmp_path / CHECKPOINT_NAME).read_bytes()
    state = read_ledger(tmp_path)
    assert Phase.INTENT is state.jobs[key(9)].phase
    assert fold(all_records(tmp_path)) == state


def test_a_checkpoint_many_records_behind_is_rewritten(tmp_path: Path) -> None:
    """STALE_AFTER records after it, a writer's close writes it again, covering the whole ledger."""
    write(tmp_path, [run_record(), *[r for n in range(3) for r in job_records(n)]])
    write(tmp_path, job_records(7))

    header = json.loads((tmp_path / CHECKPOINT_NAME).read_bytes().split(b"\n")[0])
    assert (tmp_path / LEDGER_NAME).stat().st_size == header["ledger_bytes"]


def test_small_folders_get_no_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Below MIN_JOBS jobs a writer writes no checkpoint."""
    monkeypatch.setattr(checkpoint, "MIN_JOBS", 5)
    write(tmp_path, [run_record(), *[r for n in range(4) for r in job_records(n)]])
    assert not (tmp_path / CHECKPOINT_NAME).exists()


def make_fifo(path: Path) -> bool:
    """Make a FIFO at `path` (for a lambda: returns True)."""
    os.mkfifo(path)
    return True


@pytest.mark.parametrize(
    "spoil",
    [
        pytest.param(lambda c, ledger: ledger.write_bytes(ledger.read_bytes()[:-200]), id="ledger cut short"),
        pytest.param(lambda c, ledger: ledger.write_bytes(ledger.read_bytes().replace(b"p1", b"p8")), id="rewritten"),
        pytest.param(lambda c, ledger: c.write_bytes(b"not json\n"), id="garbage"),
        pytest.param(lambda c, ledger: c.write_bytes(c.read_bytes().replace(b'"v": 1', b'"v": 2')), id="newer"),
        pytest.param(lambda c, ledger: c.write_bytes(c.read_bytes()[:-40]), id="state cut"),
        pytest.param(lambda c, ledger: (c.unlink(), c.mkdir()), id="a folder"),
        pytest.param(lambda c, ledger: (c.unlink(), make_fifo(c)), id="a fifo"),
        pytest.param(lambda c, ledger: (c.unlink(), c.symlink_to(ledger)), id="a link"),
    ],
)
def test_a_checkpoint_that_does_not_match_its_ledger_is_ignored(tmp_path: Path, spoil: object) -> None:
    """A ledger cut short or rewritten under it, a checkpoint that is garbage, of a newer format, cut short, or a
    folder, FIFO or link at its name: the ledger is replayed whole, with no error, readers and writers alike."""
    write(tmp_path, [run_record(), *[r for n in range(4) for r in job_records(n)]])
    assert callable(spoil)
    spoil(tmp_path / CHECKPOINT_NAME, tmp_path / LEDGER_NAME)
    expected = fold(all_records(tmp_path))

    assert expected == read_ledger(tmp_path)
    assert expected == write(tmp_path, [])


def test_a_corrupt_record_after_the_checkpoint_is_reported_at_its_line(tmp_path: Path) -> None:
    """Corruption after the checkpoint is counted from the ledger's first line, as a whole replay counts it."""
    write(tmp_path, [run_record(), *[r for n in range(3) for r in job_records(n)]])
    with (tmp_path / LEDGER_NAME).open("ab") as ledger:
        ledger.write(b'{"v":1,"t":1,"type":"nonsense"}\n{"v":1,"t":1,"type":"run"}\n')

    with pytest.raises(LedgerCorruptError, match=r"ledger.jsonl:11: "):
        read_ledger(tmp_path)


def derived(folder: Path, state: LedgerState) -> None:
    """Write the derived files of every job in `state`."""
    write_results(folder, [job_of(js) for js in state.jobs.values()], state, name="n")


def test_derived_files_are_not_rewritten_when_no_job_changed(tmp_path: Path) -> None:
    """A second `write_results` for the same jobs and the same job changes leaves both files untouched (their
    inode and time), though a `run` record was appended in between."""
    state = write(tmp_path, [run_record(), *job_records(1)])
    derived(tmp_path, state)
    before = [os.stat(tmp_path / name) for name in (RESULTS_NAME, METADATA_NAME)]
    state = write(tmp_path, [run_record()])
    derived(tmp_path, state)

    after = [os.stat(tmp_path / name) for name in (RESULTS_NAME, METADATA_NAME)]
    assert [(s.st_ino, s.st_mtime_ns) for s in before] == [(s.st_ino, s.st_mtime_ns) for s in after]


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda folder, state: write(folder, job_records(2)), id="a job added"),
        pytest.param(
            lambda folder, state: write(
                folder, [DeletedRecord(t=4.0, key=key(1), inference_id="id-1", outcome="deleted")]
            ),
            id="a job deleted remotely",
        ),
        pytest.param(lambda folder, state: (folder / METADATA_NAME).write_text(""), id="metadata edited"),
        pytest.param(lambda folder, state: (folder / RESULTS_NAME).unlink(), id="results removed"),
        pytest.param(lambda folder, state: (folder / STAMP_NAME).write_text("{}"), id="stamp spoilt"),
    ],
)
def test_derived_files_are_rewritten_when_anything_they_follow_changed(tmp_path: Path, change: object) -> None:
    """A job changed in the ledger, a derived file edited or removed, or a spoilt stamp: both are written again."""
    state = write(tmp_path, [run_record(), *job_records(1)])
    derived(tmp_path, state)
    before = (tmp_path / RESULTS_NAME).read_text()
    assert callable(change)
    change(tmp_path, state)
    state = read_ledger(tmp_path)
    derived(tmp_path, state)

    assert before != (tmp_path / RESULTS_NAME).read_text()  # written again: `written_at` moved
    rows = [json.loads(line) for line in (tmp_path / METADATA_NAME).read_text().splitlines()]
    assert {js.key for js in state.jobs.values()} == {row["key"] for row in rows}


@pytest.mark.parametrize("planted", ["link", "folder"])
def test_a_stamp_name_taken_by_something_else_is_left_alone(tmp_path: Path, planted: str) -> None:
    """A link or a folder at the stamp's name: nothing read or written through it, no error; the derived files
    are written every time. (A FIFO there is never opened for reading and is replaced by the stamp.)"""
    state = write(tmp_path, [run_record(), *job_records(1)])
    target = tmp_path / "elsewhere"
    target.write_text("keep")
    stamp = tmp_path / STAMP_NAME
    {"link": lambda: stamp.symlink_to(target), "folder": stamp.mkdir}[planted]()
    derived(tmp_path, state)
    first = (tmp_path / RESULTS_NAME).read_text()
    derived(tmp_path, state)

    assert first != (tmp_path / RESULTS_NAME).read_text()
    assert "keep" == target.read_text()


def test_a_fifo_at_the_stamps_name_never_hangs_a_run(tmp_path: Path) -> None:
    """A FIFO at the stamp's name: reading it would block; it is refused unopened and replaced by the stamp."""
    state = write(tmp_path, [run_record(), *job_records(1)])
    os.mkfifo(tmp_path / STAMP_NAME)
    derived(tmp_path, state)

    assert (tmp_path / STAMP_NAME).is_file()
