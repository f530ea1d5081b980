"""What the emulator's tests share besides fixtures: constants and the `Target` the conformance suite talks to."""

from __future__ import annotations

import functools
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import trio

from leapbatch.api.client import LeapClient, inferences_path
from leapbatch.emulator import Emulator

TOKEN = "test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
MODEL = "26a1a203-3a46-42cb-8cfa-f4de075907d8"
FAST = 1000.0  # a default job (50 steps, 1 image) takes ~9 ms instead of ~9 s


@dataclass
class Target:
    """One emulator under test and the clients that talk to it."""

    kind: str
    base_url: str
    emulator: Emulator
    api: httpx.AsyncClient  # raw, with the bearer token
    anon: httpx.AsyncClient  # raw, without any Authorization header
    images: httpx.AsyncClient  # for image URIs, without any Authorization header
    leap: LeapClient

    async def create(self, model: str = MODEL, **body: Any) -> dict[str, Any]:
        """Create a job through the raw client and return its entity (asserting 201)."""
        response = await self.api.post(inferences_path(model), json={"prompt": "a red fox", **body})
        assert 201 == response.status_code, response.text
        entity: dict[str, Any] = response.json()
        return entity

    async def get(self, inference_id: str, model: str = MODEL) -> httpx.Response:
        """GET one job through the raw client."""
        return await self.api.get(inferences_path(model, inference_id))

    async def stats(self) -> dict[str, Any]:
        """Return the emulator's counters as served over HTTP."""
        response = await self.anon.get("/_emulator/stats")
        assert 200 == response.status_code
        stats: dict[str, Any] = response.json()
        return stats


@functools.cache
def _tls() -> ssl.SSLContext:
    return ssl.create_default_context()


def network_transport() -> httpx.AsyncHTTPTransport:
    """Return a real HTTP transport that reuses one TLS context (a new one per client costs ~50 ms)."""
    return httpx.AsyncHTTPTransport(verify=_tls())


MakeTarget = Callable[..., Awaitable[Target]]


@dataclass
class Receiver:
    """A webhook receiver on 127.0.0.1: POSTs to `url` are answered 204, to `url + '/fail'` 500."""

    url: str
    received: trio.MemoryReceiveChannel[tuple[str, Any]]
