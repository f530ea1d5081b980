"""Specs of `leapbatch.folder.merge` on folders written by hand (real ledgers, real PNG files): one job per key,
decided by the folder where it got furthest; the sources only read; the target written images first and its
ledger last, so a merge refused or cut short leaves no ledger; every refusal a `UsageError` saying what and where.
"""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Sequence
from pathlib import Path

import pytest
from PIL import Image

from leapbatch.errors import OutputLockedError, UsageError
from leapbatch.folder.ledger import FolderLock, read_ledger
from leapbatch.folder.merge import merge
from leapbatch.folder.records import (
    ConsentRecord,
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

API = "https://api.example.com"
K1, K2, K3 = ("1" * 64, "2" * 64, "3" * 64)


def png(colour: str) -> bytes:
    """Return a real 8x8 PNG of one colour."""
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), colour).save(buffer, "PNG")
    return buffer.getvalue()


def run(*, base_url: str = API, sha: str = "a" * 64, shard: str | None = None) -> RunRecord:
    """Return the record of a run on `base_url` of the manifest with sha256 `sha`."""
    return RunRecord(
        t=1.0,
        command="run",
        tool_version="0",
        base_url=base_url,
        manifest_path="m.yaml",
        manifest_sha256=sha,
        name="merged-name",
        shard=shard,
    )


def intent(key: str) -> IntentRecord:
    """Return the intent of job `key`, committing a cent."""
    return IntentRecord(t=2.0, key=key, model="m", fingerprint=f"fp-{key}", request={"prompt": key[:4]}, cost=0.01)


def done(folder: Path, key: str, inference_id: str, colour: str = "red") -> list[Record]:
    """Return the records of `key` created as `inference_id` and finished with one image, and write that image."""
    data = png(colour)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "images" / f"{key}-0.png").write_bytes(data)
    image = ImageRecord(
        index=0,
        uri=f"https://img.example.com/{key}",
        path=f"images/{key}-0.png",
        sha256=hashlib.sha256(data).hexdigest(),
        bytes=len(data),
        width=8,
        height=8,
    )
    return [
        intent(key),
        SubmittedRecord(t=3.0, key=key, inference_id=inference_id),
        FinishedRecord(t=4.0, key=key, inference_id=inference_id, images=[image]),
    ]


def broke(key: str, inference_id: str) -> list[Record]:
    """Return the records of `key` created as `inference_id` and failed remotely."""
    return [
        intent(key),
        SubmittedRecord(t=3.0, key=key, inference_id=inference_id),
        FailedRecord(t=4.0, key=key, stage=FailStage.GENERATE, reason="it broke", inference_id=inference_id),
    ]


def folder(path: Path, records: Sequence[Record]) -> Path:
    """Write `records` as the ledger of the output folder `path` and return it."""
    path.mkdir(parents=True, exist_ok=True)
    lines = (record.model_dump_json(exclude_none=True) + "\n" for record in records)
    (path / "ledger.jsonl").write_text("".join(lines))
    return path


def test_a_job_in_two_folders_is_one_job_decided_where_it_finished(tmp_path: Path) -> None:
    """K1 failed in `a` and finished in `b`: the merge holds K1 finished, with b's image, the failed attempt's
    remote job as an orphan that `delete` removes, and both attempts' spend; it is counted once."""
    a = folder(tmp_path / "a", [run(), *broke(K1, "id-a1"), *done(tmp_path / "a", K2, "id-a2")])
    b = folder(tmp_path / "b", [run(), *done(tmp_path / "b", K1, "id-b1", colour="blue")])

    merged = merge([a, b], tmp_path / "m")

    job = merged.state.jobs[K1]
    assert (Phase.FINISHED, "id-b1", ("id-a1",)) == (job.phase, job.inference_id, job.orphans)
    assert (tmp_path / "b" / "images" / f"{K1}-0.png").read_bytes() == (
        tmp_path / "m/images" / f"{K1}-0.png"
    ).read_bytes()
    assert 1 == merged.duplicates
    assert 3 == merged.state.spend.committed_images
    assert {K1, K2} == set(read_ledger(tmp_path / "m").jobs)


