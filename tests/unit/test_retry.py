"""The retry policy: which failures are retried, how long it waits, and when it declares the API dead."""

from __future__ import annotations

import random

import httpx
import pytest
import trio
import trio.testing
from pydantic import SecretStr

from leapbatch import errors
from leapbatch.api.backoff import parse_retry_after
from leapbatch.api.client import LeapClient, api_http
from leapbatch.api.retry import DEAD_HINT, RetryBudget, SafeRetry, should_retry
from leapbatch.wire import CreateInferenceDto

PATH = "/api/v1/images/models/m/inferences"
OK = httpx.Response(200)


def status_error(status: int, *, retry_after: float | None = None, method: str = "GET") -> errors.HTTPStatusError:
    """Return the error the client raises for `status`."""
    cls = errors.status_error_class(status)
    return cls(status=status, messages=["boom"], method=method, path=PATH, retry_after=retry_after)


def timeout(method: str = "GET") -> errors.TransportError:
    """Return the error the client raises when no answer came in time."""
    return errors.TransportError(f"no answer in time for {method} {PATH}: ReadTimeout", method=method, path=PATH)


def refused(method: str = "GET") -> errors.ConnectError:
    """Return the error the client raises when the connection could not be made."""
    return errors.ConnectError(f"could not connect for {method} {PATH}: ConnectError", method=method, path=PATH)


def malformed(method: str = "GET") -> errors.MalformedResponseError:
    """Return the error the client raises for a body that does not parse."""
    return errors.MalformedResponseError(f"HTTP 200 from {method} {PATH}: cut", method=method, path=PATH, status=200)


class UpperBound(random.Random):
    """A random source whose `uniform` always returns the top of its range: backoff at its ceiling."""

    def uniform(self, a: float, b: float) -> float:
        """Return `b`."""
        return b


class Script:
    """A fake `attempt` that plays its outcomes in order (the last one forever) and records when it was called."""

    def __init__(self, *outcomes: httpx.Response | errors.ApiError | Exception) -> None:
        self.outcomes = list(outcomes)
        self.calls: list[float] = []

    async def __call__(self) -> httpx.Response:
        """Play the next outcome."""
        self.calls.append(trio.current_time())
        outcome = self.outcomes.pop(0) if len(self.outcomes) > 1 else self.outcomes[0]
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


@pytest.mark.parametrize(
    ("method", "exc", "expected"),
    [
        pytest.param("GET", refused(), True, id="GET-connect"),
        pytest.param("GET", timeout(), True, id="GET-timeout"),
        pytest.param("GET", malformed(), True, id="GET-malformed"),
        pytest.param("GET", status_error(429), True, id="GET-429"),
        *(pytest.param("GET", status_error(s), True, id=f"GET-{s}") for s in (500, 502, 503, 504, 520)),
        *(pytest.param("GET", status_error(s), False, id=f"GET-{s}") for s in (400, 401, 402, 403, 404, 409)),
        pytest.param("GET", status_error(302), False, id="GET-302"),
        pytest.param("DELETE", refused("DELETE"), True, id="DELETE-connect"),
        pytest.param("DELETE", timeout("DELETE"), True, id="DELETE-timeout"),
        pytest.param("DELETE", status_error(502), True, id="DELETE-502"),
        pytest.param("DELETE", status_error(404), False, id="DELETE-404"),
        pytest.param("POST", refused("POST"), True, id="POST-connect"),
        pytest.param("POST", status_error(429), True, id="POST-429"),
        pytest.param("POST", status_error(503), True, id="POST-503"),
        pytest.param("POST", timeout("POST"), False, id="POST-timeout"),
        pytest.param("POST", malformed("POST"), False, id="POST-malformed"),
        *(pytest.param("POST", status_error(s), False, id=f"POST-{s}") for s in (500, 502, 504, 520)),
        *(pytest.param("POST", status_error(s), False, id=f"POST-{s}") for s in (400, 401, 403, 404)),
        pytest.param("post", refused("POST"), True, id="post-lowercase-connect"),
        pytest.param("post", timeout("POST"), False, id="post-lowercase-timeout"),
    ],
)
def test_should_retry_table(method: str, exc: errors.ApiError, expected: bool) -> None:
    """Idempotent methods retry every "no answer"; POST only what provably never reached the server."""
    assert expected == should_retry(method, exc)


async def test_get_is_retried_until_it_succeeds(autojump_clock: trio.testing.MockClock) -> None:
    """A GET that meets a timeout and a 500 is sent again, and its third answer is returned."""
    attempt = Script(timeout(), status_error(500), OK)

    response = await SafeRetry().run("GET", PATH, attempt)

    assert (OK, 3) == (response, len(attempt.calls))


