"""Seeded fault injection: what can go wrong (fault kinds), how often (profiles and rates), and when (the plan).

Design. `fault_plan(profile, rates, seed=..., delay_seconds=...)` builds a `SeededFaultPlan`, which the emulator
consults through two seams: `decide(request)` for every counted request (the four API routes and the image host,
in `asgi._App._respond`), and `job_fate(key)` once per created job (in `EmulatorState.create`). A request's
decision is a pure function of (seed, route, how many requests that route saw before): a fresh `random.Random`
seeded with that string draws whether a fault happens, which one, and its details (a Retry-After style, a status,
a malformed body). So the same sequence of requests meets the same faults in every run, and no decision depends
on the draws of another route or task. A job's fate is keyed by the job's identity (its request and how many
identical ones came before, from the job table), so it does not depend on the order concurrent creates arrive in.

Invariants:
- each fault kind belongs to its places: `API_FAULTS` to create/list/get/delete, `CREATE_FAULTS`, `LIST_FAULTS`
  and `GET_FAULTS` to one route each, `trickle` to every route, `IMAGE_FAULTS` to the image host, `JOB_FAULTS` to
  job creation; a rate is the chance that one request (or job) there meets that fault;
- per place, rates add up to at most 1: a larger sum is scaled down to 1, keeping the proportions;
- a fault runs the handler once or not at all (`HANDLER_RUNS` names the kinds that run it); `loses_reply` marks the
  kinds after which a created job's answer is lost, late or garbled: the emulator counts those creates ambiguous;
- the kinds in `TWISTS` change what the server does rather than what it says: they hand the handler a `Twist` and
  are counted when they take effect (a reused id needs an earlier job, a wrong id another job, an ignored page a
  page past the first), not when they are drawn;
- a new kind is appended to its place, so adding one never moves the draws of the kinds before it;
- a plan with every rate at 0 is never built: `fault_plan` returns None and the emulator stays faithful.
"""

from __future__ import annotations

import json
import math
import random
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

from leapbatch.emulator.asgi import DROP, Handler, Reply, Request, Twist, error_reply, pause
from leapbatch.emulator.config import JobFate

API_FAULTS = ("reset_before", "reset_after", "delay", "throttle", "server_error", "malformed")
CREATE_FAULTS = ("slow_commit", "list_lag", "duplicate_id", "extra_images")
LIST_FAULTS = ("page_ignored",)
GET_FAULTS = ("wrong_id", "transient_404")
ANY_ROUTE_FAULTS = ("trickle",)
JOB_FAULTS = ("fail", "stuck")
IMAGE_FAULTS = ("image_slow", "image_cut", "image_404", "image_wrong_type", "image_oversized")
FAULT_NAMES = API_FAULTS + JOB_FAULTS + IMAGE_FAULTS + CREATE_FAULTS + LIST_FAULTS + GET_FAULTS + ANY_ROUTE_FAULTS
PROFILES = ("none", "flaky", "chaos", "hostile")

HANDLER_RUNS = frozenset(
    {"reset_after", "delay", "malformed", "image_slow", "image_cut", "image_oversized", "slow_commit", "trickle"}
    | set(CREATE_FAULTS + LIST_FAULTS)
    | {"wrong_id"}
)
LOSES_REPLY = frozenset({"reset_after", "delay", "malformed", "slow_commit"})
TWISTS = frozenset(CREATE_FAULTS + LIST_FAULTS + ("wrong_id",))
EXTRA_IMAGES = ("1", "3", "299")  # how many more images than asked a job lists under `extra_images`
RETRY_AFTER_STYLES = ("seconds", "date", "huge", "garbage")
SERVER_ERRORS = (500, 502, 503, 504)
MALFORMED_STYLES = ("cut", "html", "stateless")
RESET_STYLES = ("silent", "midway")
OVERSIZED_LENGTH = 200 * 1024 * 1024  # what image_oversized announces: over any sane download cap

_PLACES: Mapping[str, tuple[str, ...]] = {
    "create": API_FAULTS + CREATE_FAULTS + ANY_ROUTE_FAULTS,
    "list": API_FAULTS + LIST_FAULTS + ANY_ROUTE_FAULTS,
    "get": API_FAULTS + GET_FAULTS + ANY_ROUTE_FAULTS,
    "delete": API_FAULTS + ANY_ROUTE_FAULTS,
    "image": IMAGE_FAULTS + ANY_ROUTE_FAULTS,
    "job": JOB_FAULTS,
}


