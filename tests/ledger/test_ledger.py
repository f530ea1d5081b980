"""The ledger keeps the longest valid prefix, sets a torn tail aside, and refuses a corrupt middle."""

from __future__ import annotations

import fcntl
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from leapbatch.cli import main
from leapbatch.errors import LedgerCorruptError, OutputLockedError
from leapbatch.folder.ledger import LEDGER_NAME, FolderLock, open_folder, parse_ledger, read_ledger
from leapbatch.folder.records import (
    FailedRecord,
    FailStage,
    FinishedRecord,
    ImageRecord,
    IntentRecord,
    Record,
    RunRecord,
    SubmittedRecord,
)
from leapbatch.folder.state import Phase

KEY_A = "a" * 64
KEY_B = "b" * 64


def sample_records() -> list[Record]:
    """Return a run's worth of records covering every kind a run writes."""
    request = {"prompt": "a cat, ünïcode ✓", "seed": 1, "width": 64, "height": 64}
    image = ImageRecord(
        index=0, uri="http://img/0.png", path=f"images/{KEY_A}-0.png", sha256="0" * 64, bytes=10, width=64, height=64
    )
    return [
        RunRecord(t=1.0, command="run", tool_version="0.1.0", base_url="http://127.0.0.1:1"),
        IntentRecord(t=2.0, key=KEY_A, model="m", fingerprint="f" * 64, request=request),
        SubmittedRecord(t=3.0, key=KEY_A, inference_id="id-a"),
        IntentRecord(t=4.0, key=KEY_B, model="m", fingerprint="e" * 64, request={**request, "seed": 2}),
        FinishedRecord(t=5.0, key=KEY_A, inference_id="id-a", images=[image]),
        FailedRecord(t=6.0, key=KEY_B, stage=FailStage.CREATE, reason="width must be a multiple of 8", http_status=400),
    ]


def write_ledger(folder: Path, records: list[Record]) -> bytes:
    """Append `records` through a real Ledger and return the file's bytes."""
    folder.mkdir(parents=True, exist_ok=True)
    with open_folder(folder) as ledger:
        for record in records:
            ledger.append(record)
    return (folder / LEDGER_NAME).read_bytes()


def line_starts(data: bytes) -> list[int]:
    """Return the byte offset where each line starts."""
    starts, offset = [], 0
    for line in data.split(b"\n")[:-1]:
        starts.append(offset)
        offset += len(line) + 1
    return starts


def test_records_round_trip(tmp_path: Path) -> None:
    """Records appended and replayed give the same records and the same job states."""
    records = sample_records()
    write_ledger(tmp_path, records)
    with open_folder(tmp_path) as reopened:
        assert records == parse_ledger((tmp_path / LEDGER_NAME).read_bytes()).records
        assert Phase.FINISHED == reopened.state.jobs[KEY_A].phase
        assert Phase.FAILED == reopened.state.jobs[KEY_B].phase
        assert reopened.set_aside is None


def test_truncation_at_every_offset_of_the_last_records_keeps_the_valid_prefix(tmp_path: Path) -> None:
    """Cutting the file anywhere in its last three records keeps exactly the records that are whole."""
    records = sample_records()
    data = write_ledger(tmp_path / "source", records)
    starts = line_starts(data)
    for cut in range(starts[-3], len(data) + 1):
        folder = tmp_path / f"cut-{cut}"
        folder.mkdir()
        (folder / LEDGER_NAME).write_bytes(data[:cut])
        whole = sum(1 for start, nxt in zip(starts, [*starts[1:], len(data)], strict=True) if nxt <= cut)
        with open_folder(folder) as ledger:
            kept = parse_ledger((folder / LEDGER_NAME).read_bytes()).records
            assert records[:whole] == kept, f"cut at byte {cut}"
            torn = data[starts[whole] if whole < len(starts) else len(data) : cut]
            assert (torn or None) == (ledger.set_aside.read_bytes() if ledger.set_aside else None), f"cut at {cut}"
            # Later appends start on a clean line.
            ledger.append(records[0])
        assert [*records[:whole], records[0]] == parse_ledger((folder / LEDGER_NAME).read_bytes()).records


