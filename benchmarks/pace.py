"""Measure how well `leapbatch run` keeps its job slots busy without being told the server's speed, side by side.

    python benchmarks/pace.py [--repeats 3] [--skip-sdk] [--skip-slots] [--slots-jobs 400] [--sdk-jobs 30]
                              [--baseline CHECKOUT]

Two scenarios, each against its own `leapbatch emulator` process (free ports), `leapbatch run` in another process
with no `--speed` (it learns the pace), figures as min/median/max over `--repeats` runs:

- **slots**: 400 jobs, 100 in flight, jobs of ~3 s (emulator speed 1.5 on 5-step jobs of 4.53 s of Leap's time).
  Ideal time = jobs x duration / in flight; the ratio ideal / measured is the share of slot time spent generating.
  API requests per finished job count creates, listings, findOnes and deletes (image downloads are another host).
- **sdk**: 30 jobs at Leap's own pace (emulator speed 1), leapbatch with its defaults against the loop Leap's old
  TypeScript SDK offered (docs/leap-api-facts.md: create, poll findOne every 1 s until finished or failed, then
  download; one job at a time), written here with httpx (`sdk_loop`). The ratio is the SDK loop's time over
  leapbatch's, both measured in this invocation.

With `--baseline CHECKOUT` (another checkout's root, e.g. a `git worktree` of an older commit), each leapbatch run
is also made by that checkout's `leapbatch` (first on PYTHONPATH), alternating with this one's, against the same
kind of emulator (this checkout's), and its figures are printed beside.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import httpx

MODEL = "26a1a203-3a46-42cb-8cfa-f4de075907d8"
MANIFEST = """\
version: 1
name: pace
model: {model}
prompt: "pace image {{n}}"
params: {{width: 64, height: 64, steps: 5}}
matrix:
  n: {{range: [1, {jobs}]}}
{limits}
"""
WORK = 4.0 + 16.0 * 5 / 150  # seconds of Leap's time a 5-step, 1-image job takes (wire.expected_generation_seconds)


def start_emulator(speed: str) -> tuple[subprocess.Popen[str], str]:
    """Start `leapbatch emulator` on free ports and return it with its base URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "leapbatch", "emulator", "--port", "0", "--image-port", "0", "--speed", speed],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    match = re.match(r"api:\s+(\S+)", process.stdout.readline())
    if not match:
        process.kill()
        raise SystemExit("the emulator did not start")
    return process, match.group(1)


def stop(process: subprocess.Popen[str]) -> None:
    """Stop an emulator process."""
    process.terminate()
    process.wait(timeout=10)
    assert process.stdout is not None
    process.stdout.close()


def api_requests(base_url: str) -> int:
    """Return how many API requests (not image downloads) the emulator answered."""
    with urllib.request.urlopen(f"{base_url}/_emulator/stats") as response:  # loopback only
        requests = json.load(response)["requests"]
    return sum(int(requests[route]) for route in ("create", "list", "get", "delete"))


