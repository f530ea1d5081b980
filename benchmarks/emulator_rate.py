"""Measure the request rate the emulator sustains, per route, from a separate client process.

Starts `python -m leapbatch emulator --port 0 --image-port 0 --speed inf` as a child process, then for each route
runs CONCURRENCY tasks under trio, each with its own httpx client, sending requests back to back for SECONDS, and
prints requests per second and latency percentiles. The client (~0.65 ms of CPU per request) is usually the limit
on this 2-core machine, as LIBRARIES.md measured; the figures are a floor for the emulator, not a ceiling.

    python benchmarks/emulator_rate.py [--seconds 3] [--concurrency 16] [--emulator-arg=--plain-entities ...]
    python benchmarks/emulator_rate.py --baseline /path/to/older/checkout --rounds 3

With `--baseline DIR`, the emulator of that checkout (its `leapbatch/`, put first on PYTHONPATH) and this one are
measured in alternating rounds, side by side, and the medians are compared per route: a ratio below 1 means this
checkout's emulator spends less CPU per request. The emulator's CPU per request is the figure to compare (the rate
swings with the machine's load; the CPU spent on each request much less).
"""

from __future__ import annotations

import argparse
import os
import resource
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import httpx
import trio

MODEL = "bench-model"
PATH = f"/api/v1/images/models/{MODEL}/inferences"
AUTH = {"Authorization": "Bearer bench"}

Call = Callable[[httpx.AsyncClient, int], Awaitable[httpx.Response]]


@dataclass(frozen=True, slots=True)
class Figures:
    """What one route measured: requests per second, and the emulator's CPU milliseconds per request."""

    rate: float
    cpu_ms: float