@dataclass(frozen=True, slots=True)
class _Profile:
    rates: Mapping[str, float]
    server_errors: tuple[int, ...] = SERVER_ERRORS
    retry_after_styles: tuple[str, ...] = RETRY_AFTER_STYLES


_CHAOS: Mapping[str, float] = {
    "reset_before": 0.04,
    "reset_after": 0.03,
    "delay": 0.02,
    "throttle": 0.06,
    "server_error": 0.06,
    "malformed": 0.04,
    "fail": 0.05,
    "stuck": 0.03,
    "image_slow": 0.05,
    "image_cut": 0.07,
    "image_404": 0.07,
    "image_wrong_type": 0.03,
    "image_oversized": 0.03,
}
_HOSTILE: Mapping[str, float] = {
    "slow_commit": 0.03,
    "list_lag": 0.10,
    "duplicate_id": 0.01,
    "extra_images": 0.02,
    "page_ignored": 0.05,
    "wrong_id": 0.02,
    "transient_404": 0.03,
    "trickle": 0.005,
}

_PROFILES: Mapping[str, _Profile] = {
    "none": _Profile({}),
    # ~5% of requests, nearly all of them the kinds a client simply retries; no Retry-After that stalls a run.
    "flaky": _Profile(
        {"throttle": 0.025, "server_error": 0.015, "reset_before": 0.01, "image_cut": 0.02, "image_404": 0.03},
        server_errors=(503,),
        retry_after_styles=("seconds", "date"),
    ),
    # ~25% of requests and ~8% of jobs, every kind a client can survive without trusting the server less.
    "chaos": _Profile(_CHAOS),
    # chaos, plus the servers that lie, lag and stall: late commits, lagging listings, reused and wrong ids, extra
    # images, spurious 404s, ignored pages and trickled bodies (what docs/reliability.md's promises must hold against).
    "hostile": _Profile({**_CHAOS, **_HOSTILE}),
}


@dataclass(frozen=True, slots=True)
class InjectedFault:
    """One fault decided for one request: its kind (`name`), its details, and how it breaks the exchange."""

    name: str
    variant: str = ""  # a Retry-After style, a status, a malformed or reset style, an image count; "" if none
    seconds: float = 0.0  # how long `delay`, `image_slow` and `slow_commit` wait, how late `list_lag` lists
    rate: float = 0.0  # bytes per second under `trickle`

    @property
    def loses_reply(self) -> bool:
        """Return whether a job created under this fault may never be known to the client."""
        return self.name in LOSES_REPLY

    @property
    def counts_itself(self) -> bool:
        """Return whether the state counts this fault when it takes effect (a twist), rather than when drawn."""
        return self.name in TWISTS

    def twist(self) -> Twist | None:
        """Return how this fault bends what the server does, or None when it only changes what it says."""
        if self.name == "extra_images":
            return Twist(extra_images=int(self.variant))
        twists = {
            "slow_commit": Twist(commit_after=self.seconds),
            "list_lag": Twist(list_lag=self.seconds),
            "duplicate_id": Twist(reuse_id=True),
            "wrong_id": Twist(wrong_id=True),
            "page_ignored": Twist(ignore_page=True),
        }
        return twists.get(self.name)

    async def apply(self, request: Request, handler: Handler) -> Reply:
        """Return the broken, late or replaced reply this fault sends."""
        if self.name not in HANDLER_RUNS:
            return self._instead(request)
        twist = self.twist()
        reply = await handler(request if twist is None else replace(request, twist=twist))
        if self.name == "slow_commit":  # the job commits `seconds` after the request, the answer as long after
            await pause(2 * self.seconds)
            return reply
        if self.name == "trickle":
            return replace(reply, trickle=self.rate)
        if twist is not None:
            return reply
        if self.name in ("delay", "image_slow"):
            await pause(self.seconds)
            return reply
        if self.name == "malformed":
            return _mangled(reply, self.variant)
        if self.name == "image_oversized":
            return replace(reply, length=OVERSIZED_LENGTH)
        if self.name == "reset_after" and self.variant == "silent":
            return DROP
        return _cut_short(reply)  # reset_after midway, image_cut

    def _instead(self, request: Request) -> Reply:
        """Return the reply sent instead of running the handler."""
        if self.name == "reset_before":
            return DROP
        if self.name == "throttle":
            retry_after = (("retry-after", _retry_after(self.variant)),)
            return error_reply(429, "ThrottlerException: Too Many Requests", headers=retry_after)
        if self.name == "server_error":
            return _server_error(int(self.variant))
        if self.name == "image_404":
            return error_reply(404, f"Cannot GET {request.path}")  # what the host says before the job is finished
        if self.name == "transient_404":
            return error_reply(404, f"Inference {request.params.get('inference_id', '')} not found")
        if self.name == "image_wrong_type":
            return Reply(200, _html_page("Just a moment..."), "text/html; charset=utf-8")
        raise AssertionError(f"no reply for fault {self.name!r}")  # every kind is covered above or in apply


