"""Measure `leapbatch export` against copying the same bytes: webdataset and parquet (and imagefolder) on a large
finished folder.

    python benchmarks/export.py [--jobs 100000] [--repeats 3] [--formats webdataset,parquet] [--keep DIR]

Builds a finished folder of N jobs as `benchmarks/scale.py` does, with 256 distinct 64x64 noise PNGs (about 12 KB
each, so the bytes are real work; the folder hard-links them), and resumes it once (untimed: as a real folder, it
then names its manifest and has its checkpoint). Then, in one invocation and alternating, runs each
export (`python -m leapbatch export`, its own process) and two plain copies of the same images: `tar cf
--hard-dereference` of `images/` (the bytes into one archive, what a WebDataset shard is; without the flag tar
would store each hard link as a header only) and `cp -r images/` (a file per image, what an
imagefolder export is). Prints min/median/max seconds of each and the median ratios export / tar and export / cp.
An export also reads each image through the ledger check (size, sha256), tags PNGs, and writes SHA256SUMS.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from scale import build, manifest_text, spread, timed


def noise(count: int, seed: int = 0) -> list[bytes]:
    """Return `count` distinct 64x64 PNGs of random pixels."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        buffer = io.BytesIO()
        Image.frombytes("RGB", (64, 64), rng.randbytes(64 * 64 * 3)).save(buffer, "PNG")
        out.append(buffer.getvalue())
    return out


def plain(command: list[str], cwd: Path) -> float:
    """Run a plain copy command and return its seconds (flushed to disk, as an export is)."""
    start = time.perf_counter()
    subprocess.run(command, cwd=cwd, check=True)
    os.sync()
    return time.perf_counter() - start


def main() -> None:
    """Build the folder, time the exports and the copies side by side, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--formats", default="webdataset,parquet")
    parser.add_argument("--keep", type=Path, help="build the folder here and keep it")
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="leapbatch-export-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    folder = root / "out"
    manifest = root / "scale.yaml"
    if not (folder / "ledger.jsonl").exists():
        manifest.write_text(manifest_text(args.jobs, folder), encoding="utf-8")
        started = time.perf_counter()
        jobs = build(folder, manifest, noise(256))
        print(f"built {jobs:,} jobs in {time.perf_counter() - started:.1f} s", flush=True)
        # A resume, as a real folder has had: it records the manifest (so exports read its captions), writes the
        # derived files and leaves the ledger's checkpoint. It sends nothing: every job is done.
        timed(["run", "--local", "--quiet", "--out", str(folder), str(manifest)], root)
    size = sum(entry.stat().st_size for entry in os.scandir(folder / "images"))
    print(f"images: {size / 2**20:,.0f} MiB", flush=True)
    formats = args.formats.split(",")
    times: dict[str, list[float]] = {name: [] for name in [*formats, "tar", "cp"]}
    for _ in range(args.repeats):
        for fmt in formats:
            dest = root / f"export-{fmt}"
            shutil.rmtree(dest, ignore_errors=True)
            seconds, rss = timed(["export", str(folder), "--format", fmt, "--to", str(dest)], root)
            times[fmt].append(seconds)
            print(f"{fmt}: {seconds:.2f} s, {rss:,.0f} MiB", flush=True)
            shutil.rmtree(dest)
        times["tar"].append(plain(["tar", "--hard-dereference", "-cf", str(root / "copy.tar"), "images"], folder))
        (root / "copy.tar").unlink()
        times["cp"].append(plain(["cp", "-r", str(folder / "images"), str(root / "copy")], root))
        shutil.rmtree(root / "copy")
        print(f"tar: {times['tar'][-1]:.2f} s, cp: {times['cp'][-1]:.2f} s", flush=True)
    for name, values in times.items():
        print(f"{name:>12}: {spread(values)}")
    for fmt in formats:
        for copy in ("tar", "cp"):
            ratio = statistics.median(times[fmt]) / statistics.median(times[copy])
            print(f"{fmt} / {copy}: {ratio:.2f}x")
    if args.keep is None:
        shutil.rmtree(root)


if __name__ == "__main__":
    main()
