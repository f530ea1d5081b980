"""The wire models: strict requests out, lenient responses in, as Leap's real bodies demand."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from leapbatch.wire import (
    CreateInferenceDto,
    ErrorBody,
    InferenceEntity,
    InferenceState,
    expected_generation_seconds,
)

# A finished job as the real API returned it (leap-api-facts.md), undocumented keys included.
REAL_ENTITY: dict[str, Any] = {
    "id": "3f2a1c6e-0c1b-4a7e-9a43-0a3c8f1b2d4e",
    "createdAt": "2023-06-20T07:03:46.438775+00:00",
    "prompt": "a red fox in the snow",
    "negativePrompt": "asymmetric, watermarks",
    "seed": 4523184,
    "width": 1024.0,
    "height": 1024,
    "promptStrength": 7.0,
    "numberOfImages": 1,
    "state": "finished",
    "status": "finished",
    "steps": 50,
    "images": [
        {
            "id": "img-0",
            "createdAt": "2023-06-20 07:04:01.634307+00",
            "uri": "https://static.tryleap.ai/image-gen-3f2a/generated_images/0.png",
        }
    ],
    "modelId": "8b1b897c-d66d-45a6-b8d7-8e32421d02cf",
    "upscalingOption": "x1",
    "weightsId": "w-1",
    "workspaceId": "ws-1",
    "sampler": "ddim",
    "isDeleted": False,
    "routedToQueue": "gpu-a",
}


def test_a_real_entity_parses_and_unknown_keys_are_ignored() -> None:
    """The captured entity parses; `weightsId`, `isDeleted` and friends are dropped, not errors."""
    entity = InferenceEntity.model_validate(REAL_ENTITY)

    assert (InferenceState.FINISHED, 1, "img-0") == (entity.state, len(entity.images), entity.images[0].id)
    assert "weightsId" not in entity.model_dump(by_alias=True)


def test_status_stands_in_for_a_missing_state() -> None:
    """A body with `status` but no `state` (or a null one) reads its state from `status`."""
    without = InferenceEntity.model_validate({"id": "a", "status": "processing"})
    null = InferenceEntity.model_validate({"id": "a", "state": None, "status": "failed"})

    assert (InferenceState.PROCESSING, InferenceState.FAILED) == (without.state, null.state)


def test_state_wins_over_status() -> None:
    """When both are present, `state` is what counts (`status` came late and is the fallback)."""
    entity = InferenceEntity.model_validate({"id": "a", "state": "processing", "status": "queued"})

    assert InferenceState.PROCESSING == entity.state


@pytest.mark.parametrize(
    "body",
    [{"id": "a"}, {"id": "a", "state": "done"}, {"state": "queued"}, {"id": "a", "state": None, "status": None}],
)
def test_an_entity_without_a_known_state_or_id_is_refused(body: dict[str, Any]) -> None:
    """No id, or no state we know of, is a validation error (the client turns it into MalformedResponseError)."""
    with pytest.raises(ValidationError):
        InferenceEntity.model_validate(body)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2023-06-20T07:03:46.438775+00:00", datetime(2023, 6, 20, 7, 3, 46, 438775, tzinfo=UTC)),
        ("2023-07-04T20:55:54.644Z", datetime(2023, 7, 4, 20, 55, 54, 644000, tzinfo=UTC)),
        ("2023-06-20 07:04:01.634307+00", datetime(2023, 6, 20, 7, 4, 1, 634307, tzinfo=UTC)),
    ],
)
def test_the_three_timestamp_styles(text: str, expected: datetime) -> None:
    """`+00:00`, `Z` and the space-and-`+00` style all parse to the same aware instant, on jobs and images."""
    entity = InferenceEntity.model_validate(
        {"id": "a", "state": "finished", "createdAt": text, "images": [{"id": "i", "uri": "u", "createdAt": text}]}
    )

    assert (expected, expected) == (entity.created_at, entity.images[0].created_at)


def test_integral_floats_are_ints_and_fractions_stay() -> None:
    """`512.0` reads as the int 512; `7.5` stays 7.5."""
    entity = InferenceEntity.model_validate(
        {"id": "a", "state": "queued", "width": 512.0, "seed": 42.0, "promptStrength": 7.5}
    )

    assert (512, int, 42, int, 7.5) == (
        entity.width,
        type(entity.width),
        entity.seed,
        type(entity.seed),
        entity.prompt_strength,
    )


def test_a_bad_timestamp_is_a_validation_error() -> None:
    """A timestamp in no known style is reported by pydantic rather than kept as text."""
    with pytest.raises(ValidationError, match="createdAt"):
        InferenceEntity.model_validate({"id": "a", "state": "queued", "createdAt": "yesterday-ish"})


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param(
            {"statusCode": 400, "message": ["width must be a multiple of 8", "steps must be a number"]},
            ["width must be a multiple of 8", "steps must be a number"],
            id="list",
        ),
        pytest.param({"statusCode": 404, "message": "Inference not found"}, ["Inference not found"], id="string"),
        pytest.param({"statusCode": 401, "error": "Unauthorized"}, ["Unauthorized"], id="missing-uses-error"),
        pytest.param({"statusCode": 401}, [], id="missing-entirely"),
        pytest.param(
            {"message": [{"property": "width", "constraints": {"isDivisibleBy": "multiple of 8"}}, "too long"]},
            ['{"constraints": {"isDivisibleBy": "multiple of 8"}, "property": "width"}', "too long"],
            id="objects",
        ),
    ],
)
def test_error_messages_read_like_text(body: dict[str, Any], expected: list[str]) -> None:
    """`message` as a list, a string, missing, or objects: always readable strings, never `[object Object]`."""
    assert expected == ErrorBody.model_validate(body).messages()


def test_create_body_is_camel_case_without_unset_fields() -> None:
    """`to_wire` writes camelCase and leaves out every field, legacy ones included, that was not set."""
    dto = CreateInferenceDto(prompt="a fox", negative_prompt="blur", number_of_images=2, prompt_strength=7.0, seed=9)

    assert {
        "prompt": "a fox",
        "negativePrompt": "blur",
        "numberOfImages": 2,
        "promptStrength": 7,
        "seed": 9,
    } == dto.to_wire()


def test_legacy_fields_are_sent_when_set() -> None:
    """`upscaleBy`, `restoreFaces` and friends go on the wire only when asked for, camelCase."""
    dto = CreateInferenceDto(prompt="p", upscale_by="x2", restore_faces=False, enhance_prompt=True)

    assert {"prompt": "p", "upscaleBy": "x2", "restoreFaces": False, "enhancePrompt": True} == dto.to_wire()


def test_create_body_accepts_camel_case_and_refuses_unknown_fields() -> None:
    """Requests are strict: camelCase names populate, an unknown field is an error."""
    assert 30 == CreateInferenceDto.model_validate({"prompt": "p", "steps": 30}).steps
    with pytest.raises(ValidationError, match="stepz"):
        CreateInferenceDto.model_validate({"prompt": "p", "stepz": 30})


@pytest.mark.parametrize(
    ("state", "expected"),
    [("queued", False), ("processing", False), ("finished", True), ("failed", True)],
)
def test_terminal_states(state: str, expected: bool) -> None:
    """Only `finished` and `failed` are terminal."""
    assert expected == InferenceState(state).is_terminal


@pytest.mark.parametrize(
    ("steps", "images", "expected"),
    [
        (0, 1, 4.0 + 16.0 / 150),
        (1, 1, 4.0 + 16.0 / 150),
        (150, 1, 20.0),
        (1000, 1, 20.0),
        (75, 2, 24.0),
        (None, None, 4.0 + 16.0 * 50 / 150),
    ],
)
def test_generation_time_model(steps: int | None, images: int | None, expected: float) -> None:
    """From 4 s per image growing linearly in steps to 20 s at 150 steps and beyond, times the images."""
    assert pytest.approx(expected) == expected_generation_seconds(steps, images)
