"""Check an export against its own manifest of hashes, `SHA256SUMS`: `leapbatch verify DEST`.

Every listed file must be there, a regular file (not a link), with its listed sha256; nothing else may be in the
export but `SHA256SUMS` itself (an extra file is `untracked`). Problems use the folder check's shape
(`leapbatch.folder.verify.Problem`), so `verify --json` reads the same for a folder and an export.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from pathlib import Path

from leapbatch.errors import UsageError
from leapbatch.export.staging import SUMS_NAME
from leapbatch.folder.atomic import open_file, shown
from leapbatch.folder.verify import Problem

_LINE = re.compile(r"([0-9a-f]{64})  (.+)\Z")


def is_export(dest: Path) -> bool:
    """Return whether `dest` holds an export (a `SHA256SUMS` file)."""
    return (dest / SUMS_NAME).is_file()


def read_sums(dest: Path) -> dict[str, str]:
    """Return the listed sha256 of every file, by path; `UsageError` naming the line if the list is damaged."""
    path = dest / SUMS_NAME
    with os.fdopen(open_file(path, os.O_RDONLY), "rb") as handle:
        data = handle.read()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"{shown(path)}: not UTF-8 text", hint="export again: the list is damaged") from None
    sums: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        found = _LINE.match(line)
        if found is None or found[2] in sums or ".." in found[2].split("/"):
            raise UsageError(f"{shown(path)}:{number}: not a `sha256  path` line", hint="export again")
        sums[found[2]] = found[1]
    return sums


def _digest(path: Path) -> str:
    digest = hashlib.sha256()
    with os.fdopen(open_file(path, os.O_RDONLY), "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _present(dest: Path) -> dict[str, int]:
    """Return every entry under `dest` that is not a folder, by relative path, with its mode (links not followed)."""
    found: dict[str, int] = {}
    for root, dirs, files in os.walk(dest):
        base = Path(root).relative_to(dest)
        for name in files + [d for d in dirs if os.path.islink(os.path.join(root, d))]:
            relative = (base / name).as_posix()
            found[relative] = os.lstat(os.path.join(root, name)).st_mode
    return found


def verify_export(dest: Path) -> tuple[list[Problem], int]:
    """Return every problem of the export at `dest`, and how many files were checked."""
    sums = read_sums(dest)
    present = _present(dest)
    problems = []
    for relative, expected in sorted(sums.items()):
        mode = present.get(relative)
        if mode is None:
            problems.append(Problem("missing", "the file is missing", relative))
        elif not stat.S_ISREG(mode):
            problems.append(Problem("damaged", "not a regular file (a link or a device)", relative))
        elif _digest(dest / relative) != expected:
            problems.append(Problem("damaged", f"sha256 differs from {SUMS_NAME}", relative))
    for relative in sorted(set(present) - set(sums) - {SUMS_NAME}):
        problems.append(Problem("untracked", f"not in {SUMS_NAME}", relative))
    return problems, len(sums)
