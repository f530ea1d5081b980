"""`leapbatch run`: turn a manifest into verified images and a ledger; resume by running it again."""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx
import trio
from pydantic import SecretStr

from leapbatch import __version__
from leapbatch.api.backoff import MAX_RETRY_AFTER
from leapbatch.api.client import Settings, api_http, download_http
from leapbatch.api.ratelimit import AdaptiveLimiter
from leapbatch.cli import signals
from leapbatch.cli._api import check_folder_server, configured_server, retrying_client
from leapbatch.cli._common import SubParsers, beside, limit, number, say
from leapbatch.cli._dataset import expansion_digest
from leapbatch.cli.consent import agree
from leapbatch.cli.costs import add_money_options, caps_of, estimate, price_of
from leapbatch.cli.emulator_cmd import DEFAULT_FAULT_DELAY, emulated
from leapbatch.cli.gallery_cmd import RunGallery, keep_gallery, run_gallery
from leapbatch.cli.local_waits import LOCAL_MAX_RETRY_AFTER, LOCAL_SETTLE_WINDOW, max_retry_after, settle_window
from leapbatch.cli.progress import RunProgress
from leapbatch.cli.shards import add_shard_option, check_folder_shard, count_share, rate_share, shard_out
from leapbatch.emulator import EmulatorConfig, serve_emulator
from leapbatch.errors import (
    EXIT_OK,
    EXIT_SOME_FAILED,
    ApiUnavailableError,
    BudgetReachedError,
    UsageError,
    plural,
)
from leapbatch.folder.images import ImageStore, sweep_parts
from leapbatch.folder.keys_cache import save_keys
from leapbatch.folder.ledger import Ledger, now, open_folder
from leapbatch.folder.records import RunRecord
from leapbatch.folder.results import write_results
from leapbatch.folder.server import Server
from leapbatch.jobs import Job, Shard
from leapbatch.manifest import Manifest, load_manifest
from leapbatch.manifest.expand import expand, in_shard
from leapbatch.run.runner import Runner, RunOptions, RunSummary
from leapbatch.run.submit import SETTLE_WINDOW

LOCAL_SPEED = 50.0
LOCAL_SUFFIX = "-local"  # `run --local` writes to output.dir + this unless --out says otherwise
TOP_REASONS = 3  # the most frequent failure reasons the end-of-run summary shows

DESCRIPTION = """\
Run a manifest: create every job on Leap, poll until done, download and verify every image into
OUT/images/, and record everything in OUT/ledger.jsonl. Interrupted? Run the same command again: finished jobs
cost nothing, submitted jobs are polled (never created twice), and only new jobs of an edited manifest run.

Without --local it needs LEAP_API_KEY (and LEAP_BASE_URL for another endpoint). With --local it starts the
bundled emulator of Leap's API on 127.0.0.1 and runs against it, for free."""

EPILOG = """\
files written: OUT/ledger.jsonl (append-only record), OUT/images/<job key>-<n>.png, OUT/results.json,
               OUT/metadata.jsonl (Hugging Face imagefolder metadata)
money: before anything is sent, the run prints its cost estimate (`leapbatch plan` shows it in full). Above
       budget.confirm_above it asks "Continue? [y/N]" on a terminal; elsewhere it needs --yes or
       --confirm-cost TOTAL, and a plan that grew past what was confirmed asks again. Budget caps
       (budget.max_usd, budget.max_images, --max-usd, --max-images) bound the folder's committed spend over all
       its runs: the create that would cross one is not sent.
exit codes: 0 all finished, 1 some failed, 2 bad manifest or usage (or the cost not confirmed), 3 output locked,
            4 ledger corrupt, 5 API unavailable, 6 budget reached (the jobs in flight finished; raise the cap
            and run again), 130 interrupted (Ctrl-C), 143 SIGTERM, 129 SIGHUP (both end as Ctrl-C does:
            results.json and metadata.jsonl written; run the same command again to resume)
next: leapbatch status OUT, leapbatch verify OUT, leapbatch delete OUT"""


