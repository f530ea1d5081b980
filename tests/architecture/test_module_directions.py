"""The directions between modules (STYLE.md): each I/O library has one home, leaves stay pure, nothing imports
the CLI, and there are no import cycles."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import leapbatch

PACKAGE = Path(leapbatch.__file__).parent


def module_name(path: Path) -> str:
    """Return the dotted name of a module file of the package."""
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Return every node except those under `if TYPE_CHECKING:` (imports for type hints only)."""
    found: list[ast.AST] = []
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING"):
            stack.extend(node.orelse)
            continue
        found.append(node)
        stack.extend(ast.iter_child_nodes(node))
    return found


def imports(path: Path) -> set[str]:
    """Return every absolute module name a file imports at run time (leapbatch uses no relative imports)."""
    names: set[str] = set()
    for node in _runtime_nodes(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert 0 == node.level, f"{path}: relative import"
            if node.module:
                names.add(node.module)
                names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


MODULES = {module_name(path): imports(path) for path in PACKAGE.rglob("*.py")}


def importers_of(library: str) -> set[str]:
    """Return the modules that import `library` (or any of its submodules)."""
    return {
        name for name, imported in MODULES.items() if any(i == library or i.startswith(library + ".") for i in imported)
    }


@pytest.mark.parametrize(
    ("library", "homes"),
    [
        ("yaml", {"leapbatch.manifest", "leapbatch.manifest.safe_yaml"}),
        (
            "rich",
            {
                "leapbatch.cli.progress",
                "leapbatch.cli.ledger_cmds",
                "leapbatch.cli.manifest_cmds",
            },
        ),
        ("hypercorn", {"leapbatch.emulator.serve"}),
    ],
)
def test_each_io_library_has_one_home(library: str, homes: set[str]) -> None:
    """yaml lives in the manifest loader, rich in progress and the CLI, hypercorn in the emulator's server."""
    assert set() == importers_of(library) - homes


@pytest.mark.parametrize(
    "leaf", ["leapbatch.errors", "leapbatch.jobs", "leapbatch.wire", "leapbatch.events", "leapbatch.pricing"]
)
def test_leaves_touch_no_network_disk_or_clock(leaf: str) -> None:
    """The leaves import no I/O library and no other part of leapbatch but leaves."""
    banned = ("httpx", "trio", "yaml", "rich", "hypercorn", "PIL", "socket", "time", "os")
    roots = {name.split(".")[0] for name in MODULES[leaf]}
    core = {name for name in MODULES[leaf] if name.startswith("leapbatch.")} - {
        "leapbatch.errors",
        "leapbatch.jobs",
        "leapbatch.wire",
        "leapbatch.events",
        "leapbatch.pricing",
    }
    assert (set(), set()) == (roots & set(banned), {n for n in core if n.rsplit(".", 1)[0] not in MODULES})


def test_nothing_imports_the_cli() -> None:
    """Only the CLI package (and `python -m leapbatch`) imports the CLI."""
    outside = {
        name
        for name in importers_of("leapbatch.cli")
        if not name.startswith("leapbatch.cli") and name != "leapbatch.__main__"
    }
    assert set() == outside


def test_there_are_no_import_cycles() -> None:
    """The graph of imports between leapbatch modules has no cycle."""
    graph = {
        name: {i for i in imported if i in MODULES and i != name and not name.startswith(i + ".")}
        for name, imported in MODULES.items()
    }
    visiting: list[str] = []
    done: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        if node in done:
            return
        if node in visiting:
            cycles.append([*visiting[visiting.index(node) :], node])
            return
        visiting.append(node)
        for nxt in sorted(graph[node]):
            visit(nxt)
        visiting.pop()
        done.add(node)

    for node in sorted(graph):
        visit(node)
    assert [] == cycles
