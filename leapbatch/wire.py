"""Pydantic models of the Leap image API's bodies: the contract both the client and the emulator obey.

Python names are snake_case; on the wire they are camelCase (`model_dump(by_alias=True)` / `to_wire()`).
Requests are built strictly by leapbatch; responses are parsed leniently, as Leap's real responses demand
(`docs/leap-api-facts.md`): unknown keys are ignored, `state` falls back to `status`, timestamps come
in three styles, and numbers may arrive as ints or floats (integral floats are read as ints).
"""

from __future__ import annotations

import json
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

DEFAULT_BASE_URL = "https://api.tryleap.ai"
API_PREFIX = "/api/v1/images/models"

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