async def test_attempts_are_capped(autojump_clock: trio.testing.MockClock) -> None:
    """After `max_attempts` failures the last error is re-raised."""
    attempt = Script(status_error(500))

    with pytest.raises(errors.ServerError):
        await SafeRetry(max_attempts=4).run("GET", PATH, attempt)

    assert 4 == len(attempt.calls)


async def test_backoff_doubles_up_to_its_cap(autojump_clock: trio.testing.MockClock) -> None:
    """Without Retry-After the policy sleeps base * 2**(n-1), capped (here at the top of the jitter range)."""
    delays: list[float] = []
    attempt = Script(refused(), refused(), refused(), refused(), OK)
    policy = SafeRetry(base_delay=0.5, max_delay=1.5, rng=UpperBound(), on_retry=lambda *a: delays.append(a[3]))

    await policy.run("GET", PATH, attempt)

    assert [0.5, 1.0, 1.5, 1.5] == delays
    assert [0.0, 0.5, 1.5, 3.0, 4.5] == attempt.calls


async def test_full_jitter_stays_within_the_ceiling(autojump_clock: trio.testing.MockClock) -> None:
    """With a seeded random source, each delay lies in [0, min(cap, base * 2**(n-1))] and they are not all equal."""
    delays: list[float] = []
    attempt = Script(status_error(502), status_error(502), status_error(502), status_error(502), OK)
    policy = SafeRetry(base_delay=1.0, max_delay=4.0, rng=random.Random(7), on_retry=lambda *a: delays.append(a[3]))

    await policy.run("GET", PATH, attempt)

    ceilings = [1.0, 2.0, 4.0, 4.0]
    assert [True] * 4 == [0.0 <= d <= c for d, c in zip(delays, ceilings, strict=True)]
    assert len(set(delays)) > 1


async def test_retry_after_is_used_exactly_when_given(autojump_clock: trio.testing.MockClock) -> None:
    """A 429 asking for 7 s waits 7 s, a 503 asking for 0 s waits 0 s, whatever the backoff would say."""
    attempt = Script(status_error(429, retry_after=7.0), status_error(503, retry_after=0.0), OK)
    policy = SafeRetry(base_delay=100.0, max_delay=100.0, rng=UpperBound())

    await policy.run("POST", PATH, attempt)

    assert [0.0, 7.0, 7.0] == attempt.calls


async def test_post_after_a_timeout_is_not_retried(autojump_clock: trio.testing.MockClock) -> None:
    """A POST that timed out may have created the job: it is re-raised at once, for the runner to reconcile."""
    retries: list[int] = []
    failure = timeout("POST")
    attempt = Script(failure, OK)

    with pytest.raises(errors.TransportError) as caught:
        await SafeRetry(on_retry=lambda *a: retries.append(a[2])).run("POST", PATH, attempt)

    assert (failure, 1, []) == (caught.value, len(attempt.calls), retries)


@pytest.mark.parametrize(
    "failure",
    [
        pytest.param(refused("POST"), id="connect"),
        pytest.param(status_error(429, method="POST"), id="429"),
        pytest.param(status_error(503, method="POST"), id="503"),
    ],
)
async def test_post_is_retried_when_it_never_reached_the_server(
    autojump_clock: trio.testing.MockClock, failure: errors.ApiError
) -> None:
    """POST is sent again after a refused connection, a 429 or a 503: the server did not act on it."""
    attempt = Script(failure, OK)

    response = await SafeRetry().run("POST", PATH, attempt)

    assert (OK, 2) == (response, len(attempt.calls))


@pytest.mark.parametrize(
    "failure",
    [
        pytest.param(status_error(500, method="POST"), id="500"),
        pytest.param(status_error(502, method="POST"), id="502"),
        pytest.param(status_error(504, method="POST"), id="504"),
        pytest.param(malformed("POST"), id="malformed"),
    ],
)
async def test_post_is_reraised_when_the_server_may_have_acted(
    autojump_clock: trio.testing.MockClock, failure: errors.ApiError
) -> None:
    """POST after a 500, 502, 504 or a garbled answer is re-raised at once: the job may exist."""
    attempt = Script(failure, OK)

    with pytest.raises(errors.ApiError) as caught:
        await SafeRetry().run("POST", PATH, attempt)

    assert (failure, 1) == (caught.value, len(attempt.calls))


@pytest.mark.parametrize("method", ["GET", "DELETE", "POST"])
@pytest.mark.parametrize("status", [400, 401, 403, 404])
async def test_client_errors_are_never_retried(
    autojump_clock: trio.testing.MockClock, method: str, status: int
) -> None:
    """400, 401, 403 and 404 come back at once, whatever the method."""
    attempt = Script(status_error(status, method=method), OK)

    with pytest.raises(errors.HTTPStatusError) as caught:
        await SafeRetry().run(method, PATH, attempt)

    assert (status, 1) == (caught.value.status, len(attempt.calls))