def leapbatch_run(base_url: str, jobs: int, limits: str, code: Path | None = None) -> tuple[float, int]:
    """Run a manifest of `jobs` jobs with `leapbatch run` (no --speed) and return its seconds and API requests."""
    with tempfile.TemporaryDirectory() as tmp:
        manifest = Path(tmp) / "pace.yaml"
        manifest.write_text(MANIFEST.format(model=MODEL, jobs=jobs, limits=limits))
        env = os.environ | {"LEAP_BASE_URL": base_url, "LEAP_API_KEY": "bench-key"}
        if code is not None:
            env["PYTHONPATH"] = str(code)
        before = api_requests(base_url)
        done = subprocess.run(
            [sys.executable, "-m", "leapbatch", "run", str(manifest), "--out", f"{tmp}/out", "--quiet", "--yes"],
            env=env,
            cwd=tmp,  # not a checkout: `-m` puts the working folder first on sys.path, before PYTHONPATH
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise SystemExit(f"leapbatch run failed ({done.returncode}): {done.stderr}")
        seconds = re.search(r"\(([\d.]+) s", done.stderr)
        assert seconds is not None, done.stderr
        return float(seconds.group(1)), api_requests(base_url) - before


def sdk_loop(base_url: str, jobs: int) -> float:
    """Run `jobs` jobs as the old SDK's wait helper did (create, findOne every 1 s, download) and return the
    seconds it took."""
    path = f"/api/v1/images/models/{MODEL}/inferences"
    started = time.perf_counter()
    with httpx.Client(base_url=base_url, headers={"Authorization": "Bearer bench-key"}) as api, httpx.Client() as cdn:
        for n in range(1, jobs + 1):
            body = {"prompt": f"sdk image {n}", "width": 64, "height": 64, "steps": 5, "seed": n}
            job = api.post(path, json=body).raise_for_status().json()
            while job["state"] not in ("finished", "failed"):
                time.sleep(1.0)
                job = api.get(f"{path}/{job['id']}").raise_for_status().json()
            for image in job["images"]:
                cdn.get(image["uri"]).raise_for_status()
    return time.perf_counter() - started


def spread(values: list[float]) -> dict[str, float]:
    """Return min, median and max, rounded."""
    return {"min": round(min(values), 3), "median": round(statistics.median(values), 3), "max": round(max(values), 3)}


def slots(jobs: int, repeats: int, code: Path | None = None) -> dict[str, object]:
    """Measure slot efficiency and requests per job: 100 in flight, ~3 s jobs (`code`: the checkout to run)."""
    speed = 1.5
    limits = "limits: {requests_per_second: 1000, burst: 1000, max_in_flight: 100}"
    ratios, per_job = [], []
    for _ in range(repeats):
        emulator, base_url = start_emulator(str(speed))
        try:
            seconds, requests = leapbatch_run(base_url, jobs, limits, code)
        finally:
            stop(emulator)
        ideal = jobs * (WORK / speed) / 100
        ratios.append(ideal / seconds)
        per_job.append(requests / jobs)
    return {"scenario": "slots", "checkout": str(code or "this"), "jobs": jobs, "in_flight": 100,
            "job_seconds": round(WORK / speed, 2), "ideal_share": spread(ratios),
            "api_requests_per_job": spread(per_job)}  # fmt: skip


def sdk(jobs: int, repeats: int, code: Path | None = None) -> dict[str, object]:
    """Measure leapbatch with its defaults against the SDK loop, at Leap's pace, alternating in one invocation
    (with `code`, that checkout's leapbatch runs too, after this one's, against the same emulator)."""
    ours, old, theirs = [], [], []
    for _ in range(repeats):
        emulator, base_url = start_emulator("1")
        try:
            ours.append(leapbatch_run(base_url, jobs, "")[0])
            if code is not None:
                old.append(leapbatch_run(base_url, jobs, "", code)[0])
            theirs.append(sdk_loop(base_url, jobs))
        finally:
            stop(emulator)
    speedup = spread([t / o for t, o in zip(theirs, ours, strict=True)])
    figures: dict[str, object] = {
        "scenario": "sdk",
        "jobs": jobs,
        "leapbatch_s": spread(ours),
        "sdk_loop_s": spread(theirs),
        "speedup": speedup,
    }
    if old:
        figures["baseline_s"] = spread(old)
        figures["baseline_speedup"] = spread([t / o for t, o in zip(theirs, old, strict=True)])
    return figures


def main() -> None:
    """Run the scenarios and print one JSON line each."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--slots-jobs", type=int, default=400)
    parser.add_argument("--sdk-jobs", type=int, default=30)
    parser.add_argument("--skip-sdk", action="store_true", help="only the slots scenario (the SDK loop takes minutes)")
    parser.add_argument("--skip-slots", action="store_true")
    parser.add_argument("--baseline", type=Path, help="another checkout to compare with, side by side")
    args = parser.parse_args()
    code = args.baseline.resolve() if args.baseline else None
    if not args.skip_slots:
        for _ in range(args.repeats):  # alternate: one run of each checkout per round
            print(json.dumps(slots(args.slots_jobs, 1)), flush=True)
            if code is not None:
                print(json.dumps(slots(args.slots_jobs, 1, code)), flush=True)
    if not args.skip_sdk:
        print(json.dumps(sdk(args.sdk_jobs, args.repeats, code)), flush=True)


if __name__ == "__main__":
    main()
