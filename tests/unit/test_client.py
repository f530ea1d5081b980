"""`LeapClient` over `httpx.MockTransport`: the wire as sent, and every failure the emulator cannot easily produce."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from leapbatch import errors
from leapbatch.api.client import LeapClient, Settings, api_http, download_http, inferences_path, redact
from leapbatch.wire import DEFAULT_BASE_URL, CreateInferenceDto

CANARY = "sk-canary-5b7e0c1d9a2f4e6b"
BASE = "https://api.example"
MODEL = "8b1b897c-d66d-45a6-b8d7-8e32421d02cf"
PATH = f"/api/v1/images/models/{MODEL}/inferences"

Handler = Callable[[httpx.Request], httpx.Response]

# The one call `failure_of` makes, by name.
CALLS: dict[str, Callable[[LeapClient], Awaitable[object]]] = {
    "create": lambda client: client.create(MODEL, CreateInferenceDto(prompt="a fox", seed=1)),
    "find_all": lambda client: client.find_all(MODEL),
    "find_one": lambda client: client.find_one(MODEL, "job-1"),
}


def remove(client: LeapClient) -> Awaitable[object]:
    """Delete job-1 (kept out of CALLS, whose answers are job bodies)."""
    return client.remove(MODEL, "job-1")


def entity(job_id: str = "job-1", **fields: Any) -> dict[str, Any]:
    """Return a minimal InferenceEntity body."""
    return {"id": job_id, "state": "queued", **fields}


class Recorder:
    """A MockTransport handler that answers from a function and keeps every request it saw."""

    def __init__(self, answer: Handler) -> None:
        self.answer = answer
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        """Record `request` and answer it."""
        self.requests.append(request)
        return self.answer(request)


@contextlib.asynccontextmanager
async def leap(answer: Handler) -> Any:
    """Yield a client whose API calls go to `answer`, and the recorder of its requests."""
    recorder = Recorder(answer)
    async with api_http(BASE, SecretStr(CANARY), transport=httpx.MockTransport(recorder)) as http:
        yield LeapClient(http), recorder


async def failure_of(answer: Handler, call: str = "find_one") -> errors.LeapbatchError:
    """Return the error one call raises against `answer`."""
    async with leap(answer) as (client, _):
        with pytest.raises(errors.LeapbatchError) as caught:
            await CALLS[call](client)
    return caught.value


def assert_no_key(exc: BaseException) -> None:
    """Assert the canary key is in none of the ways an error can be shown."""
    hint = getattr(exc, "hint", None) or ""
    assert [] == [text for text in (str(exc), repr(exc), hint) if CANARY in text]


async def test_api_requests_carry_the_bearer_key() -> None:
    """Every API request says `Authorization: Bearer <key>` and asks for JSON."""
    async with leap(lambda r: httpx.Response(200, json=entity())) as (client, seen):
        await client.find_one(MODEL, "job-1")

    assert (f"Bearer {CANARY}", "application/json") == (
        seen.requests[0].headers["authorization"],
        seen.requests[0].headers["accept"],
    )


async def test_downloads_carry_no_authorization() -> None:
    """The download client sends no Authorization header, whatever the host."""
    recorder = Recorder(lambda r: httpx.Response(200, content=b"\x89PNG"))
    async with download_http(transport=httpx.MockTransport(recorder)) as http:
        await http.get("https://static.tryleap.ai/image-gen-1/generated_images/0.png")

    assert "authorization" not in recorder.requests[0].headers


async def test_create_posts_camel_case_and_omits_unset_fields() -> None:
    """`create` POSTs the camelCase body to the model's inferences; unset (legacy) fields are absent."""
    async with leap(lambda r: httpx.Response(201, json=entity())) as (client, seen):
        job = await client.create(MODEL, CreateInferenceDto(prompt="a fox", number_of_images=2, seed=5))

    request = seen.requests[0]
    assert ("POST", PATH, "job-1") == (request.method, request.url.path, job.id)
    assert {"prompt": "a fox", "numberOfImages": 2, "seed": 5} == json.loads(request.content)


async def test_create_accepts_200_as_well_as_201() -> None:
    """Leap documents 201; a 200 with the entity is just as good."""
    async with leap(lambda r: httpx.Response(200, json=entity("j2"))) as (client, _):
        job = await client.create(MODEL, CreateInferenceDto(prompt="p"))

    assert "j2" == job.id


