"""The contact sheet: the grid it shows, its layout and tiles (pure), and its pixels, drawn from a real run's PNGs.

Pixels are compared with the images actually in the folder (the emulator's drawings may change), never pinned.
"""

from __future__ import annotations

import shutil
from functools import partial
from pathlib import Path

import pytest
from PIL import Image, ImageChops, ImageDraw, ImageStat

from leapbatch.view.catalog import Catalog, Entry, Picture, Status, Variable
from leapbatch.view.sheet import COLOURS, DAMAGED, draw
from leapbatch.view.sheet_layout import (
    MAX_SLOTS,
    Box,
    Grid,
    Kind,
    Layout,
    Tile,
    grid,
    layout,
    line_height,
    slot_boxes,
    split,
    wrap,
)
from leapbatch.view.thumbs import read_checked

ROOT = Path(__file__).resolve().parents[2]
EXCLUDED = "excluded by exclude entry 1 (animal: owl, place: city)"


def job_of(catalog: Catalog, **values: str) -> Entry:
    """Return the one entry with these values."""
    (entry,) = [e for e in catalog.entries if all(e.variables.get(k) == v for k, v in values.items())]
    return entry


def original(folder: Path, picture: Picture) -> Image.Image:
    """Return an image of the folder as RGB."""
    with Image.open(folder / picture.path) as image:
        return image.convert("RGB")


def centre(image: Image.Image, box: Box | None = None, keep: float = 0.6) -> Image.Image:
    """Return the middle `keep` of `box` (default: the whole image), shrunk to 16 x 16."""
    box = box or Box(0, 0, image.width, image.height)
    w, h = box.x1 - box.x0, box.y1 - box.y0
    dx, dy = int(w * (1 - keep) / 2), int(h * (1 - keep) / 2)
    part = image.crop((box.x0 + dx, box.y0 + dy, box.x1 - dx, box.y1 - dy))
    return part.resize((16, 16), Image.Resampling.BOX)


def difference(a: Image.Image, b: Image.Image) -> float:
    """Return the mean absolute difference of two images of one size, over their channels (0 to 255)."""
    return sum(ImageStat.Stat(ImageChops.difference(a, b)).mean) / 3


def closest(drawn: Image.Image, box: Box, folder: Path, catalog: Catalog) -> str:
    """Return the key of the job whose image the drawn box looks most like (and check it looks like it)."""
    seen = centre(drawn, box)
    scores = sorted((difference(seen, centre(original(folder, p))), e.key) for e in catalog.entries for p in e.pictures)
    assert scores[0][0] < 12, scores[:2]
    return scores[0][1]


def dark(image: Image.Image, box: Box) -> Image.Image:
    """Return the mask ("1") of text-dark pixels in `box`, cropped to their bounding box."""
    mask = image.crop((box.x0, box.y0, box.x1, box.y1)).convert("L").point(lambda v: 255 if v < 128 else 0)
    found = mask.getbbox()
    assert found is not None, f"no dark pixels in {box}"
    return mask.crop(found).convert("1")


def text_mask(text: str, plan: Layout) -> Image.Image:
    """Return the dark mask of `text` written alone in the label font."""
    font = plan.fonts.label
    scratch = Image.new("L", (int(font.getlength(text)) + 20, line_height(font) + 10), 255)
    ImageDraw.Draw(scratch).text((10, 5), text, font=font, fill=0)
    return dark(scratch.convert("RGB"), Box(0, 0, scratch.width, scratch.height))


def overlap(a: Image.Image, b: Image.Image) -> float:
    """Return how much two masks agree when laid at their top-left corners (intersection over union)."""
    size = (max(a.width, b.width), max(a.height, b.height))
    pa, pb = Image.new("1", size, 0), Image.new("1", size, 0)
    pa.paste(a, (0, 0))
    pb.paste(b, (0, 0))
    both = ImageChops.logical_and(pa, pb).histogram()[-1]
    either = ImageChops.logical_or(pa, pb).histogram()[-1]
    return both / either


def label_of(mask: Image.Image, labels: tuple[str, ...], plan: Layout) -> str:
    """Return which of `labels` the dark mask reads as (best overlap with each label written alone)."""
    return max(labels, key=lambda label: overlap(mask, text_mask(label, plan)))


def column_band(plan: Layout, tile: Tile, column: int) -> Box:
    """Return the box of a column's value label: under the x axis title and its rule, over the column."""
    x0 = plan.left + (column - tile.columns.start) * plan.cell
    return Box(x0, plan.header + line_height(plan.fonts.label) + 2 * plan.pad, x0 + plan.cell, plan.header + plan.top)


