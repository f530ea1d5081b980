"""Fault injection: each fault does what docs/emulator.md promises, as httpx, LeapClient and ImageStore see it.

Tests that take `make_target` run twice, in-process (`Emulator.transport()`) and served (hypercorn on 127.0.0.1
port 0), so a broken connection or a timeout looks the same to a client either way. A fault is forced with rate
1.0; which variant each request meets (a Retry-After style, a status, a body) is read from a twin plan with the
same seed, which decides exactly as the emulator's does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from emulator_support import MODEL, MakeTarget, Target

from leapbatch import errors
from leapbatch.api.client import LeapClient, inferences_path
from leapbatch.cli import main
from leapbatch.emulator import (
    API_ORIGIN,
    FAULT_NAMES,
    PROFILES,
    Emulator,
    EmulatorConfig,
    InjectedFault,
    ManualClock,
    Request,
    SeededFaultPlan,
    fault_plan,
)
from leapbatch.emulator.faults import API_FAULTS, IMAGE_FAULTS, OVERSIZED_LENGTH
from leapbatch.folder.images import ImageStore
from leapbatch.run.fetch import download_image
from leapbatch.wire import CreateInferenceDto, InferenceState

FOX = CreateInferenceDto(prompt="a red fox", width=64, height=64)
KEY = "a" * 64
LONG = 30.0  # a delay no test waits for: clients give up after SHORT
SHORT = 0.05


def forced(name: str, *, seed: int = 0, delay: float = LONG) -> SeededFaultPlan:
    """Return a plan that injects fault `name` into every request (or job) it applies to."""
    plan = fault_plan(rates={name: 1.0}, seed=seed, delay_seconds=delay)
    assert plan is not None
    return plan


def request_to(route: str) -> Request:
    """Return a request to `route`, as the plan sees it (only the route matters to a decision)."""
    return Request(route, "GET", "/", b"", {}, b"", False, {})


def variants(name: str, count: int, *, route: str = "create") -> list[str]:
    """Return the variants of fault `name` that the first `count` requests to `route` meet under `forced(name)`."""
    twin = forced(name)
    return [fault.variant for fault in (twin.decide(request_to(route)) for _ in range(count)) if fault is not None]


class OnlyOn:
    """A plan that lets faults reach only some routes, so a test can look at the result through the others."""

    def __init__(self, plan: SeededFaultPlan, *routes: str) -> None:
        self.plan = plan
        self.routes = routes

    def decide(self, request: Request) -> InjectedFault | None:
        """Return the wrapped plan's fault for the chosen routes, else None."""
        return self.plan.decide(request) if request.route in self.routes else None


async def served(make_target: MakeTarget, faults: Any, **config: Any) -> Target:
    """Return a target whose emulator has instant jobs and the given fault plan."""
    return await make_target(EmulatorConfig(speed=float("inf"), faults=faults, **config))


# --- API faults ------------------------------------------------------------------------------------------------------


async def test_reset_before_is_a_transport_error_and_creates_nothing(make_target: MakeTarget) -> None:
    """reset_before closes the connection unanswered before the handler runs: no job, no ambiguity."""
    target = await served(make_target, forced("reset_before"))

    with pytest.raises(errors.TransportError):
        await target.leap.create(MODEL, FOX)
    with pytest.raises(httpx.RemoteProtocolError, match="without sending a response"):
        await target.api.get(inferences_path(MODEL))

    stats = await target.stats()
    assert (0, 0, {"reset_before": 2}) == (stats["jobs"]["created"], stats["ambiguous_creates"], stats["faults"])


async def test_reset_after_loses_the_answer_of_a_create_that_happened(make_target: MakeTarget) -> None:
    """reset_after runs the create, then cuts the connection: TransportError, yet the job is listed (ambiguous)."""
    target = await served(make_target, OnlyOn(forced("reset_after"), "create"))

    for _ in range(4):
        with pytest.raises(errors.TransportError):
            await target.leap.create(MODEL, FOX)
    listed = await target.leap.find_all(MODEL)

    stats = await target.stats()
    assert (4, 4, 4) == (len(listed), stats["jobs"]["created"], stats["ambiguous_creates"])


