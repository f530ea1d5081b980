"""`leapbatch emulator`: serve the local Leap emulator until Ctrl-C."""

from __future__ import annotations

import argparse
import errno
import math
import signal
import sys
import textwrap
from dataclasses import dataclass
from functools import partial

import trio

from leapbatch.cli._common import SubParsers
from leapbatch.emulator import (
    FAULT_NAMES,
    PROFILES,
    WEBHOOK_SHAPES,
    EmulatorConfig,
    EmulatorHandle,
    SeededFaultPlan,
    WebhookShape,
    fault_plan,
    serve_emulator,
)
from leapbatch.emulator.config import IMAGE_MODES, ImageMode
from leapbatch.errors import UsageError
from leapbatch.wire import API_PREFIX

DESCRIPTION = """\
Serve a local emulator of Leap's image API: the four routes of /api/v1/images/models/{modelId}/inferences,
bearer auth, NestJS error bodies, jobs that go queued -> processing -> finished over a simulated time, PNG images
on a second port (a separate origin, like Leap's CDN), webhooks, and counters at GET /_emulator/stats.

Point leapbatch at it with LEAP_BASE_URL=<the printed API URL> and any LEAP_API_KEY (or the --token value)."""

EPILOG = """\
timing: a job takes expected_generation_seconds(steps, numberOfImages) / SPEED seconds (Leap's 4-20 s per image);
        the first 10% of that it is queued, then processing, then finished (or failed, see --fail-rate).
faults: {faults}
examples:
  leapbatch emulator                          # API on 127.0.0.1:8787, images on 127.0.0.1:8788
  leapbatch emulator --speed inf --port 0     # instant jobs on a free port (the URL is printed)
  leapbatch emulator --fail-rate 0.1 --seed 7 # a reproducible 10% of jobs end failed
  leapbatch emulator --faults chaos --seed 7  # a quarter of requests misbehave, the same way every run
  leapbatch emulator --fault throttle=0.2 --fault reset_after=0.05   # only these faults, at these rates
  leapbatch emulator --faults hostile --speed 50   # then: leapbatch run --speed 50 ... (see docs/emulator.md)
  leapbatch emulator --models sdxl --billing-limit 100 --clock-offset -300   # a real account's conditions
docs: docs/emulator.md""".format(faults=textwrap.fill(", ".join(FAULT_NAMES), 110, subsequent_indent=" " * 8))


DEFAULT_FAULT_DELAY = 2.0
DEFAULT_LIST_LAG = 5.0
DEFAULT_TRICKLE_RATE = 8.0


