"""`LeapClient`: the four calls of Leap's image API over an injected `httpx.AsyncClient`.

The client speaks the wire exactly (routes, camelCase bodies, bearer auth) and turns every failure into the
exception tree of `leapbatch.errors`: a message with the status, the server's messages, the method and the path,
and never the key (it lives only in the `Authorization` header of the API client built by `api_http`).

Every request goes through one seam, `LeapClient._send`: an optional `gate` is awaited first (the runner's token
bucket), then the request is sent and its answer parsed through the `RetryPolicy` (by default: one attempt), so a
garbled body is a failure the policy sees. It is also the one place where httpx's exceptions become leapbatch's
(`leapbatch.api.transport`) and where a 401/403 becomes `KeyRefusedError`, whatever the call: every path (create,
poll, sweep, list, delete, repair) stops the batch with the same message. Image downloads never use this client:
`download_http` builds a second client that has no Authorization header.

The server's word is bounded and checked here too:
- every answer must arrive whole within `deadline` seconds (headers and body: a body trickled a byte a second
  passes every read timeout, not this); past it the call is a `TransportError` like any timeout;
- findOne must answer for the id it was asked (another id is a `MalformedResponseError`, retried like any
  garbled answer, never taken as the job);
- `pages` reads a listing page after page, but at most `max_pages`, within `deadline`, and stops, as
  `ListingIncompleteError`, at a page that repeats the page before (a server that ignores `page`);
- each answer's `Date` header (and a create's `createdAt`) teaches the `ServerClock` the server's clock;
- a server's error text is redacted of the key before it is cut to length, and only where the key stands as a
  token of its own (a short key is not cut out of words that merely contain it).
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar
from urllib.parse import quote

import httpx
import trio
from pydantic import SecretStr, ValidationError

from leapbatch import errors
from leapbatch.api.backoff import parse_retry_after
from leapbatch.api.clock import ServerClock
from leapbatch.api.transport import HTTPX_FAILURES, Translated, TransportFailure, translate
from leapbatch.crashpoints import crashpoint
from leapbatch.wire import (
    API_PREFIX,
    DEFAULT_BASE_URL,
    CreateInferenceDto,
    ErrorBody,
    InferenceEntity,
    base_url_problem,
)

DEFAULT_PAGE_SIZE = 50
MAX_LISTING_PAGES = 1000  # a listing longer than this is not read to its end
LISTING_DEADLINE = 300.0  # seconds one listing may take, page after page
# httpx's default 5 s timeout would also bound the wait for a pooled connection (PoolTimeout): concurrency is
# bounded by the runner instead.
DEFAULT_TIMEOUT = httpx.Timeout(30.0, pool=None)
# More concurrent requests than this add latency, not throughput, on one client (and httpcore's pool bookkeeping
# grows with its size): jobs in flight are many, requests in flight need not be.
DEFAULT_MAX_CONNECTIONS = 16
ANSWER_DEADLINE_FACTOR = 4  # a whole answer may take this many read timeouts
MAX_MESSAGE_CHARS = 300  # a server's error text is cut to this length (after redaction)
KEY_CHARS = "A-Za-z0-9_-"  # a key is redacted where these do not continue it on either side

T = TypeVar("T")
Gate = Callable[[], Awaitable[None]]


class RetryPolicy(Protocol):
    """Decide whether and when to send a request again (see `leapbatch.api.retry`)."""

    async def run(self, method: str, path: str, attempt: Callable[[], Awaitable[T]]) -> T:
        """Call `attempt` until it succeeds or the policy gives up, re-raising the last error."""
        ...


class SingleAttempt:
    """The policy that never retries."""

    async def run(self, method: str, path: str, attempt: Callable[[], Awaitable[T]]) -> T:
        """Call `attempt` once."""
        return await attempt()


@dataclass(frozen=True, slots=True)
class Settings:
    """Where the API is and the key to it, read from `LEAP_BASE_URL` and `LEAP_API_KEY`."""

    base_url: str = DEFAULT_BASE_URL
    api_key: SecretStr | None = None
    base_url_from_env: bool = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read the settings from the environment (the key is never taken from argv or files).

        Both are checked here, before any request: a key that cannot be sent in a header, or a LEAP_BASE_URL that
        is not `http(s)://host[:port]` (`leapbatch.wire.base_url_problem`), is a `UsageError` (exit 2).
        """
        env = os.environ if environ is None else environ
        key = env.get("LEAP_API_KEY", "").strip()
        base_url = env.get("LEAP_BASE_URL", "").strip()
        bad = next((index for index, char in enumerate(key) if not " " < char < "\x7f"), None)
        if bad is not None:
            raise errors.UsageError(
                f"LEAP_API_KEY has a character that cannot be sent in an HTTP header (at position {bad + 1})",
                hint="copy the key again from Leap's dashboard; it is printable ASCII with no spaces",
            )
        problem = base_url_problem(base_url) if base_url else None
        if problem is not None:
            raise errors.UsageError(
                f"LEAP_BASE_URL {problem.message}",
                hint=f"export LEAP_BASE_URL={problem.corrected}"
                if problem.corrected
                else f"set it to the API's origin, e.g. LEAP_BASE_URL={DEFAULT_BASE_URL}, or unset it for that default",
            )
        return cls(
            base_url=base_url or DEFAULT_BASE_URL,
            api_key=SecretStr(key) if key else None,
            base_url_from_env=bool(base_url),
        )