def row_band(plan: Layout, tile: Tile, row: int) -> Box:
    """Return the box of a row's value label: right of the y axis title and its rule, left of the row."""
    y0 = plan.header + plan.top + (row - tile.rows.start) * plan.cell
    return Box(plan.margin + line_height(plan.fonts.label) + 2 * plan.pad, y0, plan.left, y0 + plan.cell)


def drawn(example: Path, cells: Grid, plan: Layout) -> list[tuple[Tile, Image.Image]]:
    """Return the tiles drawn with the folder's checked images."""
    return list(draw(cells, plan, partial(read_checked, example)))


def test_wrap_breaks_at_spaces_and_ends_a_cut_text_with_an_ellipsis() -> None:
    """Lines fit the width (one character a unit here), long words are broken, the last kept line says '...'."""
    assert ("a cat", "in a", "city") == wrap("a cat in a city", 5, len, 5)
    assert ("abcde", "fgh") == wrap("abcdefgh", 5, len, 5)
    assert ("one", "tw...") == wrap("one two three", 5, len, 2)
    assert () == wrap("   ", 5, len, 3)


def test_slots_tile_a_cell_in_a_square_grid_row_by_row() -> None:
    """One slot fills the cell; five are a 3 x 2 grid of equal squares, none overlapping, all inside."""
    cell = Box(10, 20, 310, 320)
    assert (cell,) == slot_boxes(cell, 1, 2)
    boxes = slot_boxes(cell, 5, 2)
    assert [(b.x0, b.y0) for b in boxes] == [(11, 71), (111, 71), (211, 71), (11, 171), (111, 171)]
    assert {(b.x1 - b.x0, b.y1 - b.y0) for b in boxes} == {(98, 98)}
    assert all(cell.x0 <= b.x0 and b.x1 <= cell.x1 and cell.y0 <= b.y0 and b.y1 <= cell.y1 for b in boxes)


def test_a_sheet_within_the_cap_is_one_tile() -> None:
    """4 x 4 cells of 100 with bands of 50 fit 10**6 pixels: one tile of every column and row."""
    tiles = split(4, 4, left=50, top=50, cell=100, margin=10, max_pixels=10**6)
    assert [Tile(1, range(4), range(4), 460, 460)] == tiles


def test_past_the_cap_tiles_cover_every_cell_once_each_within_the_cap() -> None:
    """10 x 7 cells split into as few tiles as fit, evened out, numbered row by row, each within the cap."""
    tiles = split(10, 7, left=80, top=90, cell=100, margin=10, max_pixels=200_000)
    cells = [(c, r) for tile in tiles for r in tile.rows for c in tile.columns]
    assert sorted(cells) == sorted((c, r) for c in range(10) for r in range(7))
    assert all(tile.width * tile.height <= 200_000 for tile in tiles)
    assert [t.number for t in tiles] == list(range(1, len(tiles) + 1))
    assert [(t.columns, t.rows) for t in tiles[:2]] == [(range(0, 5), range(0, 2)), (range(5, 10), range(0, 2))]
    assert 8 == len(tiles)  # 5 x 2 cells at most per tile (590 x 300 pixels): 2 across, 4 down


def test_the_grid_has_every_value_and_says_why_a_cell_is_empty(shown: Catalog) -> None:
    """Columns and rows are the variables' values in order; owl in a city is excluded; red panda only in bamboo."""
    cells = grid(shown, "animal", "place", {})
    assert (cells.columns, cells.rows) == (
        ("cat", "fox", "owl", "red panda"),
        ("forest", "city", "bamboo forest", "library"),
    )
    assert ((Kind.NO_JOB, EXCLUDED),) == tuple((s.kind, s.text) for s in cells.cells[1][2])
    assert "only include entries set animal = red panda" in cells.cells[0][3][0].text
    forest_cats = [s.picture for s in cells.cells[0][0]]
    ink_and_watercolour = [
        job_of(shown, animal="cat", place="forest", style=s).pictures[0] for s in ("watercolor", "ink")
    ]
    assert ink_and_watercolour == forest_cats
    assert (("style",), 12, 12, 0) == (cells.free, cells.jobs, cells.images, cells.left_off)
    assert ("watercolor", "ink") == tuple(s.caption for s in cells.cells[0][0])


