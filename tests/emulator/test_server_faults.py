"""The servers that lag, stall and lie, and the server conditions: each does what docs/emulator.md promises.

The fault kinds here (`slow_commit`, `list_lag`, `duplicate_id`, `extra_images`, `page_ignored`, `wrong_id`,
`transient_404`, `trickle`) make up the `hostile` profile on top of chaos; the conditions (`clock_offset`,
`billing_limit`, `models`) are `EmulatorConfig` fields that change every request. Tests that take `make_target` run
twice, in-process and served on 127.0.0.1. A fault is forced with rate 1.0; which variant a request meets is read
from a twin plan with the same seed. `Scripted` injects chosen faults into chosen requests, and `Peek` keeps what a
create's handler answered, which a fault may hide from the client (a slow commit answers after the test looked).
Waits that matter run on trio's virtual clock (`autojump_clock`) or on the emulator's `ManualClock`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, Protocol

import httpx
import pytest
import trio
from emulator_support import AUTH, MODEL, MakeTarget, Target

from leapbatch import errors
from leapbatch.api.client import LeapClient, inferences_path
from leapbatch.emulator import (
    API_ORIGIN,
    Emulator,
    EmulatorConfig,
    InjectedFault,
    ManualClock,
    Reply,
    Request,
    SeededFaultPlan,
    fault_plan,
)
from leapbatch.emulator.asgi import Handler
from leapbatch.wire import CreateInferenceDto

INSTANT = float("inf")  # jobs finish as they are created
LONG = 30.0  # a delay no test waits for in real time: clients give up after SHORT
SHORT = 0.05
OTHER_MODEL = "9d0c7a52-5b1e-4c2f-8e7a-3f6b2d1c0e9a"
FOX: dict[str, Any] = {"prompt": "a red fox", "width": 64, "height": 64}
NEW_FAULTS = ("slow_commit", "list_lag", "duplicate_id", "extra_images", "page_ignored", "wrong_id", "transient_404")
ROUTES = ("create", "list", "get", "delete", "image")
PLACES: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(("slow_commit", "list_lag", "duplicate_id", "extra_images"), ("create",)),
    "page_ignored": ("list",),
    "wrong_id": ("get",),
    "transient_404": ("get",),
    "trickle": ROUTES,
}


def forced(
    name: str, *, seed: int = 0, delay: float = LONG, list_lag: float = LONG, trickle_rate: float = 8.0
) -> SeededFaultPlan:
    """Return a plan that injects fault `name` into every request it applies to."""
    plan = fault_plan(
        rates={name: 1.0}, seed=seed, delay_seconds=delay, list_lag_seconds=list_lag, trickle_rate=trickle_rate
    )
    assert plan is not None
    return plan


def request_to(route: str) -> Request:
    """Return a request to `route`, as the plan sees it (only the route matters to a decision)."""
    return Request(route, "GET", "/", b"", {}, b"", False, {})


class InjectingPlan(Protocol):
    """A plan whose faults are the emulator's own kinds."""

    def decide(self, request: Request) -> InjectedFault | None:
        """Return the fault for this request, or None."""
        ...


class Only:
    """A plan that lets faults reach only some routes, so a test can look at the result through the others."""

    def __init__(self, plan: InjectingPlan, *routes: str) -> None:
        self.plan = plan
        self.routes = routes

    def decide(self, request: Request) -> InjectedFault | None:
        """Return the wrapped plan's fault for the chosen routes, else None."""
        return self.plan.decide(request) if request.route in self.routes else None


class Scripted:
    """A plan that injects the listed faults into the first requests to each route, in order (None: no fault)."""

    def __init__(self, **routes: list[InjectedFault | None]) -> None:
        self.routes = {route: list(faults) for route, faults in routes.items()}

    def decide(self, request: Request) -> InjectedFault | None:
        """Return the next scripted fault for the request's route, or None once the script is done."""
        faults = self.routes.get(request.route)
        return faults.pop(0) if faults else None


