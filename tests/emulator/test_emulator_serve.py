"""`serve_emulator` and the ASGI apps' plumbing: bound origins, lifespan, clean stop, instant jobs end to end."""

from __future__ import annotations

import io
from functools import partial
from typing import Any

import httpx
import pytest
import trio
from emulator_support import network_transport
from PIL import Image
from pydantic import SecretStr

from leapbatch.api.client import LeapClient, api_http, download_http
from leapbatch.emulator import API_ORIGIN, Emulator, EmulatorConfig, EmulatorHandle, Reply, Request, serve_emulator
from leapbatch.emulator.asgi import error_reply
from leapbatch.wire import CreateInferenceDto, InferenceState

MODEL = "model-a"


async def test_serving_reports_two_bound_origins(emulator_server: EmulatorHandle) -> None:
    """Port 0 binds two free ports on 127.0.0.1: one origin for the API, another for images."""
    api, images = httpx.URL(emulator_server.base_url), httpx.URL(emulator_server.image_base_url)

    assert ("127.0.0.1", "127.0.0.1") == (api.host, images.host)
    assert 0 not in (api.port, images.port)
    assert api.port != images.port
    assert emulator_server.image_base_url == emulator_server.emulator.image_base_url


async def test_instant_jobs_run_end_to_end_over_sockets(start_emulator: Any) -> None:
    """With speed inf a job created through LeapClient is finished at once and its PNG downloads."""
    handle: EmulatorHandle = await start_emulator(EmulatorConfig(speed=float("inf")))
    http = api_http(handle.base_url, SecretStr("key"), transport=network_transport())
    async with http, download_http(transport=network_transport()) as downloads:
        client = LeapClient(http)
        created = await client.create(MODEL, CreateInferenceDto(prompt="a red fox", width=64, height=32, seed=5))
        found = await client.find_one(MODEL, created.id)
        png = await downloads.get(found.images[0].uri)

    assert (InferenceState.QUEUED, InferenceState.FINISHED) == (created.state, found.state)
    assert (64, 32) == Image.open(io.BytesIO(png.content)).size
    assert 0 == handle.stats()["image_requests_with_authorization"]


async def test_cancelling_stops_both_servers() -> None:
    """Once the serving task is cancelled, neither port accepts connections."""
    async with trio.open_nursery() as nursery:
        handle: EmulatorHandle = await nursery.start(serve_emulator, EmulatorConfig())
        nursery.cancel_scope.cancel()

    async with httpx.AsyncClient(transport=network_transport()) as http:
        for url in (handle.base_url, handle.image_base_url):
            with pytest.raises(httpx.ConnectError):
                await http.get(url)


async def test_a_port_in_use_fails_the_start(emulator_server: EmulatorHandle) -> None:
    """Serving on a port that is taken raises OSError from `nursery.start`, leaving nothing running."""
    taken = int(emulator_server.base_url.rsplit(":", 1)[1])

    with pytest.RaisesGroup(OSError, flatten_subgroups=True):
        async with trio.open_nursery() as nursery:
            await nursery.start(partial(serve_emulator, EmulatorConfig(), image_port=taken))


@pytest.mark.parametrize("app", ["api_app", "image_app"])
async def test_apps_answer_the_lifespan_scope(app: str) -> None:
    """Both apps complete lifespan startup and shutdown (hypercorn-trio requires it)."""
    inbox = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return inbox.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await getattr(Emulator(), app)({"type": "lifespan"}, receive, send)

    assert [{"type": "lifespan.startup.complete"}, {"type": "lifespan.shutdown.complete"}] == sent


async def test_apps_refuse_websockets() -> None:
    """A websocket scope is refused loudly, not answered as HTTP."""

    async def never() -> dict[str, Any]:
        raise AssertionError("not reached")

    async def ignore(message: dict[str, Any]) -> None:
        raise AssertionError("not reached")

    with pytest.raises(RuntimeError, match="HTTP only"):
        await Emulator().api_app({"type": "websocket"}, never, ignore)


class _Unavailable:
    """A fault that answers 503 without calling the handler."""

    async def apply(self, request: Request, handler: Any) -> Reply:
        return error_reply(503, "try again later")


class _FailCreates:
    """A fault plan that breaks every create and records which routes it was asked about."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def decide(self, request: Request) -> _Unavailable | None:
        self.asked.append(request.route)
        return _Unavailable() if request.route == "create" else None


async def test_the_fault_plan_decides_every_counted_request() -> None:
    """A configured FaultPlan is asked about each counted request (not stats, not 404s) and its fault is served."""
    plan = _FailCreates()
    emulator = Emulator(EmulatorConfig(faults=plan))
    headers = {"Authorization": "Bearer key"}
    async with httpx.AsyncClient(transport=emulator.transport(), base_url=API_ORIGIN, headers=headers) as http:
        created = await http.post(f"/api/v1/images/models/{MODEL}/inferences", json={"prompt": "a red fox"})
        listed = await http.get(f"/api/v1/images/models/{MODEL}/inferences")
        await http.get("/_emulator/stats")
        await http.get("/no/such/route")

    assert (503, 200, ["create", "list"]) == (created.status_code, listed.status_code, plan.asked)
    assert (1, 0) == (emulator.stats()["requests"]["create"], emulator.stats()["jobs"]["created"])