def api_http(
    base_url: str,
    api_key: SecretStr,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    timeout: httpx.Timeout = DEFAULT_TIMEOUT,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
) -> httpx.AsyncClient:
    """Return the HTTP client for API calls: base URL, bearer key, sane timeouts."""

    async def after_response(response: httpx.Response) -> None:
        if response.request.method == "POST":
            crashpoint("after-create-sent")  # the server has handled the create; its answer is not read yet

    return httpx.AsyncClient(
        event_hooks={"response": [after_response]},
        base_url=base_url,
        headers={"Authorization": f"Bearer {api_key.get_secret_value()}", "Accept": "application/json"},
        transport=transport,
        timeout=timeout,
        limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
        follow_redirects=False,
    )


def download_http(
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    timeout: httpx.Timeout = DEFAULT_TIMEOUT,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
) -> httpx.AsyncClient:
    """Return the HTTP client for image downloads: it carries no Authorization header, ever."""
    return httpx.AsyncClient(
        transport=transport,
        timeout=timeout,
        follow_redirects=True,
        limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
    )


def inferences_path(model_id: str, inference_id: str | None = None) -> str:
    """Return the API path of a model's inferences, or of one inference (ids are percent-encoded)."""
    for part in (model_id, inference_id):
        if part is not None and part in ("", ".", ".."):
            raise ValueError(f"not a usable id in a path: {part!r}")
    base = f"{API_PREFIX}/{quote(model_id, safe='')}/inferences"
    return base if inference_id is None else f"{base}/{quote(inference_id, safe='')}"


def _transport_error(translated: Translated, method: str, path: str) -> errors.TransportError:
    if translated.failure is TransportFailure.CONNECT:
        return errors.ConnectError(
            f"could not connect for {method} {path}: {translated.name}", method=method, path=path
        )
    if translated.failure is TransportFailure.TIMEOUT:
        return errors.TransportError(
            f"no answer in time for {method} {path}: {translated.name}", method=method, path=path
        )
    return errors.TransportError(
        f"connection failed during {method} {path}: {translated.name}", method=method, path=path
    )


def _server_messages(response: httpx.Response) -> list[str]:
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        kind = response.headers.get("content-type", "unknown type").split(";")[0]
        return [f"non-JSON error body ({kind}, {len(response.content)} bytes)"]
    if isinstance(body, dict):
        try:
            return ErrorBody.model_validate(body).messages()
        except ValidationError:
            pass
    return [json.dumps(body, sort_keys=True)]


