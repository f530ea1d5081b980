"""`leapbatch gallery OUT [--to DIR] [--open]`: a static page to look at the dataset, pivoting any axis.

The gallery is a view, like `status`: it reads the folder without its lock (a run may be working on it; the page
then shows what has arrived and why the rest has not) and writes only under its own folder (`OUT/gallery` unless
`--to`). `run --gallery` keeps the same folder current while a run works (`keep_gallery`).
"""

from __future__ import annotations

import argparse
import webbrowser
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from time import perf_counter

import trio

from leapbatch.cli._common import SubParsers, print_json, say
from leapbatch.cli._dataset import folder_catalog
from leapbatch.cli.ledger_cmds import output_folder
from leapbatch.cli.progress import counting
from leapbatch.errors import EXIT_OK, LeapbatchError, UsageError, plural
from leapbatch.folder.ledger import Ledger, read_ledger
from leapbatch.folder.state import LedgerState
from leapbatch.manifest import Manifest
from leapbatch.manifest.expand import Expansion
from leapbatch.view.catalog import Catalog, catalog
from leapbatch.view.gallery import GalleryResult, build_gallery

GALLERY_DIR = "gallery"
REFRESH_SECONDS = 2.0  # how often `run --gallery` looks for changes (the page looks as often)
LOOP_SHARE = 20  # the wait after a catalog is taken, in multiples of the time it took on the run's loop


def register(sub: SubParsers) -> None:
    """Add `gallery`."""
    gallery = sub.add_parser(
        "gallery",
        help="write a static page to look at the dataset: grid of any two axes, filters, full screen, compare",
        description="Write OUT/gallery/index.html: a page that works from file:// or any static host (no server, "
        "no network), with WebP thumbnails named by content (made only for new images) and the dataset as a "
        "script (data.js). Grid view: any two variables on X and Y, outer X2/Y2, the rest per tab; every empty cell "
        "says why (excluded, sampled out, pending, failed and why). Filter view: facets and text search. Full "
        "screen with the request as sent and 'copy as include entry'; compare two to four images. The view lives "
        "in the URL. Reads the folder without locking it: it works while a run does (see run --gallery).",
        epilog="exit codes: 0 written, 2 usage (not an output folder, a link at the gallery's path)",
    )
    gallery.add_argument("out", metavar="OUT", help="the output folder of a run")
    gallery.add_argument("--to", metavar="DIR", help="the gallery's folder (default: OUT/gallery)")
    gallery.add_argument("--open", action="store_true", help="open the page in the default browser when written")
    gallery.add_argument("--json", action="store_true", help="print one JSON object (shape: docs/cli.md)")
    gallery.set_defaults(handler=handle_gallery)


def gallery_dir(out: Path, to: str | None) -> Path:
    """Return where the gallery of `out` goes: `--to`, else OUT/gallery."""
    return Path(to) if to else out / GALLERY_DIR


def handle_gallery(args: argparse.Namespace) -> int:
    """Write a folder's gallery."""
    out = output_folder(args.out)
    dest = gallery_dir(out, args.to)
    if dest.resolve() == out.resolve():
        raise UsageError(f"--to {dest} is the output folder itself", hint="give the gallery a folder of its own")
    state = read_ledger(out)
    shown = folder_catalog(out, state)
    with counting("thumbnails", None, quiet=args.json) as tick:
        result = build_gallery(out, dest, shown, tick=tick)
    if args.json:
        print_json(
            {
                "version": 1,
                "index": str(result.index),
                "images": result.images,
                "thumbs_made": result.thumbs_made,
                "damaged": result.damaged,
                "revision": result.revision,
            }
        )
    else:
        _say_written(result, len(shown.entries))
    if args.open:
        webbrowser.open(result.index.resolve().as_uri())
    return EXIT_OK


def _say_written(result: GalleryResult, jobs: int) -> None:
    say(
        f"gallery of {plural(jobs, 'job')} and {plural(result.images, 'image')} "
        f"({plural(result.thumbs_made, 'thumbnail')} made now): {result.index}"
    )
    if result.damaged:
        say(
            f"note: {plural(result.damaged, 'image')} missing on disk or differing from the ledger; the page says "
            "which (`leapbatch verify` mends them)"
        )


async def keep_gallery(out: Path, dest: Path, ledger: Ledger, snapshot: Callable[[LedgerState], Catalog]) -> None:
    """Rewrite the gallery whenever the ledger changed, every REFRESH_SECONDS, until cancelled (`run --gallery`).

    The catalog is taken from the ledger's state on the event loop (`snapshot`: job states are immutable, so it
    is a consistent copy), the thumbnails and files are written in a worker thread. Taking the catalog holds up
    the run's loop (about a second for 100,000 jobs), so the next one waits at least LOOP_SHARE times as long as
    it took: the gallery never takes more than 1/LOOP_SHARE of the loop. A gallery that cannot be written (a link
    planted at it mid-run, a full disk) is said once and then left alone: the run goes on.
    """
    seen = -1
    while True:
        wait = REFRESH_SECONDS
        if ledger.state.changes != seen:
            seen = ledger.state.changes
            started = perf_counter()
            shown = snapshot(ledger.state)
            wait = max(wait, LOOP_SHARE * (perf_counter() - started))
            try:
                await trio.to_thread.run_sync(build_gallery, out, dest, shown)
            except (LeapbatchError, OSError) as exc:
                say(f"note: the gallery is no longer kept current: {exc}")
                return
        await trio.sleep(wait)


@dataclass(frozen=True, slots=True)
class RunGallery:
    """The gallery `run --gallery` keeps: where it goes and how the run's state becomes its catalog."""

    out: Path
    dest: Path
    snapshot: Callable[[LedgerState], Catalog]

    def final(self, state: LedgerState) -> None:
        """Write the gallery of the run's end; a failure is said, never raised over the run's own outcome."""
        try:
            build_gallery(self.out, self.dest, self.snapshot(state))
        except (LeapbatchError, OSError) as exc:
            say(f"note: the gallery could not be written: {exc}")


def run_gallery(
    args: argparse.Namespace, out: Path, manifest: Manifest, expansion: Expansion, state: LedgerState
) -> RunGallery | None:
    """Return the gallery to keep with --gallery, written once now, before anything is sent (a link at its path
    is refused here, exit 2), or None."""
    if not args.gallery:
        return None
    matrix_jobs = expansion.combinations - expansion.excluded
    jobs = expansion.jobs

    def snapshot(state: LedgerState) -> Catalog:
        return catalog(state, jobs, manifest, name=manifest.name, matrix_jobs=matrix_jobs)

    kept = RunGallery(out, gallery_dir(out, None), snapshot)
    build_gallery(out, kept.dest, snapshot(state))
    return kept
