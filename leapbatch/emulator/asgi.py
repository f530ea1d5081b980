"""The emulator's HTTP plumbing, shared by both apps: requests and replies, the fault seam, and broken connections.

Every request takes the same path: read the body (capped), match a route (unknown paths 404, known paths with
another method 405, both with NestJS bodies and before auth, as in NestJS), count it, ask the fault plan, then
handle it. `_App._respond` is the one place where a fault decision is taken: `config.faults.decide(request)`
returns None (serve normally) or a `Fault` that wraps the handler and may delay, replace or break its reply; the
fault is counted in the stats by its `name` (unless it `counts_itself`: a `Twist` is counted by the state when it
takes effect), and a create whose job was made under a fault that `loses_reply` is counted as ambiguous (the job
exists, the client cannot know it). A fault that changes what the server *does* (a late commit, a lagging listing,
a reused id) hands the handler a `Twist` on the request; the handler and the state honour it.

Every reply carries a `Date` header from the server's wall clock (so a `clock_offset` shows there too; the
served emulator turns hypercorn's own off).

A `Reply` can also break the connection, which ASGI has no message for; both ways end the app mid-response, which
hypercorn answers by closing the connection:
- `status` 0: no response at all. Returning before `http.response.start` would make hypercorn answer 500, so an
  interim `100 Continue` is sent first (clients skip interim answers); the client sees the connection close
  without a response ("Server disconnected without sending a response").
- `length` above `len(body)`: the headers announce `length` bytes, `body` is sent, and the connection closes: the
  client sees a body cut short.
A `trickle` above 0 sends the body that many bytes a second, in small chunks, one every max(1/4 s, 1/trickle): at
the default 8 bytes a second each read gets a byte well within any read timeout, so only a deadline on the whole
body ends it.

`httpx.ASGITransport` cannot express any of these and enforces no timeout: `Emulator.transport()` (inprocess.py) wraps
the apps so in-process clients meet the same httpx exceptions as over sockets.

Both apps answer the `lifespan` scope (hypercorn-trio requires it) but keep no state in it: `httpx.ASGITransport`
never sends lifespan events, so everything is built in `Emulator.__init__`.
"""

from __future__ import annotations

import contextvars
import json
import math
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from email.utils import format_datetime
from http import HTTPStatus
from typing import Any, Protocol

import trio

from leapbatch.emulator.config import ROUTES
from leapbatch.emulator.state import EmulatorState
from leapbatch.wire import ErrorBody

