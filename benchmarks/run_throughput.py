"""Measure `leapbatch run` against the emulator in a separate process: requests per job by route, and jobs/s.

    python benchmarks/run_throughput.py [--jobs 400] [--in-flight 100] [--speed inf] [--faults chaos]
                                        [--max-retry-after 2] [--http-timeout 1]

Each scenario starts `leapbatch emulator` (its own process, free ports), runs a manifest of N small jobs with
`leapbatch run` (another process), and reads the emulator's counters. Figures are from one run on this machine;
compare them as ratios within one invocation (e.g. chaos vs fault-free), not across machines.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

MANIFEST = """\
version: 1
name: bench
model: 26a1a203-3a46-42cb-8cfa-f4de075907d8
prompt: "benchmark image {{n}}"
params: {{width: 64, height: 64, steps: 5}}
matrix:
  n: {{range: [1, {jobs}]}}
limits: {{requests_per_second: 1000, burst: 1000, max_in_flight: {in_flight}, job_timeout: 60}}
"""


def start_emulator(speed: str, faults: list[str]) -> tuple[subprocess.Popen[str], str]:
    """Start `leapbatch emulator` on free ports and return it with its base URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "leapbatch", "emulator", "--port", "0", "--image-port", "0", "--speed", speed, *faults],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    match = re.match(r"api:\s+(\S+)", line)
    if not match:
        process.kill()
        raise SystemExit(f"the emulator did not start: {line!r}")
    return process, match.group(1)


def stats(base_url: str) -> dict[str, object]:
    """Return the emulator's counters."""
    with urllib.request.urlopen(f"{base_url}/_emulator/stats") as response:  # loopback only
        data: dict[str, object] = json.load(response)
        return data


def scenario(jobs: int, in_flight: int, speed: str, faults: list[str], run_args: list[str]) -> dict[str, object]:
    """Run one scenario and return its figures."""
    emulator, base_url = start_emulator(speed, faults)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            manifest = Path(tmp) / "bench.yaml"
            manifest.write_text(MANIFEST.format(jobs=jobs, in_flight=in_flight))
            env = os.environ | {"LEAP_BASE_URL": base_url, "LEAP_API_KEY": "bench-key"}
            command = [sys.executable, "-m", "leapbatch", "run", str(manifest), "--out", f"{tmp}/out", "--quiet"]
            command += ["--speed", speed, "--rps", "100000", *run_args]
            started = time.perf_counter()
            rounds = 0
            while True:  # under faults some jobs may fail: resume (with --retry-failed) until all are done
                rounds += 1
                done = subprocess.run(
                    [*command, *(["--retry-failed"] if rounds > 1 else [])],
                    env=env,
                    capture_output=True,
                    text=True,
                    check=False,
                )
                if done.returncode == 0 or rounds == 5:
                    break
            wall = time.perf_counter() - started
            inside = re.search(r"\(([\d.]+) s", done.stderr)
            counters = stats(base_url)
            requests = counters["requests"]
            assert isinstance(requests, dict)
            api = {route: requests[route] for route in ("create", "list", "get", "delete")}
            return {
                "jobs": jobs,
                "in_flight": in_flight,
                "speed": speed,
                "faults": " ".join(faults) or "none",
                "exit": done.returncode,
                "rounds": rounds,
                "wall_s": round(wall, 2),
                "run_s": float(inside.group(1)) if inside else None,
                "jobs_per_s": round(jobs / wall, 1),
                "api_requests_per_job": {k: round(v / jobs, 3) for k, v in api.items()},
                "api_requests_per_job_total": round(sum(api.values()) / jobs, 3),
                "image_requests_per_job": round(requests["image"] / jobs, 3),
                "creates": counters["jobs"]["created"],  # type: ignore[index]
                "ambiguous_creates": counters.get("ambiguous_creates", 0),
            }
    finally:
        emulator.terminate()
        emulator.wait(timeout=10)
        assert emulator.stdout is not None
        emulator.stdout.close()


def main() -> None:
    """Run the scenarios given on the command line and print one JSON line each."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=400)
    parser.add_argument("--in-flight", type=int, default=100)
    parser.add_argument("--speed", default="inf", help="emulator speed (also told to the runner)")
    parser.add_argument("--faults", default="", help="emulator fault profile to compare with none (e.g. chaos)")
    parser.add_argument("--max-retry-after", default="120", help="passed to the runs (Retry-After clamp, seconds)")
    parser.add_argument("--http-timeout", default="30", help="passed to the runs (seconds)")
    parser.add_argument("--job-timeout", default="60", help="passed to the runs (seconds; stuck jobs wait this long)")
    args = parser.parse_args()
    run_args = ["--max-retry-after", args.max_retry_after, "--http-timeout", args.http_timeout]
    run_args += ["--job-timeout", args.job_timeout]
    base = scenario(args.jobs, args.in_flight, args.speed, [], run_args)
    print(json.dumps(base))
    if args.faults:
        faulty = scenario(args.jobs, args.in_flight, args.speed, ["--faults", args.faults], run_args)
        print(json.dumps(faulty))
        ratio = faulty["jobs_per_s"] / base["jobs_per_s"]  # type: ignore[operator]
        print(json.dumps({"jobs_per_s_ratio": round(ratio, 3), "faults": args.faults}))


if __name__ == "__main__":
    main()