@pytest.mark.parametrize("garbage", [b"\x00\x00\x00", b"garbage\n", b'{"v":1,"type":"intent"', b"\xff\xfe\n"])
def test_garbage_appended_is_set_aside(tmp_path: Path, garbage: bytes) -> None:
    """Garbage after the last record is set aside and cut off; every record is kept."""
    records = sample_records()
    data = write_ledger(tmp_path, records)
    (tmp_path / LEDGER_NAME).write_bytes(data + garbage)
    with open_folder(tmp_path) as ledger:
        assert data == (tmp_path / LEDGER_NAME).read_bytes()
        assert ledger.set_aside is not None
        assert garbage == ledger.set_aside.read_bytes()
    assert records == parse_ledger(data).records


def test_corrupt_middle_line_stops_and_touches_nothing(tmp_path: Path) -> None:
    """A bad record followed by good ones is corruption: a clear error naming the line, and the file unchanged."""
    data = write_ledger(tmp_path, sample_records())
    lines = data.split(b"\n")
    lines[2] = lines[2][:10] + b"#" + lines[2][11:]
    corrupt = b"\n".join(lines)
    (tmp_path / LEDGER_NAME).write_bytes(corrupt)
    with pytest.raises(LedgerCorruptError) as caught, open_folder(tmp_path):
        pass
    assert f"{tmp_path / LEDGER_NAME}:3: " in caught.value.message
    assert 4 == caught.value.exit_code
    assert corrupt == (tmp_path / LEDGER_NAME).read_bytes()
    assert [] == list(tmp_path.glob("*.torn-*"))


def test_record_of_unknown_type_in_the_middle_is_corruption(tmp_path: Path) -> None:
    """A line that is JSON but not a ledger record counts as corrupt too."""
    data = write_ledger(tmp_path, sample_records())
    lines = data.split(b"\n")
    lines.insert(1, b'{"v":1,"type":"teleported","t":1}')
    (tmp_path / LEDGER_NAME).write_bytes(b"\n".join(lines))
    with pytest.raises(LedgerCorruptError, match=r":2: not a ledger record"), open_folder(tmp_path):
        pass


def test_newer_format_is_refused_even_at_the_end(tmp_path: Path) -> None:
    """A record from a newer leapbatch is never cut off as a torn tail."""
    data = write_ledger(tmp_path, sample_records())
    (tmp_path / LEDGER_NAME).write_bytes(data + b'{"v":2,"type":"run","t":1}\n')
    with pytest.raises(LedgerCorruptError, match="newer than this leapbatch"), open_folder(tmp_path):
        pass


def test_read_ledger_needs_no_lock_and_ignores_a_torn_tail(tmp_path: Path) -> None:
    """`read_ledger` (for status) reads while a writer holds the lock, and never modifies the file."""
    data = write_ledger(tmp_path, sample_records())
    (tmp_path / LEDGER_NAME).write_bytes(data + b'{"v":1,"ty')
    with FolderLock(tmp_path):
        state = read_ledger(tmp_path)
    assert {KEY_A, KEY_B} == set(state.jobs)
    assert data + b'{"v":1,"ty' == (tmp_path / LEDGER_NAME).read_bytes()


def test_a_second_process_cannot_take_the_lock(tmp_path: Path) -> None:
    """While one process holds the folder, another gets OutputLockedError naming the folder; kill -9 frees it."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
            import sys, time
            from pathlib import Path
            from leapbatch.folder.ledger import FolderLock
            FolderLock(Path({str(tmp_path)!r})).acquire()
            print("locked", flush=True)
            time.sleep(60)
        """),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert "locked\n" == holder.stdout.readline()
        with pytest.raises(OutputLockedError) as caught:
            FolderLock(tmp_path).acquire()
        assert str(tmp_path) in caught.value.message
        assert f"pid {holder.pid}" in caught.value.message
        assert 3 == caught.value.exit_code
    finally:
        holder.kill()
        holder.wait()
        assert holder.stdout is not None
        holder.stdout.close()
    with FolderLock(tmp_path):
        pass


@pytest.mark.parametrize(
    "line",
    [
        b'{"v":1,"type":"teleported","t":7}',  # a type a newer leapbatch may write
        b'{"v":1,"type":"run","t":7,"command":"run","tool_version":"9","base_url":"http://x","colour":"red"}',
        b'{"v":1,"type":"submitted","t":7,"key":"' + KEY_B.encode() + b'"}',  # a field missing
        b"[1, 2, 3]",
    ],
)
def test_a_whole_last_line_that_is_json_but_no_record_is_refused_not_cut_off(tmp_path: Path, line: bytes) -> None:
    """A newline-ended last line that is JSON was written whole: exit 4 naming it, the file as it was, nothing aside."""
    data = write_ledger(tmp_path, sample_records())
    (tmp_path / LEDGER_NAME).write_bytes(data + line + b"\n")

    with pytest.raises(LedgerCorruptError) as caught, open_folder(tmp_path):
        pass

    assert f"{tmp_path / LEDGER_NAME}:7: not a ledger record (" in caught.value.message
    assert "a newer leapbatch" in (caught.value.hint or "")
    assert (4, data + line + b"\n", []) == (
        caught.value.exit_code,
        (tmp_path / LEDGER_NAME).read_bytes(),
        list(tmp_path.glob("*.torn-*")),
    )


