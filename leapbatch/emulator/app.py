"""The emulator as two plain ASGI apps: the API (Leap's four routes plus stats) and the image host (its CDN).

Both are `asgi._App`s: the request path, counting and the fault seam are shared (asgi.py); here are the routes and
what each answers. The API checks, in NestJS's order: auth (401), the body (400), then the handler's own refusals:
a model not in `config.models` (404 `Model not found`, on create and list) and, on create, the billing limit (402
once `config.billing_limit` images were made). A request's `Twist` (a fault) is honoured here: the create passes it
to the state, findOne answers another job (`wrong_id`), a listing serves page 1 (`ignore_page`).
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Mapping
from urllib.parse import unquote

from leapbatch.emulator.asgi import NO_TWIST, UNAUTHORIZED, Reply, Request, _App, error_reply, json_reply
from leapbatch.emulator.images import ImageCache
from leapbatch.emulator.render import deleted_entity
from leapbatch.emulator.state import EmulatorState, Job
from leapbatch.emulator.subjects import subject_name
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
            return json_reply(200, self.state.render(self._maybe_other(job, request)))
        entity = self.state.render(job)
        self.state.delete(model_id, inference_id)
        return json_reply(200, deleted_entity(entity, self.state.config))

    def _maybe_other(self, job: Job, request: Request) -> Job:
        """Return the job findOne answers with: another one of the model under `wrong_id`, when there is one."""
        if not request.twist.wrong_id:
            return job
        other = self.state.other_job(job)
        if other is None:
            return job
        self.state.stats.faults["wrong_id"] += 1
        return other

    def _unknown_model(self, model_id: str) -> Reply | None:
        models = self.state.config.models
        if models is None or model_id in models:
            return None
        self.state.stats.faults["model_not_found"] += 1
        return error_reply(404, "Model not found")

    def _over_billing_limit(self, images: int) -> Reply | None:
        limit = self.state.config.billing_limit
        if limit is None or self.state.stats.images_made + images <= limit:
            return None
        self.state.stats.faults["billing_limit"] += 1
        message = (
            f"Billing limit reached: {self.state.stats.images_made} of {limit} images used; raise it in your settings"
        )
        return error_reply(402, message)

    def _create(self, model_id: str, request: Request) -> Reply:
        if request.too_large:
            return error_reply(413, "request entity too large")
        try:
            # Express hands NestJS `{}` for an empty body; so do we, and validation names what is missing.
            body = parse_json(request.body) if request.body.strip() else {}
            effective = validate_create(body, max_dimension=self.state.config.max_dimension)
        except InvalidRequestError as exc:
            return error_reply(400, exc.messages)
        refused = self._unknown_model(model_id) or self._over_billing_limit(effective["numberOfImages"])
        if refused is not None:
            return refused
        webhook_url = effective.pop("webhookUrl", None)
        job = self.state.create(
            model_id,
            effective,
            webhook_url=webhook_url,
            draw_seed=isinstance(body, dict) and body.get("seed") is None,
            twist=request.twist if request.twist is not NO_TWIST else None,
        )
        return json_reply(201, self.state.render(job, InferenceState.QUEUED))

    def _list(self, model_id: str, request: Request) -> Reply:
        config = self.state.config
        try:
            query = validate_list_query(
                request.query, default_page_size=config.default_page_size, max_page_size=config.max_page_size
            )
        except InvalidRequestError as exc:
            return error_reply(400, exc.messages)
        refused = self._unknown_model(model_id)
        if refused is not None:
            return refused
        page = query.page
        if request.twist.ignore_page and page > 1:
            self.state.stats.faults["page_ignored"] += 1
            page = 1
        jobs = self.state.page(model_id, page=page, page_size=query.page_size, only_finished=query.only_finished)
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
        r, mode = job.request, self.state.config.images
        index = int(request.params["index"])
        data = await self.images.png(r["prompt"], r["seed"], r["width"], r["height"], index, mode=mode)
        if mode == "subject":
            self.state.stats.drew(job.id, subject_name(r["prompt"]))
        return Reply(200, data, "image/png", (("cache-control", "public, max-age=31536000, immutable"),))