def start_emulator(source: str | None = None, extra: Sequence[str] = ()) -> tuple[subprocess.Popen[str], str]:
    """Start the emulator (of checkout `source`, else this one) in a child process; return it and its API URL."""
    command = [sys.executable, "-m", "leapbatch", "emulator", "--port", "0", "--image-port", "0", "--speed", "inf"]
    env = dict(os.environ)
    if source is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [source, env.get("PYTHONPATH")]))
    process = subprocess.Popen([*command, *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    assert process.stdout is not None
    first = process.stdout.readline()  # "api:    http://127.0.0.1:PORT"
    if not first.startswith("api:"):
        process.kill()
        raise SystemExit(f"the emulator did not start: {first!r} {process.communicate()[1]}")
    return process, first.split()[1]


def cpu_seconds(pid: int | None = None) -> float:
    """Return the CPU time (user + system) used so far by this process, or by process `pid` (Linux)."""
    if pid is None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def measure(
    server_pid: int,
    base_url: str,
    name: str,
    call: Call,
    seconds: float,
    concurrency: int,
    headers: dict[str, str],
) -> Figures:
    """Send `call` back to back from `concurrency` clients for `seconds`, print the rate and return the figures."""
    latencies: list[float] = []
    failures = 0

    async def worker(index: int) -> None:
        nonlocal failures
        timeout = httpx.Timeout(30, pool=None)
        async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=timeout) as http:
            await call(http, index)  # warm the connection up, outside the measured window
            await start.wait()
            while time.perf_counter() < deadline:
                began = time.perf_counter()
                response = await call(http, index)
                latencies.append(time.perf_counter() - began)
                failures += not response.is_success

    start = trio.Event()
    async with trio.open_nursery() as nursery:
        for index in range(concurrency):
            nursery.start_soon(worker, index)
        await trio.sleep(0.5)  # let every client connect
        deadline = time.perf_counter() + seconds
        cpu = (cpu_seconds(), cpu_seconds(server_pid))
        start.set()
    client_cpu, server_cpu = cpu_seconds() - cpu[0], cpu_seconds(server_pid) - cpu[1]
    count = len(latencies)
    cuts = statistics.quantiles(latencies, n=100) if count > 1 else [0.0] * 99
    print(
        f"{name:<7} {count / seconds:8.0f} req/s   p50 {cuts[49] * 1000:6.2f} ms   p99 {cuts[98] * 1000:6.2f} ms"
        f"   CPU/request: client {client_cpu / count * 1000:5.2f} ms, emulator {server_cpu / count * 1000:5.2f} ms"
        f"   ({count} requests, {failures} failed)"
    )
    return Figures(count / seconds, server_cpu / count * 1000)


async def run(server_pid: int, base_url: str, seconds: float, concurrency: int) -> dict[str, Figures]:
    """Seed some jobs, then measure create, get, list and a cached image download; return the figures by route."""
    async with httpx.AsyncClient(base_url=base_url, headers=AUTH) as http:
        seeded = [
            (await http.post(PATH, json={"prompt": f"seed job {n}", "seed": n, "width": 512, "height": 512})).json()
            for n in range(concurrency)
        ]
        ids = [job["id"] for job in seeded]
        image_uri = (await http.get(f"{PATH}/{ids[0]}")).json()["images"][0]["uri"]

    async def create(http: httpx.AsyncClient, index: int) -> httpx.Response:
        return await http.post(PATH, json={"prompt": "a red fox", "seed": index, "width": 512, "height": 512})

    async def get(http: httpx.AsyncClient, index: int) -> httpx.Response:
        return await http.get(f"{PATH}/{ids[index]}")

    async def list_page(http: httpx.AsyncClient, index: int) -> httpx.Response:
        return await http.get(PATH, params={"page": 1, "pageSize": 10})

    async def image(http: httpx.AsyncClient, index: int) -> httpx.Response:
        return await http.get(image_uri)  # a 512x512 PNG, rendered once and then served from the cache

    print(f"emulator at {base_url}; {concurrency} concurrent clients, {seconds:g} s per route")
    figures = {
        name: await measure(server_pid, base_url, name, call, seconds, concurrency, AUTH)
        for name, call in (("get", get), ("list", list_page), ("create", create))
    }
    figures["image"] = await measure(server_pid, base_url, "image", image, seconds, concurrency, {})  # no key there
    return figures


def one_round(args: argparse.Namespace, source: str | None) -> dict[str, Figures]:
    """Measure every route against a fresh emulator process (of checkout `source`, else this one)."""
    process, base_url = start_emulator(source, args.emulator_arg)
    try:
        return trio.run(run, process.pid, base_url, args.seconds, args.concurrency)
    finally:
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
        print(f"emulator exited with {process.returncode}; traceback on stderr: {'Traceback' in stderr}")


def compare(rounds: list[tuple[dict[str, Figures], dict[str, Figures]]]) -> None:
    """Print, per route, the median rate and emulator CPU of the baseline and this checkout, and their ratio."""
    print(f"\nmedians of {len(rounds)} alternating rounds (baseline -> this checkout):")
    for route in rounds[0][0]:
        base = [r[0][route] for r in rounds]
        this = [r[1][route] for r in rounds]
        base_cpu = statistics.median(f.cpu_ms for f in base)
        this_cpu = statistics.median(f.cpu_ms for f in this)
        base_rate = statistics.median(f.rate for f in base)
        this_rate = statistics.median(f.rate for f in this)
        print(
            f"{route:<7} emulator CPU/request {base_cpu:5.2f} -> {this_cpu:5.2f} ms (x{this_cpu / base_cpu:.3f})"
            f"   rate {base_rate:6.0f} -> {this_rate:6.0f} req/s (x{this_rate / base_rate:.3f})"
        )


def main() -> None:
    """Parse the options, run the measurement against a fresh emulator process, and stop it."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=3.0, help="measured time per route (default: 3)")
    parser.add_argument("--concurrency", type=int, default=16, help="concurrent clients (default: 16)")
    parser.add_argument("--baseline", metavar="DIR", help="a checkout to compare with, round by round")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds with --baseline (default: 3)")
    parser.add_argument(
        "--emulator-arg", action="append", default=[], metavar="ARG", help="pass ARG to this checkout's emulator"
    )
    args = parser.parse_args()
    if args.baseline is None:
        one_round(args, None)
        return
    rounds: list[tuple[dict[str, Figures], dict[str, Figures]]] = []
    for number in range(1, args.rounds + 1):
        print(f"\n-- round {number}: baseline {args.baseline}")
        extra, args.emulator_arg = args.emulator_arg, []
        base = one_round(args, args.baseline)
        args.emulator_arg = extra
        print(f"-- round {number}: this checkout {' '.join(extra)}")
        rounds.append((base, one_round(args, None)))
    compare(rounds)


if __name__ == "__main__":
    main()