def register(sub: SubParsers) -> None:
    """Add `run`."""
    parser = sub.add_parser(
        "run",
        help="run a manifest (or resume it)",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("manifest", metavar="MANIFEST", help="the manifest YAML file")
    parser.add_argument(
        "--local",
        action="store_true",
        help=f"run against the bundled emulator (free, no key), by default into output.dir{LOCAL_SUFFIX}",
    )
    parser.add_argument(
        "--out",
        metavar="DIR",
        help=f"output folder (default: the manifest's output.dir; with --local, output.dir{LOCAL_SUFFIX}, so trial "
        "images never count as a real run's)",
    )
    parser.add_argument("--retry-failed", action="store_true", help="resubmit jobs that failed in earlier runs")
    parser.add_argument("--max-in-flight", type=limit("max_in_flight"), metavar="N", help="jobs in flight at once")
    parser.add_argument("--rps", type=limit("requests_per_second"), metavar="R", help="API requests per second")
    parser.add_argument("--job-timeout", type=limit("job_timeout"), metavar="S", help="seconds before a job is failed")
    parser.add_argument(
        "--speed",
        type=number("a number (or inf)", infinite=True),
        metavar="X",
        help=f"how many times faster than Leap (4-20 s per image) jobs run: the emulator's speed with --local "
        f"(default {LOCAL_SPEED:g}; inf: instant); otherwise what to expect of the server at first (default 1, i.e. "
        "Leap): the run learns the server's pace from the jobs it sees finish, so it is rarely needed",
    )
    parser.add_argument(
        "--fail-rate", type=float, default=0.0, metavar="P", help="with --local: share of jobs that end failed"
    )
    parser.add_argument(
        "--faults",
        default="none",
        metavar="PROFILE",
        help="with --local: the emulator misbehaves on purpose: none (default), flaky or chaos",
    )
    parser.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="NAME=P",
        help="with --local: the rate of one fault (repeatable; see docs/emulator.md for the names)",
    )
    parser.add_argument("--seed", type=int, default=0, metavar="N", help="with --local: seeds the emulator")
    parser.add_argument(
        "--http-timeout",
        type=number("a number of seconds"),
        default=30.0,
        metavar="S",
        help="seconds to wait for an API response before it counts as lost (default 30)",
    )
    parser.add_argument(
        "--max-retry-after",
        type=number("a number of seconds", infinite=True),
        metavar="S",
        help=f"longest wait a server's Retry-After is honoured for (default {MAX_RETRY_AFTER:g} s; "
        f"{LOCAL_MAX_RETRY_AFTER:g} s with --local)",
    )
    parser.add_argument(
        "--settle-window",
        type=number("a number of seconds", zero=True),
        metavar="S",
        help=f"seconds a create whose answer was lost is looked for before it is sent again (default "
        f"{SETTLE_WINDOW:g}, {LOCAL_SETTLE_WINDOW:g} with --local; cover the server's slowest commit and listing "
        "lag: shorter risks paying twice)",
    )
    add_money_options(parser)
    add_shard_option(parser, doing="run")
    parser.add_argument(
        "--yes", action="store_true", help="consent to this run's cost estimate without being asked (see money)"
    )
    parser.add_argument(
        "--confirm-cost",
        type=number("an amount", zero=True),
        metavar="TOTAL",
        help="run only if the folder's total cost (committed plus this run's estimate, as `plan` shows) is at most "
        "TOTAL; a grown plan is refused (exit 2)",
    )
    parser.add_argument(
        "--gallery",
        action="store_true",
        help="keep OUT/gallery/index.html current while the run works (an open page picks up changes)",
    )
    parser.add_argument("--plain", action="store_true", help="plain progress lines instead of a live display")
    parser.add_argument("--quiet", action="store_true", help="no progress output, only the final summary")
    parser.set_defaults(handler=handle)


def _path_text(path: Path | None) -> str | None:
    """Return a path as text a record can hold: bytes that are no UTF-8 become backslash escapes."""
    return None if path is None else os.fsencode(path).decode("utf-8", "backslashreplace")


def default_out(manifest: Manifest, *, local: bool) -> Path:
    """Return the folder a run writes to without --out: output.dir, or output.dir + `-local` for a `--local` run.

    A trial on the emulator and the real thing never share a folder (one would count the other's images as done;
    `check_folder_server` refuses the mix anyway, so the real run would not start at all).
    """
    return beside(manifest.output_dir, LOCAL_SUFFIX, what="--local") if local else manifest.output_dir