Scope = Mapping[str, Any]
Receive = Callable[[], Awaitable[Mapping[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Twist:
    """How a fault bends what the server does for one request (the handler honours it; the state counts it)."""

    commit_after: float = 0.0  # create: the job exists (found, listed) only this many seconds later
    list_lag: float = 0.0  # create: the job is listed only this many seconds after its create answered
    reuse_id: bool = False  # create: the job takes the id of the model's newest live job
    extra_images: int = 0  # create: the finished job lists this many images beyond numberOfImages
    wrong_id: bool = False  # get: the answer is another job of the same model
    ignore_page: bool = False  # list: page 1, whatever page was asked


NO_TWIST = Twist()


@dataclass(frozen=True, slots=True)
class Request:
    """One HTTP request, read in full, with the route it matched and the route's path parameters."""

    route: str  # create | list | get | delete | image | stats
    method: str
    path: str
    query: bytes
    headers: Mapping[str, str]  # lower-case names
    body: bytes
    too_large: bool
    params: Mapping[str, str]
    twist: Twist = NO_TWIST


@dataclass(frozen=True, slots=True)
class Reply:
    """One HTTP response (Content-Length is added when it is sent), or a connection that breaks.

    `status` 0 closes the connection without any response; a `length` above `len(body)` announces that many bytes,
    sends `body` and closes the connection (a body cut short).
    """

    status: int
    body: bytes = b""
    content_type: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    length: int | None = None  # the Content-Length announced; None: len(body)
    trickle: float = 0.0  # bytes per second the body is sent at; 0: all at once


DROP = Reply(0)  # close the connection without answering


Handler = Callable[[Request], Awaitable[Reply]]


class Fault(Protocol):
    """One injected misbehaviour: it decides whether and how to call the real handler.

    Optional attributes tell the stats about it: `name` (the key it is counted under; default: the class name),
    `loses_reply` (True when the client cannot rely on the reply of a handler that ran: a create made under it
    counts as ambiguous) and `counts_itself` (True for a `Twist`, which the state counts when it takes effect).
    """

    async def apply(self, request: Request, handler: Handler) -> Reply:
        """Return the reply to send instead of (or made from) the handler's."""
        ...


class FaultPlan(Protocol):
    """Decide, per request, whether a fault is injected (None: serve it normally)."""

    def decide(self, request: Request) -> Fault | None:
        """Return the fault for this request, or None."""
        ...


def json_reply(status: int, value: Any) -> Reply:
    """Return a JSON reply."""
    body = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
    return Reply(status, body, "application/json; charset=utf-8")


# NestJS's names, which Python's phrases do not always match (413 changed name in Python 3.13).
_NEST_ERRORS = {400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed", 413: "Payload Too Large"}


def error_reply(status: int, message: str | list[str], *, headers: tuple[tuple[str, str], ...] = ()) -> Reply:
    """Return a NestJS error reply: `{"statusCode", "message", "error"}` (a bare 401 has no `error`)."""
    error = None if status == 401 else _NEST_ERRORS.get(status) or HTTPStatus(status).phrase
    reply = json_reply(status, ErrorBody(status_code=status, message=message, error=error).to_wire())
    return Reply(reply.status, reply.body, reply.content_type, headers)


UNAUTHORIZED = error_reply(401, "Unauthorized")


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _read_body(receive: Receive, limit: int) -> tuple[bytes, bool]:
    """Return the body (drained in full, kept up to `limit` bytes) and whether it was over the limit."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size <= limit:
            chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks), size > limit


async def _send(send: Send, reply: Reply) -> None:
    if reply.status == 0:
        # The app then ends without a final response: hypercorn closes the connection (see the module docstring).
        await send({"type": "http.response.start", "status": 100, "headers": []})
        return
    length = len(reply.body) if reply.length is None else reply.length
    headers = [(b"content-length", str(length).encode())]
    if reply.content_type is not None:
        headers.append((b"content-type", reply.content_type.encode()))
    headers += [(name.encode(), value.encode("latin-1")) for name, value in reply.headers]
    if reply.trickle > 0.0:
        await _trickle(send, reply, headers)
        return
    await send({"type": "http.response.start", "status": reply.status, "headers": headers})
    # A body short of its announced length is left unfinished: the connection closes when the app returns.
    await send({"type": "http.response.body", "body": reply.body, "more_body": length > len(reply.body)})


TRICKLE_CHUNKS_PER_SECOND = 4


class _TrickledError(Exception):
    """Raised in-process instead of trickling: the transport replays the reply as a slow stream."""

    def __init__(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes, rate: float) -> None:
        super().__init__(status)
        self.status, self.headers, self.body, self.rate = status, headers, body, rate


async def _trickle(send: Send, reply: Reply, headers: list[tuple[bytes, bytes]]) -> None:
    """Send the body `reply.trickle` bytes a second, a few chunks a second."""
    if _IN_PROCESS.get():
        raise _TrickledError(reply.status, headers, reply.body, reply.trickle)
    await send({"type": "http.response.start", "status": reply.status, "headers": headers})
    step = max(1, math.ceil(reply.trickle / TRICKLE_CHUNKS_PER_SECOND))
    for offset in range(0, len(reply.body), step):
        await trio.sleep(step / reply.trickle)
        await send({"type": "http.response.body", "body": reply.body[offset : offset + step], "more_body": True})
    await send({"type": "http.response.body", "body": b"", "more_body": False})


# Whether the request is served in-process (through `Emulator.transport()`), not over a socket.
_IN_PROCESS: contextvars.ContextVar[bool] = contextvars.ContextVar("in_process", default=False)
# The read timeout of the in-process client whose request is being served (None over sockets: the client enforces it).
_CLIENT_READ_TIMEOUT: contextvars.ContextVar[float | None] = contextvars.ContextVar("client_read_timeout", default=None)


class _ClientGaveUpError(Exception):
    """Raised by `pause` in-process when the client's read timeout ends before the pause does."""


async def pause(seconds: float) -> None:
    """Wait `seconds` before answering; in-process, give up as the caller's client would once its timeout passes."""
    timeout = _CLIENT_READ_TIMEOUT.get()
    if timeout is not None and timeout < seconds:
        await trio.sleep(timeout)
        raise _ClientGaveUpError
    await trio.sleep(seconds)


def _path_of(scope: Scope) -> str:
    raw = scope.get("raw_path")
    return raw.decode("latin-1") if isinstance(raw, bytes) and raw else str(scope["path"])


class _App:
    """What both apps share: the ASGI entry point, request reading, counting and the fault seam."""

    def __init__(self, state: EmulatorState) -> None:
        self.state = state
        self._date_second = -1
        self._date_value = ""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI connection scope."""
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            raise RuntimeError(f"the emulator serves HTTP only, not {scope['type']!r}")
        body, too_large = await _read_body(receive, self.state.config.max_body_bytes)
        method, path = str(scope["method"]).upper(), _path_of(scope)
        headers = {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope["headers"]}
        self.observe(headers)
        matched = self.route(method, path)
        if isinstance(matched, Reply):
            await _send(send, self._dated(matched))
            return
        route, params = matched
        request = Request(route, method, path, scope.get("query_string", b""), headers, body, too_large, params)
        await _send(send, self._dated(await self._respond(request)))

    def _dated(self, reply: Reply) -> Reply:
        """Return the reply with a `Date` header from the server's wall clock (cached for the second)."""
        if reply.status == 0:
            return reply
        now = self.state.wall()
        second = int(now.timestamp())
        if second != self._date_second:
            self._date_second, self._date_value = second, format_datetime(now, usegmt=True)
        return replace(reply, headers=(*reply.headers, ("date", self._date_value)))

    async def _respond(self, request: Request) -> Reply:
        if request.route in ROUTES:
            self.state.stats.requests[request.route] += 1
            plan = self.state.config.faults
            fault = plan.decide(request) if plan is not None else None
            if fault is not None:
                if not getattr(fault, "counts_itself", False):
                    self.state.stats.faults[str(getattr(fault, "name", type(fault).__name__))] += 1
                return await fault.apply(request, self._watched(bool(getattr(fault, "loses_reply", False))))
        return await self.handle(request)

    def _watched(self, loses_reply: bool) -> Handler:
        """Return the handler, counting a create it answers 201 as ambiguous when the fault will lose the reply."""

        async def handler(request: Request) -> Reply:
            reply = await self.handle(request)
            # Counted as soon as the job exists: a delayed reply may never be sent (the client left, the server
            # stopped), and the job exists either way.
            if loses_reply and request.route == "create" and reply.status == 201:
                self.state.stats.ambiguous_creates += 1
            return reply

        return handler

    def observe(self, headers: Mapping[str, str]) -> None:
        """Look at every request's headers before routing (the image host counts Authorization)."""

    def route(self, method: str, path: str) -> tuple[str, dict[str, str]] | Reply:
        """Return the route and its parameters, or the 404/405 reply."""
        raise NotImplementedError

    async def handle(self, request: Request) -> Reply:
        """Return the reply to a routed request."""
        raise NotImplementedError
