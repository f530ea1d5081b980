"""Values files, parsed: a text file's values, a CSV or JSON Lines file's rows, each with the place it was written.

Pure: text in, values and problems out (`values_files` does the reading). Every value keeps its 1-based line and
column, so round two can report a bad one at `artists.txt:4:1`. A text file gives one value a line, stripped, with
blank lines and `#` comments skipped. A CSV file (RFC 4180: `,` between cells, `"` around a cell that holds one,
doubled inside) has a header row naming its columns; unquoted cells are stripped, an empty cell leaves its name
unset, and rows whose cells are all empty are skipped. CSV and text hold text only, so a name whose request field
takes a number or true/false (`seed`, `prompt_strength`, `restore_faces`) is converted here, strictly. A JSON Lines
file holds one object a line, typed as written. Problems are collected, never raised, so one run lists them all.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from leapbatch.errors import Problem
from leapbatch.jobs import Scalar
from leapbatch.manifest.safe_yaml import describe_value, problem_at, shorten

WHOLE_FIELDS = frozenset(("seed", "steps", "width", "height", "number_of_images"))
NUMBER_FIELDS = frozenset(("prompt_strength",))
BOOL_FIELDS = frozenset(("enhance_prompt", "restore_faces"))
_WHOLE = re.compile(r"[-+]?[0-9]+\Z")
_NUMBER = re.compile(r"[-+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)\Z")
_JSON_SPACE = " \t\r\n"


@dataclass(frozen=True, slots=True)
class Value:
    """One value of a values file, and where it was written."""

    value: Scalar
    line: int
    col: int


@dataclass(frozen=True, slots=True)
class Row:
    """One row of a CSV or JSON Lines file: its values, and where it, each value and each name were written."""

    values: dict[str, Any]
    line: int
    col: int = 1
    cells: dict[str, tuple[int, int]] = field(default_factory=dict)
    keys: dict[str, tuple[int, int]] = field(default_factory=dict)


def typed(name: str, text: str) -> tuple[Scalar, str | None]:
    """Return a text value as the type its name's request field takes, or the text and why it cannot be."""
    if name in WHOLE_FIELDS:
        if _WHOLE.match(text) and len(text) <= 30:
            return int(text), None
        return text, f'expected a whole number, got "{shorten(text)}"'
    if name in NUMBER_FIELDS:
        if _NUMBER.match(text) and len(text) <= 30:
            return (float(text) if "." in text else int(text)), None
        return text, f'expected a number, got "{shorten(text)}"'
    if name in BOOL_FIELDS:
        if text.lower() in ("true", "false"):
            return text.lower() == "true", None
        return text, f'expected true or false, got "{shorten(text)}"'
    return text, None


def lines_of(text: str) -> Iterator[tuple[int, str]]:
    """Yield each line of a file with its number (only \\n ends a line, as editors count; a \\r before it goes)."""
    for number, line in enumerate(text.split("\n"), start=1):
        yield number, line.removesuffix("\r")


def text_values(text: str, source: str, name: str) -> tuple[list[Value], list[Problem]]:
    """Return the values of a text file for the name `name`: one a line, blank lines and `#` comments skipped."""
    values: list[Value] = []
    problems: list[Problem] = []
    for number, line in lines_of(text):
        value = line.strip()
        if not value or value.startswith("#"):
            continue
        col = len(line) - len(line.lstrip()) + 1
        converted, error = typed(name, value)
        if error:
            problems.append(problem_at(source, number, col, (name,), error, None))
        values.append(Value(converted, number, col))
    return values, problems


def json_rows(text: str, source: str) -> tuple[list[Row], list[Problem]]:
    """Return the rows of a JSON Lines file: one object a line, typed as written, blank lines skipped."""
    rows: list[Row] = []
    problems: list[Problem] = []
    for number, line in lines_of(text):
        if not line.strip():
            continue
        row, problem = _json_row(line, number, source)
        if problem is not None:
            problems.append(problem)
        elif row is not None:
            rows.append(row)
    return rows, problems


class _ConstantError(ValueError):
    """Raised for NaN and Infinity, which JSON does not have (Python's reader takes them)."""


def _refuse_constant(name: str) -> None:
    raise _ConstantError(f"{name} is not a JSON number")


_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)


def _json_row(line: str, number: int, source: str) -> tuple[Row | None, Problem | None]:
    """Return the row of one JSON line, or the problem with it."""
    try:
        data = _DECODER.decode(line)
    except json.JSONDecodeError as exc:
        return None, problem_at(source, number, exc.colno, (), f"not valid JSON: {exc.msg}", "one JSON object a line")
    except ValueError as exc:  # NaN or Infinity, or an integer with thousands of digits
        said = str(exc) if isinstance(exc, _ConstantError) else "a number too long"
        return None, problem_at(source, number, 1, (), f"not valid JSON: {said}", None)
    if not isinstance(data, dict):
        said = f'expected a JSON object ({{"name": value, ...}}), got {describe_value(data)}'
        return None, problem_at(source, number, len(line) - len(line.lstrip()) + 1, (), said, "one object a line")
    row = Row({}, number, len(line) - len(line.lstrip(_JSON_SPACE)) + 1)
    for key, key_col, value, col in _json_pairs(line):
        if key in row.values:
            said = f"duplicate key (first at column {row.keys[key][1]})"
            return None, problem_at(source, number, key_col, (key,), said, "remove one")
        if value is None:
            return None, problem_at(source, number, col, (key,), "null is not a value", "leave the key out")
        if isinstance(value, float) and not math.isfinite(value):
            return None, problem_at(source, number, col, (key,), "not a finite number", None)
        row.values[key], row.cells[key], row.keys[key] = value, (number, col), (number, key_col)
    return row, None


