"""The contact sheet's content and geometry, as pure functions: which cells it has, where everything goes, tiles.

1. `grid(catalog, x, y, where)` picks the cells. The columns are every value of the x variable, the rows every
   value of y, in the catalog's order, so an empty cell can say why: a job with no images gives its reason
   (pending, generating, failed at which stage), a cell with no job gives `why_empty`. Only jobs with every
   `where` value count; a job that sets no value for x or y is left off (and counted).
2. A cell holds *slots*, in the manifest's order: one per image of each of its jobs, or one text slot (its reason)
   for a job with no image. Several slots (variables free in the cell: a style, a seed, numberOfImages) are tiled
   small in a square grid inside the cell (`slot_boxes`), each captioned with its job's values of the free
   variables, at most `MAX_SLOTS`; past that the first `MAX_SLOTS - 1` are kept and the last says "+k more".
3. `layout(grid, cell, max_pixels)` wraps the labels (`wrap`, with the font's widths) and splits the sheet into
   tiles of at most `max_pixels` pixels each (`split`): as few tiles as fit, evened out, numbered row by row;
   every tile repeats the title, both axis titles and the labels of its own columns and rows. A sheet within the
   cap is one tile.

`leapbatch.view.sheet` draws what this module lays out.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

from PIL import ImageFont

from leapbatch.errors import UsageError
from leapbatch.view.absence import why_empty
from leapbatch.view.catalog import Catalog, Entry, Picture

MAX_SLOTS = 16  # a cell tiles at most 4 x 4 images; past that the last slot says "+k more"
DEFAULT_CELL = 256
DEFAULT_MAX_PIXELS = 40_000_000
COLUMN_LABEL_LINES = 3
ELLIPSIS = "..."

Font = ImageFont.FreeTypeFont | ImageFont.ImageFont


class Kind(Enum):
    """What a slot shows (the drawing gives each its colours)."""

    IMAGE = "image"
    NO_JOB = "no job"  # no job has the cell's values: why_empty
    WAITING = "waiting"  # a job with no images yet: its reason
    DAMAGED = "damaged"  # an image missing on disk or not as recorded (found while drawing)
    MORE = "more"  # "+k more"


@dataclass(frozen=True, slots=True)
class Slot:
    """One square of a cell: an image, or a line of text on a coloured fill."""

    kind: Kind
    text: str = ""
    picture: Picture | None = None
    caption: str = ""  # its job's values of the variables free in the cell (drawn when the cell tiles several)


@dataclass(frozen=True, slots=True)
class Grid:
    """What the sheet shows: its labels and, for each row and column, the cell's slots (see the module docstring)."""

    title: str
    x: str
    y: str
    columns: tuple[str, ...]
    rows: tuple[str, ...]
    cells: tuple[tuple[tuple[Slot, ...], ...], ...]  # cells[row][column]
    where: Mapping[str, str] = field(default_factory=dict)
    free: tuple[str, ...] = ()  # the variables whose values differ between the jobs of one cell
    jobs: int = 0
    images: int = 0
    left_off: int = 0  # jobs that match `where` but set no value for x or y


def _slots(entries: list[Entry], free: tuple[str, ...]) -> tuple[Slot, ...]:
    slots: list[Slot] = []
    for entry in entries:
        caption = ", ".join(entry.variables[name] for name in free if name in entry.variables)
        if entry.pictures:
            several = len(entry.pictures) > 1
            slots += [
                Slot(Kind.IMAGE, picture=p, caption=f"{caption} #{p.index + 1}" if several else caption)
                for p in entry.pictures
            ]
        else:
            slots.append(Slot(Kind.WAITING, entry.reason or entry.status.value, caption=caption))
    if len(slots) > MAX_SLOTS:
        slots[MAX_SLOTS - 1 :] = [Slot(Kind.MORE, f"+{len(slots) - MAX_SLOTS + 1} more")]
    return tuple(slots)


def _free(catalog: Catalog, cells: Iterable[list[Entry]]) -> tuple[str, ...]:
    """Return the variables whose values differ between the jobs of one cell, in the catalog's order."""
    free = {
        name
        for entries in cells
        for name in {n for e in entries for n in e.variables}
        if len({e.variables.get(name) for e in entries}) > 1
    }
    return tuple(v.name for v in catalog.variables if v.name in free)