async def test_hooks_hear_every_throttle_and_success(autojump_clock: trio.testing.MockClock) -> None:
    """`on_throttle` is called once per 429 (not per 5xx), `on_success` once per success."""
    heard: list[str] = []
    attempt = Script(status_error(429), status_error(429), status_error(500), status_error(429), OK)
    policy = SafeRetry(on_throttle=lambda: heard.append("throttle"), on_success=lambda: heard.append("success"))

    await policy.run("GET", PATH, attempt)

    assert ["throttle", "throttle", "throttle", "success"] == heard


async def test_on_retry_hears_method_path_attempt_delay_and_error(autojump_clock: trio.testing.MockClock) -> None:
    """`on_retry` is called before each sleep with the number of the attempt that failed."""
    heard: list[tuple[str, str, int, float, errors.ApiError]] = []
    failure = refused()
    attempt = Script(failure, OK)
    policy = SafeRetry(base_delay=0.5, rng=UpperBound(), on_retry=lambda *a: heard.append(a))

    await policy.run("GET", PATH, attempt)

    assert [("GET", PATH, 1, 0.5, failure)] == heard


async def test_bugs_are_not_retried(autojump_clock: trio.testing.MockClock) -> None:
    """An exception outside the API error tree is a bug: it propagates at once."""
    attempt = Script(RuntimeError("bug"), OK)

    with pytest.raises(RuntimeError, match="bug"):
        await SafeRetry().run("GET", PATH, attempt)

    assert 1 == len(attempt.calls)


def test_at_least_one_attempt() -> None:
    """`max_attempts=0` is a ValueError, not a policy that never calls."""
    with pytest.raises(ValueError, match="max_attempts"):
        SafeRetry(max_attempts=0)


def test_budget_needs_both_a_long_silence_and_enough_failures() -> None:
    """Twenty failures in 59 s, or seven over 100 s, are not a dead API; the eighth after 60 s is."""
    fast, slow = RetryBudget(), RetryBudget()

    fast_verdicts = [fast.failed(i * 59 / 19, PATH, refused()) for i in range(20)]
    slow_verdicts = [slow.failed(t, PATH, refused()) for t in (0, 20, 40, 60, 80, 90, 100)]
    eighth = slow.failed(101.0, PATH, refused())

    assert [None] * 20 == fast_verdicts
    assert [None] * 7 == slow_verdicts
    assert isinstance(eighth, errors.ApiUnavailableError)


def test_dead_api_message_says_what_where_and_what_to_do() -> None:
    """The message names the path, the count, the span and the last error; the hint says how to resume."""
    budget = RetryBudget(dead_after=60.0, min_failures=8)
    for second in range(0, 70, 10):
        budget.failed(float(second), PATH, timeout())

    dead = budget.failed(75.0, PATH, refused())

    assert dead is not None
    assert (
        f"the API at {PATH} did not answer: 8 requests failed in a row over 75 s; "
        f"last error: could not connect for GET {PATH}: ConnectError"
    ) == dead.message
    assert DEAD_HINT == dead.hint == "check the network and LEAP_BASE_URL, then run the same command again to resume"
    assert errors.EXIT_API_UNAVAILABLE == dead.exit_code


@pytest.mark.parametrize(
    ("interruption", "expected_streak"),
    [
        pytest.param(None, 0, id="success"),
        pytest.param(status_error(404), 0, id="404-is-proof-of-life"),
        pytest.param(status_error(429), 0, id="429-is-proof-of-life"),
        pytest.param(status_error(503), 8, id="503-extends-the-streak"),
        pytest.param(malformed(), 8, id="malformed-extends-the-streak"),
    ],
)
def test_what_ends_a_streak(interruption: errors.ApiError | None, expected_streak: int) -> None:
    """A success or any non-5xx answer ends the streak; a 5xx or a garbled body extends it."""
    budget = RetryBudget()
    for second in range(7):
        budget.failed(float(second), PATH, refused())

    if interruption is None:
        budget.succeeded()
    else:
        budget.failed(7.0, PATH, interruption)

    assert expected_streak == budget.failures_in_row


async def test_a_dead_server_ends_the_request_after_a_minute(autojump_clock: trio.testing.MockClock) -> None:
    """Against a refused port the policy gives up at the first failure past 60 s, not before and not never, naming
    the host and the path."""
    attempt = Script(refused())
    policy = SafeRetry(max_attempts=100, base_delay=1.0, max_delay=8.0, rng=UpperBound(), origin="https://api.x")

    with pytest.raises(errors.ApiUnavailableError) as caught:
        await policy.run("GET", PATH, attempt)

    assert [0.0, 1.0, 3.0, 7.0, 15.0, 23.0, 31.0, 39.0, 47.0, 55.0, 63.0] == attempt.calls
    assert f"the API at https://api.x{PATH} did not answer: 11 requests failed in a row over 63 s" in (
        caught.value.message
    )
    assert isinstance(caught.value.__cause__, errors.ConnectError)


