"""`leapbatch sheet OUT --x --y [--where] -o PNG`: the files it writes (one, or numbered tiles past the cap), the same
bytes every time, one-line usage errors with nothing written, and no write through a link."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from PIL import Image, ImageChops, ImageStat

from leapbatch.cli import main
from leapbatch.folder.ledger import FolderLock
from leapbatch.view.catalog import Catalog
from leapbatch.view.sheet_layout import Box, Layout, grid, layout

ROOT = Path(__file__).resolve().parents[2]
AXES = ["--x", "animal", "--y", "place"]


def small(image: Image.Image, box: Box | None = None) -> Image.Image:
    """Return the middle 60% of `box` (default: all of it) as RGB, shrunk to 16 x 16."""
    box = box or Box(0, 0, image.width, image.height)
    dx, dy = (box.x1 - box.x0) // 5, (box.y1 - box.y0) // 5
    return image.convert("RGB").crop((box.x0 + dx, box.y0 + dy, box.x1 - dx, box.y1 - dy)).resize((16, 16))


def looks_like(example: Path, shown: Catalog, drawn: Image.Image, box: Box) -> str:
    """Return the key of the job whose image the box of `drawn` is most like (and check it is like it)."""
    seen = small(drawn, box)
    scores = []
    for entry in shown.entries:
        for picture in entry.pictures:
            with Image.open(example / picture.path) as image:
                diff = ImageStat.Stat(ImageChops.difference(seen, small(image))).mean
            scores.append((sum(diff) / 3, entry.key))
    scores.sort()
    assert scores[0][0] < 12, scores[:2]
    return scores[0][1]


def has_ink(image: Image.Image, box: Box) -> bool:
    """Return whether `box` of `image` holds text-dark pixels."""
    crop = image.convert("L").crop((box.x0, box.y0, box.x1, box.y1))
    return crop.point(lambda v: 255 if v < 128 else 0).getbbox() is not None


def files_in(folder: Path) -> list[str]:
    """Return the names in a folder, sorted."""
    return sorted(p.name for p in folder.iterdir())


def test_the_sheet_is_one_png_of_the_layouts_size(
    example: Path, shown: Catalog, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Within the cap: one file at -o, as big as its layout says, and the command says where it went."""
    sheet = tmp_path / "sheet.png"
    assert 0 == main(["sheet", str(example), *AXES, "-o", str(sheet)])
    ((tile),) = layout(grid(shown, "animal", "place", {}), 256, 40_000_000).tiles
    with Image.open(sheet) as image:
        assert ("PNG", (tile.width, tile.height)) == (image.format, image.size)
    assert ["sheet.png"] == files_in(tmp_path)
    said = capsys.readouterr().err
    assert f"wrote {sheet} ({tile.width:,} x {tile.height:,} pixels; 12 jobs, 12 images)\n" == said


def test_the_same_folder_and_options_give_the_same_bytes(example: Path, tmp_path: Path) -> None:
    """Drawn twice (the second over the first): byte-identical."""
    first, second = tmp_path / "a.png", tmp_path / "b.png"
    assert 0 == main(["sheet", str(example), *AXES, "-o", str(first)])
    assert 0 == main(["sheet", str(example), *AXES, "-o", str(second)])
    before = second.read_bytes()
    assert 0 == main(["sheet", str(example), *AXES, "-o", str(second)])
    assert first.read_bytes() == before == second.read_bytes()


