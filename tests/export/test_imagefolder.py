"""`export --format imagefolder`: what `datasets` loads, byte-identical on every export, originals untouched."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any

import pytest
from export_support import IMAGES, JOBS, png_text
from PIL import Image

from leapbatch.cli import main


def tree(root: Path) -> dict[str, bytes]:
    """Return every file under `root` by relative path, with its bytes."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def export(finished: Path, dest: Path, *args: str) -> int:
    """Export `finished` to `dest` as imagefolder with `args`; return the exit code."""
    return main(["export", str(finished), "--format", "imagefolder", "--to", str(dest), *args])


def load(dest: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Return the DatasetDict `datasets.load_dataset("imagefolder")` reads from `dest`, offline."""
    import datasets

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return datasets.load_dataset("imagefolder", data_dir=str(dest), cache_dir=str(cache))


def folder_rows(finished: Path) -> dict[str, dict[str, Any]]:
    """Return the folder's metadata rows by image name (`<key>_<index>`)."""
    rows = [json.loads(line) for line in (finished / "metadata.jsonl").read_text().splitlines()]
    return {f"{row['key']}_{row['index']}": row for row in rows}


def test_datasets_loads_the_splits_with_captions_and_every_column(
    finished: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two splits by job; `text` is the manifest's caption; the columns are the folder's metadata columns."""
    assert 0 == export(finished, tmp_path / "out", "--split", "train=0.75,test=0.25")

    loaded = load(tmp_path / "out", tmp_path / "cache", monkeypatch)

    assert {"train", "test"} == set(loaded)
    assert IMAGES == sum(len(loaded[split]) for split in loaded)
    rows = folder_rows(finished)
    columns = [c for c in next(iter(rows.values())) if c != "file_name"]
    assert ["image", *columns] == loaded["train"].column_names
    for split in loaded:
        for row in loaded[split]:
            assert rows[f"{row['key']}_{row['index']}"]["text"] == row["text"]
            assert row["text"].startswith("ohwx ")


def test_images_decode_to_the_originals_and_carry_their_parameters(finished: Path, tmp_path: Path) -> None:
    """Each exported PNG has the original's pixels and a `parameters` text chunk naming its prompt and seed."""
    assert 0 == export(finished, tmp_path / "out")
    rows = folder_rows(finished)
    for path in (tmp_path / "out" / "train").glob("*.png"):
        row = rows[path.stem]
        exported, original = Image.open(path), Image.open(finished / row["file_name"])
        assert original.tobytes() == exported.tobytes()
        assert png_text(exported)["parameters"].startswith(row["prompt"] + "\n")
        assert f"Seed: {row['seed']}" in png_text(exported)["parameters"]


def test_the_folder_is_only_read(finished: Path, tmp_path: Path) -> None:
    """An export changes no byte of the output folder (originals stay exactly as downloaded)."""
    before = tree(finished)
    assert 0 == export(finished, tmp_path / "out")
    assert before == tree(finished)


def test_a_re_export_is_byte_identical_and_splits_stay_put(finished: Path, tmp_path: Path) -> None:
    """Exporting twice (to two places, and again over the first) writes the same bytes, the same split."""
    args = ("--split", "train=0.7,test=0.3", "--seed", "5")
    assert 0 == export(finished, tmp_path / "a", *args)
    assert 0 == export(finished, tmp_path / "b", *args)
    first = tree(tmp_path / "a")
    assert 0 == export(finished, tmp_path / "a", *args)

    assert first == tree(tmp_path / "b") == tree(tmp_path / "a")
    assert JOBS == sum(1 for name in first if name.endswith(".png")) - 1  # the hare job has two images


def test_the_metadata_of_each_split_names_its_own_files(finished: Path, tmp_path: Path) -> None:
    """Every split's metadata.jsonl lists exactly the images in its folder."""
    assert 0 == export(finished, tmp_path / "out", "--split", "train=0.5,test=0.5")
    for split in ("train", "test"):
        folder = tmp_path / "out" / split
        listed = [json.loads(line)["file_name"] for line in (folder / "metadata.jsonl").read_text().splitlines()]
        assert sorted(p.name for p in folder.glob("*.png")) == sorted(listed)


def test_the_card_has_a_hub_header_and_what_remakes_the_dataset(finished: Path, tmp_path: Path) -> None:
    """README.md opens with YAML (configs, license, task, size) and holds the manifest and its sha256."""
    import yaml

    assert 0 == export(finished, tmp_path / "out", "--license", "cc-by-4.0", "--split", "train=0.9,test=0.1")
    card = (tmp_path / "out" / "README.md").read_text()
    header = yaml.safe_load(card.split("---\n")[1])
    manifest = finished.parent / "critters.yaml"

    assert "cc-by-4.0" == header["license"]
    assert ["text-to-image"] == header["task_categories"]
    assert ["n<1K"] == header["size_categories"]
    assert [{"split": "train", "path": "train/*"}, {"split": "test", "path": "test/*"}] == header["configs"][0][
        "data_files"
    ]
    assert hashlib.sha256(manifest.read_bytes()).hexdigest() in card
    assert manifest.read_text() in card
    assert "| fox | 3 | 3 |" in card


def test_an_exported_image_reads_like_a_pil_png(finished: Path, tmp_path: Path) -> None:
    """An exported file is a valid PNG Pillow verifies (the added chunk has a correct CRC)."""
    assert 0 == export(finished, tmp_path / "out")
    path = next((tmp_path / "out" / "train").glob("*.png"))
    Image.open(io.BytesIO(path.read_bytes())).verify()