async def test_reset_after_cuts_silently_or_mid_body(make_target: MakeTarget) -> None:
    """A reset comes either with no response at all or with the headers and half the body, as over a socket."""
    target = await served(make_target, forced("reset_after"))
    expected = {"silent": "without sending a response", "midway": "without sending complete message body"}
    styles = variants("reset_after", 4)

    messages = []
    for _ in styles:
        with pytest.raises(httpx.RemoteProtocolError) as caught:
            await target.api.post(inferences_path(MODEL), json={"prompt": "a red fox"})
        messages.append(str(caught.value))

    assert {"silent", "midway"} == set(styles)
    assert [True] * len(styles) == [expected[style] in got for style, got in zip(styles, messages, strict=True)]


async def test_delay_outlasts_a_shorter_client_timeout(make_target: MakeTarget) -> None:
    """A delayed create has made its job; a client that stops waiting first sees a TransportError (ambiguous)."""
    target = await served(make_target, forced("delay"))
    target.api.timeout = httpx.Timeout(SHORT)

    with pytest.raises(errors.TransportError, match="no answer in time"):
        await LeapClient(target.api).create(MODEL, FOX)

    stats = await target.stats()
    assert (1, 1, {"delay": 1}) == (stats["jobs"]["created"], stats["ambiguous_creates"], stats["faults"])


async def test_delay_answers_after_delay_seconds_in_process(autojump_clock: trio.testing.MockClock) -> None:
    """In-process on virtual time, a patient client gets its 201 after exactly `delay_seconds`."""
    emulator = Emulator(EmulatorConfig(faults=forced("delay", delay=2.0)))
    headers = {"Authorization": "Bearer key"}
    async with httpx.AsyncClient(transport=emulator.transport(), base_url=API_ORIGIN, headers=headers) as http:
        start = trio.current_time()
        response = await http.post(inferences_path(MODEL), json={"prompt": "a red fox"})
        waited = trio.current_time() - start

    assert 201 == response.status_code
    assert pytest.approx(2.0) == waited


async def test_throttle_answers_429_with_every_retry_after_style(make_target: MakeTarget) -> None:
    """throttle answers 429 before the handler; Retry-After comes as seconds, a date, a huge number or garbage."""
    target = await served(make_target, forced("throttle"))
    styles = variants("throttle", 6)

    got: list[tuple[str, float | None]] = []
    for style in styles:
        with pytest.raises(errors.RateLimitedError) as caught:
            await target.leap.create(MODEL, FOX)
        got.append((style, caught.value.retry_after))
    raw = await target.api.get(inferences_path(MODEL))

    assert {"seconds", "date", "huge", "garbage"} == set(styles)
    by_style = {"seconds": 1.0, "huge": 86_400.0, "garbage": None}  # the policy clamps huge; garbage is no wish
    assert [(style, by_style[style]) for style, _ in got if style != "date"] == [
        pair for pair in got if pair[0] != "date"
    ]
    assert [True] == list({value is not None and 0.0 <= value <= 2.0 for style, value in got if style == "date"})
    assert (429, 429, "ThrottlerException: Too Many Requests") == (
        raw.status_code,
        raw.json()["statusCode"],
        raw.json()["message"],
    )
    assert "retry-after" in raw.headers
    assert 0 == (await target.stats())["jobs"]["created"]


async def test_server_error_answers_each_5xx(make_target: MakeTarget) -> None:
    """server_error answers 500, 502, 503 or 504 (a proxy's HTML page for 502 and 504) before the handler."""
    target = await served(make_target, forced("server_error"))
    statuses = [int(status) for status in variants("server_error", 6)]

    got: list[tuple[int, bool]] = []
    for _ in statuses:
        with pytest.raises(errors.ServerError) as caught:
            await target.leap.create(MODEL, FOX)
        got.append((caught.value.status, "non-JSON error body (text/html" in caught.value.message))

    assert {500, 502, 503, 504} == set(statuses)
    assert [(status, status in (502, 504)) for status in statuses] == got
    assert 0 == (await target.stats())["jobs"]["created"]


async def test_malformed_bodies_are_malformed_responses(make_target: MakeTarget) -> None:
    """malformed answers 2xx with cut JSON, an HTML page or no state; the creates happened (ambiguous)."""
    target = await served(make_target, forced("malformed"))
    styles = variants("malformed", 6)

    for _ in styles:
        with pytest.raises(errors.MalformedResponseError):
            await target.leap.create(MODEL, FOX)
    with pytest.raises(errors.MalformedResponseError):
        await target.leap.find_all(MODEL)

    stats = await target.stats()
    assert {"cut", "html", "stateless"} == set(styles)
    assert (6, 6, {"malformed": 7}) == (stats["jobs"]["created"], stats["ambiguous_creates"], stats["faults"])