def grid(catalog: Catalog, x: str, y: str, where: Mapping[str, str], title: str | None = None) -> Grid:
    """Return the grid of `catalog` with variable `x` across and `y` down, of the jobs with every `where` value.

    `x`, `y` and `where`'s names must be variables of the catalog (the CLI checks them).
    """
    columns, rows = catalog.variable(x), catalog.variable(y)
    if columns is None or rows is None:
        raise ValueError(f"the catalog has no variable {x if columns is None else y!r}")
    chosen = [e for e in catalog.entries if all(e.variables.get(k) == v for k, v in where.items())]
    placed = [e for e in chosen if x in e.variables and y in e.variables]
    by_cell: dict[tuple[str, str], list[Entry]] = {}
    for entry in placed:
        by_cell.setdefault((entry.variables[x], entry.variables[y]), []).append(entry)
    free = _free(catalog, by_cell.values())
    cells = tuple(
        tuple(
            _slots(by_cell[(c, r)], free)
            if (c, r) in by_cell
            else (Slot(Kind.NO_JOB, why_empty(catalog, {x: c, y: r, **where})),)
            for c in columns.values
        )
        for r in rows.values
    )
    return Grid(
        title=catalog.name if title is None else title,
        x=x,
        y=y,
        columns=columns.values,
        rows=rows.values,
        cells=cells,
        where=dict(where),
        free=free,
        jobs=len(placed),
        images=sum(len(e.pictures) for e in placed),
        left_off=len(chosen) - len(placed),
    )


# -- text --------------------------------------------------------------------------------------------------------


def ellipsize(text: str, width: float, measure: Callable[[str], float], *, force: bool = False) -> str:
    """Return `text` cut to fit `width`, ending in "..." when cut (or always, with `force`)."""
    if not force and measure(text) <= width:
        return text
    while text and measure(text.rstrip() + ELLIPSIS) > width:
        text = text[:-1]
    return text.rstrip() + ELLIPSIS if measure(ELLIPSIS) <= width else ""


def wrap(text: str, width: float, measure: Callable[[str], float], max_lines: int) -> tuple[str, ...]:
    """Return `text` wrapped at spaces into lines of at most `width` (a longer word is broken), at most `max_lines`
    of them (the last one then ends in "...")."""
    lines: list[str] = []
    current = ""
    for word in text.split():
        trial = f"{current} {word}" if current else word
        if measure(trial) <= width:
            current = trial
            continue
        if current:
            lines.append(current)
        while len(word) > 1 and measure(word) > width:
            cut = max(1, max((n for n in range(1, len(word)) if measure(word[:n]) <= width), default=1))
            lines.append(word[:cut])
            word = word[cut:]
        current = word
    if current:
        lines.append(current)
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = ellipsize(lines[-1], width, measure, force=True)
    return tuple(ellipsize(line, width, measure) for line in lines)


# -- layout ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Fonts:
    """The sheet's font at its sizes (scaled with the cell): Pillow's built-in one (ASCII only), or a TrueType file."""

    title: Font
    label: Font
    small: Font
    tiny: Font  # text in a slot of a cell that tiles several

    @classmethod
    def for_cell(cls, cell: int, path: Path | None = None) -> Fonts:
        """Return the fonts of a sheet whose cells are `cell` pixels a side, from the font file `path` if given."""
        label = max(10, round(cell * 0.07))
        small = max(9, round(cell * 0.05))
        sizes = (round(label * 1.4), label, small, max(8, round(small * 0.8)))
        if path is None:
            return cls(*(ImageFont.load_default(size=size) for size in sizes))
        try:
            return cls(*(ImageFont.truetype(path, size) for size in sizes))
        except OSError:
            raise UsageError(
                f"--font {path}: not a font file Pillow can read", hint="give a .ttf or .otf file"
            ) from None


def line_height(font: Font) -> int:
    """Return the height of one line of `font`."""
    if isinstance(font, ImageFont.FreeTypeFont):
        ascent, descent = font.getmetrics()
        return int(ascent + descent)
    return 11  # Pillow's bitmap font, without FreeType


@dataclass(frozen=True, slots=True)
class Tile:
    """One image file of the sheet: its number (from 1), the columns and rows it shows, its size in pixels."""

    number: int
    columns: range
    rows: range
    width: int
    height: int


@dataclass(frozen=True, slots=True)
class Box:
    """A rectangle of a tile, `x1` and `y1` exclusive."""

    x0: int
    y0: int
    x1: int
    y1: int