def test_the_first_folder_decides_a_tie(tmp_path: Path) -> None:
    """K1 finished in both: the first folder given decides it (its inference id, its image)."""
    a = folder(tmp_path / "a", [run(), *done(tmp_path / "a", K1, "id-a", colour="red")])
    b = folder(tmp_path / "b", [run(), *done(tmp_path / "b", K1, "id-b", colour="blue")])

    assert "id-a" == merge([a, b], tmp_path / "m").state.jobs[K1].inference_id
    assert png("red") == (tmp_path / "m/images" / f"{K1}-0.png").read_bytes()


def test_the_merged_ledger_ends_with_a_merge_record_and_leaves_consents_out(tmp_path: Path) -> None:
    """The last record is `merge`, for the whole manifest (no shard), naming the manifest every source last ran;
    no `consent` record is carried over (each covered one shard's plan)."""
    consent = ConsentRecord(t=5.0, total=1.0, jobs=1, images=1, price="p")
    a = folder(tmp_path / "a", [run(shard="1/2"), *done(tmp_path / "a", K1, "i1"), consent])
    b = folder(tmp_path / "b", [run(shard="2/2"), *done(tmp_path / "b", K2, "i2")])

    state = merge([a, b], tmp_path / "m").state
    last = state.runs[-1]

    assert ("merge", None, "m.yaml", "a" * 64, "merged-name") == (
        last.command,
        last.shard,
        last.manifest_path,
        last.manifest_sha256,
        last.name,
    )
    assert state.consent is None
    assert b'"type":"consent"' not in (tmp_path / "m/ledger.jsonl").read_bytes()


def test_sources_that_ran_different_manifests_name_none(tmp_path: Path) -> None:
    """Sources whose last runs recorded different manifests: the merge record names no manifest."""
    a = folder(tmp_path / "a", [run(sha="a" * 64), *done(tmp_path / "a", K1, "i1")])
    b = folder(tmp_path / "b", [run(sha="b" * 64), *done(tmp_path / "b", K2, "i2")])

    last = merge([a, b], tmp_path / "m").state.runs[-1]
    assert (None, None) == (last.manifest_path, last.manifest_sha256)


def test_the_sources_are_only_read(tmp_path: Path) -> None:
    """Every file of every source is byte for byte the same after a merge, a torn last line included."""
    a = folder(tmp_path / "a", [run(), *done(tmp_path / "a", K1, "i1")])
    with (a / "ledger.jsonl").open("ab") as ledger:
        ledger.write(b'{"v":1,"type":"inte')
    before = {p: p.read_bytes() for p in a.rglob("*") if p.is_file()}

    merge([a], tmp_path / "m")

    assert before == {p: p.read_bytes() for p in a.rglob("*") if p.is_file() and p.name != ".leapbatch.lock"}
    assert {K1} == set(read_ledger(tmp_path / "m").jobs)


def test_a_source_image_that_is_not_as_recorded_refuses_the_merge_and_writes_no_ledger(tmp_path: Path) -> None:
    """A source image whose bytes differ from its record: `UsageError` naming the file; the target has no ledger
    (nor a half-copied image), so the same merge runs again once the source is repaired."""
    a = folder(tmp_path / "a", [run(), *done(tmp_path / "a", K1, "i1"), *done(tmp_path / "a", K2, "i2")])
    good = (a / "images" / f"{K2}-0.png").read_bytes()
    (a / "images" / f"{K2}-0.png").write_bytes(png("green"))

    with pytest.raises(UsageError, match=f"a/images/{K2}-0.png: not the image its ledger recorded") as refused:
        merge([a], tmp_path / "m")

    assert "verify" in (refused.value.hint or "")
    assert not (tmp_path / "m" / "ledger.jsonl").exists()
    assert not list((tmp_path / "m" / "images").glob("*.part"))
    (a / "images" / f"{K2}-0.png").write_bytes(good)
    assert {K1, K2} == set(merge([a], tmp_path / "m").state.jobs)