# --- job faults ------------------------------------------------------------------------------------------------------


async def test_fail_makes_the_job_end_failed(make_target: MakeTarget) -> None:
    """fail is decided at creation: the job answers 201 queued and ends failed, without images."""
    target = await served(make_target, forced("fail"))

    created = await target.leap.create(MODEL, FOX)
    found = await target.leap.find_one(MODEL, created.id)

    assert (InferenceState.QUEUED, InferenceState.FAILED, []) == (created.state, found.state, found.images)
    assert {"fail": 1} == (await target.stats())["faults"]


async def test_stuck_jobs_stay_queued_long_after_their_duration(
    make_target: MakeTarget, manual_clock: ManualClock
) -> None:
    """stuck keeps a job queued forever: an hour after a 9 s job it is still queued, with no webhook due."""
    target = await make_target(EmulatorConfig(faults=forced("stuck")), clock=manual_clock)

    created = await target.leap.create(MODEL, FOX)
    manual_clock.advance(3600)
    found = await target.leap.find_one(MODEL, created.id)

    assert (InferenceState.QUEUED, []) == (found.state, found.images)
    assert [] == await target.leap.find_all(MODEL, only_finished=True)
    assert {"stuck": 1} == (await target.stats())["faults"]


def test_job_fates_come_from_the_job_not_its_arrival() -> None:
    """A job's fate depends on the seed and the job's identity key, nothing else."""
    keys = [f"{n:064x}:0" for n in range(200)]
    plan = fault_plan(rates={"fail": 0.3, "stuck": 0.2}, seed=5)
    assert plan is not None

    fates = [plan.job_fate(key) for key in keys]

    assert fates == [plan.job_fate(key) for key in reversed(keys)][::-1]
    assert {None, "fail", "stuck"} == set(fates)


# --- image faults ----------------------------------------------------------------------------------------------------

IMAGE_OUTCOMES = {
    "image_slow": ("no answer in time", True),
    "image_cut": ("cut short after", True),
    "image_404": ("HTTP 404", True),
    "image_wrong_type": ("content type text/html is not", False),
    "image_oversized": (f"announces {OVERSIZED_LENGTH} bytes, over the", False),
}


@pytest.mark.parametrize("fault", IMAGE_FAULTS)
async def test_image_faults_fail_the_download_as_promised(make_target: MakeTarget, fault: str, tmp_path: Path) -> None:
    """Each image fault ends `download_image` in the DownloadError it promises, and leaves no file behind."""
    target = await served(make_target, forced(fault))
    if fault == "image_slow":  # only here: a loaded machine must not turn another fault into a timeout
        target.images.timeout = httpx.Timeout(SHORT)
    created = await target.leap.create(MODEL, FOX)
    uri = (await target.leap.find_one(MODEL, created.id)).images[0].uri

    with pytest.raises(errors.DownloadError) as caught:
        await download_image(target.images, ImageStore(tmp_path), uri, key=KEY, index=0, width=64, height=64)

    message, retriable = IMAGE_OUTCOMES[fault]
    assert (True, retriable) == (message in caught.value.message, caught.value.retriable)
    assert [] == list(await trio.Path(tmp_path).rglob("*.*"))
    assert {fault: 1} == (await target.stats())["faults"]


async def test_image_faults_as_raw_http(make_target: MakeTarget) -> None:
    """Raw: wrong_type is a 200 HTML page; oversized announces 200 MiB then breaks off; cut breaks off early."""
    plan = fault_plan(rates={"image_wrong_type": 0.5, "image_oversized": 0.3, "image_cut": 0.2})
    target = await served(make_target, plan)
    created = await target.leap.create(MODEL, FOX)
    uri = (await target.leap.find_one(MODEL, created.id)).images[0].uri
    twin = fault_plan(rates={"image_wrong_type": 0.5, "image_oversized": 0.3, "image_cut": 0.2})
    assert twin is not None

    seen: dict[str, tuple[int, str, str]] = {}
    for _ in range(8):
        fault = twin.decide(request_to("image"))
        assert fault is not None
        async with target.images.stream("GET", uri) as response:
            try:
                outcome = f"{len(await response.aread())} bytes"
            except httpx.RemoteProtocolError:
                outcome = "cut"
        seen[fault.name] = (response.status_code, response.headers["content-type"], outcome)

    assert seen["image_wrong_type"][:2] == (200, "text/html; charset=utf-8")
    assert (200, "image/png", "cut") == seen["image_oversized"] == seen["image_cut"]


