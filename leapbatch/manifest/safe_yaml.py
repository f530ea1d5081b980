"""Safe YAML for manifests: compose a node tree from parser events, refuse what a manifest must not use, build plain
data from the same tree, and locate any field path in it for `file:line:col` messages.

The only module of leapbatch that imports yaml (with `manifest`, which calls it). Invariants, in the order they are
enforced: the text is valid UTF-8 and at most MAX_BYTES; parsing is libyaml's safe parser (events only, no Python
tags); anchors and aliases are refused as their events arrive, so the tree is a tree, never a DAG, and an alias
bomb cannot expand; at most MAX_NODES nodes and MAX_DEPTH levels (so every later recursive walk is bounded); only
the str, int, float and bool tags become values, with YAML 1.1's surprises (octal `017`, base-60 `1:30`, dates,
`.inf`) refused rather than read; duplicate keys and nulls are problems, not silently dropped. Every problem found
is collected, so one run of `validate` lists them all. A `Locator` finds a field path's node, or the `Place` in a
values file that the data at that path was read from.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from leapbatch.errors import ManifestError, Problem
from leapbatch.manifest.template import printable

MAX_BYTES = 1024 * 1024
MAX_NODES = 200_000
MAX_DEPTH = 16

Loc = tuple[str | int, ...]

_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_TAG = "tag:yaml.org,2002:"
_STR, _INT, _FLOAT, _BOOL, _NULL = (_TAG + name for name in ("str", "int", "float", "bool", "null"))
_SEQ, _MAP = _TAG + "seq", _TAG + "map"
_REFUSED = "tag:leapbatch,2025:refused"  # stands in for an alias, already reported
NUMBER = re.compile(r"[-+]?[0-9][0-9_]*(\.[0-9]*)?\Z")
_OCTAL = re.compile(r"[-+]?0[0-9_]+\Z")
_CONSTRUCTOR = yaml.constructor.SafeConstructor()


def dotted(loc: Loc) -> str:
    """Return a field path as people read it: `matrix.lighting[1].light`."""
    out = ""
    for item in loc:
        out += f"[{item}]" if isinstance(item, int) else (f".{item}" if out else item)
    return out


def problem_at(source: str, line: int, col: int, loc: Loc, message: str, hint: str | None) -> Problem:
    """Return a Problem whose text is safe for a terminal: keys and values from the file may hold control codes."""
    return Problem(source, line, col, printable(dotted(loc)), printable(message), printable(hint) if hint else None)


def _line_col(text: str, index: int) -> tuple[int, int]:
    line = text.count("\n", 0, index) + 1
    return line, index - (text.rfind("\n", 0, index) + 1) + 1


def check_size(size: int, source: str) -> None:
    """Raise ManifestError if a manifest of `size` bytes is over MAX_BYTES."""
    if size > MAX_BYTES:
        said = f"file is {size:,} bytes, over the {MAX_BYTES:,}-byte limit"
        hint = "a manifest describes jobs with a matrix; split it or use ranges instead of long lists"
        raise ManifestError([Problem(source, 0, 0, "", said, hint)])


def decode(data: bytes, source: str) -> str:
    """Return the text of a manifest file, or raise ManifestError if it is too big or not UTF-8."""
    check_size(len(data), source)
    try:
        return data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        col = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        bad = data[exc.start : exc.start + 1].hex()
        problem = Problem(source, line, col, "", f"not UTF-8 text: byte 0x{bad}", hint="save the file as UTF-8")
        raise ManifestError([problem]) from None


class _StopError(Exception):
    """Raised inside composition when going on makes no sense (a cap was hit)."""


@dataclass
class _Composer:
    loader: Any
    source: str
    problems: list[Problem] = field(default_factory=list)
    aliases: set[str] = field(default_factory=set)
    nodes: int = 0

    def problem(self, mark: Any, message: str, hint: str | None = None) -> None:
        self.problems.append(problem_at(self.source, mark.line + 1, mark.column + 1, (), message, hint))

    def node(self, depth: int) -> yaml.Node:  # noqa: C901 -- one branch per YAML event kind, read top to bottom
        event = self.loader.get_event()
        start: Any = event.start_mark  # libyaml's marks are not the pure-Python Mark the stubs name
        end: Any
        self.nodes += 1
        if self.nodes > MAX_NODES:
            self.problem(start, f"more than {MAX_NODES:,} values", hint="use ranges instead of long lists")
            raise _StopError
        if depth > MAX_DEPTH:
            self.problem(start, f"nested more than {MAX_DEPTH} levels deep", hint="a manifest needs 5 at most")
            raise _StopError
        if isinstance(event, yaml.AliasEvent):
            if str(event.anchor) not in self.aliases:  # one problem per alias name: a bomb repeats them a lot
                self.aliases.add(str(event.anchor))
                self.problem(start, f"aliases (*{event.anchor}) are not allowed", hint="write the value out")
            return yaml.ScalarNode(_REFUSED, "", start, start)
        if event.anchor is not None:
            self.problem(start, f"anchors (&{event.anchor}) are not allowed", hint="remove the anchor")
        if isinstance(event, yaml.ScalarEvent):
            tag = event.tag
            if tag is None or tag == "!":
                tag = self.loader.resolve(yaml.ScalarNode, event.value, event.implicit)
            end = event.end_mark
            return yaml.ScalarNode(tag, event.value, start, end, style=event.style or None)
        if isinstance(event, yaml.SequenceStartEvent):
            items: list[yaml.Node] = []
            while not self.loader.check_event(yaml.SequenceEndEvent):
                items.append(self.node(depth + 1))
            end = self.loader.get_event().end_mark
            return yaml.SequenceNode(event.tag or _SEQ, items, start, end)
        assert isinstance(event, yaml.MappingStartEvent), event  # the parser yields nothing else here
        pairs: list[tuple[yaml.Node, yaml.Node]] = []
        while not self.loader.check_event(yaml.MappingEndEvent):
            key = self.node(depth + 1)
            pairs.append((key, self.node(depth + 1)))
        end = self.loader.get_event().end_mark
        return yaml.MappingNode(event.tag or _MAP, pairs, start, end)


def compose(text: str, source: str) -> tuple[yaml.Node, list[Problem]]:
    """Return the node tree of one YAML document and the problems that did not stop composing it.

    Raise ManifestError when there is no tree to go on with (a syntax error, a cap hit, an empty file).
    """
    composer = _Composer(_Loader(text), source)
    root: yaml.Node | None = None
    stopped = True
    try:
        composer.loader.get_event()  # StreamStartEvent
        if composer.loader.check_event(yaml.StreamEndEvent):
            composer.problems.append(Problem(source, 0, 0, "", "empty manifest", hint="start it with `version: 1`"))
        else:
            composer.loader.get_event()  # DocumentStartEvent
            root = composer.node(0)
            composer.loader.get_event()  # DocumentEndEvent
            if not composer.loader.check_event(yaml.StreamEndEvent):
                mark = composer.loader.peek_event().start_mark
                composer.problem(mark, "more than one YAML document", hint="a manifest is one document: remove `---`")
            stopped = False
    except _StopError:
        pass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        said = exc.problem or "syntax error"
        if exc.context:
            said += f" ({exc.context})"
        line, col = (mark.line + 1, mark.column + 1) if mark else (0, 0)
        lines = text.splitlines()
        tab = 0 < line <= len(lines) and lines[line - 1][col - 1 : col] == "\t"
        hint = "indent with spaces, not tabs" if tab else "check quotes and indentation"
        composer.problems.append(Problem(source, line, col, "", f"invalid YAML: {said}", hint))
    except yaml.reader.ReaderError as exc:
        line, col = _line_col(text, exc.position)
        code = ord(exc.character) if isinstance(exc.character, str) else int(exc.character)
        said = f"{exc.reason}: U+{code:04X}"
        composer.problems.append(Problem(source, line, col, "", f"invalid YAML: {said}", "remove it"))
    except yaml.YAMLError as exc:  # libyaml reports some faults without a mark
        composer.problems.append(Problem(source, 0, 0, "", f"invalid YAML: {exc}", None))
    finally:
        composer.loader.dispose()
    if root is None or stopped:
        raise ManifestError(composer.problems)
    return root, composer.problems


def quote_hint(node: yaml.Node) -> str | None:
    """Return "quote it" advice when a plain YAML scalar was read as something other than text."""
    if isinstance(node, yaml.ScalarNode) and node.style is None and node.tag in (_BOOL, _INT, _FLOAT):
        return f'quote it: "{node.value}"'
    return None


def describe(node: yaml.Node | None, value: object = None) -> str:
    """Return what a node holds, for "expected X, got Y" messages."""
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    if isinstance(node, yaml.ScalarNode):
        if node.tag == _BOOL:
            return f"`{node.value}`, which YAML reads as the boolean {str(node.value.lower() in _TRUE).lower()}"
        if node.tag in (_INT, _FLOAT):
            return f"the number {node.value}"
        return f'the string "{shorten(node.value)}"'
    return describe_value(value)


def describe_value(value: object) -> str:
    """Return what a plain value is, when there is no node to show."""
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, str):
        return f'the string "{shorten(value)}"'
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return "an empty value"


_TRUE = ("yes", "true", "on")


def shorten(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass
class Built:
    """Plain data built from a node tree, with the problems met and the paths whose values were refused."""

    data: Any
    problems: list[Problem]
    refused: set[Loc]


@dataclass
class _Builder:
    source: str
    problems: list[Problem] = field(default_factory=list)
    refused: set[Loc] = field(default_factory=set)

    def refuse(self, node: yaml.Node, loc: Loc, message: str, hint: str | None = None, *, drop: bool = True) -> None:
        """Record a problem; with `drop`, the value is left out and later problems under `loc` are not reported."""
        mark = node.start_mark
        self.problems.append(problem_at(self.source, mark.line + 1, mark.column + 1, loc, message, hint))
        if drop:
            self.refused.add(loc)

    def build(self, node: yaml.Node, loc: Loc) -> Any:
        if isinstance(node, yaml.MappingNode):
            return self.mapping(node, loc)
        if isinstance(node, yaml.SequenceNode):
            if node.tag != _SEQ:
                self.refuse(node, loc, f"tag {node.tag.replace(_TAG, '!!')} is not allowed")
                return None
            return [self.build(item, (*loc, i)) for i, item in enumerate(node.value)]
        return self.scalar(node, loc)

    def mapping(self, node: yaml.MappingNode, loc: Loc) -> Any:
        if node.tag != _MAP:
            self.refuse(node, loc, f"tag {node.tag.replace(_TAG, '!!')} is not allowed")
            return None
        out: dict[str, Any] = {}
        first_line: dict[str, int] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag != _STR:
                what = describe(key_node)
                hint = quote_hint(key_node) or "keys are plain names such as `prompt`"
                if key_node.tag == _TAG + "merge":
                    what, hint = "a merge key (<<)", "write the keys out"
                self.refuse(key_node, loc, f"keys must be text, got {what}", hint)
                continue
            key = key_node.value
            if key in first_line:
                said = f"duplicate key (first at line {first_line[key]})"
                self.refuse(key_node, (*loc, key), said, "remove one", drop=False)
                continue
            first_line[key] = key_node.start_mark.line + 1
            value = self.build(value_node, (*loc, key))
            if (*loc, key) not in self.refused:
                out[key] = value
        return out

    def scalar(self, node: yaml.Node, loc: Loc) -> Any:
        tag, text = node.tag, str(node.value)
        if tag == _STR:
            return text
        if tag == _REFUSED:
            self.refused.add(loc)
            return None
        if tag == _NULL:
            self.refuse(node, loc, "empty value", hint='give it a value, write "" for empty text, or remove the key')
        elif tag in (_INT, _FLOAT) and ":" in text:
            self.refuse(node, loc, f"YAML 1.1 reads {text} as a base-60 number", hint=f'quote it: "{text}"')
        elif tag == _INT and _OCTAL.match(text):
            self.refuse(node, loc, f"YAML 1.1 reads {text} as an octal number", hint="drop the leading zero")
        elif tag in (_INT, _FLOAT, _BOOL):
            try:
                value = _CONSTRUCTOR.construct_object(node)
            except ValueError:
                self.refuse(node, loc, "number too long")
                return None
            if isinstance(value, float) and not math.isfinite(value):
                self.refuse(node, loc, f"{text} is not a finite number")
                return None
            return value
        elif tag == _TAG + "timestamp":
            self.refuse(node, loc, f"YAML reads {text} as a date", hint=f'quote it: "{text}"')
        else:
            shown = str(tag).replace(_TAG, "!!")
            self.refuse(node, loc, f"tag {shown} is not allowed", hint="write plain text, numbers and true/false")
        return None


def build(root: yaml.Node, source: str) -> Built:
    """Return plain data (dicts, lists, str, int, float, bool) from a composed tree, and every problem met."""
    builder = _Builder(source)
    data = builder.build(root, ())
    return Built(data, builder.problems, builder.refused)


@dataclass(frozen=True, slots=True)
class Place:
    """Where data read from a values file was written: a value's line and column, or a row's and its cells'.

    `shown` is how the data's field path is written in messages (a value of `matrix.artist` shows as `artist`); a
    row's problems at `(name,)` are located at its cell, or at its key (a CSV's header) when about the name.
    """

    source: str
    line: int
    col: int
    shown: Loc = ()
    cells: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    keys: Mapping[str, tuple[int, int]] = field(default_factory=dict)

    def problem(self, rest: Loc, message: str, hint: str | None, *, key: bool) -> Problem:
        """Return a Problem about the data at `rest` below this place."""
        line, col = self.line, self.col
        if rest and isinstance(rest[0], str):
            line, col = (self.keys if key and rest[0] in self.keys else self.cells).get(rest[0], (line, col))
        return problem_at(self.source, line, col, (*self.shown, *rest), message, hint)


@dataclass(frozen=True, slots=True)
class Locator:
    """Turn field paths into `file:line:col` problems, using the node tree the data was built from.

    `places` maps the path of data that came from a values file to its Place there, and the path of an include
    entry that files moved (`include[5]`, after rows read from a file) to its path in the tree (`include[1]`).
    """

    source: str
    root: yaml.Node | None = None
    places: Mapping[Loc, Place | Loc] = field(default_factory=dict)

    def _target(self, loc: Loc) -> tuple[Loc, Place | None]:
        """Return `loc` as a path in the tree, or the Place its data came from and the path below that place."""
        for n in range(len(loc), 0, -1) if self.places else ():
            target = self.places.get(loc[:n])
            if isinstance(target, Place):
                return loc[n:], target
            if target is not None:
                return (*target, *loc[n:]), None
        return loc, None

    def tree_path(self, loc: Loc) -> Loc | None:
        """Return the path in the tree of the data at `loc`, or None if that data came from a file."""
        loc, place = self._target(loc)
        return None if place is not None else loc

    def node(self, loc: Loc, *, key: bool = False) -> yaml.Node | None:
        """Return the node at `loc` (its key node if `key`), or the deepest node on the way to it."""
        loc, place = self._target(loc)
        return None if place is not None else self._walk(loc, key)[0]

    def exact(self, loc: Loc) -> yaml.Node | None:
        """Return the node at `loc`, or None if the tree does not reach that far (or the data came from a file)."""
        loc, place = self._target(loc)
        if place is not None:
            return None
        node, reached = self._walk(loc, False)
        return node if reached else None

    def _walk(self, loc: Loc, key: bool) -> tuple[yaml.Node | None, bool]:
        node = self.root
        for i, item in enumerate(loc):
            if isinstance(node, yaml.MappingNode) and isinstance(item, str):
                found = [(k, v) for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == item]
                if not found:
                    return node, False
                node = found[0][0] if key and i == len(loc) - 1 else found[0][1]
            elif isinstance(node, yaml.SequenceNode) and isinstance(item, int) and 0 <= item < len(node.value):
                node = node.value[item]
            else:
                return node, False
        return node, node is not None

    def problem(self, loc: Loc, message: str, hint: str | None = None, *, key: bool = False) -> Problem:
        """Return a Problem located at the node of `loc` (1-based line and column; 0 when unknown)."""
        tree_loc, place = self._target(loc)
        if place is not None:
            return place.problem(tree_loc, message, hint, key=key)
        node = self._walk(tree_loc, key)[0]
        line, col = (node.start_mark.line + 1, node.start_mark.column + 1) if node is not None else (0, 0)
        return problem_at(self.source, line, col, tree_loc, message, hint)
