"""`leapbatch gallery OUT`: the page folder on disk — the page as shipped, thumbnails named by content and made once,
the data script (relative paths only, no markup in it), and nothing written through a link."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageStat

from leapbatch.cli import main
from leapbatch.view.gallery import DAMAGED_REASON, PAGE_FILES, page_file
from leapbatch.view.gallery_data import GLOBAL, thumb_name
from leapbatch.view.thumbs import THUMB_SIDE

ROOT = Path(__file__).resolve().parents[2]
HOSTILE = """\
version: 1
name: hostile
model: m1
prompt: "{thing} & more"
matrix:
  thing: ["<img src=x onerror=alert(1)>", "</script><script>alert(2)</script>", "a \\u2028 line"]
"""


@pytest.fixture
def folder(example: Path, tmp_path: Path) -> Path:
    """Return a fresh copy of the example folder (each test may spoil it)."""
    copy = tmp_path / "example"
    shutil.copytree(example, copy, symlinks=True)
    return copy


def data_of(gallery: Path) -> dict[str, Any]:
    """Return the document data.js assigns."""
    text = (gallery / "data.js").read_text(encoding="utf-8")
    prefix = f"window.{GLOBAL} = "
    assert text.startswith(prefix)
    assert text.endswith(";\n")
    document: dict[str, Any] = json.loads(text[len(prefix) : -2])
    return document


def test_the_page_is_shipped_as_is_with_thumbnails_and_data(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """index.html, gallery.js and gallery.css are the package's bytes; every image has its thumbnail."""
    assert 0 == main(["gallery", str(folder)])
    gallery = folder / "gallery"
    for name in PAGE_FILES:
        assert (gallery / name).read_bytes() == page_file(name)
    data = data_of(gallery)
    assert (data["name"], data["folder"], len(data["jobs"]["key"])) == ("example", "../", 12)
    images = [image for row in data["jobs"]["images"] for image in row]
    assert len(images) == 12
    assert sorted(p.name for p in (gallery / "thumbs").iterdir()) == sorted(thumb_name(i[2]) for i in images)
    assert "gallery of 12 jobs and 12 images (12 thumbnails made now)" in capsys.readouterr().err


def test_a_thumbnail_is_a_small_webp_of_its_own_image(folder: Path) -> None:
    """Each thumbnail decodes as WebP, fits THUMB_SIDE, and looks like its image (mean colour within a few levels)."""
    assert 0 == main(["gallery", str(folder)])
    data = data_of(folder / "gallery")
    for row in data["jobs"]["images"]:
        _, path, sha, width, height = row[0]
        with Image.open(folder / "gallery" / "thumbs" / thumb_name(sha)) as thumb:
            assert thumb.format == "WEBP"
            assert max(thumb.size) == min(THUMB_SIDE, max(width, height))
            small = ImageStat.Stat(thumb.convert("RGB")).mean
        with Image.open(folder / path) as original:
            big = ImageStat.Stat(original.convert("RGB")).mean
        assert max(abs(a - b) for a, b in zip(small, big, strict=True)) < 6


def test_only_relative_paths_and_the_folder_found_from_the_gallery(folder: Path, tmp_path: Path) -> None:
    """No absolute path in what the page reads; with --to elsewhere, `folder` leads back to the output folder."""
    elsewhere = tmp_path / "site" / "zoo"
    assert 0 == main(["gallery", str(folder), "--to", str(elsewhere)])
    data = data_of(elsewhere)
    assert data["folder"] == "../../example/"
    assert (elsewhere / data["folder"] / data["jobs"]["images"][0][0][1]).is_file()
    for name in ("data.js", *PAGE_FILES):
        assert str(tmp_path) not in (elsewhere / name).read_text(encoding="utf-8")