def _retry_after(style: str) -> str:
    if style == "seconds":
        return "1"
    if style == "date":
        # An HTTP date has whole seconds: 2 s ahead, truncated, is 1 to 2 s away when it is read.
        return format_datetime(datetime.now(UTC) + timedelta(seconds=2), usegmt=True)
    return "86400" if style == "huge" else "soon"


def _html_page(title: str) -> bytes:
    return f"<!DOCTYPE html><html><head><title>{title}</title></head><body><h1>{title}</h1></body></html>".encode()


def _server_error(status: int) -> Reply:
    if status in (502, 504):  # a proxy in front of the API answers these, with its own page
        title = f"{status} {'Bad Gateway' if status == 502 else 'Gateway Time-out'}"
        page = f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>{title}</h1></center>\r\n"
        return Reply(status, (page + "<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n").encode(), "text/html")
    return error_reply(status, "Internal server error" if status == 500 else "Service Unavailable")


def _cut_short(reply: Reply) -> Reply:
    """Return the reply with half its body sent and the connection closed (an empty body still announces 1)."""
    return replace(reply, body=reply.body[: len(reply.body) // 2], length=max(len(reply.body), 1))


def _without_state(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: item for key, item in value.items() if key not in ("state", "status")}
    if isinstance(value, list):
        return [_without_state(item) for item in value] or [{}]  # an empty page would still be valid
    return {}


def _mangled(reply: Reply, style: str) -> Reply:
    """Return the reply, complete and with its status, but with a body that is not what the API promises."""
    if style == "html":
        return replace(reply, body=_html_page("Welcome"), content_type="text/html; charset=utf-8")
    json_type = "application/json; charset=utf-8"
    if style == "cut":  # JSON that stops half way (an empty body becomes a lone brace)
        return replace(reply, body=reply.body[: len(reply.body) // 2] or b"{", content_type=json_type)
    try:
        value = json.loads(reply.body)
    except ValueError:
        value = None
    body = json.dumps(_without_state(value), separators=(",", ":")).encode()
    return replace(reply, body=body, content_type=json_type)


def _table(rates: Mapping[str, float], names: tuple[str, ...]) -> list[tuple[float, str]]:
    """Return (cumulative upper bound, fault) for the faults of one place, scaled so the bounds stay within 1."""
    total = sum(rates.get(name, 0.0) for name in names)
    scale = 1.0 / total if total > 1.0 else 1.0
    table: list[tuple[float, str]] = []
    bound = 0.0
    for name in names:
        if rates.get(name, 0.0) > 0.0:
            bound += rates[name] * scale
            table.append((bound, name))
    return table


def _pick(table: list[tuple[float, str]], draw: float) -> str | None:
    for bound, name in table:
        if draw < bound:
            return name
    return None


class SeededFaultPlan:
    """Decide faults per request and per job from a seed and per-fault rates (see the module docstring).

    A plan counts the requests it decides, so give each emulator its own (`fault_plan` builds a new one each call).
    """

    def __init__(
        self,
        rates: Mapping[str, float],
        *,
        seed: int = 0,
        delay_seconds: float = 2.0,
        list_lag_seconds: float = 5.0,
        trickle_rate: float = 8.0,
        profile: str = "none",
        server_errors: tuple[int, ...] = SERVER_ERRORS,
        retry_after_styles: tuple[str, ...] = RETRY_AFTER_STYLES,
    ) -> None:
        self.rates = {name: rate for name, rate in rates.items() if rate > 0.0}
        self.seed = seed
        self.delay_seconds = delay_seconds
        self.list_lag_seconds = list_lag_seconds
        self.trickle_rate = trickle_rate
        self.profile = profile
        self._server_errors = server_errors
        self._retry_after_styles = retry_after_styles
        self._tables = {place: _table(self.rates, names) for place, names in _PLACES.items()}
        self._seen: Counter[str] = Counter()  # requests decided so far, per route

    def decide(self, request: Request) -> InjectedFault | None:
        """Return the fault for the next request to `request.route`, or None."""
        count = self._seen[request.route]
        self._seen[request.route] += 1
        table = self._tables.get(request.route)
        if not table:
            return None
        # A string seed is hashed with sha512 by `random`: the same draws in every process and on every platform.
        rng = random.Random(f"{self.seed}:{request.route}:{count}")
        name = _pick(table, rng.random())
        return None if name is None else self._build(name, rng)

    def job_fate(self, key: str) -> JobFate | None:
        """Return whether the job with identity `key` fails, gets stuck, or (None) runs normally."""
        name = _pick(self._tables["job"], random.Random(f"{self.seed}:job:{key}").random())
        return "fail" if name == "fail" else "stuck" if name == "stuck" else None

    def _build(self, name: str, rng: random.Random) -> InjectedFault:
        if name in ("delay", "image_slow", "slow_commit"):
            return InjectedFault(name, seconds=self.delay_seconds)
        if name == "list_lag":
            return InjectedFault(name, seconds=self.list_lag_seconds)
        if name == "trickle":
            return InjectedFault(name, rate=self.trickle_rate)
        choices = {
            "reset_after": RESET_STYLES,
            "throttle": self._retry_after_styles,
            "server_error": tuple(str(status) for status in self._server_errors),
            "malformed": MALFORMED_STYLES,
            "extra_images": EXTRA_IMAGES,
        }.get(name)
        return InjectedFault(name, rng.choice(choices) if choices else "")

    def describe(self) -> str:
        """Return a one-line summary: the profile, then each rate in percent."""
        rates = ", ".join(f"{name} {self.rates[name]:.1%}" for name in FAULT_NAMES if name in self.rates)
        timing = f"delay {self.delay_seconds:g} s"
        if "list_lag" in self.rates:
            timing += f", list lag {self.list_lag_seconds:g} s"
        if "trickle" in self.rates:
            timing += f", trickle {self.trickle_rate:g} B/s"
        return f"{self.profile} (seed {self.seed}, {timing}): {rates}"


def fault_plan(
    profile: str = "none",
    rates: Mapping[str, float] | None = None,
    *,
    seed: int = 0,
    delay_seconds: float = 2.0,
    list_lag_seconds: float = 5.0,
    trickle_rate: float = 8.0,
) -> SeededFaultPlan | None:
    """Return the plan of a profile with per-fault `rates` on top, or None when no fault can happen.

    Raise `ValueError` for an unknown profile or fault name, a rate outside 0..1, a negative delay or lag, or a
    trickle rate that is not above 0.
    """
    chosen = _PROFILES.get(profile)
    if chosen is None:
        raise ValueError(f"unknown fault profile {profile!r}; expected one of {', '.join(PROFILES)}")
    merged = dict(chosen.rates)
    for name, rate in (rates or {}).items():
        if name not in FAULT_NAMES:
            raise ValueError(f"unknown fault {name!r}; expected one of {', '.join(FAULT_NAMES)}")
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0.0 <= rate <= 1.0:
            raise ValueError(f"the rate of fault {name!r} must be between 0 and 1, got {rate!r}")
        merged[name] = float(rate)
    if not (math.isfinite(delay_seconds) and delay_seconds >= 0.0):
        raise ValueError(f"the fault delay must be a number of seconds >= 0, got {delay_seconds!r}")
    if not (math.isfinite(list_lag_seconds) and list_lag_seconds >= 0.0):
        raise ValueError(f"the list lag must be a number of seconds >= 0, got {list_lag_seconds!r}")
    if not (math.isfinite(trickle_rate) and trickle_rate > 0.0):
        raise ValueError(f"the trickle rate must be a number of bytes per second > 0, got {trickle_rate!r}")
    if not any(rate > 0.0 for rate in merged.values()):
        return None
    return SeededFaultPlan(
        merged,
        seed=seed,
        delay_seconds=delay_seconds,
        list_lag_seconds=list_lag_seconds,
        trickle_rate=trickle_rate,
        profile=profile,
        server_errors=chosen.server_errors,
        retry_after_styles=chosen.retry_after_styles,
    )