def _json_pairs(line: str) -> Iterator[tuple[str, int, Any, int]]:
    """Yield each key of a JSON object on one line, its column, its value and the value's column (1-based).

    The line is known to hold one valid object, so this only walks it: `json` itself reports no positions.
    """
    i = _skip(line, line.index("{") + 1)
    while line[i] != "}":
        key, end = json.decoder.scanstring(line, i + 1)  # type: ignore[attr-defined] # public since Python 2.6
        start = _skip(line, _skip(line, end) + 1)  # past the colon
        value, end = _DECODER.raw_decode(line, start)
        yield key, i + 1, value, start + 1
        i = _skip(line, end)
        i = _skip(line, i + 1) if line[i] == "," else i


def _skip(line: str, i: int) -> int:
    while line[i] in _JSON_SPACE:
        i += 1
    return i


@dataclass(frozen=True, slots=True)
class _Cell:
    text: str
    line: int
    col: int
    quoted: bool


class _CsvError(Exception):
    """Raised by the CSV scanner when the text is not CSV; it carries the problem's place."""

    def __init__(self, line: int, col: int, message: str, hint: str) -> None:
        super().__init__(message)
        self.line, self.col, self.message, self.hint = line, col, message, hint


def csv_rows(text: str, source: str) -> tuple[list[Row], list[Problem]]:
    """Return the rows of a CSV file with a header row; cells are text, converted for number and boolean fields."""
    problems: list[Problem] = []
    try:
        records = [r for r in _CsvScanner(text).records() if any(c.text or c.quoted for c in r)]
    except _CsvError as exc:
        return [], [problem_at(source, exc.line, exc.col, (), exc.message, exc.hint)]
    if not records:
        return [], []
    header, keys = records[0], dict[str, tuple[int, int]]()
    for cell in header:
        if not cell.text:
            problems.append(problem_at(source, cell.line, cell.col, (), "empty column name", "name every column"))
        elif cell.text in keys:
            said = f"duplicate column (first at column {keys[cell.text][1]})"
            problems.append(problem_at(source, cell.line, cell.col, (cell.text,), said, "rename one"))
        else:
            keys[cell.text] = (cell.line, cell.col)
    rows = [_csv_row(record, header, keys, source, problems) for record in records[1:]]
    return ([] if problems else [row for row in rows if row is not None]), problems


def _csv_row(
    record: list[_Cell], header: list[_Cell], keys: dict[str, tuple[int, int]], source: str, problems: list[Problem]
) -> Row | None:
    """Return one CSV record as a row, or None (and problems) if its cells do not fit the header."""
    first = record[0]
    if len(record) != len(header):
        at = record[len(header)] if len(record) > len(header) else first
        said = f"{len(record)} values, but the header has {len(header)} columns"
        hint = "give each row a cell per column; an empty cell leaves its column unset"
        problems.append(problem_at(source, at.line, at.col, (), said, hint))
        return None
    row = Row({}, first.line, first.col, keys=keys)
    for name, cell in zip((c.text for c in header), record, strict=True):
        if not cell.text and not cell.quoted:
            continue  # an empty cell leaves the name unset: vars or params give it
        value, error = typed(name, cell.text)
        if error:
            problems.append(problem_at(source, cell.line, cell.col, (name,), error, None))
        row.values[name], row.cells[name] = value, (cell.line, cell.col)
    return row


class _CsvScanner:
    """Read RFC 4180 CSV, keeping where each cell starts (the csv module keeps no columns)."""

    def __init__(self, text: str) -> None:
        self.text, self.i, self.line, self.col = text, 0, 1, 1

    def advance(self, count: int = 1) -> None:
        for char in self.text[self.i : self.i + count]:
            self.line, self.col = (self.line + 1, 1) if char == "\n" else (self.line, self.col + 1)
        self.i += count

    def peek(self) -> str:
        return self.text[self.i : self.i + 1]

    def blanks(self) -> None:
        while self.peek() in (" ", "\t"):
            self.advance()

    def records(self) -> Iterator[list[_Cell]]:
        """Yield each record (line) as its cells."""
        record: list[_Cell] = []
        while self.i < len(self.text):
            record.append(self.cell())
            if self.peek() == ",":
                self.advance()
                if self.i == len(self.text):
                    record.append(_Cell("", self.line, self.col, quoted=False))
                continue
            self.advance(2 if self.text.startswith("\r\n", self.i) else 1)  # the end of the line
            yield record
            record = []
        if record:
            yield record

    def cell(self) -> _Cell:
        """Read one cell, leaving the scanner at the comma or line end after it."""
        self.blanks()
        line, col = self.line, self.col
        if self.peek() != '"':
            end = self.i
            while end < len(self.text) and self.text[end] not in ',\r\n"':
                end += 1
            text = self.text[self.i : end]
            self.advance(end - self.i)
            if self.peek() == '"':
                hint = 'put the whole value in quotes and double the quote in it: "12"" vinyl"'
                raise _CsvError(self.line, self.col, "a quote inside an unquoted value", hint)
            return _Cell(text.strip(), line, col, quoted=False)
        self.advance()
        parts: list[str] = []
        while True:
            end = self.text.find('"', self.i)
            if end < 0:
                raise _CsvError(line, col, "a quoted value is never closed", 'close it with "')
            parts.append(self.text[self.i : end])
            self.advance(end - self.i + 1)
            if self.peek() != '"':
                break
            parts.append('"')  # a doubled quote stands for one
            self.advance()
        self.blanks()
        if self.peek() not in ("", ",", "\r", "\n"):
            raise _CsvError(self.line, self.col, "text after a closing quote", 'write a quote inside quotes as ""')
        return _Cell("".join(parts), line, col, quoted=True)
