"""Measure the gallery on a large folder: `leapbatch gallery` build time, and the page's time to first render in
headless Chromium (Debian's /usr/bin/chromium, driven by Playwright; target: under 2 s at 100,000 images).

    python benchmarks/gallery.py [--jobs 100000] [--repeats 3] [--distinct 4096] [--keep DIR]

Builds a finished folder of N jobs as `benchmarks/scale.py` does (1,000 subjects x 10 styles x N/10,000 seeds),
whose images are `--distinct` different 64x64 noise PNGs hard-linked over and over. Thumbnails are named by
content, so the first build makes one per distinct image (not N): the figure printed per thumbnail is what a
folder of N distinct images costs per image. Then, in one invocation: the first build (thumbnails made), a
rebuild (nothing new: the catalog, data.js and the checks), and the page opened `--repeats` times in a fresh
Chromium profile: navigation start to the page's `gallery-ready` mark (data.js parsed, indexed, first grid drawn),
and the part of it before `gallery-start` (loading and parsing data.js). Prints min/median/max of each.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from export import noise
from scale import build, manifest_text, spread, timed

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def first_render(index: Path) -> tuple[float, float]:
    """Open the page in a fresh headless Chromium; return (seconds to `gallery-ready`, seconds to `gallery-start`)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(index.as_uri(), wait_until="commit")
            deadline = time.monotonic() + 120
            while page.evaluate("document.documentElement.dataset.ready") != "1":
                if time.monotonic() > deadline:
                    raise SystemExit("the page did not get ready within 120 s")
                time.sleep(0.05)
            marks = json.loads(
                page.evaluate(
                    "JSON.stringify(Object.fromEntries(performance.getEntriesByType('mark')"
                    ".map(m => [m.name, m.startTime])))"
                )
            )
        finally:
            browser.close()
    return marks["gallery-ready"] / 1000, marks["gallery-start"] / 1000


def main() -> None:
    """Build the folder, time the gallery builds and the first renders, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--distinct", type=int, default=4096, help="distinct images in the folder")
    parser.add_argument("--keep", type=Path, help="build the folder here and keep it")
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="leapbatch-gallery-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    folder, manifest = root / "out", root / "scale.yaml"
    if not (folder / "ledger.jsonl").exists():
        manifest.write_text(manifest_text(args.jobs, folder), encoding="utf-8")
        jobs = build(folder, manifest, noise(args.distinct))
        print(f"built {jobs:,} jobs ({args.distinct:,} distinct images)", flush=True)
        timed(["run", "--local", "--quiet", "--out", str(folder), str(manifest)], root)  # the checkpoint, untimed
    shutil.rmtree(folder / "gallery", ignore_errors=True)
    first, rss = timed(["gallery", str(folder)], root)
    print(f"first build: {first:.2f} s, {rss:,.0f} MiB ({args.distinct:,} thumbnails made)", flush=True)
    again, rss = timed(["gallery", str(folder)], root)
    print(f"rebuild (no new image): {again:.2f} s, {rss:,.0f} MiB", flush=True)
    size = (folder / "gallery" / "data.js").stat().st_size
    print(f"data.js: {size / 2**20:.1f} MiB", flush=True)
    ready, parsed = [], []
    for _ in range(args.repeats):
        seconds, start = first_render(folder / "gallery" / "index.html")
        ready.append(seconds)
        parsed.append(start)
        print(f"first render: {seconds:.2f} s (data.js loaded and parsed at {start:.2f} s)", flush=True)
    print(f"  first render: {spread(ready)}")
    print(f"  data.js part: {spread(parsed)}")
    print(f"  rebuild: {again:.2f} s; first build {first:.2f} s for {args.distinct:,} thumbnails")
    print(f"  first render median {statistics.median(ready):.2f} s (target: under 2 s)")
    if args.keep is None:
        shutil.rmtree(root)


if __name__ == "__main__":
    main()
