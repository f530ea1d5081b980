"""The `webdataset` export, read back by the `webdataset` package and by `datasets`, as trainers read it."""

from __future__ import annotations

import dataclasses
import gc
import io
import itertools
import json
import tarfile
from collections.abc import Sequence
from pathlib import Path

import pytest
from PIL import Image, PngImagePlugin

from leapbatch.export import formats, webdataset
from leapbatch.export.formats import ExportOptions, Layout
from leapbatch.export.images import ExportImage, export_images
from leapbatch.export.pngtext import parameters_text
from leapbatch.export.staging import Staging
from leapbatch.folder.ledger import read_ledger

# webdataset 1.0.2 never closes the shard files it opens (`tariterators.tar_file_expander`): that is its leak, not
# ours, and it is the one warning these tests let pass.
LEAKS_SHARDS = pytest.mark.filterwarnings("ignore:unclosed file:ResourceWarning")


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
    """Write `splits` as a webdataset export at `dest` and return its layout."""
    staging = Staging(dest)
    layout = webdataset.write(splits, staging, ExportOptions(name="critters", shard_bytes=shard_bytes))
    staging.commit()
    return layout


def shards(dest: Path, split: str = "train") -> list[Path]:
    """Return the split's shards in order."""
    return sorted((dest / split).glob("*.tar"))


def members(shard: Path) -> list[tarfile.TarInfo]:
    """Return the shard's members in order."""
    with tarfile.open(shard) as tar:
        return tar.getmembers()


def member(shard: Path, name: str) -> bytes:
    """Return the bytes of the shard's member `name`."""
    with tarfile.open(shard) as tar:
        found = tar.extractfile(name)
        assert found is not None
        return found.read()


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


@LEAKS_SHARDS
def test_webdataset_yields_every_sample_with_image_caption_and_sidecar(
    images: list[ExportImage], tmp_path: Path
) -> None:
    """`webdataset.WebDataset` yields one sample per image, in order, keyed by its name, with png, txt and json."""
    import webdataset as wds

    export(tmp_path / "out", {"train": images}, shard_bytes=4000)
    samples = list(wds.WebDataset([str(p) for p in shards(tmp_path / "out")], shardshuffle=False))
    gc.collect()  # finalise the shard files webdataset left open here, under this test's filter (LEAKS_SHARDS)

    assert [image.name for image in images] == [sample["__key__"] for sample in samples]
    assert [{"png", "txt", "json"}] * len(images) == [{k for k in s if not k.startswith("__")} for s in samples]
    assert [image.read() for image in images] == [sample["png"] for sample in samples]
    assert [image.text for image in images] == [sample["txt"].decode("utf-8") for sample in samples]
    assert [image.sidecar() for image in images] == [json.loads(sample["json"]) for sample in samples]


def test_datasets_loads_the_shards_with_the_original_pixels(
    images: list[ExportImage], tmp_path: Path, hf_cache: Path
) -> None:
    """`load_dataset("webdataset")` on the layout's glob gives every image, decoded to its original pixels."""
    import datasets

    dest = tmp_path / "out"
    layout = export(dest, {"train": images}, shard_bytes=4000)
    files = {split: str(dest / glob) for split, glob in layout.data_files.items()}
    loaded = datasets.load_dataset("webdataset", data_files=files, split="train", cache_dir=str(hf_cache))

    assert [image.name for image in images] == loaded["__key__"]
    assert [image.text for image in images] == loaded["txt"]
    assert [image.record.sha256 for image in images] == [sidecar["sha256"] for sidecar in loaded["json"]]
    assert datasets.Image() == loaded.features["png"]
    assert [original_pixels(image) for image in images] == [(p.mode, p.size, p.tobytes()) for p in loaded["png"]]


def test_the_png_in_the_tar_carries_its_parameters_and_the_original_pixels(
    images: list[ExportImage], tmp_path: Path
) -> None:
    """Each PNG member has a `parameters` text chunk and, decoded, the original's pixels."""
    export(tmp_path / "out", {"train": images})
    (shard,) = shards(tmp_path / "out")
    pngs = [member(shard, f"{image.name}.png") for image in images]

    expected = [parameters_text(i.request, i.model_id, i.record.width, i.record.height) for i in images]
    assert expected == [parameters_chunk(png) for png in pngs]
    assert [original_pixels(image) for image in images] == [pixels(png) for png in pngs]


def test_members_are_image_caption_and_sidecar_of_each_sample_in_order(
    images: list[ExportImage], tmp_path: Path
) -> None:
    """A shard lists `<key>.png`, `<key>.txt`, `<key>.json` for one image after another, keys free of dots."""
    export(tmp_path / "out", {"train": images})
    (shard,) = shards(tmp_path / "out")

    expected = [f"{image.name}.{ext}" for image in images for ext in ("png", "txt", "json")]
    assert expected == [member.name for member in members(shard)]
    assert [] == [image.name for image in images if "." in image.name]  # even for `dog.with.dots`


def test_every_member_header_is_fixed(images: list[ExportImage], tmp_path: Path) -> None:
    """Every member is a plain USTAR file with mtime 0, owner 0:0 unnamed and mode 0644, so bytes never vary."""
    export(tmp_path / "out", {"train": images})
    (shard,) = shards(tmp_path / "out")

    headers = {(m.type, m.mtime, m.uid, m.gid, m.uname, m.gname, m.mode, str(m.pax_headers)) for m in members(shard)}
    assert {(tarfile.REGTYPE, 0, 0, 0, "", "", 0o644, "{}")} == headers
    assert b"ustar\x0000" == shard.read_bytes()[257:265]  # POSIX ustar magic and version, not GNU's or PAX's