async def test_find_all_sends_its_query() -> None:
    """`find_all` sends onlyFinished, page and pageSize, and returns the listed jobs."""
    async with leap(lambda r: httpx.Response(200, json=[entity("a"), entity("b")])) as (client, seen):
        jobs = await client.find_all(MODEL, only_finished=True, page=3, page_size=20)

    params = dict(seen.requests[0].url.params)
    assert ({"onlyFinished": "true", "page": "3", "pageSize": "20"}, ["a", "b"]) == (params, [j.id for j in jobs])


async def test_iter_all_walks_pages_until_an_empty_one() -> None:
    """A short page does not end the listing (the server may cap pageSize): only an empty page does."""
    pages = {1: ["a", "b", "c"], 2: ["d"], 3: ["e", "f"], 4: []}

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=[entity(i) for i in pages[int(request.url.params["page"])]])

    async with leap(answer) as (client, seen):
        ids = [job.id async for job in client.iter_all(MODEL, page_size=3)]

    assert ["a", "b", "c", "d", "e", "f"] == ids
    assert ["1", "2", "3", "4"] == [r.url.params["page"] for r in seen.requests]


async def test_ids_are_percent_encoded_in_paths() -> None:
    """Model and inference ids cannot add path segments or a query: `/`, space, `?` and `#` are encoded."""
    async with leap(lambda r: httpx.Response(200, json={**entity(), "id": "x?y#z"})) as (client, seen):
        await client.find_one("a/b c", "x?y#z")
        await client.remove("a/b c", "x?y#z")

    expected = b"/api/v1/images/models/a%2Fb%20c/inferences/x%3Fy%23z"
    assert [("GET", expected), ("DELETE", expected)] == [(r.method, r.url.raw_path) for r in seen.requests]


async def test_dot_ids_never_address_another_resource() -> None:
    """An inference id of `..` (from a hostile listing) never turns a DELETE into one on the model itself."""
    async with leap(lambda r: httpx.Response(200)) as (client, seen):
        with contextlib.suppress(ValueError, errors.LeapbatchError):
            await client.remove("m", "..")
        with contextlib.suppress(ValueError, errors.LeapbatchError):
            await client.remove("m", ".")

    inside = b"/api/v1/images/models/m/inferences/"
    assert [] == [r.url.raw_path for r in seen.requests if not r.url.raw_path.startswith(inside)]


async def test_remove_accepts_an_empty_200() -> None:
    """`remove` sends DELETE and needs no body back."""
    async with leap(lambda r: httpx.Response(200)) as (client, seen):
        result = await client.remove(MODEL, "job-1")

    assert (None, "DELETE", f"{PATH}/job-1") == (result, seen.requests[0].method, seen.requests[0].url.path)


async def test_lenient_entities_through_the_client() -> None:
    """Unknown keys, `status` without `state`, a `Z` timestamp and `512.0` all come through findOne."""
    body = {"id": "j", "status": "finished", "createdAt": "2023-07-04T20:55:54.644Z", "width": 512.0, "extra": 1}
    async with leap(lambda r: httpx.Response(200, json=body)) as (client, _):
        job = await client.find_one(MODEL, "j")

    assert job.created_at is not None
    assert ("finished", 512, 2023) == (job.state.value, job.width, job.created_at.year)


@pytest.mark.parametrize("call", ["create", "find_all", "find_one", "remove"])
@pytest.mark.parametrize("status", [401, 403])
async def test_a_refused_key_is_one_error_on_every_call(status: int, call: str) -> None:
    """401 and 403 become KeyRefusedError, whatever the call, with the server's words and the hint to check the key."""
    body = {"statusCode": status, "message": "Unauthorized"}
    async with leap(lambda r: httpx.Response(status, json=body)) as (client, _):
        with pytest.raises(errors.KeyRefusedError) as caught:
            await {**CALLS, "remove": remove}[call](client)
    exc = caught.value

    assert (errors.EXIT_API_UNAVAILABLE, status, True) == (
        exc.exit_code,
        exc.status,
        f"HTTP {status} from" in exc.message,
    )
    assert "LEAP_API_KEY" in (exc.hint or "")
    assert_no_key(exc)


@pytest.mark.parametrize(
    ("status", "expected_class"),
    [
        (400, errors.BadRequestError),
        (404, errors.NotFoundError),
        (409, errors.HTTPStatusError),
        (429, errors.RateLimitedError),
        (500, errors.ServerError),
        (502, errors.ServerError),
        (503, errors.ServerError),
        (504, errors.ServerError),
        (520, errors.ServerError),
    ],
)
async def test_each_status_has_its_exception(status: int, expected_class: type[errors.HTTPStatusError]) -> None:
    """The status picks the class; the message has the status, the server's words, the method and the path."""
    body = {"statusCode": status, "message": ["first problem", "second problem"]}
    exc = await failure_of(lambda r: httpx.Response(status, json=body))

    assert expected_class is type(exc)
    assert isinstance(exc, errors.HTTPStatusError)
    assert f"HTTP {status} from GET {PATH}/job-1: first problem; second problem" == exc.message
    assert (status, "GET", f"{PATH}/job-1") == (exc.status, exc.method, exc.path)
    assert_no_key(exc)