@dataclass
class Peeked:
    """A fault, unchanged, that also records the body its handler answered (what the server did, seen or not)."""

    fault: InjectedFault
    answers: list[dict[str, Any]]

    @property
    def name(self) -> str:
        """Return the wrapped fault's name (its key in the stats)."""
        return self.fault.name

    @property
    def loses_reply(self) -> bool:
        """Return whether the wrapped fault loses a create's reply."""
        return self.fault.loses_reply

    @property
    def counts_itself(self) -> bool:
        """Return whether the state counts the wrapped fault."""
        return self.fault.counts_itself

    async def apply(self, request: Request, handler: Handler) -> Reply:
        """Apply the wrapped fault, recording the handler's JSON answer on the way."""

        async def peeking(request: Request) -> Reply:
            reply = await handler(request)
            self.answers.append(json.loads(reply.body))
            return reply

        return await self.fault.apply(request, peeking)


@dataclass
class Peek:
    """A plan that passes another plan's faults on, keeping each faulted handler's answer in `answers`."""

    plan: InjectingPlan
    answers: list[dict[str, Any]] = field(default_factory=list)

    def decide(self, request: Request) -> Peeked | None:
        """Return the wrapped plan's fault, peeking, or None."""
        fault = self.plan.decide(request)
        return None if fault is None else Peeked(fault, self.answers)


async def served(
    make_target: MakeTarget, faults: Any = None, *, clock: ManualClock | None = None, **config: Any
) -> Target:
    """Return a target whose emulator has instant jobs, the given fault plan and settings."""
    return await make_target(EmulatorConfig(speed=INSTANT, faults=faults, **config), clock=clock)


async def listed(target: Target, model: str = MODEL, **params: str) -> list[str]:
    """Return the ids one listing answers, in its order."""
    response = await target.api.get(inferences_path(model), params=params)
    assert 200 == response.status_code, response.text
    return [entity["id"] for entity in response.json()]


async def post(target: Target, model: str = MODEL, **body: Any) -> httpx.Response:
    """POST a create with FOX's fields and `body` on top, through the raw client."""
    return await target.api.post(inferences_path(model), json={**FOX, **body})


# --- slow_commit -----------------------------------------------------------------------------------------------------


async def test_slow_commit_hides_the_job_until_its_commit_and_stamps_it_then(
    make_target: MakeTarget, manual_clock: ManualClock
) -> None:
    """slow_commit: a client with a shorter timeout gives up (ReadTimeout, TransportError) while the job is neither
    found nor listed; `delay_seconds` later it is both, its createdAt the commit time. Each is ambiguous."""
    peek = Peek(forced("slow_commit"))
    target = await served(make_target, peek, clock=manual_clock)

    before = datetime.now(UTC)
    with pytest.raises(httpx.ReadTimeout):
        await target.api.post(inferences_path(MODEL), json=FOX, timeout=SHORT)
    target.api.timeout = httpx.Timeout(SHORT)
    with pytest.raises(errors.TransportError, match="no answer in time"):
        await LeapClient(target.api).create(MODEL, CreateInferenceDto(prompt="a red fox", width=64, height=64))
    target.api.timeout = httpx.Timeout(5.0)
    after = datetime.now(UTC)
    ids = [answer["id"] for answer in peek.answers]
    hidden = ([(await target.get(job_id)).status_code for job_id in ids], await listed(target))
    manual_clock.advance(LONG - 0.001)
    still_hidden = ([(await target.get(job_id)).status_code for job_id in ids], await listed(target))
    manual_clock.advance(0.001)
    found = [(await target.get(job_id)).json() for job_id in ids]

    assert ([404, 404], []) == hidden == still_hidden
    assert ids == [entity["id"] for entity in found] == (await listed(target))[::-1]
    late = timedelta(seconds=LONG)
    stamps = [datetime.fromisoformat(entity["createdAt"]) for entity in found]
    assert [True, True] == [before + late <= stamp <= after + late for stamp in stamps]
    stats = await target.stats()
    assert (2, 2, {"slow_commit": 2}) == (stats["jobs"]["created"], stats["ambiguous_creates"], stats["faults"])


