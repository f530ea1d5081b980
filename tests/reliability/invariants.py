"""The invariants of docs/reliability.md, checked after every campaign against the ledger, the files and the emulator.

`violations(...)` returns a list of human-readable violations (empty when all hold), so a failing campaign says
exactly what broke. It is imported by the campaign tests in this folder.
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

from leapbatch.folder.checkpoint import CHECKPOINT_NAME
from leapbatch.folder.ledger import read_ledger
from leapbatch.folder.results import STAMP_NAME
from leapbatch.folder.state import Phase

TOP_LEVEL = {"ledger.jsonl", "results.json", "metadata.jsonl", ".leapbatch.lock", "images", STAMP_NAME, CHECKPOINT_NAME}
IMAGE_NAME = re.compile(r"^[0-9a-f]{64}-\d+\.(png|jpg|webp)$")


def _files_under(root: Path) -> list[Path]:
    return [path for path in root.rglob("*") if path.is_file() or path.is_symlink()]


def violations(  # noqa: C901 -- a checklist of independent invariants
    out: Path,
    *,
    jobs: int,
    stats: dict[str, Any],
    outputs: list[bytes],
    canary: str | None = None,
    resubmitted: int = 0,
    sandbox: Path | None = None,
) -> list[str]:
    """Return every invariant that does not hold for the folder `out` of a manifest with `jobs` jobs.

    `stats` is the emulator's `/_emulator/stats`; `outputs` are the stdout/stderr of every process of the
    campaign; `canary` is the API key to look for everywhere; `sandbox` is a folder that must hold nothing but `out`
    (and what the test put there itself, listed in files named *.yaml).
    """
    found: list[str] = []
    state = read_ledger(out, whole=True)
    unfinished = [js.key for js in state.jobs.values() if js.phase not in (Phase.FINISHED, Phase.FAILED)]
    if len(state.jobs) != jobs:
        found.append(f"the ledger knows {len(state.jobs)} jobs, the manifest has {jobs}")
    if unfinished:
        found.append(f"{len(unfinished)} jobs have no final state, e.g. {unfinished[0]}")

    recorded: dict[str, str] = {}
    for js in state.jobs.values():
        if js.phase is Phase.FINISHED:
            indexes = sorted(image.index for image in js.images)
            if indexes != list(range(len(indexes))):
                found.append(f"job {js.key} has image indexes {indexes}")
            for image in js.images:
                recorded[image.path] = image.sha256
    images = out / "images"
    on_disk = {p.relative_to(out).as_posix(): p for p in images.iterdir()} if images.is_dir() else {}
    per_key: defaultdict[str, int] = defaultdict(int)
    for name, path in on_disk.items():
        if name.endswith(".part"):
            found.append(f"a .part file is left: {name}")
            continue
        if not IMAGE_NAME.match(path.name):
            found.append(f"an image file name not derived from a key: {name}")
        per_key[path.name.split("-")[0]] += 1
        want = recorded.get(name)
        if want is None:
            found.append(f"an image file the ledger does not record: {name}")
        elif hashlib.sha256(path.read_bytes()).hexdigest() != want:
            found.append(f"an image whose bytes do not match the ledger's sha256: {name}")
    for name in recorded:
        if name not in on_disk:
            found.append(f"a recorded image is missing: {name}")
    for js in state.jobs.values():
        if per_key.get(js.key, 0) > len(js.images):
            found.append(f"job {js.key} has {per_key[js.key]} image files for {len(js.images)} images")
    for path in out.iterdir():
        if path.name not in TOP_LEVEL and not path.name.startswith("ledger.jsonl.torn-"):
            found.append(f"an unexpected file in the output folder: {path.name}")
    if sandbox is not None:
        for path in sandbox.iterdir():
            if path != out and path.suffix != ".yaml":
                found.append(f"something was written outside the output folder: {path}")

    created = stats["jobs"]["created"]
    ambiguous = stats.get("ambiguous_creates", 0)
    if created > jobs + ambiguous + resubmitted:
        found.append(f"{created} remote jobs created for {jobs} jobs and {ambiguous} ambiguous creates")
    if stats.get("image_requests_with_authorization", 0):
        found.append(f"{stats['image_requests_with_authorization']} image requests carried Authorization")

    for output in outputs:
        if b"Traceback" in output:
            start = output.index(b"Traceback")
            found.append("a traceback was printed: " + output[start : start + 400].decode(errors="replace"))
    if canary:
        secret = canary.encode()
        for output in outputs:
            if secret in output:
                found.append("the API key appears in a process's output")
        for path in _files_under(out):
            if path.is_file() and secret in path.read_bytes():
                found.append(f"the API key appears in {path.relative_to(out)}")
    return found