@pytest.mark.parametrize(
    ("header", "expected"),
    [("30", 30.0), ("100000", 86_400.0), ("Thu, 01 Jan 1970 00:00:00 GMT", 0.0), ("later", None), (None, None)],
)
async def test_429_carries_retry_after(header: str | None, expected: float | None) -> None:
    """A 429's Retry-After is parsed into `retry_after` (at most a day; the policy clamps it); garbage is None."""
    headers = {} if header is None else {"Retry-After": header}
    exc = await failure_of(lambda r: httpx.Response(429, headers=headers, json={"message": "slow down"}))

    assert isinstance(exc, errors.RateLimitedError)
    assert expected == exc.retry_after


@pytest.mark.parametrize(
    ("body", "expected_said"),
    [
        pytest.param({"message": "Inference not found"}, "Inference not found", id="string"),
        pytest.param({"statusCode": 404, "error": "Not Found"}, "Not Found", id="missing-uses-error"),
        pytest.param({"statusCode": 404}, "no message", id="missing-entirely"),
        pytest.param(
            {"message": [{"field": "width"}, "bad seed"]}, '{"field": "width"}; bad seed', id="objects-become-json"
        ),
        pytest.param(["not", "an", "object"], '["not", "an", "object"]', id="not-an-object"),
    ],
)
async def test_server_messages_read_like_text(body: Any, expected_said: str) -> None:
    """Whatever shape the error body takes, the message is readable and never `[object Object]`."""
    exc = await failure_of(lambda r: httpx.Response(404, json=body))

    assert f"HTTP 404 from GET {PATH}/job-1: {expected_said}" == exc.message
    assert "[object Object]" not in exc.message


async def test_an_html_error_page_keeps_its_status() -> None:
    """A proxy's HTML 502 page becomes a ServerError that says the body was not JSON, with its size."""
    page = b"<html><body><h1>502 Bad Gateway</h1></body></html>"
    exc = await failure_of(lambda r: httpx.Response(502, content=page, headers={"content-type": "text/html"}))

    assert isinstance(exc, errors.ServerError)
    assert (502, [f"non-JSON error body (text/html, {len(page)} bytes)"]) == (exc.status, exc.messages)


@pytest.mark.parametrize(
    ("call", "answer", "expected_words"),
    [
        pytest.param("find_one", {"id": "j"}, "not an inference job", id="entity-without-state"),
        pytest.param("find_one", [entity()], "not an inference job", id="entity-is-a-list"),
        pytest.param("create", {"foo": 1}, "not an inference job", id="create-not-an-entity"),
        pytest.param("find_all", {"items": []}, "expected a JSON array of jobs", id="find-all-not-an-array"),
        pytest.param("find_all", [entity(), {"id": 3}], "not an inference job", id="find-all-bad-item"),
    ],
)
async def test_bodies_that_are_not_what_the_api_promises(call: str, answer: Any, expected_words: str) -> None:
    """A 200 whose body is not an entity (or not an array, for findAll) is a MalformedResponseError."""
    exc = await failure_of(lambda r: httpx.Response(200, json=answer), call)

    assert isinstance(exc, errors.MalformedResponseError)
    assert (200, True) == (exc.status, expected_words in exc.message)
    assert_no_key(exc)


async def test_a_non_json_success_body_is_malformed() -> None:
    """A 200 HTML page where JSON was due says so, with status, method and path."""
    exc = await failure_of(lambda r: httpx.Response(200, content=b"<html>maintenance</html>"))

    assert isinstance(exc, errors.MalformedResponseError)
    assert f"HTTP 200 from GET {PATH}/job-1: the body is not JSON (JSONDecodeError)" == exc.message


def raising(exc_class: type[httpx.TransportError]) -> Handler:
    """Return a handler that fails the way a network does."""

    def answer(request: httpx.Request) -> httpx.Response:
        raise exc_class("boom", request=request)

    return answer


