"""Values from files: read the files a manifest names and put their values where the manifest named them.

Runs at load, between round one's YAML and its types, so the checks and `expand` see plain lists and entries and
stay pure: a job from a file is the job the same values written inline would make (same key). A matrix axis
`{values_file: PATH}` becomes the list of the file's values; an include entry `{file: PATH}` becomes one entry per
row of a `.csv` or `.jsonl` file. `Locator` places record where each value and row was written, so round two reports
a bad one at `artists.txt:4:1`; problems with a file itself (missing, a folder, too big, not UTF-8, empty) are at the
manifest key that names it.

Paths are relative to the manifest file's folder, and must stay in it: no absolute path, no `..`, and no link that
leads out (its values are sent to the API as prompts, so a shared manifest must not be able to read `~/.ssh`). A
manifest given as text has no folder, so it may name no file. Each file is read once (a file named twice is read
once), at most MAX_BYTES each and MAX_TOTAL_BYTES together, with at most MAX_VALUES values and rows in all.
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from leapbatch.errors import Problem
from leapbatch.manifest import data_files
from leapbatch.manifest.models import MAX_JOBS
from leapbatch.manifest.safe_yaml import MAX_BYTES, Loc, Locator, Place, describe_value

MAX_TOTAL_BYTES = 16 * MAX_BYTES
MAX_VALUES = MAX_JOBS  # more values than jobs cannot fit the job cap anyway
ROW_FORMATS = (".csv", ".jsonl")


class _FileError(Exception):
    """Raised when a named file cannot be used; the message names it."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message, self.hint = message, hint


@dataclass
class Resolved:
    """Manifest data with its files' values in place, where they came from, the problems, and the files' digests."""

    data: dict[str, Any]
    places: dict[Loc, Place | Loc] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    digests: dict[str, str] = field(default_factory=dict)  # path as written -> sha256 of its bytes, in naming order


def source_sha256(manifest: bytes, digests: dict[str, str]) -> str:
    """Return the sha256 that says whether a manifest or any file it names changed.

    Without files it is the sha256 of the manifest's bytes. With files, it is the sha256 of the text of
    `sha256sum`-like lines: the manifest's sha256, then one `<sha256 of the file>  <path as written>` line per file
    in the order the manifest first names them, each line ending in a newline.
    """
    own = hashlib.sha256(manifest).hexdigest()
    if not digests:
        return own
    listing = own + "\n" + "".join(f"{digest}  {name}\n" for name, digest in digests.items())
    return hashlib.sha256(listing.encode("utf-8")).hexdigest()


def resolve(data: dict[str, Any], locator: Locator, folder: Path | None) -> Resolved:
    """Return `data` with every `{values_file: ...}` axis and `{file: ...}` include entry read from its file."""
    resolver = _Resolver(locator, folder, Resolved(dict(data)))
    matrix, include = data.get("matrix"), data.get("include")
    if isinstance(matrix, dict):
        resolver.resolved.data["matrix"] = {label: resolver.axis(label, raw) for label, raw in matrix.items()}
    if isinstance(include, list):
        resolver.resolved.data["include"] = resolver.include(include)
    return resolver.resolved