def redact(text: str, key: str) -> str:
    """Return `text` with every standalone occurrence of `key` replaced by `[redacted]`."""
    if not key:
        return text
    pattern = f"(?<![{KEY_CHARS}]){re.escape(key)}(?![{KEY_CHARS}])"
    return re.sub(pattern, "[redacted]", text)


def _raise_for_status(response: httpx.Response, method: str, path: str) -> None:
    if response.is_success:
        return
    retry_after = parse_retry_after(response.headers.get("retry-after"))
    cls = errors.status_error_class(response.status_code)
    # A server may quote the key back ("invalid key: sk-..."): it is redacted from the whole text, then cut.
    token = response.request.headers.get("authorization", "").removeprefix("Bearer ").strip()
    messages = [redact(m, token)[:MAX_MESSAGE_CHARS] for m in _server_messages(response)]
    raise cls(
        status=response.status_code,
        messages=messages,
        method=method,
        path=path,
        retry_after=retry_after,
    )


def _json_body(response: httpx.Response, method: str, path: str) -> Any:
    try:
        return response.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise errors.MalformedResponseError(
            f"HTTP {response.status_code} from {method} {path}: the body is not JSON ({exc.__class__.__name__})",
            method=method,
            path=path,
            status=response.status_code,
        ) from None


def _entity(data: Any, response: httpx.Response, method: str, path: str) -> InferenceEntity:
    try:
        return InferenceEntity.model_validate(data)
    except ValidationError as exc:
        where = ", ".join(".".join(str(p) for p in err["loc"]) or "body" for err in exc.errors()[:3])
        raise errors.MalformedResponseError(
            f"HTTP {response.status_code} from {method} {path}: not an inference job (bad fields: {where})",
            method=method,
            path=path,
            status=response.status_code,
        ) from None


