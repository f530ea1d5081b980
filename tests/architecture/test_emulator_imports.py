"""The emulator's place in the architecture: what it may import, and who may import it."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import leapbatch

PACKAGE = Path(leapbatch.__file__).parent
EMULATOR = PACKAGE / "emulator"
ALLOWED_CORE = {"leapbatch.wire", "leapbatch.errors"}
ALLOWED_THIRD_PARTY = {"trio", "hypercorn", "httpx", "PIL"}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_the_emulator_imports_only_wire_and_errors_from_the_core() -> None:
    """Inside leapbatch, the emulator reaches only `wire`, `errors` and itself."""
    reached = {
        name
        for path in EMULATOR.glob("*.py")
        for name in _imports(path)
        if name.startswith("leapbatch") and not name.startswith("leapbatch.emulator")
    }

    assert set() == reached - ALLOWED_CORE


def test_the_emulator_uses_only_its_own_libraries() -> None:
    """Outside the standard library, the emulator uses trio, hypercorn, httpx and Pillow."""
    roots = {name.split(".")[0] for path in EMULATOR.glob("*.py") for name in _imports(path)}

    assert set() == roots - sys.stdlib_module_names - ALLOWED_THIRD_PARTY - {"leapbatch"}


def test_nothing_in_the_core_imports_the_emulator() -> None:
    """Only the CLI imports the emulator (for `leapbatch emulator` and `run --local`)."""
    importers = sorted(
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if EMULATOR not in path.parents
        and (PACKAGE / "cli") not in path.parents
        and any(name.startswith("leapbatch.emulator") for name in _imports(path))
    )

    assert [] == importers
