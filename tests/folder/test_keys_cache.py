"""Specs of the dataset's keys kept in the folder (`leapbatch.folder.keys_cache`): `run` leaves them, `status` reads
them instead of expanding the manifest, but only for the same manifest sources, shard and version; anything else
about the file makes it ignored, never an error, and it is never written through a link.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from leapbatch.cli import _dataset, main
from leapbatch.cli._dataset import expansion_digest, last_run_dataset, last_run_manifest
from leapbatch.folder import keys_cache
from leapbatch.folder.keys_cache import KEYS_NAME, load_keys, save_keys
from leapbatch.folder.ledger import read_ledger
from leapbatch.jobs import Shard
from leapbatch.manifest import load_manifest

EXAMPLE = Path(__file__).parents[2] / "manifests" / "example.yaml"
DIGEST = "d" * 64


@pytest.fixture(autouse=True)
def small_folders_keep_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the keys of datasets of 3 jobs or more, so the 12-job example shows the rules."""
    monkeypatch.setattr(keys_cache, "MIN_JOBS", 3)


def keys(count: int) -> list[str]:
    """Return `count` distinct job keys."""
    return [hashlib.sha256(str(n).encode()).hexdigest() for n in range(count)]


@pytest.fixture
def finished(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Return the output folder of the example manifest (copied beside it), run to the end on the emulator."""
    shutil.copy(EXAMPLE, tmp_path / "example.yaml")
    monkeypatch.chdir(tmp_path)
    assert main(["run", "example.yaml", "--local", "--out", "out", "--speed", "inf", "--quiet", "--yes"]) == 0
    return tmp_path / "out"


def test_keys_read_back_only_for_the_digest_they_were_saved_for(tmp_path: Path) -> None:
    save_keys(tmp_path, DIGEST, keys(5))

    assert load_keys(tmp_path, DIGEST) == frozenset(keys(5))
    assert load_keys(tmp_path, "e" * 64) is None


def test_datasets_smaller_than_min_jobs_leave_no_file(tmp_path: Path) -> None:
    save_keys(tmp_path, DIGEST, keys(2))

    assert not (tmp_path / KEYS_NAME).exists()


def test_the_same_digest_is_not_written_again(tmp_path: Path) -> None:
    save_keys(tmp_path, DIGEST, keys(5))
    before = (tmp_path / KEYS_NAME).stat().st_ino
    save_keys(tmp_path, DIGEST, keys(5))
    assert (tmp_path / KEYS_NAME).stat().st_ino == before

    save_keys(tmp_path, "e" * 64, keys(6))
    assert load_keys(tmp_path, "e" * 64) == frozenset(keys(6))


@pytest.mark.parametrize(
    "spoil",
    [
        pytest.param(lambda text: text[:-30], id="cut short"),
        pytest.param(lambda text: text + "f" * 64 + "\n", id="a key more than the header counts"),
        pytest.param(lambda text: text.replace(keys(5)[2], "X" * 64), id="a line that is no key"),
        pytest.param(lambda text: text.replace('"v": 1', '"v": 2'), id="another format version"),
        pytest.param(lambda text: "garbage\n" + text, id="no header"),
        pytest.param(lambda text: "", id="empty"),
    ],
)
def test_a_spoiled_file_is_ignored(tmp_path: Path, spoil: Callable[[str], str]) -> None:
    save_keys(tmp_path, DIGEST, keys(5))
    path = tmp_path / KEYS_NAME
    path.write_text(spoil(path.read_text()))

    assert load_keys(tmp_path, DIGEST) is None


def test_a_link_at_its_name_is_neither_read_nor_written_through(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    save_keys(tmp_path, DIGEST, keys(5))
    os.replace(tmp_path / KEYS_NAME, victim)
    (tmp_path / KEYS_NAME).symlink_to(victim)

    assert load_keys(tmp_path, DIGEST) is None
    save_keys(tmp_path, "e" * 64, keys(6))
    assert json.loads(victim.read_text().splitlines()[0])["digest"] == DIGEST
    assert (tmp_path / KEYS_NAME).is_symlink()


def test_a_fifo_at_its_name_is_ignored(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / KEYS_NAME)

    assert load_keys(tmp_path, DIGEST) is None


def test_the_digest_changes_with_the_sources_the_shard_and_the_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest = load_manifest(EXAMPLE)
    edited = tmp_path / "edited.yaml"
    edited.write_text(EXAMPLE.read_text().replace("steps: 20", "steps: 21"))
    digest = expansion_digest(manifest, None)

    assert expansion_digest(load_manifest(EXAMPLE), None) == digest
    assert expansion_digest(load_manifest(edited), None) != digest
    assert expansion_digest(manifest, Shard(1, 2)) != digest
    assert expansion_digest(manifest, Shard(1, 2)) != expansion_digest(manifest, Shard(2, 2))
    monkeypatch.setattr(_dataset, "__version__", "0.0.0-other")
    assert expansion_digest(manifest, None) != digest


def test_run_leaves_the_keys_of_its_jobs(finished: Path) -> None:
    state = read_ledger(finished)

    saved = load_keys(finished, expansion_digest(load_manifest(finished.parent / "example.yaml"), None))

    assert saved is not None
    assert saved == last_run_manifest(state).dataset.keys
    assert len(saved) == 12


def test_the_dataset_is_read_from_the_keys_when_they_are_for_this_manifest(finished: Path) -> None:
    """Planted keys for the right digest are what the dataset is said to be: the file is read, not the expansion."""
    manifest = load_manifest(finished.parent / "example.yaml")
    save_keys(finished, expansion_digest(manifest, None), keys(4))

    assert last_run_dataset(finished, read_ledger(finished)).keys == frozenset(keys(4))


def test_keys_of_another_digest_leave_the_manifest_expanded(finished: Path) -> None:
    state = read_ledger(finished)
    save_keys(finished, expansion_digest(load_manifest(finished.parent / "example.yaml"), Shard(1, 2)), keys(4))

    assert last_run_dataset(finished, state) == last_run_manifest(state).dataset


def test_an_edited_manifest_is_unknown_whatever_keys_the_folder_holds(finished: Path) -> None:
    manifest_path = finished.parent / "example.yaml"
    manifest_path.write_text(manifest_path.read_text().replace("steps: 20", "steps: 21"))
    save_keys(finished, expansion_digest(load_manifest(manifest_path), None), keys(4))

    dataset = last_run_dataset(finished, read_ledger(finished))

    assert dataset.keys is None
    assert "changed since" in (dataset.why or "")


def test_status_shows_the_same_with_and_without_the_keys(finished: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["status", str(finished), "--json"]) == 0
    with_keys = json.loads(capsys.readouterr().out)
    (finished / KEYS_NAME).unlink()
    assert main(["status", str(finished), "--json"]) == 0
    without = json.loads(capsys.readouterr().out)

    for report in (with_keys, without):
        report.pop("disk_bytes", None)
    assert with_keys == without


def test_status_reads_the_keys_run_left(finished: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Keys planted for the right digest that drop four of the twelve jobs: status says four are not in the
    manifest, so it read the file and did not expand the manifest."""
    held = sorted(last_run_manifest(read_ledger(finished)).dataset.keys or ())
    save_keys(finished, expansion_digest(load_manifest(finished.parent / "example.yaml"), None), held[4:])
    capsys.readouterr()

    assert main(["status", str(finished), "--json"]) == 0

    assert json.loads(capsys.readouterr().out)["not_in_manifest"]["jobs"] == 4