class LeapClient:
    """Leap's image API: `create`, `find_all` / `iter_all`, `find_one`, `remove`."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        gate: Gate | None = None,
        retry: RetryPolicy | None = None,
        concurrency: int = DEFAULT_MAX_CONNECTIONS,
        clock: ServerClock | None = None,
        deadline: float | None = None,
    ):
        self._http = http
        self._gate = gate
        self._retry: RetryPolicy = retry or SingleAttempt()
        self.clock = clock or ServerClock()
        read = http.timeout.read
        # The whole answer, body included: a server that trickles bytes passes every read timeout.
        self.deadline = deadline if deadline is not None else (read or 30.0) * ANSWER_DEADLINE_FACTOR
        # Requests wait here rather than in httpcore's pool, whose bookkeeping grows with every queued request.
        self._slots = trio.CapacityLimiter(concurrency)

    async def _send(
        self,
        method: str,
        path: str,
        *,
        body: Mapping[str, Any] | None = None,
        params: Mapping[str, str | int] | None = None,
        parse: Callable[[httpx.Response], T],
    ) -> T:
        async def attempt() -> T:
            if self._gate is not None:
                await self._gate()
            try:
                async with self._slots:
                    sent = time.time()
                    with trio.move_on_after(self.deadline) as scope:
                        response = await self._http.request(method, path, json=body, params=params)
            except HTTPX_FAILURES as exc:
                raise _transport_error(translate(exc), method, path) from None
            if scope.cancelled_caught:
                raise errors.TransportError(
                    f"no complete answer within {self.deadline:g} s for {method} {path} (the deadline of a whole "
                    "answer)",
                    method=method,
                    path=path,
                )
            self.clock.observe_date(response.headers.get("date"), sent, time.time())
            _raise_for_status(response, method, path)
            return parse(response)

        try:
            return await self._retry.run(method, path, attempt)
        except errors.AuthError as exc:
            raise errors.KeyRefusedError(exc) from None

    async def create(self, model_id: str, request: CreateInferenceDto) -> InferenceEntity:
        """Submit a generation job; it starts `queued` with no images."""
        path = inferences_path(model_id)
        sent = time.time()
        entity = await self._send(
            "POST", path, body=request.to_wire(), parse=lambda r: _entity(_json_body(r, "POST", path), r, "POST", path)
        )
        self.clock.observe_created(entity.created_at, sent, time.time())
        return entity

    async def find_all(
        self, model_id: str, *, only_finished: bool = False, page: int = 1, page_size: int = DEFAULT_PAGE_SIZE
    ) -> list[InferenceEntity]:
        """Return one page of the model's jobs (pages start at 1; an empty page ends the list)."""
        path = inferences_path(model_id)
        params = {"onlyFinished": "true" if only_finished else "false", "page": page, "pageSize": page_size}

        def parse(response: httpx.Response) -> list[InferenceEntity]:
            data = _json_body(response, "GET", path)
            if not isinstance(data, list):
                raise errors.MalformedResponseError(
                    f"HTTP {response.status_code} from GET {path}: expected a JSON array of jobs",
                    method="GET",
                    path=path,
                    status=response.status_code,
                )
            return [_entity(item, response, "GET", path) for item in data]

        return await self._send("GET", path, params=params, parse=parse)

    async def pages(
        self,
        model_id: str,
        *,
        only_finished: bool = False,
        page_size: int = DEFAULT_PAGE_SIZE,
        max_pages: int = MAX_LISTING_PAGES,
        deadline: float = LISTING_DEADLINE,
    ) -> AsyncGenerator[list[InferenceEntity]]:
        """Yield the model's jobs page after page until an empty page; the caller may stop earlier.

        Only "pages are disjoint and an empty page ends the list" is relied on: a server may cap `pageSize` below
        what was asked, so a short page does not end the listing. Raise `ListingIncompleteError` past `max_pages`,
        past `deadline` seconds, or at a page that repeats the one before (a server that ignores `page`).
        """
        path = inferences_path(model_id)
        ends = trio.current_time() + deadline
        previous: list[str] | None = None
        for page in range(1, max_pages + 1):
            if trio.current_time() > ends:
                raise errors.ListingIncompleteError(f"listing {path} took over {deadline:g} s", method="GET", path=path)
            batch = await self.find_all(model_id, only_finished=only_finished, page=page, page_size=page_size)
            if not batch:
                return
            ids = [entity.id for entity in batch]
            if ids == previous:
                raise errors.ListingIncompleteError(
                    f"GET {path} answered page {page} with the jobs of page {page - 1}: the server ignores paging",
                    method="GET",
                    path=path,
                )
            previous = ids
            yield batch
        raise errors.ListingIncompleteError(f"listing {path} has more than {max_pages} pages", method="GET", path=path)

    async def iter_all(
        self, model_id: str, *, only_finished: bool = False, page_size: int = DEFAULT_PAGE_SIZE
    ) -> AsyncIterator[InferenceEntity]:
        """Yield every job of the model, page after page (bounded as `pages` is)."""
        async for batch in self.pages(model_id, only_finished=only_finished, page_size=page_size):
            for entity in batch:
                yield entity

    async def find_one(self, model_id: str, inference_id: str) -> InferenceEntity:
        """Return one job, with its image URIs once finished (an answer for another id is malformed)."""
        path = inferences_path(model_id, inference_id)

        def parse(response: httpx.Response) -> InferenceEntity:
            entity = _entity(_json_body(response, "GET", path), response, "GET", path)
            if entity.id != inference_id:
                raise errors.MalformedResponseError(
                    f"HTTP {response.status_code} from GET {path}: the answer is for another job ({entity.id})",
                    method="GET",
                    path=path,
                    status=response.status_code,
                )
            return entity

        return await self._send("GET", path, parse=parse)

    async def remove(self, model_id: str, inference_id: str) -> None:
        """Delete a job and its images (raises `NotFoundError` if it is already gone)."""
        await self._send("DELETE", inferences_path(model_id, inference_id), parse=lambda response: None)