async def test_a_success_resets_the_shared_budget(autojump_clock: trio.testing.MockClock) -> None:
    """A request that finally succeeds gives the next failing request a whole new minute."""
    budget = RetryBudget()
    policy = SafeRetry(max_attempts=100, base_delay=8.0, max_delay=8.0, rng=UpperBound(), budget=budget)
    recovering = Script(refused(), refused(), refused(), refused(), refused(), refused(), refused(), OK)
    dying = Script(refused())

    await policy.run("GET", PATH, recovering)
    with pytest.raises(errors.ApiUnavailableError) as caught:
        await policy.run("GET", PATH, dying)

    assert 56.0 == recovering.calls[-1]
    assert [56.0 + 8 * i for i in range(9)] == dying.calls
    assert "9 requests failed in a row over 64 s" in caught.value.message


async def test_concurrent_requests_share_one_budget(autojump_clock: trio.testing.MockClock) -> None:
    """Ten requests against a dead server all end with the one clear error, a minute in, not ten minutes."""
    policy = SafeRetry(max_attempts=100, base_delay=1.0, max_delay=10.0, rng=random.Random(1))
    outcomes: list[BaseException] = []

    async def request() -> None:
        try:
            await policy.run("GET", PATH, Script(refused()))
        except errors.LeapbatchError as exc:
            outcomes.append(exc)

    async with trio.open_nursery() as nursery:
        for _ in range(10):
            nursery.start_soon(request)

    assert [errors.ApiUnavailableError] * 10 == [type(exc) for exc in outcomes]
    assert 60.0 <= trio.current_time() <= 71.0


def mock_client(handler: httpx.MockTransport, policy: SafeRetry) -> tuple[httpx.AsyncClient, LeapClient]:
    """Return an API client over `handler` that retries with `policy`."""
    http = api_http("https://api.example", SecretStr("sk-canary"), transport=handler)
    return http, LeapClient(http, retry=policy)


ENTITY = {"id": "job-1", "state": "queued"}


async def test_post_read_timeout_through_the_client_is_not_retried(autojump_clock: trio.testing.MockClock) -> None:
    """The real client's POST after an httpx ReadTimeout reaches the server once and raises TransportError."""
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.method)
        raise httpx.ReadTimeout("timed out", request=request)

    http, client = mock_client(httpx.MockTransport(handler), SafeRetry())
    async with http:
        with pytest.raises(errors.TransportError) as caught:
            await client.create("m", CreateInferenceDto(prompt="a red fox", seed=1))

    assert (["POST"], False) == (seen, isinstance(caught.value, errors.ConnectError))


async def test_get_through_the_client_honours_retry_after(autojump_clock: trio.testing.MockClock) -> None:
    """The real client's 503 with `Retry-After: 2` is retried 2 virtual seconds later, through the gate again."""
    seen: list[float] = []
    gated: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(trio.current_time())
        if len(seen) == 1:
            return httpx.Response(503, headers={"Retry-After": "2"}, json={"message": "busy"})
        return httpx.Response(200, json=ENTITY)

    async def gate() -> None:
        gated.append(trio.current_time())

    http = api_http("https://api.example", SecretStr("sk-canary"), transport=httpx.MockTransport(handler))
    async with http:
        entity = await LeapClient(http, gate=gate, retry=SafeRetry(rng=UpperBound())).find_one("m", "job-1")

    assert ("job-1", [0.0, 2.0], [0.0, 2.0]) == (entity.id, seen, gated)


async def test_get_with_a_garbled_body_is_read_again(autojump_clock: trio.testing.MockClock) -> None:
    """A GET whose 200 body is cut short is sent again (docs/reliability.md, rule 4), and the second body is used."""
    seen: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(trio.current_time())
        if len(seen) == 1:
            return httpx.Response(200, content=b'{"id": "job-1", "sta', headers={"content-type": "application/json"})
        return httpx.Response(200, json=ENTITY)

    http, client = mock_client(httpx.MockTransport(handler), SafeRetry(rng=UpperBound()))
    async with http:
        entity = await client.find_one("m", "job-1")

    assert ("job-1", 2) == (entity.id, len(seen))


def test_max_retry_after_above_two_minutes_is_honoured() -> None:
    """A server's Retry-After of an hour waits an hour with max_retry_after 3600, and 120 s by default."""
    throttled = errors.RateLimitedError(
        status=429, messages=["slow down"], method="GET", path="/x", retry_after=parse_retry_after("3600")
    )
    assert 3600.0 == SafeRetry(max_retry_after=3600.0).delay(1, throttled)
    assert 120.0 == SafeRetry().delay(1, throttled)