@dataclass(frozen=True, slots=True)
class Layout:
    """Where everything of a sheet goes: the bands around the cells, the wrapped labels and the tiles."""

    cell: int  # a cell's pitch; its content is inset by `pad` on each side
    pad: int
    margin: int
    header: int  # the title band's height
    top: int  # the column band's height (x axis title, column labels), under the header
    left: int  # the row band's width (y axis title, row labels)
    columns: tuple[tuple[str, ...], ...]  # each column label, wrapped
    rows: tuple[tuple[str, ...], ...]
    tiles: tuple[Tile, ...]
    fonts: Fonts = field(compare=False, repr=False)

    def cell_box(self, tile: Tile, column: int, row: int) -> Box:
        """Return the content box of the cell (`column`, `row` of the whole grid) in `tile`."""
        x0 = self.left + (column - tile.columns.start) * self.cell + self.pad
        y0 = self.header + self.top + (row - tile.rows.start) * self.cell + self.pad
        side = self.cell - 2 * self.pad
        return Box(x0, y0, x0 + side, y0 + side)


def slot_boxes(box: Box, count: int, gap: int) -> tuple[Box, ...]:
    """Return the boxes of `count` slots tiled in a cell's content `box`: a square grid, row by row, centred."""
    if count <= 1:
        return (box,)
    across = math.ceil(math.sqrt(count))
    down = math.ceil(count / across)
    side = (box.x1 - box.x0 - gap * (across - 1)) // across
    dx = (box.x1 - box.x0 - across * side - gap * (across - 1)) // 2
    dy = (box.y1 - box.y0 - down * side - gap * (down - 1)) // 2
    boxes = []
    for n in range(count):
        x0 = box.x0 + dx + (n % across) * (side + gap)
        y0 = box.y0 + dy + (n // across) * (side + gap)
        boxes.append(Box(x0, y0, x0 + side, y0 + side))
    return tuple(boxes)


def split(columns: int, rows: int, *, left: int, top: int, cell: int, margin: int, max_pixels: int) -> list[Tile]:
    """Return the tiles of a grid: as few as keep each within `max_pixels`, evened out, numbered row by row."""
    best: tuple[tuple[int, int], int, int] | None = None
    for across in range(1, columns + 1):
        width = left + across * cell + margin
        down = min(rows, (max_pixels // width - top - margin) // cell)
        if down < 1:
            break
        tiles_across, tiles_down = math.ceil(columns / across), math.ceil(rows / down)
        key = (tiles_across * tiles_down, tiles_across)
        if best is None or key < best[0]:
            best = (key, tiles_across, tiles_down)
    if best is None:
        need = (left + cell + margin) * (top + cell + margin)
        raise UsageError(
            f"--max-pixels {max_pixels:,} is too small for one cell with its labels ({need:,} pixels)",
            hint="raise --max-pixels or lower --cell",
        )
    _, tiles_across, tiles_down = best
    across, down = math.ceil(columns / tiles_across), math.ceil(rows / tiles_down)
    tiles: list[Tile] = []
    for ty in range(tiles_down):
        for tx in range(tiles_across):
            cols = range(tx * across, min(columns, (tx + 1) * across))
            rws = range(ty * down, min(rows, (ty + 1) * down))
            width = left + len(cols) * cell + margin
            tiles.append(Tile(len(tiles) + 1, cols, rws, width, top + len(rws) * cell + margin))
    return tiles


def layout(shown: Grid, cell: int, max_pixels: int, font: Path | None = None) -> Layout:
    """Return the layout of `shown` with cells of `cell` pixels, in tiles of at most `max_pixels` pixels (text in
    Pillow's built-in font, or the font file `font`)."""
    fonts = Fonts.for_cell(cell, font)
    pad, margin = max(1, cell // 64), max(8, cell // 16)
    label, measure = line_height(fonts.label), fonts.label.getlength
    columns = tuple(wrap(v, cell - 2 * pad, measure, COLUMN_LABEL_LINES) for v in shown.columns)
    widest = max((measure(v) for v in shown.rows), default=0.0)
    row_width = min(cell, max(cell // 2, math.ceil(widest)))
    row_lines = max(1, (cell - 2 * pad) // label)
    rows = tuple(wrap(v, row_width, measure, row_lines) for v in shown.rows)
    header = margin + line_height(fonts.title) + 2 * line_height(fonts.small) + pad
    top = label + 4 * pad + max(1, max(map(len, columns), default=1)) * label
    left = margin + label + 4 * pad + row_width + 2 * pad
    tiles = split(
        len(shown.columns),
        len(shown.rows),
        left=left,
        top=header + top,
        cell=cell,
        margin=margin,
        max_pixels=max_pixels,
    )
    return Layout(cell, pad, margin, header, top, left, columns, rows, tuple(tiles), fonts)
