"""The keys of a folder's dataset, kept beside it so `status` need not expand the manifest again.

Expanding a large manifest is most of what `status` would spend (5 s of 6 at 100,000 jobs), and all it needs of
the expansion is which keys the dataset holds. So `run`, which expands the manifest anyway, leaves them here:
- `OUT/.leapbatch.keys` holds a header line, `{"v": 1, "digest": ..., "jobs": N}`, then the N keys, one per line
  (64 lowercase hex digits each). `digest` names what the keys were expanded from: the caller's sha256 of the
  manifest's `source_sha256` (which covers every file the manifest names), the shard and leapbatch's version.
- It is used only when the digest is the one the reader computes for the manifest it has read back and the file
  is whole (exactly N well-formed keys). Anything else about it (missing, a link or a FIFO at its name, another
  digest or format version, cut short, garbage) makes it ignored, never an error: the manifest is expanded.
- Written atomically and never through a link, in folders of `MIN_JOBS` jobs or more (smaller manifests expand in
  a blink), and not again while it holds the same digest; if it cannot be written, nothing is. Safe to delete.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from pathlib import Path

from leapbatch.errors import UsageError
from leapbatch.folder.atomic import open_file, write_atomic

KEYS_NAME = ".leapbatch.keys"
FORMAT = 1
MIN_JOBS = 1000
_KEY_LINES = re.compile(rb"(?:[0-9a-f]{64}\n)*")


def load_keys(out_dir: Path, digest: str) -> frozenset[str] | None:
    """Return the keys recorded for `digest`, or None when the file is not there, not for `digest`, or not whole."""
    try:
        fd = open_file(out_dir / KEYS_NAME, os.O_RDONLY)
    except (OSError, UsageError):
        return None
    try:
        with os.fdopen(fd, "rb") as handle:
            header = json.loads(handle.readline())
            body = handle.read()
    except (OSError, ValueError):  # json's errors are ValueErrors
        return None
    if not isinstance(header, dict) or header.get("v") != FORMAT or header.get("digest") != digest:
        return None
    count = header.get("jobs")
    if not isinstance(count, int) or len(body) != 65 * count or _KEY_LINES.fullmatch(body) is None:
        return None
    return frozenset(body.decode("ascii").split("\n")[:-1])


def _header(out_dir: Path) -> object:
    try:
        fd = open_file(out_dir / KEYS_NAME, os.O_RDONLY)
    except (OSError, UsageError):
        return None
    try:
        with os.fdopen(fd, "rb") as handle:
            return json.loads(handle.readline())
    except (OSError, ValueError):
        return None


def save_keys(out_dir: Path, digest: str, keys: Iterable[str]) -> None:
    """Record `keys` as the dataset expanded for `digest`; if the file cannot be written (a link or a folder at its
    name, left alone; a full disk), write nothing."""
    listed = list(keys)
    header = {"v": FORMAT, "digest": digest, "jobs": len(listed)}
    if len(listed) < MIN_JOBS or _header(out_dir) == header:
        return
    lines = "".join(f"{key}\n" for key in listed)
    try:
        write_atomic(out_dir / KEYS_NAME, (json.dumps(header) + "\n" + lines).encode("ascii"))
    except (UsageError, OSError):
        return