async def test_slow_commit_commits_after_the_delay_and_answers_after_twice_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """In-process on virtual time: the job appears `delay_seconds` after the request, the 201 twice as late."""
    peek = Peek(forced("slow_commit", delay=2.0))
    emulator = Emulator(EmulatorConfig(speed=INSTANT, faults=peek))
    answered: list[tuple[int, float]] = []
    async with httpx.AsyncClient(transport=emulator.transport(), base_url=API_ORIGIN, headers=AUTH) as http:

        async def create() -> None:
            response = await http.post(inferences_path(MODEL), json=FOX)
            answered.append((response.status_code, trio.current_time() - start))

        async def seen(job_id: str) -> tuple[int, list[str]]:
            listing = (await http.get(inferences_path(MODEL))).json()
            return (await http.get(inferences_path(MODEL, job_id))).status_code, [job["id"] for job in listing]

        start = trio.current_time()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(create)
            await trio.sleep(1.9)
            (job_id,) = [answer["id"] for answer in peek.answers]
            before_commit = await seen(job_id)
            await trio.sleep(0.2)
            after_commit, answered_by_then = await seen(job_id), list(answered)

    assert ((404, []), (200, [job_id]), []) == (before_commit, after_commit, answered_by_then)
    ((status, waited),) = answered
    assert 201 == status
    assert pytest.approx(4.0) == waited


# --- list_lag --------------------------------------------------------------------------------------------------------


async def test_list_lag_finds_the_job_at_once_but_lists_it_only_after_the_lag(
    make_target: MakeTarget, manual_clock: ManualClock
) -> None:
    """list_lag: the 201 comes at once and findOne finds the job, but listings show it `list_lag_seconds` later."""
    target = await served(make_target, forced("list_lag", list_lag=5.0), clock=manual_clock)

    created = await target.create(**FOX)
    found = (await target.get(created["id"])).status_code
    early = (await listed(target), await listed(target, onlyFinished="true"))
    manual_clock.advance(4.999)
    just_before = await listed(target)
    manual_clock.advance(0.001)

    assert (200, ([], []), []) == (found, early, just_before)
    assert ([created["id"]], [created["id"]]) == (await listed(target), await listed(target, onlyFinished="true"))
    stats = await target.stats()
    assert (0, {"list_lag": 1}) == (stats["ambiguous_creates"], stats["faults"])


# --- duplicate_id ----------------------------------------------------------------------------------------------------


async def test_duplicate_id_takes_the_newest_live_id_and_a_delete_removes_both(make_target: MakeTarget) -> None:
    """duplicate_id: the new job takes the id of the model's newest live job; findOne answers the new one,
    listings show both under that id, and one DELETE removes both."""
    target = await served(make_target, Scripted(create=[None, None, InjectedFault("duplicate_id")]))
    first, second = await target.create(prompt="first"), await target.create(prompt="second")
    third = await target.create(prompt="third")

    found = (await target.get(second["id"])).json()
    listing = (await target.api.get(inferences_path(MODEL))).json()
    faults = (await target.stats())["faults"]
    deleted = await target.api.delete(inferences_path(MODEL, second["id"]))

    assert (True, second["id"]) == (first["id"] != second["id"], third["id"])
    assert "third" == found["prompt"]
    assert [("third", second["id"]), ("second", second["id"]), ("first", first["id"])] == [
        (entity["prompt"], entity["id"]) for entity in listing
    ]
    assert {"duplicate_id": 1} == faults
    assert (200, "third") == (deleted.status_code, deleted.json()["prompt"])
    assert (404, [first["id"]]) == ((await target.get(second["id"])).status_code, await listed(target))
    assert {"created": 3, "deleted": 2, "live": 1} == (await target.stats())["jobs"]


async def test_duplicate_id_without_a_live_job_of_the_model_gets_a_fresh_id_uncounted(
    make_target: MakeTarget,
) -> None:
    """A first job, a job of another model, and a job after the model's last was deleted each get a new id."""
    target = await served(make_target, forced("duplicate_id"))

    first = await target.create()
    other = await target.create(OTHER_MODEL)
    await target.api.delete(inferences_path(MODEL, first["id"]))
    after_delete = await target.create()

    assert 3 == len({first["id"], other["id"], after_delete["id"]})
    assert {} == (await target.stats())["faults"]


# --- extra_images ----------------------------------------------------------------------------------------------------


async def test_extra_images_lists_and_serves_1_3_or_299_more_images(make_target: MakeTarget) -> None:
    """extra_images: the finished job lists 1, 3 or 299 images beyond numberOfImages (drawn per request), and the
    image host serves every one of them, and none past them."""
    target = await served(make_target, forced("extra_images"))
    twin = forced("extra_images")
    extras = [int(fault.variant) for fault in (twin.decide(request_to("create")) for _ in range(6)) if fault]

    served_last: list[tuple[int, int, str]] = []
    for _ in extras:
        created = await target.create(**FOX, numberOfImages=2)
        images = (await target.get(created["id"])).json()["images"]
        last = images[-1]["uri"]
        past = last.replace(f"/{len(images) - 1}.png", f"/{len(images)}.png")
        got = await target.images.get(last)
        served_last.append((len(images), got.status_code, got.headers["content-type"]))
        assert 404 == (await target.images.get(past)).status_code

    assert {1, 3, 299} == set(extras)
    assert [(2 + extra, 200, "image/png") for extra in extras] == served_last
    assert {"extra_images": 6} == (await target.stats())["faults"]


