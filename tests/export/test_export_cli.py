"""`leapbatch export` at its edges: a clear error and nothing written, never half an export; `verify` on exports."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from export_support import IMAGES

from leapbatch.cli import main


def copy(finished: Path, tmp_path: Path) -> Path:
    """Return a copy of the finished folder to spoil (its manifest path is absolute, so it is still found)."""
    out = tmp_path / "critters"
    shutil.copytree(finished, out)
    return out


def export(out: Path, dest: Path, *args: str) -> int:
    """Export `out` to `dest` with `args` (imagefolder unless given); return the exit code."""
    return main(["export", str(out), "--to", str(dest), *args])


def one_line_error(err: str) -> str:
    """Return the `error:` line of stderr, checking there is exactly one and a hint."""
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert 1 == len(errors), err
    assert "hint: " in err
    assert "Traceback" not in err
    return errors[0]


def leftovers(tmp_path: Path) -> list[str]:
    """Return the staging folders left beside the exports."""
    return sorted(p.name for p in tmp_path.iterdir() if ".part-" in p.name or ".old-" in p.name)


def test_a_damaged_image_fails_the_export_and_leaves_nothing(
    finished: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An image that differs from the ledger: exit 1 naming it, no DEST, no staging folder left."""
    out = copy(finished, tmp_path)
    victim = sorted((out / "images").iterdir())[5]
    victim.write_bytes(victim.read_bytes()[:-1] + b"\x00")

    assert 1 == export(out, tmp_path / "dest")

    assert victim.name in one_line_error(capsys.readouterr().err)
    assert not (tmp_path / "dest").exists()
    assert [] == leftovers(tmp_path)


def test_a_failed_re_export_keeps_the_earlier_export(finished: Path, tmp_path: Path) -> None:
    """An export that fails over an earlier one leaves the earlier one whole."""
    out = copy(finished, tmp_path)
    assert 0 == export(out, tmp_path / "dest")
    before = sorted(p.relative_to(tmp_path).as_posix() for p in (tmp_path / "dest").rglob("*"))
    (sorted((out / "images").iterdir())[0]).unlink()

    assert 1 == export(out, tmp_path / "dest")

    assert before == sorted(p.relative_to(tmp_path).as_posix() for p in (tmp_path / "dest").rglob("*"))
    assert 0 == main(["verify", str(tmp_path / "dest")])


def test_a_folder_with_other_files_is_never_exported_into(
    finished: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """DEST holding files that are not an export: exit 2, the files untouched."""
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "thesis.tex").write_text("mine")

    assert 2 == export(finished, dest)

    assert "not a leapbatch export" in one_line_error(capsys.readouterr().err)
    assert ["thesis.tex"] == os.listdir(dest)


def test_a_link_at_dest_is_refused(finished: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """DEST a symbolic link (to a folder elsewhere): exit 2, nothing written where it points."""
    target = tmp_path / "elsewhere"
    target.mkdir()
    (tmp_path / "dest").symlink_to(target)

    assert 2 == export(finished, tmp_path / "dest")

    assert "symbolic link" in one_line_error(capsys.readouterr().err)
    assert [] == os.listdir(target)


def test_an_export_into_the_output_folder_is_refused(finished: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--to inside OUT: exit 2 (it would export the export next time)."""
    assert 2 == export(finished, finished / "export")
    assert "inside the output folder" in one_line_error(capsys.readouterr().err)
    assert not (finished / "export").exists()


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (("--caption", "{trigger"), "--caption: "),
        (("--caption", "{nonesuch}"), "has no {nonesuch}"),
        (("--stratify", "colour"), "--stratify colour: no job has a variable"),
    ],
)
def test_bad_options_are_one_line_errors(
    finished: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], args: tuple[str, ...], said: str
) -> None:
    """A caption template that does not parse or names nothing, an unknown stratum: exit 2, nothing written."""
    assert 2 == export(finished, tmp_path / "dest", *args)
    assert said in one_line_error(capsys.readouterr().err)
    assert not (tmp_path / "dest").exists()


def test_a_bad_split_is_a_usage_error(finished: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--split shares that do not add up to 1: exit 2 with the sum."""
    assert 2 == export(finished, tmp_path / "dest", "--split", "train=0.8,test=0.1")
    assert "add up to 0.9, not 1" in capsys.readouterr().err


def test_caption_override_renders_variables_and_the_manifest_caption(finished: Path, tmp_path: Path) -> None:
    """--caption '{style} | {caption}' puts the style before the manifest's caption on every row."""
    assert 0 == export(finished, tmp_path / "dest", "--caption", "{style} | {caption}")
    rows = [json.loads(line) for line in (tmp_path / "dest" / "train" / "metadata.jsonl").read_text().splitlines()]
    assert IMAGES == len(rows)
    assert all(row["text"] == f"{row['var_style']} | ohwx {row['var_animal']}, {row['var_style']}" for row in rows)


def test_verify_checks_an_export_against_its_sums(
    finished: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A fresh export verifies; a changed byte, a removed file and an added file are each reported (exit 1)."""
    dest = tmp_path / "dest"
    assert 0 == export(finished, dest)
    assert 0 == main(["verify", str(dest)])
    capsys.readouterr()
    (dest / "README.md").write_text("edited")
    (dest / "train" / "metadata.jsonl").unlink()
    (dest / "train" / "stray.png").write_bytes(b"x")

    assert 1 == main(["verify", str(dest), "--json"])

    report = json.loads(capsys.readouterr().out)
    found = {(p["kind"], p["path"]) for p in report["problems"]}
    assert {("damaged", "README.md"), ("missing", "train/metadata.jsonl"), ("untracked", "train/stray.png")} == found


def test_a_folder_without_finished_images_has_nothing_to_export(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A folder whose ledger holds no finished job: exit 2, with a hint to run it."""
    out = tmp_path / "empty"
    out.mkdir()
    (out / "ledger.jsonl").write_text("")

    assert 2 == export(out, tmp_path / "dest")

    assert "no finished images" in one_line_error(capsys.readouterr().err)


def test_the_json_summary_counts_each_split(finished: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--json prints the format, the destination and jobs and images per split."""
    assert 0 == export(finished, tmp_path / "dest", "--split", "train=0.75,test=0.25", "--json")
    summary = json.loads(capsys.readouterr().out)
    assert {"train": {"jobs": 10, "images": 10}, "test": {"jobs": 3, "images": 4}} == summary["splits"]


def test_a_folder_a_run_is_working_on_is_not_exported(
    finished: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """While another process holds the folder's lock: exit 3, nothing written."""
    out = copy(finished, tmp_path)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(out)], stdout=subprocess.PIPE, stdin=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None
        assert "held" == holder.stdout.readline().strip()
        assert 3 == export(out, tmp_path / "dest")
    finally:
        holder.communicate("")
    assert "export it after the run ends" in capsys.readouterr().err
    assert not (tmp_path / "dest").exists()


HOLD_LOCK = """
import sys
from pathlib import Path
from leapbatch.folder.ledger import FolderLock
lock = FolderLock(Path(sys.argv[1]))
lock.acquire()
print("held", flush=True)
sys.stdin.read()
"""
