"""Measure the commands on a large finished folder: time and peak memory of `plan`, a resume, `status`, `verify`.

    python benchmarks/scale.py [--jobs 100000] [--repeats 3] [--skip verify] [--keep DIR] [--baseline CHECKOUT]

Builds, in a temporary folder, a manifest of N jobs (a matrix of subjects x styles x seeds) and a finished output
folder for it as `run --local` would leave it: one `run` record, then per job an `intent`, a `submitted` and a
`finished` record, a real 64x64 PNG per image (hard links to a few files: the disk holds a few images), and the
derived files. Then runs each command as its own process (`python -m leapbatch ...`) `--repeats` times and prints
min/median/max seconds and the peak resident memory (MiB) of each. The resume is `run --local`: every job is done,
so it sends no request (the emulator it starts is not asked anything). With `--baseline CHECKOUT` (another
checkout's root, e.g. a `git worktree` of an older commit), each command also runs with that checkout's
`leapbatch` first on PYTHONPATH, after this one's runs, on the same folder, and the median ratio (this /
baseline) is printed: below 1 is faster. Each command runs once untimed first (a writer's first run of a folder
leaves its checkpoint). The folder is built once by this checkout (the ledger format is
the same).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

from leapbatch.manifest import load_manifest
from leapbatch.manifest.expand import expand

MODEL = "26a1a203-3a46-42cb-8cfa-f4de075907d8"


def manifest_text(jobs: int, out: Path) -> str:
    """Return a manifest of `jobs` jobs (1000 subjects x styles x seeds, rounded to a multiple of 1000)."""
    seeds = max(1, jobs // 1000)
    return (
        "version: 1\nname: scale\n"
        f"model: {MODEL}\n"
        'prompt: "a {style} picture of subject {subject}"\n'
        "params: {width: 64, height: 64, steps: 5}\n"
        "matrix:\n"
        "  subject: {range: [1, 100]}\n"
        "  style: [ink, oil, chalk, pastel, pencil, charcoal, watercolor, gouache, acrylic, crayon]\n"
        f"  seed: {{range: [1, {seeds}]}}\n"
        f"output: {{dir: {out}}}\n"
    )


def teal() -> bytes:
    """Return a 64x64 PNG of one colour (a few hundred bytes)."""
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), "teal").save(buffer, "PNG")
    return buffer.getvalue()


def build(folder: Path, manifest: Path, pngs: list[bytes] | None = None) -> int:
    """Write a finished folder for the manifest's jobs (job n's image is `pngs[n % len(pngs)]`, 64x64 each; one
    teal image by default); return how many jobs it holds."""
    jobs = expand(load_manifest(manifest)).jobs
    images = folder / "images"
    images.mkdir(parents=True)
    sources = pngs or [teal()]
    digests = [hashlib.sha256(data).hexdigest() for data in sources]
    firsts = [folder / f"source-{i}.png" for i in range(len(sources))]
    now = time.time()
    run = {"v": 1, "t": now, "type": "run", "command": "run", "tool_version": "0.1.0", "base_url": "http://127.0.0.1:1",
           "manifest_path": str(manifest), "jobs": len(jobs), "local": True}  # fmt: skip
    with (folder / "ledger.jsonl").open("w") as ledger:
        ledger.write(json.dumps(run) + "\n")
        for n, job in enumerate(jobs):
            name = f"{job.key}-0.png"
            which = n % len(sources)
            data, digest, first = sources[which], digests[which], firsts[which]
            if n // len(sources) % 60_000 == 0:  # a file takes at most 65,000 links on ext4
                first.unlink(missing_ok=True)
                first.write_bytes(data)
            os.link(first, images / name)
            inference = f"00000000-0000-4000-8000-{n:012d}"
            request = job.request.to_wire()
            fingerprint = job.fingerprint
            intent = {"v": 1, "t": now, "type": "intent", "key": job.key, "model": MODEL, "fingerprint": fingerprint,
                      "request": request, "variables": dict(job.variables), "cost": 0.01}  # fmt: skip
            ledger.write(json.dumps(intent) + "\n")
            ledger.write(
                json.dumps({"v": 1, "t": now, "type": "submitted", "key": job.key, "inference_id": inference}) + "\n"
            )
            image = {"index": 0, "uri": f"http://127.0.0.1:1/{name}", "path": f"images/{name}", "sha256": digest,
                     "bytes": len(data), "width": 64, "height": 64}  # fmt: skip
            finished = {"v": 1, "t": now, "type": "finished", "key": job.key, "inference_id": inference,
                        "images": [image]}  # fmt: skip
            ledger.write(json.dumps(finished) + "\n")
    for first in firsts:
        first.unlink(missing_ok=True)
    return len(jobs)


def timed(command: list[str], cwd: Path, code: Path | None = None) -> tuple[float, float]:
    """Run `python -m leapbatch <command>` and return its seconds and peak resident memory (MiB)."""
    script = (
        "import resource, runpy, sys, time; sys.argv = ['leapbatch', *sys.argv[1:]]; t = time.perf_counter()\n"
        "try:\n    runpy.run_module('leapbatch', run_name='__main__')\n"
        "except SystemExit as e:\n    code = e.code\nelse:\n    code = 0\n"
        "sys.stderr.write(f'BENCH {time.perf_counter() - t} "
        "{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}\\n'); sys.exit(code)\n"
    )
    env = os.environ | ({"PYTHONPATH": str(code)} if code is not None else {})
    done = subprocess.run(
        [sys.executable, "-c", script, *command], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    line = next((ln for ln in done.stderr.splitlines() if ln.startswith("BENCH ")), None)
    if done.returncode not in (0, 1) or line is None:
        raise SystemExit(f"{command[0]} failed ({done.returncode}): {done.stderr[-2000:]}")
    _, seconds, rss_kib = line.split()
    return float(seconds), int(rss_kib) / 1024


def spread(values: list[float]) -> dict[str, float]:
    """Return min, median and max, rounded."""
    return {"min": round(min(values), 2), "median": round(statistics.median(values), 2), "max": round(max(values), 2)}


def main() -> None:
    """Build the folder, time each command, print one JSON line per command."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip", action="append", default=[], help="a command not to time (plan, run, status, verify)")
    parser.add_argument("--keep", type=Path, help="build the folder here and keep it")
    parser.add_argument("--baseline", type=Path, help="another checkout to compare with, side by side")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        folder, manifest = root / "out", root / "scale.yaml"
        manifest.write_text(manifest_text(args.jobs, folder))
        started = time.perf_counter()
        jobs = build(folder, manifest)
        print(json.dumps({"jobs": jobs, "build_s": round(time.perf_counter() - started, 1)}), flush=True)
        commands = {  # the resume first: as in a folder runs made, the others then find its checkpoint
            "run": ["run", str(manifest), "--local", "--out", str(folder), "--quiet", "--yes"],
            "plan": ["plan", str(manifest), "--examples", "0"],
            "status": ["status", str(folder)],
            "verify": ["verify", str(folder)],
        }
        for name, command in commands.items():
            if name in args.skip:
                continue
            timed(command, root)  # once untimed: the first writer leaves the checkpoint and the derived files' stamp
            ours = [timed(command, root) for _ in range(args.repeats)]
            # Then the baseline's runs (not alternating: its resume rewrites the derived files, which would make
            # this checkout's next resume write them again).
            baseline = args.baseline.resolve() if args.baseline else None
            theirs = [timed(command, root, baseline) for _ in range(args.repeats if baseline else 0)]
            seconds = spread([f[0] for f in ours])
            line: dict[str, object] = {"command": name, "jobs": jobs, "seconds": seconds,
                                       "peak_mib": spread([f[1] for f in ours])}  # fmt: skip
            if theirs:
                before = spread([f[0] for f in theirs])
                line["baseline_seconds"] = before
                line["baseline_peak_mib"] = spread([f[1] for f in theirs])
                line["time_ratio"] = round(seconds["median"] / before["median"], 3)
            print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