def test_the_sidecar_is_canonical_json(images: list[ExportImage], tmp_path: Path) -> None:
    """`<key>.json` is the sidecar with sorted keys, compact separators and UTF-8 text."""
    export(tmp_path / "out", {"train": images})
    (shard,) = shards(tmp_path / "out")
    found = [member(shard, f"{image.name}.json") for image in images]

    canonical = [json.dumps(i.sidecar(), sort_keys=True, ensure_ascii=False, separators=(",", ":")) for i in images]
    assert [text.encode("utf-8") for text in canonical] == found


def test_a_small_shard_bytes_gives_several_full_shards_in_order(images: list[ExportImage], tmp_path: Path) -> None:
    """At 4000 bytes the shards are numbered from 000000, each within the bound yet unable to take the next image,
    and together they hold every image in order."""
    bound = 4000
    export(tmp_path / "out", {"train": images}, shard_bytes=bound)
    found = shards(tmp_path / "out")
    by_name = {image.name: image for image in images}
    held = [[by_name[m.name.split(".")[0]] for m in members(shard) if m.name.endswith(".png")] for shard in found]

    assert [f"critters-{n:06d}.tar" for n in range(len(found))] == [shard.name for shard in found]
    assert 3 <= len(found)
    assert [image.name for image in images] == [image.name for shard in held for image in shard]
    assert all(sum(image.record.bytes for image in shard) <= bound for shard in held if len(shard) > 1)
    assert all(sum(i.record.bytes for i in a) + b[0].record.bytes > bound for a, b in itertools.pairwise(held))


def test_a_shard_holds_one_image_even_past_the_bound(images: list[ExportImage], tmp_path: Path) -> None:
    """With a bound smaller than any image, every image gets a shard of its own."""
    export(tmp_path / "out", {"train": images}, shard_bytes=1)

    assert len(images) == len(shards(tmp_path / "out"))


def test_writing_twice_gives_byte_identical_shards(images: list[ExportImage], tmp_path: Path) -> None:
    """The same images exported twice give the same shard files, byte for byte."""
    for dest in ("a", "b"):
        export(tmp_path / dest, {"train": images[:9], "test": images[9:]}, shard_bytes=4000)

    def files(dest: Path) -> dict[str, bytes]:
        return {p.relative_to(dest).as_posix(): p.read_bytes() for p in sorted(dest.rglob("*.tar"))}

    assert files(tmp_path / "a") == files(tmp_path / "b")
    assert (tmp_path / "a" / "SHA256SUMS").read_bytes() == (tmp_path / "b" / "SHA256SUMS").read_bytes()


def test_the_layout_names_each_non_empty_split_glob(images: list[ExportImage], tmp_path: Path) -> None:
    """The layout lists a `<split>/*.tar` glob per split with images, for the `webdataset` loader."""
    layout = export(tmp_path / "out", {"train": images[:9], "test": images[9:], "validation": []})

    assert Layout(data_files={"train": "train/*.tar", "test": "test/*.tar"}, loader="webdataset") == layout
    assert not (tmp_path / "out" / "validation").exists()


def test_a_name_with_a_dot_is_refused(images: list[ExportImage], tmp_path: Path) -> None:
    """An image whose name holds a dot never becomes a sample: WebDataset would cut its key at the dot."""
    dotted = dataclasses.replace(images[0], name="a.b")

    with pytest.raises(AssertionError, match="holds no dot"):
        export(tmp_path / "out", {"train": [dotted]})


@pytest.mark.parametrize(
    ("sizes", "bound", "expected"),
    [
        ([], 10, []),
        ([5, 5, 5], 10, [range(0, 2), range(2, 3)]),
        ([20, 1, 1], 10, [range(0, 1), range(1, 3)]),
        ([3, 20, 3], 10, [range(0, 1), range(1, 2), range(2, 3)]),
        ([10, 10], 10, [range(0, 1), range(1, 2)]),
    ],
)
def test_shard_ranges_cut_before_the_item_that_would_pass_the_bound(
    sizes: list[int], bound: int, expected: list[range]
) -> None:
    """A shard ends before the item that would take it past the bound; an item bigger than it gets its own."""
    assert expected == formats.shard_ranges(sizes, bound)


def test_a_shard_is_the_archive_tarfile_writes(images: list[ExportImage], tmp_path: Path) -> None:
    """The shard's bytes equal stdlib tarfile's USTAR archive of the same members with the same fixed headers."""
    export(tmp_path / "out", {"train": images})
    (shard,) = shards(tmp_path / "out")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for image in images:
            for name, data in (
                (f"{image.name}.{image.ext}", image.read()),
                (f"{image.name}.txt", image.text.encode("utf-8")),
                (f"{image.name}.json", webdataset.sidecar_json(image)),
            ):
                info = tarfile.TarInfo(name)
                info.size, info.mtime, info.mode, info.uid, info.gid, info.uname, info.gname = (
                    len(data), 0, 0o644, 0, 0, "", "",
                )  # fmt: skip
                tar.addfile(info, io.BytesIO(data))
    assert buffer.getvalue() == shard.read_bytes()
