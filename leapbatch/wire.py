"""Pydantic models of the Leap image API's bodies: the contract both the client and the emulator obey.

Python names are snake_case; on the wire they are camelCase (`model_dump(by_alias=True)` / `to_wire()`).
Requests are built strictly by leapbatch; responses are parsed leniently, as Leap's real responses demand
(`docs/leap-api-facts.md`): unknown keys are ignored, `state` falls back to `status`, timestamps come
in three styles, and numbers may arrive as ints or floats (integral floats are read as ints).

A base URL is an API's origin, `http(s)://host[:port]` (the client appends `API_PREFIX` itself): `origin`
normalises one, `base_url_problem` says what keeps a text from being one and which value it most likely meant.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal
from urllib.parse import SplitResult, urlsplit

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

DEFAULT_BASE_URL = "https://api.tryleap.ai"
API_PREFIX = "/api/v1/images/models"
DEFAULT_PORTS = {"http": 80, "https": 443}

# What Leap fills in for a field the request leaves out (the spec's defaults, camelCase as on the wire).
DEFAULT_STEPS = 50
DEFAULT_SIDE = 1024  # width and height
DEFAULT_NUMBER_OF_IMAGES = 1
SPEC_DEFAULTS: dict[str, object] = {
    "negativePrompt": "asymmetric, watermarks",
    "steps": DEFAULT_STEPS,
    "width": DEFAULT_SIDE,
    "height": DEFAULT_SIDE,
    "numberOfImages": DEFAULT_NUMBER_OF_IMAGES,
    "promptStrength": 7,
    "seed": 4523184,
}

SECONDS_PER_IMAGE_MIN = 4.0
SECONDS_PER_IMAGE_MAX = 20.0
STEPS_AT_MAX = 150


def expected_generation_seconds(steps: int | None, number_of_images: int | None) -> float:
    """Return how long Leap takes for a job: 4 s per image at 1 step, growing linearly to 20 s at 150+ steps.

    Leap documents "4-20 seconds per image", growing with steps and number of images. The emulator simulates this
    (divided by its speed factor), `plan` estimates with it, and the runner schedules first polls with it.
    """
    steps = DEFAULT_STEPS if steps is None else steps
    images = DEFAULT_NUMBER_OF_IMAGES if number_of_images is None else number_of_images
    share = min(max(steps, 1), STEPS_AT_MAX) / STEPS_AT_MAX
    return images * (SECONDS_PER_IMAGE_MIN + (SECONDS_PER_IMAGE_MAX - SECONDS_PER_IMAGE_MIN) * share)


def _integral_to_int(value: object) -> object:
    """Read `512.0` as `512`, leave `7.5` alone: Leap documents every number as a JSON number."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _lenient_datetime(value: object) -> object:
    """Parse `...+00:00`, `...Z` and `2023-06-20 07:04:01.634307+00` alike."""
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return value  # let pydantic report it
    return value


Number = Annotated[int | float, BeforeValidator(_integral_to_int)]
Timestamp = Annotated[datetime, BeforeValidator(_lenient_datetime)]


class InferenceState(StrEnum):
    """The lifecycle of an inference job; `finished` and `failed` are terminal."""

    QUEUED = "queued"
    PROCESSING = "processing"
    FINISHED = "finished"
    FAILED = "failed"

    @property
    def is_terminal(self) -> bool:
        """Return whether the job will not change state again."""
        return self in (InferenceState.FINISHED, InferenceState.FAILED)


class _WireModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)

    def to_wire(self) -> dict[str, Any]:
        """Return the camelCase JSON-ready body, leaving out fields that are not set."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


Upscale = Literal["x1", "x2", "x4"]
Sampler = Literal["ddim", "dpm_2a", "dpm_plusplus_sde", "euler", "euler_a", "unipc"]


class CreateInferenceDto(_WireModel):
    """The body of `create`: the nine spec fields, plus legacy fields sent only when set."""

    model_config = ConfigDict(extra="forbid")

    prompt: str
    negative_prompt: str | None = None
    steps: int | None = None
    width: int | None = None
    height: int | None = None
    number_of_images: int | None = None
    prompt_strength: Number | None = None
    seed: int | None = None
    webhook_url: str | None = None
    # Legacy fields (2023 spec): sent only when a manifest sets them.
    version: str | None = None
    enhance_prompt: bool | None = None
    restore_faces: bool | None = None
    upscale_by: Upscale | None = None
    sampler: Sampler | None = None


class InferenceImage(_WireModel):
    """One generated image; `uri` points at the image host, never at the API."""

    model_config = ConfigDict(extra="ignore")

    id: str
    uri: str
    created_at: Timestamp | None = None


class InferenceEntity(_WireModel):
    """A generation job as the API reports it."""

    model_config = ConfigDict(extra="ignore")

    id: str
    state: InferenceState
    status: InferenceState | None = None
    created_at: Timestamp | None = None
    prompt: str = ""
    negative_prompt: str | None = None
    seed: Number | None = None
    width: Number | None = None
    height: Number | None = None
    prompt_strength: Number | None = None
    number_of_images: Number | None = None
    steps: Number | None = None
    images: list[InferenceImage] = Field(default_factory=list)
    model_id: str | None = None
    upscaling_option: str | None = None

    def created_before(self, moment: float) -> bool:
        """Return whether the server stamped this job before POSIX time `moment` (an unstamped job never is)."""
        return self.created_at is not None and self.created_at.timestamp() < moment

    @field_validator("id")
    @classmethod
    def _id_is_a_path_segment(cls, value: str) -> str:
        if value in ("", ".", ".."):
            raise ValueError("not a usable inference id")
        return value

    @model_validator(mode="before")
    @classmethod
    def _state_falls_back_to_status(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("state") is None and data.get("status") is not None:
            return {**data, "state": data["status"]}
        return data


class ErrorBody(_WireModel):
    """A NestJS error body: `message` is a list of strings, one string, or missing."""

    model_config = ConfigDict(extra="ignore")

    status_code: int | None = None
    message: str | list[Any] | None = None
    error: str | None = None

    def messages(self) -> list[str]:
        """Return the server's messages as readable strings (objects become JSON, never `[object Object]`)."""
        raw: list[Any]
        if self.message is None:
            raw = [self.error] if self.error else []
        elif isinstance(self.message, list):
            raw = self.message
        else:
            raw = [self.message]
        return [item if isinstance(item, str) else json.dumps(item, sort_keys=True) for item in raw]