@pytest.mark.parametrize("fault", ["slow_commit", "list_lag", "duplicate_id", "extra_images"])
async def test_a_create_twist_on_a_refused_create_is_not_counted(make_target: MakeTarget, fault: str) -> None:
    """A create twist counts only when it bends a job: a create answered 400 changes no count and makes no job."""
    target = await served(make_target, forced(fault, delay=0.01))
    await target.create()  # a live job, so duplicate_id would have an id to take
    counted = (await target.stats())["faults"]

    refused = await post(target, numberOfImages=9)

    stats = await target.stats()
    ambiguous = 1 if fault == "slow_commit" else 0  # the first create's
    assert (400, 1, counted, ambiguous) == (
        refused.status_code,
        stats["jobs"]["created"],
        stats["faults"],
        stats["ambiguous_creates"],
    )


# --- page_ignored ----------------------------------------------------------------------------------------------------


async def test_page_ignored_serves_page_one_whatever_page_was_asked(make_target: MakeTarget) -> None:
    """page_ignored: any page answers page 1; it is counted only when a page past the first was asked."""
    target = await served(make_target, forced("page_ignored"))
    ids = [(await target.create())["id"] for _ in range(3)]

    pages = [await listed(target, page=page, pageSize="1") for page in ("2", "3", "99", "1")]

    assert [[ids[-1]]] * 4 == pages
    assert {"page_ignored": 3} == (await target.stats())["faults"]


# --- wrong_id --------------------------------------------------------------------------------------------------------


async def test_wrong_id_answers_the_newest_other_job_of_the_same_model(make_target: MakeTarget) -> None:
    """wrong_id: findOne answers the model's newest other job; a job alone in its model is answered itself,
    uncounted."""
    target = await served(make_target, forced("wrong_id"))
    a, b, c = [(await target.create(prompt=prompt))["id"] for prompt in ("a", "b", "c")]
    alone = (await target.create(OTHER_MODEL))["id"]

    answers = [(await target.get(job_id)).json()["id"] for job_id in (a, c)]
    answered_alone = (await target.get(alone, OTHER_MODEL)).json()["id"]

    assert [c, b] == answers
    assert alone == answered_alone
    assert {"wrong_id": 2} == (await target.stats())["faults"]


async def test_wrong_id_never_answers_a_job_not_yet_committed(
    make_target: MakeTarget, manual_clock: ManualClock
) -> None:
    """wrong_id answers the newest *visible* other job: one whose slow commit is still pending is skipped."""
    plan = Scripted(
        create=[None, None, InjectedFault("slow_commit", seconds=LONG)], get=[InjectedFault("wrong_id")] * 2
    )
    target = await served(make_target, plan, clock=manual_clock)
    a, b = (await target.create())["id"], (await target.create())["id"]
    with pytest.raises(httpx.ReadTimeout):
        await target.api.post(inferences_path(MODEL), json=FOX, timeout=SHORT)

    answered = (await target.get(a)).json()["id"]
    manual_clock.advance(LONG)
    answered_after_commit = (await target.get(a)).json()["id"]

    assert b == answered
    assert answered_after_commit not in (a, b)
    assert {"slow_commit": 1, "wrong_id": 2} == (await target.stats())["faults"]


# --- transient_404 ---------------------------------------------------------------------------------------------------


async def test_transient_404_answers_not_found_for_a_job_that_exists(make_target: MakeTarget) -> None:
    """transient_404: findOne answers Leap's job 404 for a job that exists and is listed; counted when drawn."""
    target = await served(make_target, forced("transient_404"))
    created = await target.create()

    raw = await target.get(created["id"])
    with pytest.raises(errors.NotFoundError):
        await target.leap.find_one(MODEL, created["id"])

    not_found = {"statusCode": 404, "message": f"Inference {created['id']} not found", "error": "Not Found"}
    assert (404, not_found) == (raw.status_code, raw.json())
    assert [created["id"]] == await listed(target)
    assert {"transient_404": 2} == (await target.stats())["faults"]


