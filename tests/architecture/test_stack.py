"""The stack (leapbatch/__init__.py): leaves < manifest, api, folder < run, export, view < cli, the emulator aside;
each room imports only from rooms below it, and httpx and trio live where the layout says."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import leapbatch

PACKAGE = Path(leapbatch.__file__).parent
LEAVES = {"errors", "wire", "jobs", "events", "crashpoints", "pricing"}
LAYER = {"manifest": 1, "api": 1, "folder": 1, "run": 2, "export": 2, "view": 2, "cli": 3, "__main__": 4}


def _runtime_imports(path: Path) -> set[str]:
    """Return the leapbatch-or-library modules a file imports at run time (not under `if TYPE_CHECKING:`)."""
    names: set[str] = set()
    stack: list[ast.AST] = [ast.parse(path.read_text(), str(path))]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING"):
            stack.extend(node.orelse)
            continue
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            if node.module == "leapbatch":
                names.update(f"leapbatch.{alias.name}" for alias in node.names)
        stack.extend(ast.iter_child_nodes(node))
    return names


def room(module: str) -> str:
    """Return the room of a dotted leapbatch module: its subpackage, or `leaf` for a top-level leaf."""
    parts = module.split(".")
    if len(parts) == 1:
        return "root"
    return "leaf" if parts[1] in LEAVES else parts[1]


def layer(name: str) -> int:
    """Return the layer of a room (leaves and the package root are 0)."""
    return LAYER.get(name, 0)


FILES = {
    ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__"): path
    for path in PACKAGE.rglob("*.py")
}
IMPORTS = {module: _runtime_imports(path) for module, path in FILES.items()}


def upward_imports() -> list[str]:
    """Return every import from a module to a room that is not below its own (emulator and version aside)."""
    bad = []
    for module, imported in sorted(IMPORTS.items()):
        here = room(module)
        if here == "emulator":
            continue
        for name in sorted(i for i in imported if i.startswith("leapbatch.") and i != "leapbatch"):
            there = room(name)
            if there in (here, "root") or (there == "emulator" and here == "cli"):
                continue
            if there == "emulator" or layer(there) >= layer(here):
                bad.append(f"{module} -> {name}")
    return bad


def test_each_room_imports_only_from_rooms_below() -> None:
    """leaves < manifest, api, folder < run, export < cli: no import goes sideways or up (a layer's rooms are apart)."""
    assert [] == upward_imports()


@pytest.mark.parametrize(
    ("library", "rooms"),
    [
        ("httpx", {"api", "cli", "emulator"}),
        ("trio", {"api", "run", "cli", "emulator"}),
        ("yaml", {"manifest"}),
    ],
)
def test_libraries_live_in_their_rooms(library: str, rooms: set[str]) -> None:
    """httpx lives in api (and cli builds clients, the emulator serves); trio in the async rooms; yaml in manifest."""
    homes = {room(m) for m, imported in IMPORTS.items() if any(i.split(".")[0] == library for i in imported)}
    assert set() == homes - rooms


def test_no_module_is_a_drawer() -> None:
    """No module passes ~400 lines (STYLE.md): split by responsibility before a file becomes a drawer."""
    sizes = {module: len(path.read_text().splitlines()) for module, path in FILES.items()}
    assert {} == {module: size for module, size in sizes.items() if size > 410}


def test_frozen_value_types_have_slots() -> None:
    """Every frozen dataclass in leapbatch also sets slots=True (smaller, and no stray attributes)."""
    bare = [
        f"{module}:{node.lineno}"
        for module, path in FILES.items()
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Call)
        and ast.unparse(node.func) == "dataclass"
        and any(k.arg == "frozen" for k in node.keywords)
        and not any(k.arg == "slots" for k in node.keywords)
    ]
    assert [] == bare
