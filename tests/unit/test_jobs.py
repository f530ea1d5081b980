"""Job keys and fingerprints: identity from content, stable across spelling, equal on both sides of the wire."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from leapbatch.jobs import (
    FINGERPRINT_FIELDS,
    Job,
    canonical_json,
    entity_fingerprint,
    job_key,
    request_fingerprint,
)
from leapbatch.wire import SPEC_DEFAULTS, CreateInferenceDto, InferenceEntity

MODEL = "8b1b897c-d66d-45a6-b8d7-8e32421d02cf"
BODY: dict[str, Any] = {
    "prompt": "a red fox in the snow",
    "negativePrompt": "blurry",
    "steps": 30,
    "width": 512,
    "height": 768,
    "numberOfImages": 2,
    "promptStrength": 7.5,
    "seed": 1234,
}


def dto(**changes: Any) -> CreateInferenceDto:
    """Return the sample request with some wire fields changed."""
    return CreateInferenceDto.model_validate({**BODY, **changes})


def test_a_key_is_64_lowercase_hex_digits() -> None:
    """Keys are sha256 hex: safe as file names, no dots."""
    assert re.fullmatch(r"[0-9a-f]{64}", job_key(MODEL, dto()))


@given(order=st.permutations(sorted(BODY)))
def test_key_does_not_depend_on_field_order(order: list[str]) -> None:
    """The same fields given in any order make the same key."""
    shuffled = CreateInferenceDto.model_validate({name: BODY[name] for name in order})

    assert job_key(MODEL, dto()) == job_key(MODEL, shuffled)


def test_key_does_not_depend_on_int_or_float_spelling() -> None:
    """`7` and `7.0`, `30` and `30.0` are the same request, so the same key."""
    as_ints = dto(promptStrength=7, steps=30, seed=99)
    as_floats = dto(promptStrength=7.0, steps=30.0, seed=99.0)

    assert job_key(MODEL, as_ints) == job_key(MODEL, as_floats)


def test_webhook_is_not_part_of_the_key() -> None:
    """Changing or adding the webhook URL keeps the key: it changes where news goes, not what is made."""
    keys = {
        job_key(MODEL, dto()),
        job_key(MODEL, dto(webhookUrl="https://example.com/a")),
        job_key(MODEL, dto(webhookUrl="https://example.com/b")),
    }

    assert 1 == len(keys)


@pytest.mark.parametrize(
    "change",
    [
        {"prompt": "a red fox in the snow "},
        {"negativePrompt": "blurry, dark"},
        {"steps": 31},
        {"width": 520},
        {"height": 760},
        {"numberOfImages": 1},
        {"promptStrength": 7.25},
        {"seed": 1235},
        {"upscaleBy": "x2"},
        {"sampler": "euler"},
    ],
)
def test_every_request_field_changes_the_key(change: dict[str, Any]) -> None:
    """Any difference in what is sent (legacy fields included) is a different job."""
    assert job_key(MODEL, dto()) != job_key(MODEL, dto(**change))


def test_the_model_changes_the_key() -> None:
    """The same request on another model is another job."""
    assert job_key(MODEL, dto()) != job_key("another-model", dto())


def test_canonical_json() -> None:
    """Sorted keys at every depth, compact separators, unicode kept, integral floats as ints."""
    value = {"b": [1.0, 2.5, {"z": 3.0, "a": "é"}], "a": True}

    assert '{"a":true,"b":[1,2.5,{"a":"é","z":3}]}' == canonical_json(value)


def test_request_and_echoed_entity_have_the_same_fingerprint() -> None:
    """A request that leaves fields to the spec defaults matches the entity that echoes them filled in."""
    request = CreateInferenceDto(prompt="a red fox", seed=77)
    echoed = InferenceEntity.model_validate(
        {
            "id": "job-1",
            "state": "queued",
            "createdAt": "2023-07-04T20:55:54.644Z",
            "prompt": "a red fox",
            "negativePrompt": SPEC_DEFAULTS["negativePrompt"],
            "seed": 77,
            "steps": 50.0,
            "width": 1024.0,
            "height": 1024,
            "numberOfImages": 1,
            "promptStrength": 7.0,
            "images": [],
            "modelId": MODEL,
            "upscalingOption": "x1",
            "weightsId": "ignored",
        }
    )

    assert request_fingerprint(request) == entity_fingerprint(echoed)


def test_fingerprint_ignores_what_the_server_does_not_echo() -> None:
    """Webhook and legacy fields are not in the entity, so they are not in the fingerprint."""
    assert request_fingerprint(dto()) == request_fingerprint(dto(webhookUrl="https://x", sampler="ddim"))


@pytest.mark.parametrize("field", FINGERPRINT_FIELDS)
def test_every_echoed_field_changes_the_fingerprint(field: str) -> None:
    """Each of the eight echoed fields tells two jobs apart."""
    other = {"prompt": "another", "negativePrompt": "other"}.get(field, 3)

    assert request_fingerprint(dto()) != request_fingerprint(dto(**{field: other}))


def test_job_build() -> None:
    """`Job.build` derives the key, keeps the variables, and knows its image count and fingerprint."""
    job = Job.build(MODEL, dto(), {"animal": "fox", "seed": 1234})
    single = Job.build(MODEL, CreateInferenceDto(prompt="p"))

    assert (job_key(MODEL, dto()), {"animal": "fox", "seed": 1234}) == (job.key, dict(job.variables))
    assert (2, 1) == (job.image_count, single.image_count)
    assert request_fingerprint(dto()) == job.fingerprint