# --- the plan: determinism, profiles, rates --------------------------------------------------------------------------

ROUTES = ("create", "list", "get", "delete", "image")


def decisions(plan: SeededFaultPlan, count: int) -> list[InjectedFault | None]:
    """Return the plan's decisions for `count` requests cycling through every route."""
    return [plan.decide(request_to(ROUTES[n % len(ROUTES)])) for n in range(count)]


def chaos(seed: int) -> SeededFaultPlan:
    """Return the chaos plan with this seed."""
    plan = fault_plan("chaos", seed=seed)
    assert plan is not None
    return plan


def test_the_same_seed_and_requests_meet_the_same_faults() -> None:
    """Two plans with one seed decide the same faults, variants included, for the same requests; another seed not."""
    assert decisions(chaos(7), 500) == decisions(chaos(7), 500)
    assert decisions(chaos(7), 500) != decisions(chaos(8), 500)


def test_a_route_decides_alone() -> None:
    """The faults met by one route do not depend on requests to other routes in between."""
    plan, twin = chaos(3), chaos(3)
    for n in range(300):
        twin.decide(request_to(ROUTES[n % 4]))

    assert [plan.decide(request_to("image")) for _ in range(50)] == [
        twin.decide(request_to("image")) for _ in range(50)
    ]


@pytest.mark.parametrize(("profile", "low", "high"), [("flaky", 0.03, 0.07), ("chaos", 0.20, 0.30)])
def test_profiles_fault_their_share_of_requests(profile: str, low: float, high: float) -> None:
    """Over 2,000 API requests and 2,000 image requests, flaky faults ~5% of each and chaos ~25%."""
    plan = fault_plan(profile, seed=11)
    assert plan is not None

    api = [plan.decide(request_to(ROUTES[n % 4])) for n in range(2000)]
    images = [plan.decide(request_to("image")) for _ in range(2000)]

    shares = [sum(fault is not None for fault in made) / len(made) for made in (api, images)]
    assert [True, True] == [low <= share <= high for share in shares]


def test_flaky_meets_only_retriable_faults_and_chaos_every_kind() -> None:
    """flaky injects only throttle, 503, reset_before and retriable image faults; chaos reaches every request fault."""
    flaky = fault_plan("flaky", seed=2)
    assert flaky is not None

    flaky_kinds = {(f.name, f.variant) for f in decisions(flaky, 4000) if f is not None}
    chaos_kinds = {f.name for f in decisions(chaos(2), 2000) if f is not None}

    assert {
        ("throttle", "seconds"),
        ("throttle", "date"),
        ("server_error", "503"),
        ("reset_before", ""),
        ("image_cut", ""),
        ("image_404", ""),
    } == flaky_kinds
    assert set(API_FAULTS + IMAGE_FAULTS) == chaos_kinds


def test_rates_override_the_profile_and_none_means_no_plan() -> None:
    """A per-fault rate replaces the profile's; with every rate 0 there is no plan at all."""
    quiet = fault_plan("flaky", {"throttle": 0.0, "server_error": 0.0, "reset_before": 0.0})
    assert quiet is not None
    louder = fault_plan("chaos", {"throttle": 0.5})
    assert louder is not None

    assert (None, None, None) == (fault_plan(), fault_plan("none", {"throttle": 0.0}), fault_plan(rates={}))
    assert {"image_cut", "image_404"} == set(quiet.rates)
    assert (0.5, 0.06) == (louder.rates["throttle"], louder.rates["server_error"])


