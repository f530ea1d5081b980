"""The dataset card's header is what the Hub reads: `datasets.load_dataset(DEST)` finds the splits by it alone."""

from __future__ import annotations

from pathlib import Path

import pytest
from export_support import IMAGES

from leapbatch.cli import main
from leapbatch.export.card import size_category


@pytest.mark.parametrize("fmt", ["imagefolder", "parquet", "webdataset"])
def test_load_dataset_of_the_export_folder_reads_the_card_configs(
    finished: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    """With no builder named, `load_dataset(DEST)` follows README.md's `configs` to both splits and every image."""
    import datasets

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    dest = tmp_path / "dest"
    assert 0 == main(["export", str(finished), "--format", fmt, "--to", str(dest), "--split", "train=0.75,test=0.25"])

    loaded = datasets.load_dataset(str(dest), cache_dir=str(tmp_path / "cache"))

    assert {"train", "test"} == set(loaded)
    assert IMAGES == sum(len(loaded[split]) for split in loaded)


@pytest.mark.parametrize(
    ("count", "label"), [(0, "n<1K"), (999, "n<1K"), (1_000, "1K<n<10K"), (250_000, "100K<n<1M"), (10**6, "1M<n<10M")]
)
def test_the_size_category_is_the_hubs(count: int, label: str) -> None:
    """Sizes map to the Hub's size_categories labels."""
    assert label == size_category(count)