def register(sub: SubParsers) -> None:
    """Add the `emulator` subcommand."""
    parser = sub.add_parser(
        "emulator",
        help="serve a local emulator of Leap's image API",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    parser.add_argument(
        "--port", type=int, default=8787, metavar="N", help="API port; 0 picks a free one (default: %(default)s)"
    )
    parser.add_argument(
        "--image-port",
        type=int,
        default=8788,
        metavar="N",
        help="image host port (a second origin); 0 picks a free one (default: %(default)s)",
    )
    parser.add_argument("--token", metavar="T", help="accept only this bearer token (default: any non-empty token)")
    parser.add_argument(
        "--speed",
        type=float,
        default=1.0,
        metavar="X",
        help="run jobs X times faster than Leap; 'inf' makes them finish at once (default: %(default)s)",
    )
    parser.add_argument(
        "--fail-rate",
        type=float,
        default=0.0,
        metavar="P",
        help="probability (0 to 1) that a job ends 'failed' instead of 'finished' (default: %(default)s)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        metavar="N",
        help="seeds every random decision, job fates and faults, so a run reproduces (default: %(default)s)",
    )
    parser.add_argument(
        "--plain-entities",
        action="store_true",
        help="leave out the undocumented keys real answers carried (weightsId, workspaceId, sampler, isDeleted,"
        " routedToQueue)",
    )
    parser.add_argument(
        "--webhook-shape",
        choices=WEBHOOK_SHAPES,
        default="bare",
        help="webhook body: the entity as Leap's docs show it, or {\"result\": entity} as Leap's starter app reads it"
        " (default: %(default)s)",
    )
    parser.add_argument(
        "--images",
        choices=IMAGE_MODES,
        default="subject",
        help="what the images show: the subject the prompt names (a fox for 'a red fox', styled by words such as"
        " watercolor or night), or abstract shapes (default: %(default)s)",
    )
    conditions = parser.add_argument_group("server conditions (each applies to every request)")
    conditions.add_argument(
        "--clock-offset",
        type=float,
        default=0.0,
        metavar="S",
        help="the server's clock (createdAt, Date) runs S seconds ahead, or behind if negative (default: 0)",
    )
    conditions.add_argument(
        "--billing-limit",
        type=int,
        metavar="N",
        help="the account may make N images; creates past it answer 402 Payment Required (default: no limit)",
    )
    conditions.add_argument(
        "--models",
        metavar="ID,...",
        help="only these model ids exist; others answer 404 'Model not found' on create and list (default: all)",
    )
    faults = parser.add_argument_group("faults (each drawn per request or per job, seeded by --seed)")
    faults.add_argument(
        "--faults",
        choices=PROFILES,
        default="none",
        help="misbehave on purpose: flaky (~5%% of requests, retriable faults), chaos (~25%%, every kind), or"
        " hostile (chaos plus servers that lag, stall and lie) (default: %(default)s)",
    )
    faults.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="NAME=P",
        help="inject fault NAME with probability P per request (per job for fail, stuck), over the profile's rate;"
        " repeatable",
    )
    faults.add_argument(
        "--fault-delay",
        type=float,
        default=DEFAULT_FAULT_DELAY,
        metavar="S",
        help="seconds the delay and image_slow faults wait before answering, and slow_commit before committing"
        " (then as long again before answering) (default: %(default)s)",
    )
    faults.add_argument(
        "--list-lag",
        type=float,
        default=DEFAULT_LIST_LAG,
        metavar="S",
        help="seconds a job stays out of listings after its create answered, under list_lag (default: %(default)s)",
    )
    faults.add_argument(
        "--trickle-rate",
        type=float,
        default=DEFAULT_TRICKLE_RATE,
        metavar="B",
        help="bytes per second a body is sent at under trickle (default: %(default)s)",
    )
    parser.set_defaults(handler=run)


def _fault_rates(values: list[str]) -> dict[str, float]:
    """Return the rates the `--fault NAME=P` options name, or raise `UsageError`."""
    rates: dict[str, float] = {}
    for value in values:
        name, _, rate = value.partition("=")  # no "=" leaves the rate empty, which float() refuses
        try:
            rates[name.strip()] = float(rate)
        except ValueError:
            raise UsageError(f"--fault expects NAME=P, got {value!r}", hint="e.g. --fault throttle=0.1") from None
    return rates


@dataclass(frozen=True, slots=True)
class ServerConditions:
    """What `leapbatch emulator` sets beyond `run --local`: the wire's options and the server conditions."""

    plain_entities: bool = False
    webhook_shape: WebhookShape = "bare"
    clock_offset: float = 0.0
    billing_limit: int | None = None
    models: frozenset[str] | None = None
    list_lag: float = DEFAULT_LIST_LAG
    trickle_rate: float = DEFAULT_TRICKLE_RATE
    images: ImageMode = "subject"  # `run --local` shows subjects too


def emulated(
    *,
    token: str | None,
    speed: float,
    fail_rate: float,
    seed: int,
    faults: str,
    fault: list[str],
    fault_delay: float,
    server: ServerConditions | None = None,
) -> EmulatorConfig:
    """Return the configuration of an emulator (for `emulator` and `run --local`), or raise `UsageError`."""
    server = server or ServerConditions()
    if not speed > 0:  # NaN fails this too
        raise UsageError(f"--speed must be greater than 0, got {speed}", hint="use --speed inf for instant jobs")
    if not 0.0 <= fail_rate <= 1.0:
        raise UsageError(f"--fail-rate must be between 0 and 1, got {fail_rate}", hint="0.1 makes one job in ten fail")
    if not math.isfinite(server.clock_offset):
        raise UsageError(f"--clock-offset must be a number of seconds, got {server.clock_offset}", hint="e.g. -300")
    if server.billing_limit is not None and server.billing_limit < 0:
        raise UsageError(f"--billing-limit must be 0 or more images, got {server.billing_limit}", hint="e.g. 100")
    try:
        plan = fault_plan(
            faults,
            _fault_rates(fault),
            seed=seed,
            delay_seconds=fault_delay,
            list_lag_seconds=server.list_lag,
            trickle_rate=server.trickle_rate,
        )
    except ValueError as exc:
        raise UsageError(str(exc), hint="`leapbatch emulator --help` lists the faults; rates go from 0 to 1") from None
    return EmulatorConfig(
        token=token,
        speed=speed,
        fail_rate=fail_rate,
        seed=seed,
        faults=plan,
        plain_entities=server.plain_entities,
        webhook_shape=server.webhook_shape,
        clock_offset=server.clock_offset,
        billing_limit=server.billing_limit,
        models=server.models,
        images=server.images,
    )