@pytest.mark.parametrize(
    ("httpx_error", "expected_class", "expected_words"),
    [
        (httpx.ConnectError, errors.ConnectError, "could not connect for GET"),
        (httpx.ConnectTimeout, errors.ConnectError, "could not connect for GET"),
        (httpx.ReadTimeout, errors.TransportError, "no answer in time for GET"),
        (httpx.WriteTimeout, errors.TransportError, "no answer in time for GET"),
        (httpx.RemoteProtocolError, errors.TransportError, "connection failed during GET"),
        (httpx.ReadError, errors.TransportError, "connection failed during GET"),
    ],
)
async def test_network_failures_map_to_the_error_tree(
    httpx_error: type[httpx.TransportError], expected_class: type[errors.ApiError], expected_words: str
) -> None:
    """Only failures to connect are ConnectError (never reached the server); the rest are TransportError."""
    exc = await failure_of(raising(httpx_error))

    assert expected_class is type(exc)
    assert f"{expected_words} {PATH}/job-1: {httpx_error.__name__}" == exc.message
    assert_no_key(exc)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 429, 500, 503])
async def test_error_messages_never_contain_the_key(status: int) -> None:
    """No status error shows the key in its str, repr or hint."""
    exc = await failure_of(lambda r: httpx.Response(status, json={"message": "denied"}), "create")

    assert_no_key(exc)


async def test_a_server_that_echoes_the_key_does_not_leak_it() -> None:
    """A 401 whose body quotes the bearer token back still yields an error without the key."""

    def answer(request: httpx.Request) -> httpx.Response:
        said = f"invalid key: {request.headers['authorization'].removeprefix('Bearer ')}"
        return httpx.Response(401, json={"statusCode": 401, "message": said})

    exc = await failure_of(answer)

    assert_no_key(exc)


def test_settings_defaults() -> None:
    """With nothing set, the base URL is Leap's and there is no key."""
    assert Settings(base_url=DEFAULT_BASE_URL, api_key=None) == Settings.from_env({})


def test_settings_read_and_hide_the_key() -> None:
    """The key is read (trimmed) into a SecretStr that str and repr both hide."""
    settings = Settings.from_env({"LEAP_API_KEY": f"  {CANARY}\n", "LEAP_BASE_URL": "http://127.0.0.1:9/"})

    assert settings.api_key is not None
    assert (CANARY, "http://127.0.0.1:9/") == (settings.api_key.get_secret_value(), settings.base_url)
    assert [] == [text for text in (str(settings), repr(settings), str(settings.api_key)) if CANARY in text]


def test_a_blank_key_is_no_key() -> None:
    """An empty or blank LEAP_API_KEY is the same as none (so the CLI can say so clearly)."""
    assert None is Settings.from_env({"LEAP_API_KEY": "   ", "LEAP_BASE_URL": " "}).api_key


def test_inferences_path() -> None:
    """The collection path and the one-job path, built from encoded ids."""
    assert (PATH, f"{PATH}/j%201") == (inferences_path(MODEL), inferences_path(MODEL, "j 1"))


@pytest.mark.parametrize(
    ("text", "key", "expected"),
    [
        ("invalid key sk-abc123 given", "sk-abc123", "invalid key [redacted] given"),
        ("key=sk-abc123,", "sk-abc123", "key=[redacted],"),
        ("keep it as it is", "k", "keep it as it is"),  # a short key is not cut out of words
        ("the key k was refused", "k", "the key [redacted] was refused"),
        ("abcabc", "abc", "abcabc"),
    ],
)
def test_redaction_replaces_the_key_where_it_stands_alone(text: str, key: str, expected: str) -> None:
    """Only standalone occurrences of the key are redacted, so a short key does not mangle the text."""
    assert expected == redact(text, key)


async def test_a_key_straddling_the_length_cut_is_redacted_whole() -> None:
    """A long non-NestJS body with the key at character 295: the message is cut after redaction, so no part of the
    key survives (before, its first 5 characters did)."""
    body = ["x" * 280 + f" key {CANARY} refused"]  # not a NestJS body: its JSON text is the message
    async with leap(lambda r: httpx.Response(418, json=body)) as (client, _):
        with pytest.raises(errors.ApiError) as caught:
            await client.find_one(MODEL, "a")
    assert CANARY[:4] not in caught.value.message
    assert "[redacted]" in caught.value.message


@pytest.mark.parametrize("key", ["abc\r\ndef", "clé-secrète", "a\tb"])
def test_a_key_that_cannot_be_sent_in_a_header_is_a_usage_error(key: str) -> None:
    """LEAP_API_KEY with CR, LF, a tab or a non-ASCII character: exit 2 naming the position, never the character."""
    with pytest.raises(errors.UsageError) as caught:
        Settings.from_env({"LEAP_API_KEY": key})
    assert 2 == caught.value.exit_code
    assert "position" in caught.value.message
    assert all(char not in caught.value.message for char in "é\r\n\t")