@dataclass(frozen=True, slots=True)
class _Target:
    base_url: str | None  # None: start the emulator
    api_key: SecretStr
    speed: float
    emulator: EmulatorConfig | None = None


def _target(args: argparse.Namespace) -> _Target:
    if args.local:
        key = SecretStr(secrets.token_urlsafe(16))
        config = emulated(
            token=key.get_secret_value(),
            speed=args.speed or LOCAL_SPEED,
            fail_rate=args.fail_rate,
            seed=args.seed,
            faults=args.faults,
            fault=args.fault,
            fault_delay=DEFAULT_FAULT_DELAY,
        )
        return _Target(None, key, config.speed, config)
    if args.faults != "none" or args.fault:
        raise UsageError("--faults and --fault only apply to the local emulator", hint="add --local")
    settings = Settings.from_env()
    if settings.api_key is None:
        raise UsageError(
            "LEAP_API_KEY is not set",
            hint="export LEAP_API_KEY=<your key>, or try it for free on the local emulator with --local",
        )
    return _Target(settings.base_url, settings.api_key, args.speed or 1.0)


def handle(args: argparse.Namespace) -> int:
    """Run (or resume) a manifest and return the exit code."""
    manifest = load_manifest(Path(args.manifest))
    shard = args.shard
    expansion = in_shard(expand(manifest), shard)
    jobs = expansion.jobs
    target = _target(args)
    price, caps = price_of(manifest, args), caps_of(manifest, args).share(shard)
    out = Path(args.out) if args.out else shard_out(default_out(manifest, local=args.local), shard)
    limits = manifest.limits
    options = RunOptions(
        job_timeout=args.job_timeout or limits.job_timeout,
        retry_failed=args.retry_failed,
        delete_after_download=manifest.cleanup.delete_remote == "after_download",
        speed=target.speed,
        settle_window=settle_window(args.settle_window, local=args.local),
        caps=caps,
        price=price,
    )
    with open_folder(out) as ledger:
        check_folder_server(out, ledger.state, configured_server(target.base_url), action="run")  # before anything
        check_folder_shard(out, ledger.state, shard)
        removed = sweep_parts(out)
        if ledger.set_aside is not None:
            say(f"note: the ledger's last line was torn (a crash); it was set aside in {ledger.set_aside}")
        if removed:
            say(f"note: removed {len(removed)} unfinished download(s) left by an earlier run")
        cost = estimate(expansion, ledger.state, price, caps, retry_failed=args.retry_failed)
        agree(args, manifest, len(jobs), cost, ledger, shard=shard)
        save_keys(out, expansion_digest(manifest, shard), (job.key for job in jobs))  # for `status`
        gallery = run_gallery(args, out, manifest, expansion, ledger.state)
        progress = RunProgress(sys.stderr, plain=True if args.plain else None, quiet=args.quiet)
        summary: RunSummary | None = None
        try:
            with progress:
                summary = signals.run(
                    _run,
                    _Plan(
                        manifest=manifest,
                        jobs=jobs,
                        shard=shard,
                        out=out,
                        target=target,
                        options=options,
                        rps=rate_share(args.rps or limits.requests_per_second, shard),
                        burst=count_share(limits.burst, shard),
                        max_in_flight=count_share(args.max_in_flight or limits.max_in_flight, shard),
                        http_timeout=args.http_timeout,
                        max_retry_after=max_retry_after(args.max_retry_after, local=args.local),
                        gallery=gallery,
                    ),
                    ledger,
                    progress,
                )
        finally:  # on success, failure, Ctrl-C, SIGTERM and SIGHUP alike; the CLI's boundary then says what happened
            write_results(out, jobs, ledger.state, name=manifest.name)
            if gallery is not None:
                gallery.final(ledger.state)
    return _report(summary, out, progress.elapsed, server=configured_server(target.base_url))


@dataclass(frozen=True, slots=True)
class _Plan:
    manifest: Manifest
    jobs: list[Job]
    shard: Shard | None
    out: Path
    target: _Target
    options: RunOptions
    rps: float
    burst: int
    max_in_flight: int
    http_timeout: float
    max_retry_after: float
    gallery: RunGallery | None = None