def test_a_missing_source_image_refuses_the_merge(tmp_path: Path) -> None:
    """A finished job whose image is gone from its folder: `UsageError` saying the image is missing."""
    a = folder(tmp_path / "a", [run(), *done(tmp_path / "a", K1, "i1")])
    (a / "images" / f"{K1}-0.png").unlink()

    with pytest.raises(UsageError, match="the image is missing"):
        merge([a], tmp_path / "m")


@pytest.mark.parametrize(
    ("setup", "said"),
    [
        (lambda t: [t / "nowhere"], "nowhere: no such folder"),
        (lambda t: [folder(t / "a", [run()]), t / "plain"], "plain: not an output folder (it has no ledger.jsonl)"),
        (lambda t: [folder(t / "a", [run()]), t / "a"], "a is given twice"),
        (lambda t: [folder(t / "m", [run()])], "/m is one of the folders to merge"),
    ],
)
def test_folders_that_cannot_be_merged_are_refused_in_words(tmp_path: Path, setup: object, said: str) -> None:
    """A missing folder, a folder with no ledger, a folder given twice, or the target among the sources."""
    (tmp_path / "plain").mkdir()
    assert callable(setup)
    with pytest.raises(UsageError, match=re.escape(said)):
        merge(setup(tmp_path), tmp_path / "m")
    assert not (tmp_path / "nowhere").exists()
    assert [] == list((tmp_path / "plain").iterdir())


def test_a_target_that_holds_a_ledger_is_refused(tmp_path: Path) -> None:
    """Merging into a folder whose ledger has records is refused; an empty ledger counts as none."""
    a = folder(tmp_path / "a", [run(), *done(tmp_path / "a", K1, "i1")])
    taken = folder(tmp_path / "taken", [run()])
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "ledger.jsonl").write_bytes(b"")

    with pytest.raises(UsageError, match="taken already holds a ledger: a merge writes a new folder"):
        merge([a], taken)
    assert {K1} == set(merge([a], tmp_path / "empty").state.jobs)


def test_folders_from_two_servers_are_refused(tmp_path: Path) -> None:
    """One folder holds one server's jobs: sources made on two servers are refused, naming both."""
    a = folder(tmp_path / "a", [run(), *done(tmp_path / "a", K1, "i1")])
    b = folder(tmp_path / "b", [run(base_url="https://other.example.org"), *done(tmp_path / "b", K2, "i2")])

    with pytest.raises(UsageError, match=r"was made on https://api\.example\.com, .*b on https://other\.example\.org"):
        merge([a, b], tmp_path / "m")


def test_a_source_in_use_by_a_run_is_refused(tmp_path: Path) -> None:
    """A source whose lock a run holds: `OutputLockedError` (exit 3), nothing merged."""
    a = folder(tmp_path / "a", [run(), *done(tmp_path / "a", K1, "i1")])
    with FolderLock(a), pytest.raises(OutputLockedError):
        merge([a], tmp_path / "m")
    assert not (tmp_path / "m" / "ledger.jsonl").exists()


def test_shards_missing_from_a_full_set_are_named(tmp_path: Path) -> None:
    """Folders of shards 1/3 and 3/3: the merge says shard 2/3 is missing."""
    a = folder(tmp_path / "a", [run(shard="1/3"), *done(tmp_path / "a", K1, "i1")])
    c = folder(tmp_path / "c", [run(shard="3/3"), *done(tmp_path / "c", K3, "i3")])

    assert ("2/3",) == merge([a, c], tmp_path / "m").missing_shards