@dataclass
class _Resolver:
    locator: Locator
    folder: Path | None
    resolved: Resolved
    texts: dict[str, str] = field(default_factory=dict)
    total: int = 0
    values: int = 0

    def problem(self, loc: Loc, message: str, hint: str | None = None, *, key: bool = False) -> None:
        self.resolved.problems.append(self.locator.problem(loc, message, hint, key=key))

    def axis(self, label: str, raw: Any) -> Any:
        """Return an axis's values: those of its values file, or `raw` as written."""
        if not (isinstance(raw, dict) and "values_file" in raw):
            return raw
        loc: Loc = ("matrix", label)
        for key in raw:
            if key != "values_file":
                self.problem((*loc, key), "a {values_file: ...} axis takes no other keys", "remove it", key=True)
        read = self.read((*loc, "values_file"), raw["values_file"])
        if read is None or len(raw) > 1:
            return raw
        shown, text = read
        values, problems = data_files.text_values(text, shown, label)
        self.resolved.problems += problems
        if not values:
            said = f"{shown}: no values, only blank lines and comments"
            self.problem((*loc, "values_file"), said, "write one value a line")
            return raw
        if self.counted(len(values), (*loc, "values_file")):
            for i, value in enumerate(values):
                self.resolved.places[(*loc, i)] = Place(shown, value.line, value.col, (label,))
        return [value.value for value in values]

    def include(self, entries: list[Any]) -> list[Any]:
        """Return the include entries with every `{file: ...}` entry replaced by its file's rows."""
        out: list[Any] = []
        for j, entry in enumerate(entries):
            if not (isinstance(entry, dict) and "file" in entry):
                if len(out) != j:
                    self.resolved.places[("include", len(out))] = ("include", j)
                out.append(entry)
                continue
            for shown, row in self.rows(("include", j), entry):
                place = Place(shown, row.line, row.col, cells=row.cells, keys=row.keys)
                self.resolved.places[("include", len(out))] = place
                out.append(row.values)
        return out

    def rows(self, loc: Loc, entry: dict[str, Any]) -> list[tuple[str, data_files.Row]]:
        """Return the rows of an include entry's file, or none (and a problem)."""
        others = [key for key in entry if key != "file"]
        for key in others:
            hint = f"set `{key}` in the file's rows, or in an entry of its own"
            self.problem((*loc, key), "a {file: ...} entry takes no other keys", hint, key=True)
        name = entry["file"]
        suffix = PurePosixPath(name).suffix.lower() if isinstance(name, str) else ""
        if isinstance(name, str) and suffix not in ROW_FORMATS:
            said = f"rows come from a .csv or .jsonl file, not {f'a {suffix} file' if suffix else 'a file without one'}"
            self.problem((*loc, "file"), said, "for one value a line, use {values_file: ...} in a matrix axis")
            return []
        read = self.read((*loc, "file"), name)
        if read is None or others:
            return []
        shown, text = read
        parse = data_files.csv_rows if suffix == ".csv" else data_files.json_rows
        rows, problems = parse(text, shown)
        self.resolved.problems += problems
        if not rows and not problems:
            self.problem((*loc, "file"), f"{shown}: no rows", "write one row a line (after the header row, in CSV)")
        if problems or not self.counted(len(rows), (*loc, "file")):
            return []
        return [(shown, row) for row in rows]

    def counted(self, count: int, loc: Loc) -> bool:
        """Count values read from files; report (once) when there are more than MAX_VALUES in all."""
        before, self.values = self.values, self.values + count
        if self.values > MAX_VALUES >= before:
            self.problem(loc, f"files give more than {MAX_VALUES:,} values and rows", "split the manifest")
        return self.values <= MAX_VALUES

    def read(self, loc: Loc, name: object) -> tuple[str, str] | None:
        """Return the shown path and text of the file named at `loc`, or None (and a problem)."""
        try:
            return self.text(name)
        except _FileError as exc:
            self.problem(loc, exc.message, exc.hint)
            return None

    def text(self, name: object) -> tuple[str, str]:
        """Return the shown path and text of a named file, reading it once; raise _FileError if it cannot be used."""
        relative = self.relative(name)
        key = str(relative)
        assert self.folder is not None  # `relative` refused the name otherwise
        path = self.folder / relative
        shown = str(path)
        if key not in self.texts:
            data = self.bytes_of(path, shown)
            self.total += len(data)
            if self.total > MAX_TOTAL_BYTES:
                said = f"{shown}: the files named come to over {MAX_TOTAL_BYTES:,} bytes"
                raise _FileError(said, "split the manifest")
            self.texts[key] = _decode(data, shown)
            self.resolved.digests[key] = hashlib.sha256(data).hexdigest()
        return shown, self.texts[key]

    def relative(self, name: object) -> PurePosixPath:
        """Return a file's path as written, or raise _FileError if it is not a path in the manifest's folder."""
        if not isinstance(name, str) or not name.strip():
            said = f"expected a file's path, got {describe_value(name)}"
            raise _FileError(said, "write a path such as values/artists.txt")
        if "\x00" in name:
            raise _FileError("holds a NUL character (\\x00): no file system takes one in a path", "remove it")
        path = PurePosixPath(name)
        if path.is_absolute() or ".." in path.parts:
            said = "an absolute path" if path.is_absolute() else "a path with `..`"
            said = f"{name}: {said}, but a manifest names only files in its own folder or below it"
            raise _FileError(said, "write the path relative to the manifest's folder, and move the file there")
        if self.folder is None:
            said = f"{name}: this manifest is text, not a file, so it has no folder to find files in"
            raise _FileError(said, "load it from its file (load_manifest, or parse_manifest with source_path)")
        return path

    def bytes_of(self, path: Path, shown: str) -> bytes:
        """Return a file's bytes, or raise _FileError if it is missing, not a file, too big, or leads out."""
        assert self.folder is not None
        if not path.resolve().is_relative_to(self.folder.resolve()):
            said = f"{shown}: a link that leads out of the manifest's folder"
            raise _FileError(said, "copy the file into the manifest's folder")
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))  # a FIFO must not block
        except FileNotFoundError:
            raise _FileError(f"{shown}: no such file", "the path is relative to the manifest's folder") from None
        except OSError as exc:
            raise _FileError(f"{shown}: cannot read: {exc.strerror or exc}") from None
        try:
            info = os.fstat(fd)
            if stat.S_ISDIR(info.st_mode):
                raise _FileError(f"{shown}: is a folder, not a file", "name a file in it")
            if not stat.S_ISREG(info.st_mode):
                raise _FileError(f"{shown}: not a regular file", "name a text file")
            data = _read_at_most(fd, MAX_BYTES + 1) if info.st_size <= MAX_BYTES else b""
        finally:
            os.close(fd)
        if info.st_size > MAX_BYTES or len(data) > MAX_BYTES:
            said = f"{shown}: file is {max(info.st_size, len(data)):,} bytes, over the {MAX_BYTES:,}-byte limit"
            raise _FileError(said, "split it into several files")
        return data


def _read_at_most(fd: int, limit: int) -> bytes:
    """Return a file's bytes up to `limit` (a file may grow while it is read)."""
    chunks: list[bytes] = []
    size = 0
    while size < limit and (chunk := os.read(fd, limit - size)):
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def _decode(data: bytes, shown: str) -> str:
    """Return a file's text, or raise _FileError naming the first byte that is not UTF-8 and where it is."""
    try:
        return data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        col = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        bad = data[exc.start : exc.start + 1].hex()
        said = f"{shown}: not UTF-8 text: byte 0x{bad} at line {line}, column {col}"
        raise _FileError(said, "save the file as UTF-8") from None