async def test_after_a_transient_404_the_next_get_without_it_finds_the_job(make_target: MakeTarget) -> None:
    """A 404 comes exactly when the plan drew transient_404; every other findOne of the same job finds it."""
    plan = fault_plan(rates={"transient_404": 0.5}, seed=3)
    twin = fault_plan(rates={"transient_404": 0.5}, seed=3)
    assert plan is not None
    assert twin is not None
    target = await served(make_target, plan)
    created = await target.create()
    drawn = [twin.decide(request_to("get")) is not None for _ in range(12)]

    statuses = [(await target.get(created["id"])).status_code for _ in drawn]

    assert {True, False} == set(drawn)
    assert [404 if faulted else 200 for faulted in drawn] == statuses
    assert {"transient_404": sum(drawn)} == (await target.stats())["faults"]


# --- trickle ---------------------------------------------------------------------------------------------------------


@dataclass
class Timed:
    """One streamed response: what arrived and when (seconds after the request was sent)."""

    status: int
    headers: httpx.Headers
    chunks: list[bytes]
    headers_after: float
    body_after: float


async def timed_get(http: httpx.AsyncClient, url: str) -> Timed:
    """GET `url` as a stream, timing the headers and the whole body on trio's clock."""
    start = trio.current_time()
    async with http.stream("GET", url) as response:
        headers_after = trio.current_time() - start
        chunks = [chunk async for chunk in response.aiter_raw()]
    return Timed(response.status_code, response.headers, chunks, headers_after, trio.current_time() - start)


