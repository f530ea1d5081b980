"""The emulator as two plain ASGI apps: the API (Leap's four routes plus stats) and the image host (its CDN).

Both are `asgi._App`s: the request path, counting and the fault seam are shared (asgi.py); here are the routes and
what each answers.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Mapping
from urllib.parse import unquote

from leapbatch.emulator.asgi import UNAUTHORIZED, Reply, Request, _App, error_reply, json_reply
from leapbatch.emulator.images import ImageCache
from leapbatch.emulator.state import EmulatorState
from leapbatch.emulator.validation import InvalidRequestError, parse_json, validate_create, validate_list_query
from leapbatch.wire import API_PREFIX, InferenceState


def _not_found(method: str, path: str) -> Reply:
    return error_reply(404, f"Cannot {method} {path}")


def _not_allowed(method: str, path: str, allowed: Mapping[str, str]) -> Reply:
    allow = ", ".join(sorted(allowed))
    return error_reply(405, f"Cannot {method} {path}", headers=(("allow", allow),))


_COLLECTION = {"POST": "create", "GET": "list"}
_ITEM = {"GET": "get", "DELETE": "delete"}
_STATS = {"GET": "stats"}
_PREFIX = API_PREFIX.split("/")  # ["", "api", "v1", "images", "models"]


class ApiApp(_App):
    """Leap's image API: create, findAll, findOne, remove; plus `GET /_emulator/stats`."""

    def route(self, method: str, path: str) -> tuple[str, dict[str, str]] | Reply:
        """Return the route and its parameters, or the 404/405 reply."""
        parts = path.rstrip("/").split("/") if path != "/" else [""]
        params: dict[str, str] = {}
        methods: Mapping[str, str] | None = None
        if parts == ["", "_emulator", "stats"]:
            methods = _STATS
        elif len(parts) in (7, 8) and parts[:5] == _PREFIX and parts[5] and parts[6] == "inferences":
            params["model_id"] = unquote(parts[5])
            methods = _COLLECTION
            if len(parts) == 8:
                params["inference_id"] = unquote(parts[7])
                methods = _ITEM
        if methods is None:
            return _not_found(method, path)
        if method not in methods:
            return _not_allowed(method, path, methods)
        return methods[method], params

    def _authorized(self, header: str | None) -> bool:
        scheme, _, token = (header or "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return False
        expected = self.state.config.token
        return expected is None or hmac.compare_digest(token.encode(), expected.encode())

    async def handle(self, request: Request) -> Reply:
        """Return the reply to a routed request."""
        if request.route == "stats":
            return json_reply(200, self.state.stats.snapshot())
        if not self._authorized(request.headers.get("authorization")):
            return UNAUTHORIZED
        model_id = request.params["model_id"]
        if request.route == "create":
            return self._create(model_id, request)
        if request.route == "list":
            return self._list(model_id, request)
        inference_id = request.params["inference_id"]
        job = self.state.get(model_id, inference_id)
        if job is None:
            return error_reply(404, f"Inference {inference_id} not found")
        if request.route == "get":
            return json_reply(200, self.state.render(job))
        self.state.delete(model_id, inference_id)
        return Reply(200)

    def _create(self, model_id: str, request: Request) -> Reply:
        if request.too_large:
            return error_reply(413, "request entity too large")
        try:
            # Express hands NestJS `{}` for an empty body; so do we, and validation names what is missing.
            body = parse_json(request.body) if request.body.strip() else {}
            effective = validate_create(body, max_dimension=self.state.config.max_dimension)
        except InvalidRequestError as exc:
            return error_reply(400, exc.messages)
        webhook_url = effective.pop("webhookUrl", None)
        job = self.state.create(model_id, effective, webhook_url=webhook_url)
        return json_reply(201, self.state.render(job, InferenceState.QUEUED))

    def _list(self, model_id: str, request: Request) -> Reply:
        config = self.state.config
        try:
            query = validate_list_query(
                request.query, default_page_size=config.default_page_size, max_page_size=config.max_page_size
            )
        except InvalidRequestError as exc:
            return error_reply(400, exc.messages)
        jobs = self.state.page(model_id, page=query.page, page_size=query.page_size, only_finished=query.only_finished)
        return json_reply(200, [self.state.render(job) for job in jobs])


_IMAGE_PATH = re.compile(r"/image-gen-(?P<inference_id>[^/]+)/generated_images/(?P<index>0|[1-9][0-9]{0,2})\.png")


class ImageApp(_App):
    """The image host: `GET /image-gen-{id}/generated_images/{index}.png`, no auth, PNG bytes."""

    def __init__(self, state: EmulatorState, images: ImageCache) -> None:
        super().__init__(state)
        self.images = images

    def observe(self, headers: Mapping[str, str]) -> None:
        """Count requests that carried an API key here: a client must never send one to the image host."""
        if "authorization" in headers:
            self.state.stats.image_requests_with_authorization += 1

    def route(self, method: str, path: str) -> tuple[str, dict[str, str]] | Reply:
        """Return the image route and its parameters, or the 404/405 reply."""
        matched = _IMAGE_PATH.fullmatch(path)
        if matched is None:
            return _not_found(method, path)
        if method != "GET":
            return _not_allowed(method, path, {"GET": "image"})
        return "image", {"inference_id": unquote(matched["inference_id"]), "index": matched["index"]}

    async def handle(self, request: Request) -> Reply:
        """Return the PNG, or 404 while the job is not finished (or is gone)."""
        job = self.state.image_job(request.params["inference_id"], int(request.params["index"]))
        if job is None:
            return _not_found(request.method, request.path)
        r = job.request
        data = await self.images.png(r["prompt"], r["seed"], r["width"], r["height"], int(request.params["index"]))
        return Reply(200, data, "image/png", (("cache-control", "public, max-age=31536000, immutable"),))