def test_past_the_cap_numbered_tiles_cover_every_cell_once_each_with_its_labels(
    example: Path, shown: Catalog, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A small --max-pixels: sheet-1.png, sheet-2.png, ... each within the cap, each with its title and labels,
    each cell in exactly one tile, showing its own job's image."""
    args = ["sheet", str(example), *AXES, "--where", "style=ink", "--cell", "96", "--max-pixels", "60000"]
    assert 0 == main([*args, "-o", str(tmp_path / "sheet.png"), "--json"])
    cells = grid(shown, "animal", "place", {"style": "ink"})
    plan: Layout = layout(cells, 96, 60_000)
    count = len(plan.tiles)
    assert count > 2
    assert [f"sheet-{n}.png" for n in range(1, count + 1)] == sorted(files_in(tmp_path), key=lambda n: len(n))
    document = json.loads(capsys.readouterr().out)
    assert [str(tmp_path / f"sheet-{n}.png") for n in range(1, count + 1)] == [f["path"] for f in document["files"]]
    covered: list[tuple[int, int]] = []
    for tile in plan.tiles:
        with Image.open(tmp_path / f"sheet-{tile.number}.png") as opened:
            image = opened.convert("RGB")
        assert (tile.width, tile.height) == image.size
        assert tile.width * tile.height <= 60_000
        assert has_ink(image, Box(0, 0, tile.width, plan.header))  # the title
        assert has_ink(image, Box(plan.left, plan.header, tile.width, plan.header + plan.top))  # column labels
        assert has_ink(image, Box(0, plan.header + plan.top, plan.left, tile.height))  # row labels
        for r in tile.rows:
            for c in tile.columns:
                covered.append((c, r))
                slot = cells.cells[r][c][0]
                if slot.picture is not None:
                    entry = next(e for e in shown.entries if slot.picture in e.pictures)
                    assert entry.key == looks_like(example, shown, image, plan.cell_box(tile, c, r))
    assert sorted(covered) == [(c, r) for c in range(len(cells.columns)) for r in range(len(cells.rows))]


def test_where_changes_what_the_sheet_shows(example: Path, shown: Catalog, tmp_path: Path) -> None:
    """--where style=ink: the fox in the city is the ink fox's image (not the watercolor one)."""
    sheet = tmp_path / "ink.png"
    assert 0 == main(["sheet", str(example), *AXES, "--where", "style=ink", "-o", str(sheet)])
    cells = grid(shown, "animal", "place", {"style": "ink"})
    plan = layout(cells, 256, 40_000_000)
    ink_fox = next(e for e in shown.entries if e.variables == {"animal": "fox", "style": "ink", "place": "city"})
    with Image.open(sheet) as image:
        assert ink_fox.key == looks_like(example, shown, image, plan.cell_box(plan.tiles[0], 1, 1))


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--x", "colour", "--y", "place"], "error: --x colour: the dataset has no variable 'colour' (known: animal, "),
        (["--x", "animal", "--y", "Place"], "error: --y Place: the dataset has no variable 'Place' (known: animal, "),
        ([*AXES, "--where", "colour=red"], "error: --where colour=red: the dataset has no variable 'colour' (known: "),
        (
            [*AXES, "--where", "style=oil"],
            "error: --where style=oil: style has no value 'oil' (known: watercolor, ink)",
        ),
        ([*AXES, "--where", "style"], "error: --where style: expected NAME=VALUE, e.g. --where style=ink"),
        ([*AXES, "--where", "animal=cat"], "error: --where animal=cat: animal is already --x"),
        ([*AXES, "--where", "style=ink", "--where", "style=ink"], "error: --where style=ink: style is given twice"),
        (["--x", "animal", "--y", "animal"], "error: --x and --y are both animal"),
        ([*AXES, "--max-pixels", "1000"], "error: --max-pixels 1,000 is too small for one cell with its labels"),
        ([*AXES, "--font", str(ROOT / "README.md")], f"error: --font {ROOT / 'README.md'}: not a font file Pillow"),
    ],
)
def test_a_bad_option_is_one_error_line_and_nothing_is_written(
    example: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], said: str
) -> None:
    """Exit 2, `error:` naming what is known, no file (not even a temporary one) left behind."""
    assert 2 == main(["sheet", str(example), *args, "-o", str(tmp_path / "sheet.png")])
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith(said), lines
    assert len([line for line in lines if line.startswith("error:")]) == 1
    assert [] == files_in(tmp_path)


DEJAVU = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")


@pytest.mark.skipif(not DEJAVU.exists(), reason="needs Debian's fonts-dejavu-core")
def test_a_font_file_draws_what_the_built_in_font_cannot(example: Path, tmp_path: Path) -> None:
    """--font DejaVuSans.ttf: a title in Greek is drawn in its glyphs, not in the built-in font's boxes."""
    title = ["--title", "\u03b3\u03ac\u03c4\u03b1"]
    built_in, dejavu = tmp_path / "built-in.png", tmp_path / "dejavu.png"
    assert 0 == main(["sheet", str(example), *AXES, *title, "-o", str(built_in)])
    assert 0 == main(["sheet", str(example), *AXES, *title, "--font", str(DEJAVU), "-o", str(dejavu)])
    with Image.open(built_in) as a, Image.open(dejavu) as b:
        boxes, glyphs = (image.convert("L").crop((0, 0, 200, 40)) for image in (a, b))
        assert ImageChops.difference(boxes, glyphs).getbbox() is not None


def test_a_link_at_the_output_is_refused(example: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """-o naming a symbolic link: exit 2, the link and its target untouched."""
    target, link = tmp_path / "elsewhere.png", tmp_path / "sheet.png"
    link.symlink_to(target)
    assert 2 == main(["sheet", str(example), *AXES, "-o", str(link)])
    assert f"error: {link} is a symbolic link" in capsys.readouterr().err
    assert (True, False) == (link.is_symlink(), target.exists())


def test_a_link_at_any_tiles_name_is_refused_before_any_tile_is_written(example: Path, tmp_path: Path) -> None:
    """A link at sheet-2.png: exit 2, and sheet-1.png is not written either."""
    (tmp_path / "sheet-2.png").symlink_to(tmp_path / "elsewhere.png")
    args = ["--cell", "96", "--max-pixels", "120000", "-o", str(tmp_path / "sheet.png")]
    assert 2 == main(["sheet", str(example), *AXES, *args])
    assert ["sheet-2.png"] == files_in(tmp_path)


def test_a_run_working_on_the_folder_is_exit_3(example: Path, tmp_path: Path) -> None:
    """The folder's lock is held: exit 3, nothing written."""
    lock = FolderLock(example)
    lock.acquire()
    try:
        assert 3 == main(["sheet", str(example), *AXES, "-o", str(tmp_path / "sheet.png")])
    finally:
        lock.release()
    assert [] == files_in(tmp_path)


def test_a_missing_output_folder_is_a_usage_error(example: Path, tmp_path: Path) -> None:
    """-o in a folder that does not exist: exit 2 (no folder is made)."""
    assert 2 == main(["sheet", str(example), *AXES, "-o", str(tmp_path / "nowhere" / "sheet.png")])
    assert [] == files_in(tmp_path)


def test_os_replace_is_how_it_lands(example: Path, tmp_path: Path) -> None:
    """The sheet replaces an older file at -o (a regular file, not a link) whole."""
    sheet = tmp_path / "sheet.png"
    sheet.write_bytes(b"old")
    inode = os.stat(sheet).st_ino
    assert 0 == main(["sheet", str(example), *AXES, "-o", str(sheet)])
    assert sheet.read_bytes().startswith(b"\x89PNG")
    assert inode != os.stat(sheet).st_ino  # a new file renamed over the old one, not the old one rewritten