def test_where_keeps_only_jobs_with_its_values(shown: Catalog) -> None:
    """--where style=ink: one image a cell, and an empty cell's reason names the filter too."""
    cells = grid(shown, "animal", "place", {"style": "ink"})
    assert [job_of(shown, animal="fox", place="city", style="ink").pictures[0]] == [
        s.picture for s in cells.cells[1][1]
    ]
    assert ((), 6) == (cells.free, cells.jobs)
    assert cells.cells[0][3][0].text.endswith("none with place = forest, style = ink")


def test_a_job_without_a_value_for_an_axis_is_left_off(shown: Catalog) -> None:
    """--x seed: only the include entry that sets a seed is on the sheet; the other 11 are counted as left off."""
    cells = grid(shown, "seed", "animal", {})
    assert ((("42",)), 1, 11) == (cells.columns, cells.jobs, cells.left_off)


def test_a_cell_of_many_images_shows_the_first_and_says_how_many_more() -> None:
    """20 images in one cell: MAX_SLOTS - 1 are drawn, the last slot says '+5 more'."""
    pictures = tuple(Picture(i, f"images/k-{i}.png", "0" * 64, 8, 8) for i in range(20))
    entry = Entry("k", "m", {"prompt": "p"}, {"a": "1", "b": "2"}, "p", Status.DONE, "", pictures)
    catalog = Catalog("many", (Variable("a", ("1",)), Variable("b", ("2",))), (entry,), None)
    (slots,) = grid(catalog, "a", "b", {}).cells[0]
    assert [Kind.IMAGE] * (MAX_SLOTS - 1) + [Kind.MORE] == [s.kind for s in slots]
    assert "+5 more" == slots[-1].text


def test_each_cell_shows_the_image_of_its_own_job(example: Path, shown: Catalog) -> None:
    """With style fixed, every cell with a job is (resized) that job's image and no other's."""
    cells = grid(shown, "animal", "place", {"style": "ink"})
    plan = layout(cells, 128, 10**8)
    ((tile, image),) = drawn(example, cells, plan)
    assert (tile.width, tile.height) == image.size
    for r, row in enumerate(cells.rows):
        for c, column in enumerate(cells.columns):
            found = [
                e
                for e in shown.entries
                if e.variables.get("style") == "ink" and (e.variables["animal"], e.variables["place"]) == (column, row)
            ]
            if found:
                assert found[0].key == closest(image, plan.cell_box(tile, c, r), example, shown), (column, row)


