"""Loading manifests: a file or text -> a checked `Manifest`, or `ManifestError` listing every problem.

Loading runs in two rounds and raises `ManifestError` with every problem of the round that failed, each located at
`file:line:col`. Round one is the YAML and the types: `manifest_yaml` composes and builds plain data safely,
`values_files` reads the files it names (`{values_file: ...}` axes, `{file: ...}` include entries) into it, then
`ManifestSpec` (`manifest_format`) validates it strictly. Round two is the meaning (`manifest_check`): names,
templates, which names each axis sets, unused axes and vars, exclude and include entries, and the caps. A `Manifest`
that exists has passed both rounds, so `expand` can trust it; only the rendered prompts' lengths and an empty result
are left for `expand` to find. `source_sha256` changes when the manifest or a file it names does
(`values_files.source_sha256`). This is the module the rest of leapbatch imports manifests from.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from leapbatch.errors import ManifestError, Problem, UsageError
from leapbatch.manifest import safe_yaml as manifest_yaml
from leapbatch.manifest import values_files, wording
from leapbatch.manifest.check import check
from leapbatch.manifest.models import (
    MAX_AXES,
    MAX_EXCLUDE,
    MAX_JOBS,
    MAX_SEED,
    MAX_SIDE,
    MAX_STEPS,
    MAX_TEXT,
    Axis,
    Cleanup,
    Limits,
    Manifest,
    ManifestSpec,
    Output,
    Params,
    Sample,
    error_hint,
    json_schema,
)
from leapbatch.manifest.safe_yaml import Loc, Locator

__all__ = [
    "MAX_AXES",
    "MAX_EXCLUDE",
    "MAX_JOBS",
    "MAX_SEED",
    "MAX_SIDE",
    "MAX_STEPS",
    "MAX_TEXT",
    "Axis",
    "Cleanup",
    "Limits",
    "Manifest",
    "ManifestSpec",
    "Output",
    "Params",
    "Sample",
    "json_schema",
    "load_manifest",
    "parse_manifest",
]


def _data_loc(data: Any, loc: Loc) -> Loc:
    """Return `loc` without the union-member tags pydantic inserts: keep the steps that exist in the data."""
    out: list[str | int] = []
    for i, item in enumerate(loc):
        in_list = isinstance(data, list) and isinstance(item, int) and 0 <= item < len(data)
        if in_list or (isinstance(data, dict) and item in data):
            data = data[item]
        elif i == len(loc) - 1 and isinstance(data, dict):
            out.append(item)  # a missing or unknown key: the last step names it
            break
        else:
            continue
        out.append(item)
    return tuple(out)


def load_manifest(path: Path | str) -> Manifest:
    """Read and check a manifest file, raising UsageError if it cannot be read and ManifestError if it is bad."""
    path = Path(path)
    try:
        with path.open("rb") as handle:
            manifest_yaml.check_size(os.fstat(handle.fileno()).st_size, str(path))  # before reading it all
            data = handle.read(manifest_yaml.MAX_BYTES + 1)
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file", hint="check the manifest's path") from None
    except IsADirectoryError:
        raise UsageError(f"{path}: is a folder, not a manifest file", hint="pass a .yaml file") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot read: {exc.strerror or exc}") from None
    return parse_manifest(data, str(path), source_path=path)


def parse_manifest(text: str | bytes, source_name: str = "<manifest>", *, source_path: Path | None = None) -> Manifest:
    """Check a manifest's text and return it, or raise ManifestError listing every problem found.

    Files it names are read from the folder of `source_path`; without one, naming a file is a problem.
    """
    if isinstance(text, str):
        try:
            raw = text.encode("utf-8")
        except UnicodeEncodeError as exc:
            line, col = text.count("\n", 0, exc.start) + 1, exc.start - text.rfind("\n", 0, exc.start)
            raise ManifestError([Problem(source_name, line, col, "", "not valid Unicode text")]) from None
    else:
        raw = text
    root, problems = manifest_yaml.compose(manifest_yaml.decode(raw, source_name), source_name)
    built = manifest_yaml.build(root, source_name)
    locator = Locator(source_name, root)
    problems += built.problems
    if not isinstance(built.data, dict):
        got = manifest_yaml.describe(root)
        problems.append(locator.problem((), f"expected a mapping of keys (version: 1, name: ...), got {got}"))
        raise ManifestError(problems)
    files = values_files.resolve(built.data, locator, None if source_path is None else source_path.parent)
    locator = Locator(source_name, root, files.places)
    problems += files.problems
    spec: ManifestSpec | None = None
    try:
        spec = ManifestSpec.model_validate(files.data)
    except ValidationError as exc:
        for error in exc.errors():
            # A `None` default is written as a union with None: drop that member's error and its tag in `loc`.
            if error["type"] == "none_required":
                continue
            error["loc"] = loc = _data_loc(files.data, tuple(error["loc"]))
            at = locator.tree_path(loc)  # where `built.refused` has it, if in the tree
            if at is None or not any(at[: len(refused)] == refused for refused in built.refused):
                problems.append(wording.explain(locator, (), error, error_hint))
    if problems or spec is None:
        raise ManifestError(problems)
    try:
        return check(spec, locator, values_files.source_sha256(raw, files.digests), source_path)
    except ManifestError as exc:
        # A CSV's rows share its header: a problem with a column is found once per row, and said once.
        raise ManifestError(list(dict.fromkeys(exc.problems))) from None
