"""`leapbatch sheet OUT --x AXIS --y AXIS [--where k=v ...] -o sheet.png`: a labelled contact sheet for a page.

The command holds the folder's lock while it reads (a sheet for a paper shows a settled folder, not a run's
half-downloaded state), builds the folder's catalog, and hands it to `leapbatch.view.sheet_layout` (what goes
where) and `leapbatch.view.sheet` (drawing). Every name it will write (`sheet.png`, or `sheet-1.png`,
`sheet-2.png`, ... past the pixel cap) is checked for a link before the first one is written; each is written
atomically. Images are read without following a link and checked against the ledger; a missing or damaged one is
drawn as a note, and the command says how many.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path

from leapbatch.cli._common import SubParsers, print_json, say
from leapbatch.cli._dataset import folder_catalog
from leapbatch.cli.ledger_cmds import no_run_working, output_folder
from leapbatch.errors import EXIT_OK, UsageError, plural
from leapbatch.folder.atomic import refuse_link, write_atomic
from leapbatch.folder.ledger import read_ledger
from leapbatch.view.catalog import Catalog, Picture
from leapbatch.view.sheet import draw, png
from leapbatch.view.sheet_layout import DEFAULT_CELL, DEFAULT_MAX_PIXELS, Tile, grid, layout
from leapbatch.view.thumbs import read_checked

MIN_CELL, MAX_CELL = 32, 2048
MAX_TILES = 1000
_SHOWN_VALUES = 12  # how many known values an error lists


def _bounded(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text.replace("_", "").replace(",", ""))
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be {low:,} to {high:,}, got {text}")
        return value

    return parse


def register(sub: SubParsers) -> None:
    """Add `sheet`."""
    sheet = sub.add_parser(
        "sheet",
        help="draw a labelled contact sheet (PNG) of two variables, for papers and READMEs",
        description="Draw one variable across and one down: axis titles, value labels, each cell the images of "
        "the jobs with that pair (several tiled small when other variables vary, at most 16, the last saying "
        "'+k more'), an empty cell saying why (excluded, sampled out, pending, failed and why). Past --max-pixels "
        "the sheet is split into numbered tiles (sheet-1.png, sheet-2.png, ...), each with its labels. Takes the "
        "folder's lock while it reads; sends nothing. The same folder and options give the same bytes.",
        epilog="exit codes: 0 written (a missing or damaged image is drawn as a note), 2 usage (an unknown "
        "variable or value, a link at the output), 3 a run is working on the folder",
    )
    sheet.add_argument("out", metavar="OUT", help="the output folder of a run")
    sheet.add_argument("--x", required=True, metavar="NAME", help="the variable across (columns)")
    sheet.add_argument("--y", required=True, metavar="NAME", help="the variable down (rows)")
    sheet.add_argument(
        "--where",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="only jobs with this value (repeat for several variables)",
    )
    sheet.add_argument("-o", "--output", required=True, metavar="PNG", help="the sheet's file (tiles: PNG-1, ...)")
    sheet.add_argument(
        "--cell",
        type=_bounded(MIN_CELL, MAX_CELL),
        default=DEFAULT_CELL,
        metavar="PX",
        help=f"a cell's side in pixels (default {DEFAULT_CELL})",
    )
    sheet.add_argument(
        "--max-pixels",
        type=_bounded(1, 1 << 40),
        default=DEFAULT_MAX_PIXELS,
        metavar="N",
        help=f"split into tiles of at most N pixels each (default {DEFAULT_MAX_PIXELS:,})",
    )
    sheet.add_argument("--title", help="the sheet's title (default: the manifest's name)")
    sheet.add_argument(
        "--font",
        type=Path,
        metavar="TTF",
        help="a TrueType or OpenType font file for the text (default: Pillow's built-in font, ASCII only)",
    )
    sheet.add_argument("--json", action="store_true", help="print one JSON object (shape: docs/cli.md)")
    sheet.set_defaults(handler=handle_sheet)


def _known(values: Sequence[str]) -> str:
    shown = ", ".join(values[:_SHOWN_VALUES])
    return shown + (f", ... ({len(values):,} in all)" if len(values) > _SHOWN_VALUES else "")


def _variable(shown: Catalog, given: str, name: str) -> str:
    """Return `name` if the dataset has a variable so named, else a UsageError naming the known ones."""
    if shown.variable(name) is None:
        known = _known([v.name for v in shown.variables]) or "none"
        raise UsageError(f"{given}: the dataset has no variable {name!r} (known: {known})")
    return name


def _where(shown: Catalog, given: Sequence[str], axes: tuple[str, str]) -> dict[str, str]:
    where: dict[str, str] = {}
    for text in given:
        name, equals, value = text.partition("=")
        name, value = name.strip(), value.strip()
        if not equals or not name:
            raise UsageError(f"--where {text}: expected NAME=VALUE, e.g. --where style=ink")
        _variable(shown, f"--where {text}", name)
        variable = shown.variable(name)
        assert variable is not None
        if value not in variable.values:
            raise UsageError(f"--where {text}: {name} has no value {value!r} (known: {_known(variable.values)})")
        if name in axes:
            raise UsageError(f"--where {text}: {name} is already --{'x' if name == axes[0] else 'y'}")
        if name in where:
            raise UsageError(f"--where {text}: {name} is given twice")
        where[name] = value
    return where


def tile_paths(output: Path, count: int) -> list[Path]:
    """Return the files of a sheet of `count` tiles: `output` itself, or `name-1.png`, `name-2.png`, ..."""
    if count == 1:
        return [output]
    return [output.with_name(f"{output.stem}-{n}{output.suffix}") for n in range(1, count + 1)]


def _checked_targets(paths: list[Path]) -> None:
    parent = paths[0].parent
    if not parent.is_dir():
        raise UsageError(f"-o {paths[0]}: the folder {parent} does not exist", hint="create it first")
    for path in paths:
        refuse_link(path)
        if path.is_dir():
            raise UsageError(f"-o {path}: is a folder", hint="give the sheet's file name, e.g. sheet.png")


def handle_sheet(args: argparse.Namespace) -> int:
    """Draw a folder's contact sheet."""
    out = output_folder(args.out)
    output = Path(args.output)
    with no_run_working(out, doing="draw its sheet"):
        state = read_ledger(out)
        shown = folder_catalog(out, state)
        x, y = _variable(shown, f"--x {args.x}", args.x), _variable(shown, f"--y {args.y}", args.y)
        if x == y:
            raise UsageError(f"--x and --y are both {x}", hint="choose two different variables")
        cells = grid(shown, x, y, _where(shown, args.where, (x, y)), args.title)
        plan = layout(cells, args.cell, args.max_pixels, args.font)
        if len(plan.tiles) > MAX_TILES:
            raise UsageError(
                f"the sheet would be {len(plan.tiles):,} tiles (at most {MAX_TILES:,})",
                hint="narrow it with --where, or lower --cell",
            )
        paths = tile_paths(output, len(plan.tiles))
        _checked_targets(paths)
        damaged: set[str] = set()

        def read(picture: Picture) -> bytes | None:
            data = read_checked(out, picture)
            if data is None:
                damaged.add(picture.sha256)
            return data

        written: list[tuple[Path, Tile]] = []
        for (tile, image), path in zip(draw(cells, plan, read), paths, strict=True):
            write_atomic(path, png(image))
            written.append((path, tile))
    _report(args, written, cells.jobs, cells.images, len(damaged), cells.left_off)
    return EXIT_OK


def _report(
    args: argparse.Namespace, written: list[tuple[Path, Tile]], jobs: int, images: int, damaged: int, left_off: int
) -> None:
    if args.json:
        files = [{"path": str(p), "width": t.width, "height": t.height} for p, t in written]
        print_json({"version": 1, "files": files, "jobs": jobs, "images": images, "damaged": damaged})
        return
    what = f"{plural(jobs, 'job')}, {plural(images, 'image')}"
    if len(written) == 1:
        path, tile = written[0]
        say(f"wrote {path} ({tile.width:,} x {tile.height:,} pixels; {what})")
    else:
        say(f"wrote {len(written)} tiles ({what}; at most {args.max_pixels:,} pixels each):")
        for path, tile in written:
            say(f"  {path} ({tile.width:,} x {tile.height:,})")
    if damaged:
        say(
            f"note: {plural(damaged, 'image')} missing on disk or differing from the ledger: `leapbatch verify "
            f"{args.out} --repair` mends them"
        )
    if left_off:
        say(f"note: {plural(left_off, 'job')} set no value for {args.x} or {args.y} and are not on the sheet")