def origin(base_url: str) -> str | None:
    """Return the normalised origin (`scheme://host[:port]`) of an http(s) URL, or None if it is not one.

    The scheme and host in lower case, the scheme's default port dropped; path, query and user info ignored.
    """
    try:
        parts = urlsplit(base_url.strip())
        port = parts.port
    except ValueError:  # an unparsable netloc or a port that is not a number in range
        return None
    scheme = parts.scheme.lower()
    host = parts.hostname  # lower case, without brackets or user info
    if scheme not in DEFAULT_PORTS or not host:
        return None
    shown = f"[{host}]" if ":" in host else host
    return f"{scheme}://{shown}" if port in (None, DEFAULT_PORTS[scheme]) else f"{scheme}://{shown}:{port}"


@dataclass(frozen=True, slots=True)
class BaseUrlProblem:
    """What keeps a text from being a base URL, and the value it most likely meant (None: no good guess)."""

    message: str  # reads after the variable's name: "has a path (/api/v1): ..."
    corrected: str | None = None


def base_url_problem(text: str) -> BaseUrlProblem | None:
    """Return what keeps `text` from being a base URL, `http(s)://host[:port]` (a lone trailing `/` is fine).

    None when it is one. A path, query, fragment or user info is corrected to the origin without them; a text with
    no scheme gets one: `http://` for a loopback host (localhost, 127.0.0.1, ::1), `https://` for any other. A
    port out of range or not a number, no host, another scheme or a space or control character has no guess.
    The message never repeats user info or a query (either may hold a secret).
    """
    value = text.strip()
    bad = next((index for index, char in enumerate(value) if char.isspace() or not char.isprintable()), None)
    if bad is not None:
        return BaseUrlProblem(f"has a space or control character (at position {bad + 1})")
    if "://" not in value:
        return _without_scheme(value)
    try:
        parts = urlsplit(value)
    except ValueError:
        return BaseUrlProblem("has an unclosed [ in its host")
    try:
        port = parts.port
    except ValueError:  # not a number, or out of range
        port = 0
    if port == 0:
        return BaseUrlProblem("has a port that is not a number from 1 to 65535")
    if parts.scheme.lower() not in DEFAULT_PORTS:
        return BaseUrlProblem("must start with https:// or http://" + (f", not {parts.scheme}://" * bool(parts.scheme)))
    corrected = origin(value)
    if not parts.hostname or corrected is None:
        return BaseUrlProblem("has no host: it must be scheme://host[:port]")
    return _beyond_origin(parts, value, corrected)


def _beyond_origin(parts: SplitResult, value: str, corrected: str) -> BaseUrlProblem | None:
    """Return the problem of an http(s) URL with a host that holds more than its origin, or None."""
    only = "it must be only scheme://host[:port]"
    if "@" in parts.netloc:
        return BaseUrlProblem(f"has user info (before an @): {only}; the key goes in LEAP_API_KEY", corrected)
    if parts.path not in ("", "/"):
        return BaseUrlProblem(f"has a path ({parts.path}): {only}, leapbatch adds {API_PREFIX}/... itself", corrected)
    if "?" in value or "#" in value:
        return BaseUrlProblem(f"has a query or fragment (after a ? or #): {only}", corrected)
    return None


def _without_scheme(value: str) -> BaseUrlProblem:
    """Return the problem of a text with no `scheme://`, guessing http:// for a loopback host, else https://."""
    try:
        host = urlsplit(f"//{value}").hostname or ""
    except ValueError:
        host = ""
    guess = f"{'http' if _loopback(host) else 'https'}://{value}"
    deeper = base_url_problem(guess)
    if deeper is not None and deeper.corrected is None:
        return deeper  # a bad port or no host: what is wrong besides the scheme, since no guess would work
    message = "has no scheme: it must start with https:// (or http:// for a server on this machine)"
    return BaseUrlProblem(message, guess if deeper is None else deeper.corrected)


def _loopback(host: str) -> bool:
    """Return whether `host` names this machine: localhost or a loopback address (127.0.0.1, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