def test_several_images_of_a_cell_are_tiled_in_manifest_order(example: Path, shown: Catalog) -> None:
    """The cat in the forest: watercolor left, ink right, each in its own slot."""
    cells = grid(shown, "animal", "place", {})
    plan = layout(cells, 256, 10**8)
    ((tile, image),) = drawn(example, cells, plan)
    caption = line_height(plan.fonts.tiny)
    for slot, style in zip(
        slot_boxes(plan.cell_box(tile, 0, 0), 2, max(1, plan.pad // 2)), ("watercolor", "ink"), strict=True
    ):
        box = Box(slot.x0 + caption // 2, slot.y0, slot.x1 - caption // 2, slot.y1 - caption)  # a caption under it
        assert job_of(shown, animal="cat", place="forest", style=style).key == closest(image, box, example, shown)


def test_labels_are_where_their_values_are(example: Path, shown: Catalog) -> None:
    """Above each column its value's text, left of each row its own: read back by matching the label font."""
    cells = grid(shown, "animal", "place", {})
    plan = layout(cells, 256, 10**8)
    ((tile, image),) = drawn(example, cells, plan)
    for c, value in enumerate(cells.columns):
        assert value == label_of(dark(image, column_band(plan, tile, c)), cells.columns + cells.rows, plan)
    for r, value in enumerate(cells.rows):
        assert value == label_of(dark(image, row_band(plan, tile, r)), cells.columns + cells.rows, plan)
    title_band = Box(plan.left, plan.header, tile.width, plan.header + line_height(plan.fonts.label))
    assert "animal" == label_of(dark(image, title_band), ("animal", "place", "style"), plan)


def test_an_empty_cell_has_its_reason_as_text_and_no_image(example: Path, shown: Catalog) -> None:
    """The owl in the city: grey fill and dark-grey text only (no colour), text in its middle."""
    cells = grid(shown, "animal", "place", {})
    plan = layout(cells, 256, 10**8)
    ((tile, image),) = drawn(example, cells, plan)
    box = plan.cell_box(tile, 2, 1)
    crop = image.crop((box.x0, box.y0, box.x1, box.y1))
    red, green, blue = crop.split()
    assert (None, None) == (ImageChops.difference(red, green).getbbox(), ImageChops.difference(green, blue).getbbox())
    fill = COLOURS[Kind.NO_JOB][0]
    assert fill == crop.getpixel((2, 2))
    inked = dark(image, box)
    assert inked.width > crop.width // 2  # a wrapped line of text across most of the cell
    assert 2 * line_height(plan.fonts.small) - 8 <= inked.height <= 3 * line_height(plan.fonts.small)


def test_a_damaged_image_is_drawn_as_a_note(example: Path, tmp_path: Path, shown: Catalog) -> None:
    """An image that differs from the ledger: its cell is the damaged fill with the note, the others are images."""
    folder = tmp_path / "example"
    shutil.copytree(example, folder, symlinks=True)
    spoilt = job_of(shown, animal="fox", place="city", style="ink").pictures[0]
    (folder / spoilt.path).write_bytes(b"not a png")
    cells = grid(shown, "animal", "place", {"style": "ink"})
    plan = layout(cells, 128, 10**8)
    ((tile, image),) = drawn(folder, cells, plan)
    box = plan.cell_box(tile, 1, 1)
    assert COLOURS[Kind.DAMAGED][0] == image.getpixel((box.x0 + 1, box.y0 + 1))
    assert dark(image, box).width > 0
    assert DAMAGED.startswith("missing or damaged image")
    assert job_of(shown, animal="cat", place="city", style="ink").key == closest(
        image, plan.cell_box(tile, 0, 1), example, shown
    )


def test_every_tile_labels_its_own_columns_and_rows(example: Path, shown: Catalog) -> None:
    """Past the cap, each tile repeats the axis titles and the value labels of the columns and rows it shows."""
    cells = grid(shown, "animal", "place", {})
    plan = layout(cells, 96, 60_000)
    assert [2, 2] == [len({t.columns for t in plan.tiles}), len(plan.tiles) // 4]  # split both ways
    labels = cells.columns + cells.rows
    for tile, image in drawn(example, cells, plan):
        for c in tile.columns:
            assert cells.columns[c] == label_of(dark(image, column_band(plan, tile, c)), labels, plan)
        for r in tile.rows:
            assert cells.rows[r] == label_of(dark(image, row_band(plan, tile, r)), labels, plan)
        title_band = Box(plan.left, plan.header, tile.width, plan.header + line_height(plan.fonts.label))
        assert "animal" == label_of(dark(image, title_band), ("animal", "place", "style"), plan)


def one_cell(entry: Entry) -> Catalog:
    """Return a catalog of one entry with variables a = 1, b = 2."""
    return Catalog("one", (Variable("a", ("1",)), Variable("b", ("2",))), (entry,), None)


def test_a_job_without_images_shows_its_reason(example: Path) -> None:
    """A pending job: its cell is the waiting fill with the reason in text, and nothing is read."""
    reason = "not submitted yet: the next run creates it"
    cells = grid(
        one_cell(Entry("k", "m", {"prompt": "p"}, {"a": "1", "b": "2"}, "p", Status.PENDING, reason)), "a", "b", {}
    )
    assert ((Kind.WAITING, reason),) == tuple((s.kind, s.text) for s in cells.cells[0][0])
    plan = layout(cells, 128, 10**8)
    ((tile, image),) = draw(cells, plan, lambda picture: pytest.fail("nothing to read"))
    box = plan.cell_box(tile, 0, 0)
    assert COLOURS[Kind.WAITING][0] == image.getpixel((box.x0 + 1, box.y0 + 1))
    assert dark(image, box).width > (box.x1 - box.x0) // 2


def test_an_image_of_another_size_than_recorded_is_damaged(example: Path, shown: Catalog) -> None:
    """Bytes that decode, but not at the record's width and height: drawn as damaged, not as an image."""
    real = job_of(shown, animal="cat", place="forest", style="ink").pictures[0]
    smaller = Picture(0, real.path, real.sha256, real.width // 2, real.height)
    entry = Entry("k", "m", {"prompt": "p"}, {"a": "1", "b": "2"}, "p", Status.DONE, "", (smaller,))
    cells = grid(one_cell(entry), "a", "b", {})
    plan = layout(cells, 128, 10**8)
    ((tile, image),) = draw(cells, plan, partial(read_checked, example))
    box = plan.cell_box(tile, 0, 0)
    assert COLOURS[Kind.DAMAGED][0] == image.getpixel((box.x0 + 1, box.y0 + 1))
