"""Expand a 100,000-job matrix and print how long it took and how much memory it needed.

Run: `python benchmarks/expand_100k.py` (add `--tracemalloc` for the peak of Python allocations, slower).
The manifest: 50 subjects x 20 styles x 10 seeds x 10 lightings (a mapping-valued axis), derived seeds off
(explicit seed axis) and on (no seed axis, 100 lightings), so both key paths are measured.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
import tracemalloc
from typing import Any

from leapbatch.manifest import parse_manifest
from leapbatch.manifest.expand import expand


def manifest_text(*, derived_seeds: bool) -> str:
    """Return the JSON text (JSON is YAML) of a 100,000-job manifest."""
    lightings = [{"light": f"light {i}", "mood": f"mood {i}"} for i in range(100 if derived_seeds else 10)]
    matrix: dict[str, Any] = {
        "subject": [f"subject {i}" for i in range(50)],
        "style": [f"style {i}" for i in range(20)],
        "lighting": lightings,
    }
    if not derived_seeds:
        matrix["seed"] = {"range": [1, 10]}
    data = {
        "version": 1,
        "name": "bench",
        "model": "26a1a203-3a46-42cb-8cfa-f4de075907d8",
        "prompt": "a {style} picture of {subject}, {light}, {mood}",
        "negative_prompt": "blurry",
        "matrix": matrix,
    }
    return json.dumps(data)


def main() -> int:
    """Run the benchmark and print one line per case."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tracemalloc", action="store_true", help="also measure the peak of Python allocations")
    args = parser.parse_args()
    for derived in (False, True):
        text = manifest_text(derived_seeds=derived)
        if args.tracemalloc:
            tracemalloc.start()
        started = time.perf_counter()
        manifest = parse_manifest(text, "bench.yaml")
        loaded = time.perf_counter()
        expansion = expand(manifest)
        done = time.perf_counter()
        peak = f", tracemalloc peak {tracemalloc.get_traced_memory()[1] / 2**20:.0f} MiB" if args.tracemalloc else ""
        tracemalloc.stop()
        per_job = (done - loaded) / len(expansion.jobs) * 1e6
        kind = "derived" if derived else "explicit"
        print(
            f"{kind} seeds: {len(expansion.jobs):,} jobs; load {loaded - started:.3f} s, "
            f"expand {done - loaded:.2f} s ({per_job:.0f} us/job){peak}"
        )
        del expansion, manifest
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(f"peak RSS of the process: {rss:.0f} MiB (python {sys.version.split()[0]})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
