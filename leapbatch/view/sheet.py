"""A labelled contact sheet: one variable across, one down, each cell the images of the jobs with that pair.

`leapbatch.view.sheet_layout` says what the sheet holds and where (pure: the grid, wrapped labels, tiles past the
pixel cap); this module draws it. `draw(grid, layout, read)` renders the tiles one at a time: the title and a line
saying what is fixed and what varies in a cell, each axis's name over a rule, the value labels along the top and
the left, then the cells. `read(picture)` returns an image's bytes checked against the record's sha256 (None:
missing, a link, or different); the decoded size must match the record's too. A missing or damaged image is a
square saying so (`DAMAGED`), never a crash; an image is fitted into its square, never cropped.

Same catalog, options and font: the same bytes (fixed resampling, no timestamps in the PNG).
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Iterator

from PIL import Image, ImageDraw, ImageOps, UnidentifiedImageError

from leapbatch.errors import plural
from leapbatch.view.catalog import Picture
from leapbatch.view.sheet_layout import (
    Box,
    Font,
    Grid,
    Kind,
    Layout,
    Slot,
    Tile,
    ellipsize,
    line_height,
    slot_boxes,
    wrap,
)

DAMAGED = "missing or damaged image: run leapbatch verify"

RGB = tuple[int, int, int]
BACKGROUND: RGB = (255, 255, 255)
INK: RGB = (34, 34, 34)  # titles and labels
SOFT: RGB = (85, 85, 85)  # the sheet's second lines, reasons
RULE: RGB = (150, 150, 150)
LETTERBOX: RGB = (248, 248, 248)  # around an image that is not square, and between a cell's squares
COLOURS: dict[Kind, tuple[RGB, RGB]] = {  # fill, text
    Kind.IMAGE: ((244, 244, 244), INK),
    Kind.NO_JOB: ((236, 236, 236), SOFT),
    Kind.WAITING: ((250, 238, 214), SOFT),
    Kind.DAMAGED: ((250, 222, 222), (130, 30, 30)),
    Kind.MORE: ((255, 255, 255), SOFT),
}


def _subtitles(shown: Grid, plan: Layout, tile: Tile) -> tuple[str, str]:
    first = f"{shown.x} across, {shown.y} down"
    if shown.where:
        first += "; only " + ", ".join(f"{k} = {v}" for k, v in shown.where.items())
    if shown.free:
        first += "; in a cell, every " + ", ".join(shown.free)
    second = f"{plural(shown.jobs, 'job')}, {plural(shown.images, 'image')}"
    if len(plan.tiles) > 1:
        second += (
            f"; tile {tile.number} of {len(plan.tiles)}: {shown.x} {_span(tile.columns, len(shown.columns))}, "
            f"{shown.y} {_span(tile.rows, len(shown.rows))}"
        )
    return first, second


def _span(part: range, total: int) -> str:
    first, last = part.start + 1, part.stop
    return f"{first} of {total}" if first == last else f"{first}-{last} of {total}"


def _text_block(draw: ImageDraw.ImageDraw, box: Box, text: str, font: Font, ink: RGB, pad: int) -> None:
    height = line_height(font)
    fits = (box.y1 - box.y0 - 2 * pad) // height
    if fits < 1 or box.x1 - box.x0 <= 2 * pad:
        return
    lines = wrap(text, box.x1 - box.x0 - 2 * pad, font.getlength, fits)
    y = box.y0 + (box.y1 - box.y0 - len(lines) * height) // 2
    for n, line in enumerate(lines):
        draw.text((box.x0 + pad, y + n * height), line, font=font, fill=ink, anchor="la")


def _image(data: bytes | None, picture: Picture, width: int, height: int) -> Image.Image | None:
    """Return the image fitted into `width` x `height`, or None when its bytes are missing or not what was recorded."""
    if data is None:
        return None
    try:
        with Image.open(io.BytesIO(data)) as opened:
            if opened.size != (picture.width, picture.height):
                return None
            opened.draft("RGB", (width, height))  # JPEGs decode at a fraction of their size; PNGs ignore it
            rgba = opened.convert("RGBA")
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        return None
    flat = Image.new("RGB", rgba.size, BACKGROUND)
    flat.paste(rgba, mask=rgba.getchannel("A"))
    return ImageOps.contain(flat, (width, height), Image.Resampling.LANCZOS)


def _cell(
    canvas: Image.Image,
    draw: ImageDraw.ImageDraw,
    box: Box,
    slots: tuple[Slot, ...],
    plan: Layout,
    read: Callable[[Picture], bytes | None],
) -> None:
    """Draw a cell's slots in its content `box`: one fills it; several are tiled, each captioned when it has room."""
    tiny = plan.fonts.tiny
    font = plan.fonts.small if len(slots) == 1 else tiny
    if len(slots) > 1:
        draw.rectangle((box.x0, box.y0, box.x1 - 1, box.y1 - 1), fill=LETTERBOX)
    for slot, where in zip(slots, slot_boxes(box, len(slots), max(1, plan.pad // 2)), strict=True):
        caption = ""
        if len(slots) > 1 and slot.caption and where.y1 - where.y0 >= 4 * line_height(tiny):
            caption = ellipsize(slot.caption, where.x1 - where.x0, tiny.getlength)
            draw.text(
                ((where.x0 + where.x1) // 2, where.y1 - line_height(tiny)), caption, font=tiny, fill=SOFT, anchor="ma"
            )
            where = Box(where.x0, where.y0, where.x1, where.y1 - line_height(tiny))
        _slot(canvas, draw, where, slot, font, plan, read)


def _slot(
    canvas: Image.Image,
    draw: ImageDraw.ImageDraw,
    where: Box,
    slot: Slot,
    font: Font,
    plan: Layout,
    read: Callable[[Picture], bytes | None],
) -> None:
    kind, text = slot.kind, slot.text
    picture = None
    if slot.picture is not None:
        picture = _image(read(slot.picture), slot.picture, where.x1 - where.x0, where.y1 - where.y0)
        kind, text = (Kind.IMAGE, "") if picture is not None else (Kind.DAMAGED, DAMAGED)
    fill, ink = COLOURS[kind]
    draw.rectangle((where.x0, where.y0, where.x1 - 1, where.y1 - 1), fill=fill)
    if picture is not None:
        x = where.x0 + (where.x1 - where.x0 - picture.width) // 2
        y = where.y0 + (where.y1 - where.y0 - picture.height) // 2
        canvas.paste(picture, (x, y))
    else:
        _text_block(draw, where, text, font, ink, max(2, plan.pad))


def _bands(canvas: Image.Image, draw: ImageDraw.ImageDraw, shown: Grid, plan: Layout, tile: Tile) -> None:
    """Draw the header, the x axis title and column labels, the y axis title and row labels of `tile`."""
    fonts, margin, pad = plan.fonts, plan.margin, plan.pad
    width = tile.width - 2 * margin
    y = margin
    draw.text((margin, y), ellipsize(shown.title, width, fonts.title.getlength), font=fonts.title, fill=INK)
    y += line_height(fonts.title)
    for line in _subtitles(shown, plan, tile):
        draw.text((margin, y), ellipsize(line, width, fonts.small.getlength), font=fonts.small, fill=SOFT)
        y += line_height(fonts.small)
    label = line_height(fonts.label)
    grid_x0, grid_x1 = plan.left, plan.left + len(tile.columns) * plan.cell
    grid_y0 = plan.header + plan.top
    grid_y1 = grid_y0 + len(tile.rows) * plan.cell
    x_title = ellipsize(shown.x, grid_x1 - grid_x0, fonts.label.getlength)
    draw.text(((grid_x0 + grid_x1) // 2, plan.header), x_title, font=fonts.label, fill=INK, anchor="ma")
    rule_y = plan.header + label + pad
    draw.line((grid_x0 + pad, rule_y, grid_x1 - pad - 1, rule_y), fill=RULE)
    for n, column in enumerate(tile.columns):
        centre = grid_x0 + n * plan.cell + plan.cell // 2
        for k, line in enumerate(plan.columns[column]):
            draw.text((centre, rule_y + 2 * pad + k * label), line, font=fonts.label, fill=INK, anchor="ma")
    y_title = ellipsize(shown.y, grid_y1 - grid_y0, fonts.label.getlength)
    strip = Image.new("L", (max(1, math.ceil(fonts.label.getlength(y_title))), label), 0)
    ImageDraw.Draw(strip).text((0, 0), y_title, font=fonts.label, fill=255)
    upright = strip.rotate(90, expand=True)
    canvas.paste(INK, (margin, (grid_y0 + grid_y1 - upright.height) // 2), upright)
    rule_x = margin + label + pad
    draw.line((rule_x, grid_y0 + pad, rule_x, grid_y1 - pad - 1), fill=RULE)
    right = plan.left - 2 * pad
    for n, row in enumerate(tile.rows):
        lines = plan.rows[row]
        top = grid_y0 + n * plan.cell + (plan.cell - len(lines) * label) // 2
        for k, line in enumerate(lines):
            draw.text((right, top + k * label), line, font=fonts.label, fill=INK, anchor="ra")


def draw(shown: Grid, plan: Layout, read: Callable[[Picture], bytes | None]) -> Iterator[tuple[Tile, Image.Image]]:
    """Yield each tile of the sheet with its image, drawn (`read`: an image's checked bytes, or None)."""
    for tile in plan.tiles:
        canvas = Image.new("RGB", (tile.width, tile.height), BACKGROUND)
        pen = ImageDraw.Draw(canvas)
        _bands(canvas, pen, shown, plan, tile)
        for row in tile.rows:
            for column in tile.columns:
                _cell(canvas, pen, plan.cell_box(tile, column, row), shown.cells[row][column], plan, read)
        yield tile, canvas


def png(image: Image.Image) -> bytes:
    """Return the PNG bytes of a tile (no timestamp or other varying chunk: the same tile, the same bytes)."""
    out = io.BytesIO()
    image.save(out, "PNG", compress_level=6)
    return out.getvalue()