def test_rates_that_add_up_past_one_fault_every_request_in_proportion() -> None:
    """Rates summing over 1 on a route are scaled down: every request meets a fault, shared in proportion."""
    plan = fault_plan(rates={"throttle": 1.0, "server_error": 1.0})
    assert plan is not None

    made = [plan.decide(request_to("get")) for _ in range(1000)]

    throttled = sum(fault is not None and fault.name == "throttle" for fault in made)
    assert (True, True) == (None not in made, 400 <= throttled <= 600)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"profile": "stormy"}, "unknown fault profile 'stormy'; expected one of none, flaky, chaos, hostile"),
        ({"rates": {"tornado": 0.1}}, "unknown fault 'tornado'; expected one of reset_before, "),
        ({"rates": {"throttle": 1.5}}, "the rate of fault 'throttle' must be between 0 and 1, got 1.5"),
        ({"rates": {"throttle": float("nan")}}, "the rate of fault 'throttle' must be between 0 and 1, got nan"),
        ({"rates": {"throttle": -0.1}}, "the rate of fault 'throttle' must be between 0 and 1, got -0.1"),
        ({"delay_seconds": -1.0}, "the fault delay must be a number of seconds >= 0, got -1.0"),
        ({"list_lag_seconds": -1.0}, "the list lag must be a number of seconds >= 0, got -1.0"),
        ({"trickle_rate": 0.0}, "the trickle rate must be a number of bytes per second > 0, got 0.0"),
    ],
)
def test_impossible_plans_are_refused(arguments: dict[str, Any], message: str) -> None:
    """An unknown profile or fault, a rate outside 0..1 or a negative delay raises ValueError saying which."""
    with pytest.raises(ValueError, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        fault_plan(**arguments)


def test_the_public_names() -> None:
    """FAULT_NAMES lists the twenty-one faults and PROFILES the four profiles, in documented order."""
    assert ("none", "flaky", "chaos", "hostile") == PROFILES
    assert (
        "reset_before",
        "reset_after",
        "delay",
        "throttle",
        "server_error",
        "malformed",
        "fail",
        "stuck",
        "image_slow",
        "image_cut",
        "image_404",
        "image_wrong_type",
        "image_oversized",
        "slow_commit",
        "list_lag",
        "duplicate_id",
        "extra_images",
        "page_ignored",
        "wrong_id",
        "transient_404",
        "trickle",
    ) == FAULT_NAMES


# --- stats under chaos -----------------------------------------------------------------------------------------------


async def test_under_chaos_every_unheard_job_is_an_ambiguous_create() -> None:
    """Jobs created never exceed creates heard plus ambiguous creates; every create unheard met a counted fault."""
    plan = fault_plan("chaos", seed=4, delay_seconds=0.0)
    emulator = Emulator(EmulatorConfig(speed=float("inf"), faults=plan))
    headers = {"Authorization": "Bearer key"}
    heard = 0
    async with httpx.AsyncClient(transport=emulator.transport(), base_url=API_ORIGIN, headers=headers) as http:
        client = LeapClient(http)
        for n in range(200):
            try:
                await client.create(MODEL, CreateInferenceDto(prompt=f"fox {n}", width=64, height=64))
            except errors.ApiError:
                continue
            heard += 1

    stats = emulator.stats()
    refused_or_lost = sum(count for name, count in stats["faults"].items() if name in API_FAULTS and name != "delay")
    assert (True, True) == (
        stats["jobs"]["created"] <= heard + stats["ambiguous_creates"],
        0 < stats["ambiguous_creates"],
    )
    assert 200 - heard == refused_or_lost


# --- the command -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--fault", "throttle"], "error: --fault expects NAME=P, got 'throttle'"),
        (["--fault", "throttle=often"], "error: --fault expects NAME=P, got 'throttle=often'"),
        (["--fault", "tornado=0.1"], "error: unknown fault 'tornado'; expected one of reset_before, "),
        (["--fault", "throttle=2"], "error: the rate of fault 'throttle' must be between 0 and 1, got 2.0"),
        (["--fault-delay", "-1"], "error: the fault delay must be a number of seconds >= 0, got -1.0"),
    ],
)
def test_bad_fault_options_are_usage_errors(
    options: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bad --fault or --fault-delay exits 2 with a one-line error and a hint, before anything is served."""
    code = main(["emulator", *options])

    err = capsys.readouterr().err.splitlines()
    assert (2, True, True) == (code, err[0].startswith(message), err[1].startswith("hint: "))


def test_help_names_the_fault_options(capsys: pytest.CaptureFixture[str]) -> None:
    """`--help` documents --faults, --fault and --fault-delay and lists every fault name."""
    main(["emulator", "--help"])

    out = capsys.readouterr().out
    assert [] == [word for word in ("--faults", "--fault", "--fault-delay", *FAULT_NAMES) if word not in out]