async def test_trickle_sends_status_and_headers_at_once_and_the_body_at_its_rate(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """In-process on virtual time, a trickled job or image arrives intact: status and headers at once, then the
    body in chunks of rate/4 bytes, four a second, N bytes in N/rate seconds."""
    rate = 8.0
    trickle = InjectedFault("trickle", rate=rate)
    emulator = Emulator(EmulatorConfig(speed=INSTANT, faults=Scripted(get=[None, trickle], image=[None, trickle])))
    async with (
        httpx.AsyncClient(transport=emulator.transport(), base_url=API_ORIGIN, headers=AUTH) as http,
        httpx.AsyncClient(transport=emulator.transport()) as images,
    ):
        created = (await http.post(inferences_path(MODEL), json=FOX)).json()
        path = inferences_path(MODEL, created["id"])
        plain = (await http.get(path)).content
        slow = await timed_get(http, path)
        uri = json.loads(plain)["images"][0]["uri"]
        plain_png = (await images.get(uri)).content
        slow_png = await timed_get(images, uri)

    for body, got in ((plain, slow), (plain_png, slow_png)):
        assert (200, 0.0, str(len(body))) == (got.status, got.headers_after, got.headers["content-length"])
        assert (body, math.ceil(len(body) / 2), 2) == (b"".join(got.chunks), len(got.chunks), max(map(len, got.chunks)))
        assert pytest.approx(len(body) / rate, abs=0.25) == got.body_after
    assert [True, True] == [len(body) > 100 for body in (plain, plain_png)]  # many chunks: a real measure of the rate
    assert {"trickle": 2} == emulator.stats()["faults"]


async def test_trickled_bodies_arrive_intact(make_target: MakeTarget) -> None:
    """A trickled listing of several chunks and a trickled PNG arrive byte for byte, in-process and over a socket."""
    rate = 4000.0  # 1,000-byte chunks, 4 a second
    target = await served(make_target, Only(forced("trickle", trickle_rate=rate), "list", "image"))
    created = [await target.create(**{**FOX, "prompt": f"fox {n}", "seed": n}) for n in range(2)]
    entity = (await target.get(created[0]["id"])).json()

    listing = await target.api.get(inferences_path(MODEL))
    png = await target.images.get(entity["images"][0]["uri"])

    assert len(listing.content) > rate / 4  # more than one chunk
    assert (str(len(listing.content)), [job["id"] for job in created[::-1]]) == (
        listing.headers["content-length"],
        [job["id"] for job in listing.json()],
    )
    assert await target.emulator.images.png("fox 0", 0, 64, 64, 0) == png.content
    assert {"trickle": 2} == (await target.stats())["faults"]


# --- the plan: places, rates, the hostile profile, draws that do not move -------------------------------------------


@pytest.mark.parametrize("name", [*NEW_FAULTS, "trickle"])
def test_a_forced_fault_meets_every_request_of_its_routes_and_no_other(name: str) -> None:
    """At rate 1.0 a fault meets every request to the routes it belongs to, and none elsewhere (nor any job)."""
    plan = forced(name)

    met = {route: {getattr(plan.decide(request_to(route)), "name", None) for _ in range(50)} for route in ROUTES}

    assert {route: {name} if route in PLACES[name] else {None} for route in ROUTES} == met
    assert {None} == {plan.job_fate(f"{n:064x}:0") for n in range(50)}


@pytest.mark.parametrize(("name", "route"), [(name, route) for name, places in PLACES.items() for route in places])
def test_a_fault_at_rate_p_meets_about_p_of_its_requests(name: str, route: str) -> None:
    """A fault at rate 0.1 meets between 7% and 13% of 2,000 requests to each of its routes."""
    plan = fault_plan(rates={name: 0.1}, seed=21)
    assert plan is not None

    share = sum(plan.decide(request_to(route)) is not None for _ in range(2000)) / 2000

    assert 0.07 <= share <= 0.13, share


# Per route, hostile's documented share of requests faulted: in all, and by the kinds added on top of chaos.
HOSTILE_SHARES = {
    "create": (0.25 + 0.03 + 0.10 + 0.01 + 0.02 + 0.005, 0.03 + 0.10 + 0.01 + 0.02 + 0.005),
    "list": (0.25 + 0.05 + 0.005, 0.05 + 0.005),
    "get": (0.25 + 0.02 + 0.03 + 0.005, 0.02 + 0.03 + 0.005),
    "delete": (0.25 + 0.005, 0.005),
    "image": (0.25 + 0.005, 0.005),
}


def within(expected: float, count: int) -> Callable[[float], bool]:
    """Return a test that a share measured over `count` draws is within 4 standard deviations of `expected`."""
    band = 4 * math.sqrt(expected * (1 - expected) / count)
    return lambda share: abs(share - expected) <= band


@pytest.mark.parametrize("route", ROUTES)
def test_hostile_faults_its_documented_share_of_each_route(route: str) -> None:
    """Over 2,000 requests to a route, hostile faults its documented share (chaos's plus the new kinds'), and the
    new kinds their own share, each within 4 standard deviations."""
    plan = fault_plan("hostile", seed=11)
    assert plan is not None

    names = [getattr(plan.decide(request_to(route)), "name", None) for _ in range(2000)]

    every, new = HOSTILE_SHARES[route]
    faulted = sum(name is not None for name in names) / 2000
    by_new_kinds = sum(name in PLACES for name in names) / 2000
    assert (True, True) == (within(every, 2000)(faulted), within(new, 2000)(by_new_kinds)), (faulted, by_new_kinds)


def test_hostile_is_chaos_plus_the_new_kinds_and_moves_no_chaos_draw() -> None:
    """Request by request, hostile meets exactly the fault chaos meets (variant included) wherever chaos meets one,
    and elsewhere nothing or a new kind; jobs meet the same fates. Over the run every new kind shows up."""
    chaos, hostile = fault_plan("chaos", seed=5), fault_plan("hostile", seed=5)
    assert chaos is not None
    assert hostile is not None

    pairs = [
        (chaos.decide(request_to(route)), hostile.decide(request_to(route))) for route in ROUTES for _ in range(2000)
    ]

    assert [] == [(old, new) for old, new in pairs if old is not None and old != new]
    assert set(PLACES) == {new.name for old, new in pairs if old is None and new is not None}
    keys = [f"{n:064x}:0" for n in range(500)]
    assert [chaos.job_fate(key) for key in keys] == [hostile.job_fate(key) for key in keys]


def test_chaos_draws_are_the_ones_it_made_before_the_new_kinds() -> None:
    """The first 30 requests per route and 60 jobs under chaos seed 7 meet the faults the emulator drew before the
    new kinds were added (pinned from that version): appending kinds moved no draw."""
    plan = fault_plan("chaos", seed=7)
    assert plan is not None

    met = {
        route: [
            (n, fault.name, fault.variant)
            for n, fault in enumerate(plan.decide(request_to(route)) for _ in range(30))
            if fault is not None
        ]
        for route in ROUTES
    }
    fates = [(n, fate) for n in range(60) if (fate := plan.job_fate(f"{n:064x}:0")) is not None]

    assert {
        "create": [
            (2, "reset_after", "silent"),
            (5, "malformed", "cut"),
            (8, "malformed", "stateless"),
            (10, "server_error", "504"),
            (11, "server_error", "504"),
            (12, "throttle", "date"),
            (13, "reset_before", ""),
            (14, "reset_before", ""),
            (18, "reset_before", ""),
            (19, "throttle", "date"),
            (22, "throttle", "seconds"),
            (24, "throttle", "seconds"),
            (26, "malformed", "html"),
        ],
        "list": [
            (10, "delay", ""),
            (12, "throttle", "huge"),
            (13, "throttle", "huge"),
            (16, "malformed", "html"),
            (19, "malformed", "stateless"),
            (24, "delay", ""),
        ],
        "get": [(3, "delay", ""), (9, "delay", ""), (21, "reset_before", "")],
        "delete": [
            (1, "throttle", "garbage"),
            (3, "delay", ""),
            (6, "reset_before", ""),
            (7, "server_error", "503"),
            (8, "malformed", "stateless"),
        ],
        "image": [
            (13, "image_404", ""),
            (14, "image_slow", ""),
            (22, "image_slow", ""),
            (24, "image_slow", ""),
            (25, "image_wrong_type", ""),
        ],
    } == met
    assert [(2, "fail"), (11, "fail"), (33, "fail"), (35, "stuck"), (37, "fail"), (50, "fail")] == fates


# --- server conditions: clock_offset ---------------------------------------------------------------------------------


@pytest.mark.parametrize("offset", [0.0, 3600.0, -86400.0])
async def test_clock_offset_moves_created_at_and_every_date_header(make_target: MakeTarget, offset: float) -> None:
    """The server's wall clock runs `clock_offset` seconds ahead (or behind): a job's and its images' createdAt
    and the one Date header of every reply (API, errors, stats, image host); each job created is counted."""
    target = await served(make_target, clock_offset=offset)
    shift = timedelta(seconds=offset)

    before = datetime.now(UTC)
    created = await target.api.post(inferences_path(MODEL), json=FOX)
    found = await target.get(created.json()["id"])
    replies = [
        created,
        found,
        await target.anon.get(inferences_path(MODEL)),  # 401
        await target.get("no-such-job"),  # 404
        await target.api.get("/nowhere"),  # an unknown path
        await target.anon.get("/_emulator/stats"),
        await target.images.get(found.json()["images"][0]["uri"]),
    ]
    after = datetime.now(UTC)

    stamps = [found.json()["createdAt"], found.json()["images"][0]["createdAt"] + ":00"]
    assert [True, True] == [before + shift <= datetime.fromisoformat(stamp) <= after + shift for stamp in stamps]
    dates = [reply.headers.get_list("date") for reply in replies]
    assert [1] * len(replies) == [len(date) for date in dates]
    earliest = (before + shift).replace(microsecond=0)  # an HTTP date has whole seconds
    assert [] == [date for (date,) in dates if not earliest <= parsedate_to_datetime(date) <= after + shift]
    assert ({"clock_offset": 1} if offset else None) == (await target.stats()).get("faults")


# --- server conditions: billing_limit --------------------------------------------------------------------------------


async def test_billing_limit_answers_402_once_a_create_would_pass_it(make_target: MakeTarget) -> None:
    """Once images made plus numberOfImages would pass the limit, a create answers 402 and makes no job; a create
    that reaches the limit exactly is made; a delete gives nothing back. The 402s are counted."""
    target = await served(make_target, billing_limit=3)

    first = await post(target, numberOfImages=2)
    too_many = await post(target, numberOfImages=2)
    exactly = await post(target, numberOfImages=1)
    await target.api.delete(inferences_path(MODEL, first.json()["id"]))
    after_delete = await post(target, numberOfImages=1)
    with pytest.raises(errors.HTTPStatusError) as caught:
        await target.leap.create(MODEL, CreateInferenceDto(prompt="a red fox", width=64, height=64))

    def refused(used: int) -> dict[str, Any]:
        message = f"Billing limit reached: {used} of 3 images used; raise it in your settings"
        return {"statusCode": 402, "message": message, "error": "Payment Required"}

    assert [201, 402, 201, 402] == [r.status_code for r in (first, too_many, exactly, after_delete)]
    assert (refused(2), refused(3)) == (too_many.json(), after_delete.json())
    assert 402 == caught.value.status
    assert [exactly.json()["id"]] == await listed(target)
    stats = await target.stats()
    assert ({"created": 2, "deleted": 1, "live": 1}, {"billing_limit": 3}) == (stats["jobs"], stats["faults"])


async def test_billing_limit_comes_after_auth_and_validation(make_target: MakeTarget) -> None:
    """With no images left, a create without a key is 401 and a bad body 400, neither counted; a good one 402."""
    target = await served(make_target, billing_limit=0)

    statuses = [
        (await target.anon.post(inferences_path(MODEL), json=FOX)).status_code,
        (await post(target, numberOfImages=9)).status_code,
        (await post(target)).status_code,
    ]

    assert [401, 400, 402] == statuses
    assert {"billing_limit": 1} == (await target.stats())["faults"]


# --- server conditions: models ---------------------------------------------------------------------------------------


async def test_a_model_not_in_the_list_is_404_on_create_and_list(make_target: MakeTarget) -> None:
    """With a model list, a create or a listing for another model id answers 404 `Model not found` (counted);
    findOne and delete there answer their usual job 404; a listed model works as ever."""
    target = await served(make_target, models=frozenset({MODEL}))

    refused = [await post(target, OTHER_MODEL), await target.api.get(inferences_path(OTHER_MODEL))]
    item = inferences_path(OTHER_MODEL, "some-job")
    usual = [(await target.api.get(item)).json()["message"], (await target.api.delete(item)).json()["message"]]
    created = await target.create()

    model_not_found = {"statusCode": 404, "message": "Model not found", "error": "Not Found"}
    assert [(404, model_not_found)] * 2 == [(r.status_code, r.json()) for r in refused]
    assert ["Inference some-job not found"] * 2 == usual
    assert [created["id"]] == await listed(target)
    assert {"model_not_found": 2} == (await target.stats())["faults"]


async def test_model_not_found_comes_after_auth_and_create_validation(make_target: MakeTarget) -> None:
    """For an unknown model, a request without a key is 401 and a create with a bad body 400, neither counted."""
    target = await served(make_target, models=frozenset({MODEL}))

    statuses = [
        (await target.anon.post(inferences_path(OTHER_MODEL), json=FOX)).status_code,
        (await target.anon.get(inferences_path(OTHER_MODEL))).status_code,
        (await post(target, OTHER_MODEL, numberOfImages=9)).status_code,
    ]

    assert [401, 401, 400] == statuses
    assert {} == (await target.stats())["faults"]


# --- stats -----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "grouped"),
    [
        (EmulatorConfig(), False),
        (EmulatorConfig(clock_offset=-5.0), True),
        (EmulatorConfig(billing_limit=100), True),
        (EmulatorConfig(billing_limit=0), True),
        (EmulatorConfig(models=frozenset({MODEL})), True),
        (EmulatorConfig(faults=fault_plan(rates={"list_lag": 0.5})), True),
    ],
    ids=["faithful", "clock_offset", "billing_limit", "billing_limit_0", "models", "plan"],
)
def test_stats_carry_the_fault_groups_with_any_plan_or_condition(config: EmulatorConfig, grouped: bool) -> None:
    """The stats carry `ambiguous_creates` and `faults` (empty, before anything happened) exactly when a fault
    plan or a server condition is on, so a faithful emulator's stats keep their shape."""
    stats = Emulator(config).stats()

    groups = {key: stats[key] for key in ("ambiguous_creates", "faults") if key in stats}
    assert ({"ambiguous_creates": 0, "faults": {}} if grouped else {}) == groups


async def test_a_trickle_slower_than_the_read_timeout_times_out_in_process_as_over_a_socket(
    make_target: MakeTarget,
) -> None:
    """At 0.5 B/s a chunk comes every 2 s: a client with a 1 s read timeout gets ReadTimeout, in-process too."""
    target = await make_target(EmulatorConfig(faults=fault_plan(rates={"trickle": 1.0}, trickle_rate=0.5)))

    with pytest.raises(httpx.ReadTimeout):
        await target.api.get(inferences_path(MODEL), timeout=1.0)