def test_a_second_build_makes_no_thumbnail_and_rewrites_nothing(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Content-named thumbnails exist, so none is made again; data.js and the page keep their files (same inode)."""
    assert 0 == main(["gallery", str(folder)])
    gallery = folder / "gallery"
    before = {p.name: p.stat().st_ino for p in gallery.rglob("*")}
    capsys.readouterr()
    assert 0 == main(["gallery", str(folder)])
    assert "(0 thumbnails made now)" in capsys.readouterr().err
    assert {p.name: p.stat().st_ino for p in gallery.rglob("*")} == before


def test_a_lost_or_empty_thumbnail_is_made_again_and_only_it(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A deleted thumbnail and an empty one (what a crash can leave) are made again; the others are left alone."""
    assert 0 == main(["gallery", str(folder)])
    thumbs = sorted((folder / "gallery" / "thumbs").iterdir())
    thumbs[0].unlink()
    thumbs[1].write_bytes(b"")
    capsys.readouterr()
    assert 0 == main(["gallery", str(folder)])
    assert "(2 thumbnails made now)" in capsys.readouterr().err
    assert thumbs[1].stat().st_size > 0


def test_a_damaged_image_gets_no_thumbnail_and_its_entry_says_so(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An image whose bytes differ from the ledger is not shown; the page says what mends it; the exit is 0."""
    first = sorted((folder / "images").iterdir())[0]
    first.write_bytes(first.read_bytes()[:-10])
    assert 0 == main(["gallery", str(folder)])
    data = data_of(folder / "gallery")
    broken = [i for i, row in enumerate(data["jobs"]["images"]) if not row]
    assert len(broken) == 1
    assert data["jobs"]["reason"][broken[0]] == DAMAGED_REASON
    assert "note: 1 image missing on disk or differing from the ledger" in capsys.readouterr().err


def test_a_link_at_the_gallery_is_refused_and_nothing_is_written_through_it(
    folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A symbolic link at OUT/gallery (or at data.js in it): exit 2, the link's target untouched."""
    target = tmp_path / "elsewhere"
    target.mkdir()
    (folder / "gallery").symlink_to(target)
    assert 2 == main(["gallery", str(folder)])
    assert list(target.iterdir()) == []
    assert "link" in capsys.readouterr().err
    (folder / "gallery").unlink()
    assert 0 == main(["gallery", str(folder)])
    victim = tmp_path / "victim.js"
    victim.write_text("keep")
    (folder / "gallery" / "data.js").unlink()
    (folder / "gallery" / "data.js").symlink_to(victim)
    assert 2 == main(["gallery", str(folder)])
    assert victim.read_text() == "keep"


def test_prompts_are_data_no_markup_can_leave_the_script(tmp_path: Path) -> None:
    """data.js holds no `<`, `>` or `&` at all (escaped as \\u003c...), yet the prompts read back exactly."""
    manifest = tmp_path / "hostile.yaml"
    manifest.write_text(HOSTILE, encoding="utf-8")
    out = tmp_path / "hostile"
    assert 0 == main(["run", "--local", "--quiet", "--speed", "1000", "--out", str(out), str(manifest)])
    assert 0 == main(["gallery", str(out)])
    text = (out / "gallery" / "data.js").read_text(encoding="utf-8")
    assert not {"<", ">", "&"} & set(text)
    prompts = set(data_of(out / "gallery")["jobs"]["prompt"])
    assert prompts == {
        "<img src=x onerror=alert(1)> & more",
        "</script><script>alert(2)</script> & more",
        "a \u2028 line & more",
    }


def test_json_says_what_was_written(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--json prints one object: the page's path, images, thumbnails made, damaged, the data's revision."""
    assert 0 == main(["gallery", str(folder), "--json"])
    said = json.loads(capsys.readouterr().out)
    assert said == {
        "version": 1,
        "index": str(folder / "gallery" / "index.html"),
        "images": 12,
        "thumbs_made": 12,
        "damaged": 0,
        "revision": data_of(folder / "gallery")["revision"],
    }


def test_not_an_output_folder_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A folder with no ledger: exit 2, one line and a hint, nothing written."""
    assert 2 == main(["gallery", str(tmp_path)])
    assert "has no ledger.jsonl" in capsys.readouterr().err
    assert not (tmp_path / "gallery").exists()


def test_run_gallery_leaves_the_finished_gallery(tmp_path: Path) -> None:
    """`run --gallery` writes OUT/gallery before it sends anything and leaves it complete when the run ends."""
    out = tmp_path / "run"
    code = main(
        [
            "run",
            "--local",
            "--quiet",
            "--speed",
            "1000",
            "--gallery",
            "--out",
            str(out),
            str(ROOT / "manifests" / "example.yaml"),
        ]
    )
    assert 0 == code
    data = data_of(out / "gallery")
    assert [len(row) for row in data["jobs"]["images"]] == [1] * 12
    assert set(data["jobs"]["status"]) == {data["statuses"].index("done")}


def test_run_gallery_refuses_a_link_before_anything_is_sent(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A link at OUT/gallery stops `run --gallery` with exit 2 before its first create: the ledger has no intent."""
    out = tmp_path / "run"
    out.mkdir()
    (tmp_path / "target").mkdir()
    (out / "gallery").symlink_to(tmp_path / "target")
    code = main(["run", "--local", "--quiet", "--gallery", "--out", str(out), str(ROOT / "manifests" / "example.yaml")])
    assert 2 == code
    ledger = (out / "ledger.jsonl").read_text() if (out / "ledger.jsonl").exists() else ""
    assert '"intent"' not in ledger
    assert os.listdir(tmp_path / "target") == []
