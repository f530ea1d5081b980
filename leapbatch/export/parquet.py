"""The `parquet` export: Parquet shards per split, as Hugging Face lays a dataset out, images inside.

A split's images go, in the order given, into `<split>/<name>-00000-of-0000N.parquet`, ... (shards as
`formats.shard_ranges` cuts them, by the originals' sizes in the ledger, so the count is known before any image
is read). The columns are `image` (`{bytes, path}`, the checked and tagged image bytes and `<key>_<index>.<ext>`),
then the metadata row's columns in their order (`text` first). Their types come from `DTYPES`, never from the
values, so every shard of every folder has the same type for a column (a new metadata column needs an entry there:
`ValueError` until it has one). The schema carries Hugging Face's `features` (`{"huggingface": {"info":
{"features": ...}}}`, as `datasets.Features.arrow_schema` writes it), so `datasets` reads `image` as an `Image()`.

Memory holds one row group (`ROW_GROUP_ROWS` images or `ROW_GROUP_BYTES` of them, whichever comes first), written
as it fills. The same images give the same bytes with the same pyarrow: no timestamps in Parquet, zstd at its
default level, members in order; pyarrow's version is in the footer (`created_by`). pyarrow is optional: without
it `write` raises `UsageError` with the extra to install.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from types import ModuleType
from typing import Any

from leapbatch.errors import UsageError
from leapbatch.export.formats import ExportOptions, Layout, shard_ranges
from leapbatch.export.images import ExportImage
from leapbatch.export.staging import Staging

ROW_GROUP_ROWS = 100  # Hugging Face's row group size for image datasets: the dataset viewer reads one at a time
ROW_GROUP_BYTES = 64 * 1024 * 1024
COMPRESSION = "zstd"
# The `datasets.Value` dtype (and arrow type) of every metadata column; `var_<name>` columns are strings.
DTYPES = {
    "text": "string",
    "key": "string",
    "index": "int64",
    "model_id": "string",
    "inference_id": "string",
    "prompt": "string",
    "negative_prompt": "string",
    "seed": "int64",
    "steps": "int64",
    "number_of_images": "int64",
    "prompt_strength": "float64",
    "version": "string",
    "enhance_prompt": "bool",
    "restore_faces": "bool",
    "upscale_by": "string",
    "sampler": "string",
    "width": "int64",
    "height": "int64",
    "sha256": "string",
}
IMAGE_FIELDS = (("bytes", "binary"), ("path", "string"))  # `datasets.Image()`'s storage


def dtype(column: str) -> str:
    """Return the dtype of a metadata column (ValueError for a column this export does not know)."""
    if column.startswith("var_"):
        return "string"
    try:
        return DTYPES[column]
    except KeyError:
        raise ValueError(f"no Parquet type for the metadata column {column!r}: add it to DTYPES") from None


def features(columns: Sequence[str]) -> dict[str, Any]:
    """Return the `datasets.Features` of the export (`Features.to_dict()`'s form): `image`, then `columns`."""
    out: dict[str, Any] = {"image": {"_type": "Image"}}
    for column in columns:
        out[column] = {"dtype": dtype(column), "_type": "Value"}
    return out


def _pyarrow() -> tuple[ModuleType, ModuleType]:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise UsageError("parquet export needs pyarrow", hint="pip install 'leapbatch[parquet]'") from None
    return pa, pq


def schema(pa: ModuleType, columns: Sequence[str]) -> Any:
    """Return the arrow schema of the export's shards, with the `datasets` features in its metadata."""
    image = pa.struct([(name, pa.type_for_alias(kind)) for name, kind in IMAGE_FIELDS])
    fields = [pa.field("image", image)] + [pa.field(c, pa.type_for_alias(dtype(c))) for c in columns]
    hf = {"info": {"features": features(columns)}}
    return pa.schema(fields).with_metadata({"huggingface": json.dumps(hf)})


def _row_groups(images: Sequence[ExportImage]) -> Iterator[list[tuple[ExportImage, bytes]]]:
    """Yield the images with their bytes, a row group at a time."""
    group: list[tuple[ExportImage, bytes]] = []
    size = 0
    for image in images:
        data = image.read()
        group.append((image, data))
        size += len(data)
        if len(group) >= ROW_GROUP_ROWS or size >= ROW_GROUP_BYTES:
            yield group
            group, size = [], 0
    if group:
        yield group


def _table(pa: ModuleType, shape: Any, columns: Sequence[str], group: list[tuple[ExportImage, bytes]]) -> Any:
    data: dict[str, list[Any]] = {"image": [{"bytes": b, "path": f"{i.name}.{i.ext}"} for i, b in group]}
    for column in columns:
        data[column] = [image.metadata[column] for image, _ in group]
    return pa.Table.from_pydict(data, schema=shape)


def write(splits: Mapping[str, Sequence[ExportImage]], staging: Staging, options: ExportOptions) -> Layout:
    """Write each split's images as Parquet shards under `<split>/`."""
    pa, pq = _pyarrow()
    first = next((images[0] for images in splits.values() if images), None)
    columns = list(first.metadata) if first is not None else []
    shape = schema(pa, columns)
    scalars = [c for c in columns if dtype(c) != "bool"]  # no dictionaries or statistics for image bytes
    layout = Layout(loader="parquet")
    for split, images in splits.items():
        shards = shard_ranges([image.record.bytes for image in images], options.shard_bytes)
        for number, shard in enumerate(shards):
            path = f"{split}/{options.name}-{number:05d}-of-{len(shards):05d}.parquet"
            with (
                staging.open(path) as handle,
                pq.ParquetWriter(
                    handle, shape, compression=COMPRESSION, use_dictionary=scalars, write_statistics=columns
                ) as writer,
            ):
                for group in _row_groups(images[shard.start : shard.stop]):
                    writer.write_table(_table(pa, shape, columns, group))
        if shards:
            layout.data_files[split] = f"{split}/*.parquet"
    return layout
