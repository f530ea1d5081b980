"""Fixtures of the emulator's conformance suite: one `Target` API, reached in-process or over real sockets.

Every test that takes `target` (or `make_target`) runs twice: against the apps through `httpx.ASGITransport`
("in-process") and against `serve_emulator` on 127.0.0.1 port 0 ("served"). Both variants run the webhook task.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from functools import partial
from typing import Any, cast

import httpx
import pytest
import trio
from emulator_support import AUTH, TOKEN, MakeTarget, Receiver, Target, network_transport
from hypercorn.config import Config
from hypercorn.trio import serve
from pydantic import SecretStr

from leapbatch.api.client import LeapClient, api_http, download_http
from leapbatch.emulator import API_ORIGIN, Clock, Emulator, EmulatorConfig, serve_emulator


@pytest.fixture(params=["in-process", "served"])
def kind(request: pytest.FixtureRequest) -> str:
    """Return how the emulator is reached."""
    return str(request.param)


@pytest.fixture
async def make_target(kind: str, nursery: trio.Nursery) -> AsyncIterator[MakeTarget]:
    """Return `make(config=None, *, clock=None) -> Target`, for the variant under test."""
    async with contextlib.AsyncExitStack() as stack:

        async def make(config: EmulatorConfig | None = None, *, clock: Clock | None = None) -> Target:
            config = config or EmulatorConfig()
            if kind == "in-process":
                emulator = Emulator(config, clock=clock)
                nursery.start_soon(emulator.run_webhooks)
                base_url = API_ORIGIN
                transport: Callable[[], httpx.AsyncBaseTransport] = emulator.transport
            else:
                handle = await nursery.start(partial(serve_emulator, config, clock=clock))
                emulator, base_url = handle.emulator, handle.base_url
                transport = network_transport

            async def client(**options: Any) -> httpx.AsyncClient:
                return await stack.enter_async_context(httpx.AsyncClient(transport=transport(), **options))

            leap_http = api_http(base_url, SecretStr(TOKEN), transport=transport())
            return Target(
                kind=kind,
                base_url=base_url,
                emulator=emulator,
                api=await client(base_url=base_url, headers=AUTH),
                anon=await client(base_url=base_url),
                images=await stack.enter_async_context(download_http(transport=transport())),
                leap=LeapClient(await stack.enter_async_context(leap_http)),
            )

        yield make


@pytest.fixture
async def target(make_target: MakeTarget, manual_clock: Clock) -> Target:
    """Return a default emulator (speed 1, any token) whose clock moves only by `manual_clock.advance`."""
    return await make_target(clock=manual_clock)


@pytest.fixture
async def webhook_receiver(nursery: trio.Nursery) -> Receiver:
    """Serve a webhook receiver that hands every (path, JSON body) it gets to `received`."""
    send_channel, receive_channel = trio.open_memory_channel[tuple[str, Any]](100)

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (message := await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        path = scope["path"]
        await send_channel.send((path, httpx.Response(200, content=body).json()))
        status = 500 if path.endswith("/fail") else 204
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    config = Config()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")
    binds = await nursery.start(partial(serve, cast(Any, app), config, mode="asgi"))  # hypercorn's TypedDicts
    return Receiver(url=f"{binds[0]}/hook", received=receive_channel)
