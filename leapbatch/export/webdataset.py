"""The `webdataset` export: tar shards per split, each sample an image, its caption and its sidecar.

A split's images go, in the order given, into `<split>/<name>-000000.tar`, `-000001.tar`, ... (`formats.shard_ranges`: a
new shard when the originals' bytes would pass `shard_bytes`; a shard holds at least one image). A sample is three
members side by side, `<key>.<ext>` (the checked, tagged image bytes), `<key>.txt` (the caption, UTF-8) and
`<key>.json` (the sidecar, canonical JSON: sorted keys, compact, UTF-8), where the key is the image's name.
WebDataset readers split a member's name at its first dot, so a key must hold none (asserted).

The same images always give the same bytes: plain USTAR members (no PAX headers, no gzip) with mtime 0, uid and
gid 0, no user or group name and mode 0o644, in sample order: the archive `tarfile` writes for them, byte for byte,
built here directly (`tarfile.addfile` costs ~0.1 ms a member, most of an export's time). A shard is streamed to its
file one sample at a time, so memory holds one image, never a shard.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import BinaryIO

from leapbatch.export.formats import ExportOptions, Layout, shard_ranges
from leapbatch.export.images import ExportImage
from leapbatch.export.staging import Staging


def sidecar_json(image: ExportImage) -> bytes:
    """Return the image's `key.json`: its sidecar as canonical JSON (sorted keys, compact, UTF-8)."""
    text = json.dumps(image.sidecar(), sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return text.encode("utf-8")


BLOCK = 512
RECORD = 20 * BLOCK  # tarfile's record size: an archive ends padded to a whole record, as tarfile pads it


def ustar_header(name: str, size: int) -> bytes:
    """Return the 512-byte USTAR header of a regular file `name` of `size` bytes, mode 0644, owner 0:0 unnamed,
    mtime 0: byte for byte what `tarfile` writes for that member (a test compares), at a fraction of its cost."""
    encoded = name.encode("utf-8")
    if len(encoded) > 100:
        raise ValueError(f"a member name takes at most 100 bytes here: {name!r}")
    fields = (
        encoded.ljust(100, b"\0"),
        b"0000644\0",  # mode
        b"0000000\0",  # uid
        b"0000000\0",  # gid
        b"%011o\0" % size,
        b"00000000000\0",  # mtime
        b" " * 8,  # the checksum, counted as spaces
        b"0",  # a regular file
        bytes(100),  # linkname
        b"ustar\x0000",
        bytes(64),  # uname, gname
        bytes(16),  # devmajor, devminor: left empty for a regular file, as tarfile does
    )
    header = b"".join(fields).ljust(BLOCK, b"\0")
    return header[:148] + b"%06o\0 " % sum(header) + header[156:]


def _member(name: str, data: bytes) -> bytes:
    """Return a member as it sits in the archive: header, data, padding to a whole block."""
    return ustar_header(name, len(data)) + data + bytes(-len(data) % BLOCK)


def write_shard(handle: BinaryIO, images: Sequence[ExportImage]) -> None:
    """Write the tar of `images` to `handle`, a sample (image, caption, sidecar) after another, then the two zero
    blocks that end a tar and the padding to a whole record."""
    offset = 0
    for image in images:
        assert "." not in image.name, f"a WebDataset key holds no dot: {image.name!r}"
        sample = b"".join(
            (
                _member(f"{image.name}.{image.ext}", image.read()),
                _member(f"{image.name}.txt", image.text.encode("utf-8")),
                _member(f"{image.name}.json", sidecar_json(image)),
            )
        )
        handle.write(sample)
        offset += len(sample)
    offset += 2 * BLOCK
    handle.write(bytes(2 * BLOCK + (-offset % RECORD)))


def write(splits: Mapping[str, Sequence[ExportImage]], staging: Staging, options: ExportOptions) -> Layout:
    """Write each split's images as tar shards under `<split>/`."""
    layout = Layout(loader="webdataset")
    for split, images in splits.items():
        if not images:
            continue
        for number, shard in enumerate(shard_ranges([image.record.bytes for image in images], options.shard_bytes)):
            with staging.open(f"{split}/{options.name}-{number:06d}.tar") as handle:
                write_shard(handle, images[shard.start : shard.stop])
        layout.data_files[split] = f"{split}/*.tar"
    return layout