async def _run(plan: _Plan, ledger: Ledger, progress: RunProgress) -> RunSummary:
    async with trio.open_nursery() as nursery:
        base_url = plan.target.base_url
        if base_url is None:
            handle = await nursery.start(serve_emulator, plan.target.emulator)
            base_url = handle.base_url
        ledger.append(
            RunRecord(
                t=now(),
                command="run",
                tool_version=__version__,
                base_url=base_url,
                manifest_path=_path_text(plan.manifest.source_path),
                manifest_sha256=plan.manifest.source_sha256,
                jobs=len(plan.jobs),
                local=plan.target.base_url is None,
                price=plan.options.price.to_json(),
                max_usd=None if plan.options.caps.max_cost is None else float(plan.options.caps.max_cost),
                max_images=plan.options.caps.max_images,
                name=plan.manifest.name,
                shard=None if plan.shard is None else str(plan.shard),
            )
        )
        limiter = AdaptiveLimiter(plan.max_in_flight)
        async with (
            api_http(base_url, plan.target.api_key, timeout=httpx.Timeout(plan.http_timeout, pool=None)) as http,
            download_http() as downloads,
        ):
            client = retrying_client(
                http,
                rps=plan.rps,
                burst=plan.burst,
                events=progress,
                on_throttle=limiter.throttled,
                on_success=limiter.succeeded,
                max_retry_after=plan.max_retry_after,
            )
            runner = Runner(
                client=client,
                downloads=downloads,
                ledger=ledger,
                store=ImageStore(plan.out),
                limiter=limiter,
                options=plan.options,
                events=progress,
            )
            nursery.start_soon(_tick, progress)
            if plan.gallery is not None:
                nursery.start_soon(keep_gallery, plan.out, plan.gallery.dest, ledger, plan.gallery.snapshot)
            summary = await runner.run(plan.jobs)
        nursery.cancel_scope.cancel()
    return summary


async def _tick(progress: RunProgress) -> None:
    while True:
        await trio.sleep(1.0)
        progress.tick()


def _report(summary: RunSummary | None, out: Path, elapsed: float, *, server: Server) -> int:
    assert summary is not None
    fresh = summary.finished - summary.finished_before
    rate = f", {fresh / elapsed:.1f} jobs/s" if fresh and elapsed > 0 else ""
    say(
        f"done: {summary.finished} of {plural(summary.total, 'job')} finished, "
        f"{plural(summary.images, 'image')} in {out} "
        f"({elapsed:.1f} s{rate}); {summary.failed} failed"
    )
    if summary.stopped is not None:
        waiting = summary.refused + summary.not_submitted
        raise ApiUnavailableError(
            f"{summary.stopped.describe(str(server))} "
            f"({waiting} of {plural(summary.total, 'job')} not created: the batch stopped)",
            hint=summary.stopped.hint,
        )
    if summary.unsettled:
        say(
            f"unsettled: {plural(summary.unsettled, 'job')} with API errors past their retries or a create whose"
            " outcome is still unknown; run the same command again (it looks for their jobs before paying for new ones)"
        )
    if summary.failures:
        stages = ", ".join(f"{stage}: {count}" for stage, count in sorted(summary.failures.items()))
        say(f"failed by stage: {stages}; details: leapbatch status {out}; resubmit with --retry-failed")
        for reason, count in sorted(summary.reasons.items(), key=lambda item: -item[1])[:TOP_REASONS]:
            say(f"  x{count}: {reason}")
    if summary.budget is not None:
        flag = "--max-usd" if summary.budget.key == "max_usd" else "--max-images"
        raise BudgetReachedError(
            f"budget reached: {plural(summary.over_budget, 'job')} left ({summary.budget.committed}); "
            f"raise budget.{summary.budget.key} and run again",
            hint=f"or pass {flag}; `leapbatch status {out}` shows what was spent",
        )
    if server.local:
        say(f"next: leapbatch verify {out}  ·  leapbatch status {out}  (the emulator's jobs ended with the run)")
    else:
        say(f"next: leapbatch verify {out}  ·  leapbatch delete {out}  (removes the jobs from Leap's servers)")
    return EXIT_OK if summary.all_finished else EXIT_SOME_FAILED
