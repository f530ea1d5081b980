"""The `parquet` export, read back by pyarrow and by `datasets`, as the Hugging Face Hub and trainers read it."""

from __future__ import annotations

import dataclasses
import io
import itertools
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, PngImagePlugin

from leapbatch.errors import UsageError
from leapbatch.export import parquet
from leapbatch.export.formats import ExportOptions, Layout
from leapbatch.export.images import ExportImage, export_images
from leapbatch.export.pngtext import parameters_text
from leapbatch.export.staging import Staging
from leapbatch.folder.ledger import read_ledger

# The documented schema (docs: the metadata columns), written out here rather than read from the module.
SCHEMA = [
    ("image", "struct<bytes: binary, path: string>"),
    ("text", "string"),
    ("key", "string"),
    ("index", "int64"),
    ("model_id", "string"),
    ("inference_id", "string"),
    ("prompt", "string"),
    ("negative_prompt", "string"),
    ("seed", "int64"),
    ("steps", "int64"),
    ("number_of_images", "int64"),
    ("prompt_strength", "double"),
    ("version", "string"),
    ("enhance_prompt", "bool"),
    ("restore_faces", "bool"),
    ("upscale_by", "string"),
    ("sampler", "string"),
    ("width", "int64"),
    ("height", "int64"),
    ("var_animal", "string"),
    ("var_style", "string"),
    ("sha256", "string"),
]


def captioned(folder: Path) -> list[ExportImage]:
    """Return the folder's images, each captioned as its `metadata.jsonl` row says."""
    rows = [json.loads(line) for line in (folder / "metadata.jsonl").read_text(encoding="utf-8").splitlines()]
    return export_images(folder, read_ledger(folder), {row["key"]: row["text"] for row in rows})


@pytest.fixture
def images(finished: Path) -> list[ExportImage]:
    """Return the 14 images of the finished folder, captioned."""
    return captioned(finished)


@pytest.fixture
def hf_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Return a cache folder for `datasets`, which runs offline and writes nothing under ~/.cache."""
    cache = tmp_path / "hf"
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(cache))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(cache / "datasets"))
    return cache


def export(dest: Path, splits: dict[str, Sequence[ExportImage]], shard_bytes: int = 1 << 30) -> Layout:
    """Write `splits` as a parquet export at `dest` and return its layout."""
    staging = Staging(dest)
    layout = parquet.write(splits, staging, ExportOptions(name="critters", shard_bytes=shard_bytes))
    staging.commit()
    return layout


def shards(dest: Path, split: str = "train") -> list[Path]:
    """Return the split's shards in order."""
    return sorted((dest / split).glob("*.parquet"))


def table(path: Path) -> Any:
    """Return the shard as a pyarrow table."""
    import pyarrow.parquet as pq

    return pq.read_table(path)


def pixels(data: bytes) -> tuple[str, tuple[int, int], bytes]:
    """Return the mode, size and pixels of an encoded image."""
    with Image.open(io.BytesIO(data)) as found:
        return found.mode, found.size, found.tobytes()


def original_pixels(image: ExportImage) -> tuple[str, tuple[int, int], bytes]:
    """Return the mode, size and pixels of the image's original in the output folder."""
    return pixels((image.folder / image.record.path).read_bytes())


def parameters_chunk(data: bytes) -> str:
    """Return the `parameters` text Pillow reads from an encoded PNG."""
    with Image.open(io.BytesIO(data)) as found:
        assert isinstance(found, PngImagePlugin.PngImageFile)
        return found.text["parameters"]


def test_the_schema_has_exactly_the_documented_types(images: list[ExportImage], tmp_path: Path) -> None:
    """pyarrow reads `image`, `text`, then the metadata columns, each with its documented type."""
    import pyarrow.parquet as pq

    export(tmp_path / "out", {"train": images})
    (shard,) = shards(tmp_path / "out")
    schema = pq.read_schema(shard)

    assert SCHEMA == [(field.name, str(field.type)) for field in schema]


def test_the_schema_does_not_depend_on_the_values(images: list[ExportImage], tmp_path: Path) -> None:
    """Shards whose legacy columns are all null or all set, and whose seeds are null, get one same schema."""
    import pyarrow.parquet as pq

    changes = {"enhance_prompt": True, "restore_faces": False, "seed": None, "version": "v1", "prompt_strength": 7}
    changed = [dataclasses.replace(i, metadata={**i.metadata, **changes}) for i in images]
    export(tmp_path / "a", {"train": images}, shard_bytes=4000)
    export(tmp_path / "b", {"train": changed})

    found = {pq.read_schema(shard) for dest in ("a", "b") for shard in shards(tmp_path / dest)}
    assert 1 == len(found)
    assert [True] * len(images) == table(shards(tmp_path / "b")[0])["enhance_prompt"].to_pylist()


def test_the_schema_carries_the_datasets_features(images: list[ExportImage], tmp_path: Path) -> None:
    """The schema's `huggingface` metadata is what `datasets.Features.arrow_schema` writes for the same features."""
    import datasets
    import pyarrow.parquet as pq

    export(tmp_path / "out", {"train": images})
    schema = pq.read_schema(shards(tmp_path / "out")[0])
    found = json.loads(schema.metadata[b"huggingface"])
    features = datasets.Features.from_dict(found["info"]["features"])

    assert {"info": {"features": features.to_dict()}} == found
    assert datasets.Image() == features["image"]
    assert features.arrow_schema.remove_metadata() == schema.remove_metadata()