def _models(value: str | None) -> frozenset[str] | None:
    if value is None:
        return None
    models = frozenset(part.strip() for part in value.split(",") if part.strip())
    if not models:
        raise UsageError("--models needs at least one model id", hint="e.g. --models sdxl,sd15")
    return models


def config_from(args: argparse.Namespace) -> EmulatorConfig:
    """Return the emulator configuration the options describe, or raise `UsageError`."""
    for flag, port in (("--port", args.port), ("--image-port", args.image_port)):
        if not 0 <= port <= 65535:
            raise UsageError(f"{flag} must be between 0 and 65535, got {port}", hint="0 picks a free port")
    if args.port == args.image_port != 0:
        raise UsageError(f"--port and --image-port are both {args.port}", hint="the image host needs its own port")
    if args.token is not None and not args.token.strip():
        raise UsageError("--token must not be empty", hint="leave it out to accept any token")
    return emulated(
        token=args.token,
        speed=args.speed,
        fail_rate=args.fail_rate,
        seed=args.seed,
        faults=args.faults,
        fault=args.fault,
        fault_delay=args.fault_delay,
        server=ServerConditions(
            plain_entities=args.plain_entities,
            webhook_shape=args.webhook_shape,
            clock_offset=args.clock_offset,
            billing_limit=args.billing_limit,
            models=_models(args.models),
            list_lag=args.list_lag,
            trickle_rate=args.trickle_rate,
            images=args.images,
        ),
    )


def _announce(handle: EmulatorHandle, token: str | None) -> None:
    shown = "<token>" if token else "any-token"
    example = f"{handle.base_url}{API_PREFIX}/demo/inferences"
    print(f"api:    {handle.base_url}", flush=True)
    print(f"images: {handle.image_base_url}", flush=True)
    print(
        f"try:    curl -s -H 'Authorization: Bearer {shown}' -H 'Content-Type: application/json' "
        f'-d \'{{"prompt": "a red fox"}}\' {example}',
        flush=True,
    )
    config = handle.emulator.config
    if isinstance(config.faults, SeededFaultPlan):
        print(f"faults: {config.faults.describe()}", file=sys.stderr, flush=True)
    conditions = [
        *([f"clock {config.clock_offset:+g} s"] if config.clock_offset else []),
        *([f"billing limit {config.billing_limit} images"] if config.billing_limit is not None else []),
        *([f"models {', '.join(sorted(config.models))}"] if config.models is not None else []),
    ]
    if conditions:
        print(f"conditions: {'; '.join(conditions)}", file=sys.stderr, flush=True)
    print("(Ctrl-C stops it)", file=sys.stderr, flush=True)


async def _serve(config: EmulatorConfig, args: argparse.Namespace) -> None:
    # Receiving SIGINT as a signal (not as KeyboardInterrupt at a random point) lets the servers close cleanly.
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            serving = partial(serve_emulator, config, host=args.host, port=args.port, image_port=args.image_port)
            handle: EmulatorHandle = await nursery.start(serving)
            _announce(handle, config.token)
            async for _ in signals:
                break
            nursery.cancel_scope.cancel()


def _only_os_error(exc: BaseException) -> OSError | None:
    """Return the OSError that `exc` is (or that is all an exception group holds), else None."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc if isinstance(exc, OSError) else None


def run(args: argparse.Namespace) -> int:
    """Serve the emulator until SIGINT or SIGTERM, then return 0."""
    config = config_from(args)
    try:
        trio.run(_serve, config, args)
    except (OSError, BaseExceptionGroup) as exc:
        bind = _only_os_error(exc)  # binding a port is the only expected OSError (in use, not allowed, bad host)
        if bind is None:
            raise
        reason = "address already in use" if bind.errno == errno.EADDRINUSE else (bind.strerror or str(bind))
        raise UsageError(
            f"cannot listen on {args.host} (ports {args.port} and {args.image_port}): {reason}",
            hint="pick other ports with --port and --image-port (0 picks free ones)",
        ) from None
    return 0