def test_a_last_json_line_without_its_newline_is_still_a_torn_tail(tmp_path: Path) -> None:
    """The same unknown record, cut before its newline (a torn write), is set aside and cut off as before."""
    data = write_ledger(tmp_path, sample_records())
    tail = b'{"v":1,"type":"teleported","t":7}'
    (tmp_path / LEDGER_NAME).write_bytes(data + tail)

    with open_folder(tmp_path) as ledger:
        assert ledger.set_aside is not None
        assert (tail, data) == (ledger.set_aside.read_bytes(), (tmp_path / LEDGER_NAME).read_bytes())


def intent_with_unknown_request_field() -> bytes:
    """Return an intent line whose request carries a field no CreateInferenceDto has (a byte flip, a newer writer)."""
    request = {"prompt": "a cat", "seed": 1, "width": 64, "height": 64, "sneed": 1}
    record = {"v": 1, "t": 9.0, "type": "intent", "key": "c" * 64, "model": "m", "fingerprint": "d" * 64}
    return json.dumps({**record, "request": request}, separators=(",", ":")).encode()


@pytest.mark.parametrize("where", ["middle", "last"])
def test_an_intent_whose_request_has_an_unknown_field_is_corruption(tmp_path: Path, where: str) -> None:
    """Anywhere in the ledger, such an intent stops the writer and the reader with exit 4 naming the field."""
    lines = write_ledger(tmp_path, sample_records()).split(b"\n")
    lines.insert(2 if where == "middle" else len(lines) - 1, intent_with_unknown_request_field())
    number = 3 if where == "middle" else len(lines) - 1
    data = b"\n".join(lines)
    (tmp_path / LEDGER_NAME).write_bytes(data)

    with pytest.raises(LedgerCorruptError) as written, open_folder(tmp_path):
        pass
    with pytest.raises(LedgerCorruptError) as read:
        read_ledger(tmp_path)

    expected = f"{tmp_path / LEDGER_NAME}:{number}: not a ledger record (request.sneed: Extra inputs are not permitted)"
    assert (expected, expected) == (written.value.message, read.value.message)
    assert (data, []) == ((tmp_path / LEDGER_NAME).read_bytes(), list(tmp_path.glob("*.torn-*")))


@pytest.mark.parametrize(
    "command", [["run", "--local", "{manifest}", "--out", "{out}"], ["verify", "{out}"], ["status", "{out}"]]
)
def test_run_verify_and_status_exit_4_on_an_unknown_request_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    """Through the CLI: one error line naming the line and the field, exit 4, no traceback, the ledger untouched."""
    out = tmp_path / "out"
    data = write_ledger(out, sample_records()) + intent_with_unknown_request_field() + b"\n"
    (out / LEDGER_NAME).write_bytes(data)
    manifest = tmp_path / "one.yaml"
    manifest.write_text(
        "version: 1\nname: one\nmodel: 26a1a203-3a46-42cb-8cfa-f4de075907d8\nprompt: a fox\n"
        "params: {steps: 20, width: 64, height: 64, seed: 7}\n"
    )

    code = main([part.format(manifest=manifest, out=out) for part in command])

    lines = capsys.readouterr().err.splitlines()
    assert 4 == code
    assert (
        f"error: {out / LEDGER_NAME}:7: not a ledger record (request.sneed: Extra inputs are not permitted)" == lines[0]
    )
    assert lines[1].startswith("hint: the ledger was left untouched")
    assert data == (out / LEDGER_NAME).read_bytes()


def test_a_lock_file_holding_no_pid_is_shown_as_unknown(tmp_path: Path) -> None:
    """The lock's content is only shown when it is a pid: anything else (escape sequences) reads `pid unknown`."""
    (tmp_path / ".leapbatch.lock").write_bytes(b"\x1b]0;pwned\x07\n")
    with (tmp_path / ".leapbatch.lock").open("rb") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(OutputLockedError) as caught:
            FolderLock(tmp_path).acquire()
    assert caught.value.message.endswith("(pid unknown)")