def test_datasets_loads_the_images_as_images_with_the_original_pixels(
    images: list[ExportImage], tmp_path: Path, hf_cache: Path
) -> None:
    """`load_dataset("parquet")` on the layout's glob gives an `Image()` column of the originals and the captions."""
    import datasets

    dest = tmp_path / "out"
    layout = export(dest, {"train": images}, shard_bytes=4000)
    files = {split: str(dest / glob) for split, glob in layout.data_files.items()}
    loaded = datasets.load_dataset("parquet", data_files=files, split="train", cache_dir=str(hf_cache))

    assert datasets.Image() == loaded.features["image"]
    assert datasets.Value("float64") == loaded.features["prompt_strength"]
    assert datasets.Value("bool") == loaded.features["enhance_prompt"]
    assert [image.text for image in images] == loaded["text"]
    assert [image.key for image in images] == loaded["key"]
    assert [image.record.index for image in images] == loaded["index"]
    assert [original_pixels(image) for image in images] == [(p.mode, p.size, p.tobytes()) for p in loaded["image"]]


def test_the_image_column_holds_the_tagged_bytes_and_the_file_name(images: list[ExportImage], tmp_path: Path) -> None:
    """`image.bytes` is the PNG with its `parameters` chunk and the original's pixels; `image.path` its file name."""
    export(tmp_path / "out", {"train": images})
    column = table(shards(tmp_path / "out")[0])["image"].to_pylist()

    assert [f"{image.name}.png" for image in images] == [cell["path"] for cell in column]
    assert [image.read() for image in images] == [cell["bytes"] for cell in column]
    expected = [parameters_text(i.request, i.model_id, i.record.width, i.record.height) for i in images]
    assert expected == [parameters_chunk(cell["bytes"]) for cell in column]
    assert [original_pixels(image) for image in images] == [pixels(cell["bytes"]) for cell in column]


def test_the_metadata_columns_are_the_metadata_rows(images: list[ExportImage], tmp_path: Path) -> None:
    """Every column but `image` reads back as the images' metadata rows, value for value."""
    export(tmp_path / "out", {"train": images})
    rows = table(shards(tmp_path / "out")[0]).drop_columns(["image"]).to_pylist()

    assert [dict(image.metadata) for image in images] == rows


def test_a_small_shard_bytes_gives_several_full_shards_named_as_the_hub_names_them(
    images: list[ExportImage], tmp_path: Path
) -> None:
    """At 4000 bytes the shards are `critters-0000i-of-0000n`, each within the bound yet unable to take the next
    image, and together they hold every image in order."""
    bound = 4000
    export(tmp_path / "out", {"train": images}, shard_bytes=bound)
    found = shards(tmp_path / "out")
    by_name = {image.name: image for image in images}
    held = [[by_name[cell["path"].split(".")[0]] for cell in table(shard)["image"].to_pylist()] for shard in found]

    assert [f"critters-{n:05d}-of-{len(found):05d}.parquet" for n in range(len(found))] == [s.name for s in found]
    assert 3 <= len(found)
    assert [image.name for image in images] == [image.name for shard in held for image in shard]
    assert all(sum(image.record.bytes for image in shard) <= bound for shard in held if len(shard) > 1)
    assert all(sum(i.record.bytes for i in a) + b[0].record.bytes > bound for a, b in itertools.pairwise(held))


def test_row_groups_hold_at_most_a_hundred_images(images: list[ExportImage], tmp_path: Path) -> None:
    """A shard of 112 images is written as row groups of 100 and 12, so memory never holds a whole shard."""
    import pyarrow.parquet as pq

    many = [dataclasses.replace(image, name=f"{image.name}x{n}") for n in range(8) for image in images]
    export(tmp_path / "out", {"train": many})
    (shard,) = shards(tmp_path / "out")
    metadata = pq.ParquetFile(shard).metadata

    assert [100, 12] == [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)]


def test_writing_twice_gives_byte_identical_shards(images: list[ExportImage], tmp_path: Path) -> None:
    """The same images exported twice give the same shard files, byte for byte."""
    for dest in ("a", "b"):
        export(tmp_path / dest, {"train": images[:9], "test": images[9:]}, shard_bytes=4000)

    def files(dest: Path) -> dict[str, bytes]:
        return {p.relative_to(dest).as_posix(): p.read_bytes() for p in sorted(dest.rglob("*.parquet"))}

    assert files(tmp_path / "a") == files(tmp_path / "b")
    assert (tmp_path / "a" / "SHA256SUMS").read_bytes() == (tmp_path / "b" / "SHA256SUMS").read_bytes()


def test_the_layout_names_each_non_empty_split_glob(images: list[ExportImage], tmp_path: Path) -> None:
    """The layout lists a `<split>/*.parquet` glob per split with images, for the `parquet` loader."""
    layout = export(tmp_path / "out", {"train": images[:9], "test": images[9:], "validation": []})

    assert Layout(data_files={"train": "train/*.parquet", "test": "test/*.parquet"}, loader="parquet") == layout
    assert not (tmp_path / "out" / "validation").exists()


def test_an_unknown_metadata_column_is_refused(images: list[ExportImage], tmp_path: Path) -> None:
    """A metadata column the export has no type for stops it: its type is chosen on purpose, never inferred."""
    odd = [dataclasses.replace(image, metadata={**image.metadata, "colour": "red"}) for image in images]

    with pytest.raises(ValueError, match="'colour'"):
        export(tmp_path / "out", {"train": odd})


def test_without_pyarrow_the_export_says_what_to_install(
    images: list[ExportImage], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With pyarrow not importable, the export is a usage error whose hint names the `parquet` extra."""
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)

    with pytest.raises(UsageError) as raised:
        export(tmp_path / "out", {"train": images})
    assert ("parquet export needs pyarrow", "pip install 'leapbatch[parquet]'") == (
        raised.value.message,
        raised.value.hint,
    )
