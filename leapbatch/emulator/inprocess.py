"""One emulated Leap ready for in-process use: `Emulator` ties the state and both apps together, and its
`transport()` reaches them without sockets.

`httpx.ASGITransport` cannot express a broken connection (it asserts that a response completed) and enforces no
timeout, so the transport wraps the apps: an unfinished response becomes the `httpx.RemoteProtocolError` a socket
would give (raised, or from the body stream after the bytes that were sent), `pause` (a fault's delay) raises
`httpx.ReadTimeout` once the client's read timeout has passed, as a client over sockets would give up, and a
trickled body arrives as a stream that sleeps between its chunks (the status and headers at once, as a socket
gives them).
`serve_emulator` (serve.py) serves the same `Emulator` over HTTP.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import trio

from leapbatch.emulator.app import ApiApp, ImageApp
from leapbatch.emulator.asgi import (
    _CLIENT_READ_TIMEOUT,
    _IN_PROCESS,
    TRICKLE_CHUNKS_PER_SECOND,
    Receive,
    Scope,
    Send,
    _App,
    _ClientGaveUpError,
    _TrickledError,
)
from leapbatch.emulator.config import Clock, EmulatorConfig
from leapbatch.emulator.images import ImageCache
from leapbatch.emulator.state import EmulatorState
from leapbatch.emulator.webhooks import run_webhooks

API_ORIGIN = "http://api.leap-emulator.test"  # in-process origins: no DNS, only `Emulator.transport()` sees them
IMAGE_ORIGIN = "http://images.leap-emulator.test"


class _UnfinishedError(Exception):
    """Raised through `httpx.ASGITransport` when an app ended mid-response: what it sent, to replay as a cut."""

    def __init__(self, status: int | None, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        super().__init__(status)
        self.status = status  # None: no final response started
        self.headers = headers
        self.body = body


def _finishing(app: _App) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    """Wrap an app for `httpx.ASGITransport`: an unfinished response raises `_UnfinishedError` instead of asserting."""

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        status: int | None = None
        headers: list[tuple[bytes, bytes]] = []
        parts: list[bytes] = []
        finished = False

        async def watch(message: dict[str, Any]) -> None:
            nonlocal status, headers, finished
            if message["type"] == "http.response.start":
                if message["status"] < 200:
                    return  # an interim answer; ASGITransport would take it for the final one
                status, headers = message["status"], list(message.get("headers", []))
            elif message["type"] == "http.response.body":
                parts.append(message.get("body", b""))
                finished = not message.get("more_body", False)
            await send(message)

        await app(scope, receive, watch)
        if not finished:
            raise _UnfinishedError(status, headers, b"".join(parts))

    return wrapped


class _CutShort(httpx.AsyncByteStream):
    """A response body that yields what was sent, then fails as h11 does when the peer closes early."""

    def __init__(self, body: bytes, announced: str, request: httpx.Request) -> None:
        self._body = body
        self._announced = announced
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        """Yield the bytes that were sent, then raise `httpx.RemoteProtocolError`."""
        if self._body:
            yield self._body
        raise httpx.RemoteProtocolError(
            "peer closed connection without sending complete message body "
            f"(received {len(self._body)} bytes, expected {self._announced})",
            request=self._request,
        )


class _Trickling(httpx.AsyncByteStream):
    """A response body that arrives `rate` bytes a second, in a few chunks a second (on trio's clock).

    A gap between chunks longer than the client's read timeout ends it as a socket would: `httpx.ReadTimeout`.
    """

    def __init__(self, body: bytes, rate: float, request: httpx.Request, read_timeout: float | None) -> None:
        self._body = body
        self._rate = rate
        self._request = request
        self._read_timeout = read_timeout

    async def __aiter__(self) -> AsyncIterator[bytes]:
        """Yield the body chunk by chunk, sleeping before each."""
        step = max(1, math.ceil(self._rate / TRICKLE_CHUNKS_PER_SECOND))
        gap = step / self._rate
        for offset in range(0, len(self._body), step):
            if self._read_timeout is not None and self._read_timeout < gap:
                await trio.sleep(self._read_timeout)
                message = f"no byte within the {self._read_timeout} s read timeout"
                raise httpx.ReadTimeout(message, request=self._request)
            await trio.sleep(gap)
            yield self._body[offset : offset + step]


class _InProcessTransport(httpx.AsyncBaseTransport):
    """Send requests for the image host to the image app, and every other request to the API app.

    Broken connections and client timeouts, which `httpx.ASGITransport` cannot express, come out as the httpx
    exceptions a real connection would raise (see the module docstring).
    """

    def __init__(self, emulator: Emulator) -> None:
        self._emulator = emulator
        self._api = httpx.ASGITransport(app=_finishing(emulator.api_app))
        self._images = httpx.ASGITransport(app=_finishing(emulator.image_app))

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Route the request by host."""
        to_images = request.url.host == httpx.URL(self._emulator.image_base_url).host
        timeout = request.extensions.get("timeout", {}).get("read")
        token = _CLIENT_READ_TIMEOUT.set(timeout)
        in_process = _IN_PROCESS.set(True)
        try:
            return await (self._images if to_images else self._api).handle_async_request(request)
        except _UnfinishedError as cut:
            if cut.status is None:
                message = "Server disconnected without sending a response."  # h11's words, as over a socket
                raise httpx.RemoteProtocolError(message, request=request) from None
            announced = httpx.Headers(cut.headers).get("content-length", "more")
            return httpx.Response(cut.status, headers=cut.headers, stream=_CutShort(cut.body, announced, request))
        except _TrickledError as slow:
            trickling = _Trickling(slow.body, slow.rate, request, timeout)
            return httpx.Response(slow.status, headers=slow.headers, stream=trickling)
        except _ClientGaveUpError:
            raise httpx.ReadTimeout(f"no answer within the {timeout} s read timeout", request=request) from None
        finally:
            _IN_PROCESS.reset(in_process)
            _CLIENT_READ_TIMEOUT.reset(token)


class Emulator:
    """One emulated Leap: its state, the API app and the image-host app, ready for in-process use.

    Serve both apps over HTTP with `serve_emulator`, or talk to them in-process through `transport()`, which sends
    requests for the image origin's host to `image_app` and all others to `api_app` (no lifespan needed).
    """

    def __init__(
        self, config: EmulatorConfig | None = None, *, image_base_url: str = IMAGE_ORIGIN, clock: Clock | None = None
    ) -> None:
        self.config = config or EmulatorConfig()
        self.state = EmulatorState(self.config, image_base_url=image_base_url, clock=clock)
        self.images = ImageCache(self.config.image_cache_size)
        self.api_app = ApiApp(self.state)
        self.image_app = ImageApp(self.state, self.images)

    @property
    def image_base_url(self) -> str:
        """Return the origin the image URIs point at."""
        return self.state.image_base_url

    def stats(self) -> dict[str, Any]:
        """Return the counters, as `GET /_emulator/stats` serves them."""
        return self.state.stats.snapshot()

    def transport(self) -> httpx.AsyncBaseTransport:
        """Return an httpx transport that reaches both apps in-process (base URL: `API_ORIGIN`)."""
        return _InProcessTransport(self)

    async def run_webhooks(self, client: httpx.AsyncClient | None = None) -> None:
        """Deliver webhooks as jobs end, until cancelled (start it in a nursery; `serve_emulator` does)."""
        await run_webhooks(self.state, client)
