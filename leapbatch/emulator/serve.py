"""Serve an `Emulator` over HTTP with hypercorn's trio worker: the API and the image host on two ports.

Two ports make two origins, as on Leap (api.tryleap.ai and its CDN), so a client that leaked its API key to the
image host would be caught by the image host's counter. The image host is bound first because the API needs its
real URL (port 0 picks a free port) for the image URIs it hands out. `serve_emulator` reports an `EmulatorHandle`
through `task_status` once both ports accept connections, then serves, with the webhook task, until cancelled.
"""

from __future__ import annotations

import contextlib
import logging
import socket
from dataclasses import dataclass
from functools import partial
from typing import Any, cast

import httpx
import trio
from hypercorn.config import Config
from hypercorn.trio import serve

from leapbatch.emulator.config import Clock, EmulatorConfig
from leapbatch.emulator.inprocess import Emulator


@dataclass(frozen=True, slots=True)
class EmulatorHandle:
    """A running emulator: where its API and image host listen, and its in-process state."""

    base_url: str  # e.g. http://127.0.0.1:8787 (what LEAP_BASE_URL should be)
    image_base_url: str  # e.g. http://127.0.0.1:8788
    emulator: Emulator

    def stats(self) -> dict[str, Any]:
        """Return the counters (the same JSON as `GET {base_url}/_emulator/stats`)."""
        return self.emulator.stats()


def _bind(host: str, port: int) -> socket.socket:
    """Return a TCP socket bound to `host:port`, or raise OSError having closed it.

    Binding here rather than in hypercorn keeps a failed bind (port in use) from leaking hypercorn's socket, and
    binds both ports before either server starts.
    """
    host = host.strip("[]")  # an IPv6 address may come bracketed, as in URLs
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # accepted connections inherit it
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def _hypercorn_config(sock: socket.socket) -> Config:
    config = Config()
    config.bind = [f"fd://{sock.detach()}"]  # hypercorn now owns the descriptor (and closes it)
    config.accesslog = None
    config.include_date_header = False  # the apps send their own, from the server's (maybe offset) clock
    # A Logger object is used as it is: hypercorn then adds no handler and leaves levels to the application.
    config.errorlog = logging.getLogger("hypercorn.error")
    config.graceful_timeout = 1.0
    # Never close an idle or busy keep-alive connection first: a client whose request crosses the server's close
    # sees a reset it cannot tell from a fault (httpx drops idle connections after 5 s, hypercorn after 5 s too).
    config.keep_alive_timeout = 75.0
    config.keep_alive_max_requests = 1_000_000
    return config


async def _start(nursery: trio.Nursery, app: object, sock: socket.socket) -> str:
    """Start serving `app` on a bound socket in `nursery` and return its URL (`http://host:port`)."""
    # hypercorn types ASGI callables with TypedDicts; the apps take plain mappings, which is the same at runtime.
    binds: list[str] = await nursery.start(partial(serve, cast(Any, app), _hypercorn_config(sock), mode="asgi"))
    return binds[0]


async def serve_emulator(
    config: EmulatorConfig | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    image_port: int = 0,
    clock: Clock | None = None,
    webhook_client: httpx.AsyncClient | None = None,
    task_status: trio.TaskStatus[EmulatorHandle] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the emulator's API on `host:port` and its images on `host:image_port` until cancelled.

    Use it as `handle = await nursery.start(serve_emulator, config)`; port 0 binds a free port, and the handle
    carries the bound URLs.
    """
    emulator = Emulator(config, image_base_url="", clock=clock)
    with contextlib.ExitStack() as bound:  # closing a socket hypercorn took over (detached) does nothing
        image_socket = bound.enter_context(_bind(host, image_port))
        api_socket = bound.enter_context(_bind(host, port))
        async with trio.open_nursery() as nursery:
            image_base_url = await _start(nursery, emulator.image_app, image_socket)
            emulator.state.image_base_url = image_base_url  # set before the API serves: no job exists yet
            base_url = await _start(nursery, emulator.api_app, api_socket)
            nursery.start_soon(emulator.run_webhooks, webhook_client)
            task_status.started(EmulatorHandle(base_url, image_base_url, emulator))
