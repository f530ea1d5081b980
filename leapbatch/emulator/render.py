"""A job as Leap's wire shows it: the InferenceEntity body, with Leap's timestamps and its undocumented keys.

What real answers looked like (docs/leap-api-facts.md): a job's `createdAt` in ISO 8601 with `T` and `+00:00`;
an image's `createdAt` as `2023-06-20 07:04:01.634307+00` (a space, `+00`); and keys no spec names (`weightsId`,
`workspaceId`, `sampler`, `isDeleted`, `routedToQueue`), which every client must ignore. Their values here are
invented but stable: `weightsId` a UUID derived from the model id, `workspaceId` one derived from the emulator seed,
`sampler` the request's (or `ddim`), `isDeleted` false (true in the answer to a DELETE), `routedToQueue`
`default`. `EmulatorConfig.plain_entities` leaves them out.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from leapbatch.wire import InferenceEntity, InferenceImage, InferenceState

if TYPE_CHECKING:
    from leapbatch.emulator.config import EmulatorConfig
    from leapbatch.emulator.state import Job

_NAMESPACE = uuid.UUID("6c1c2a35-52f2-4c0c-9f2a-2d1e3c4b5a69")  # fixed, so derived ids never change
DEFAULT_SAMPLER = "ddim"


def image_path(inference_id: str, index: int) -> str:
    """Return the path of one image on the image host, as Leap's CDN lays it out."""
    return f"/image-gen-{inference_id}/generated_images/{index}.png"


def iso(moment: datetime) -> str:
    """Return a job timestamp as Leap wrote them: `2023-06-20T07:03:46.438775+00:00`."""
    return moment.isoformat()  # pydantic's JSON mode would write `Z`


def postgres_time(moment: datetime) -> str:
    """Return an image timestamp as Leap wrote them: `2023-06-20 07:04:01.634307+00`."""
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f") + "+00"


def extra_keys(job: Job, config: EmulatorConfig) -> dict[str, Any]:
    """Return the undocumented keys real answers carried (see the module docstring)."""
    return {
        "weightsId": str(uuid.uuid5(_NAMESPACE, f"weights:{job.model_id}")),
        "workspaceId": str(uuid.uuid5(_NAMESPACE, f"workspace:{config.seed}")),
        "sampler": job.request.get("sampler", DEFAULT_SAMPLER),
        "isDeleted": False,
        "routedToQueue": "default",
    }


def render_entity(job: Job, state: InferenceState, image_base_url: str, config: EmulatorConfig) -> dict[str, Any]:
    """Return the job's InferenceEntity body in `state`."""
    images: list[InferenceImage] = []
    if state is InferenceState.FINISHED:
        done = job.created_at + timedelta(seconds=job.duration)
        images = [
            InferenceImage(
                id=str(uuid.uuid5(uuid.UUID(job.id), str(index))),
                uri=image_base_url + image_path(job.id, index),
                created_at=done,
            )
            for index in range(job.image_count)
        ]
    request = job.request
    body = InferenceEntity(
        id=job.id,
        state=state,
        status=state,
        created_at=job.created_at,
        prompt=request["prompt"],
        negative_prompt=request["negativePrompt"],
        seed=request["seed"],
        width=request["width"],
        height=request["height"],
        prompt_strength=request["promptStrength"],
        number_of_images=request["numberOfImages"],
        steps=request["steps"],
        images=images,
        model_id=job.model_id,
        upscaling_option=request.get("upscaleBy", "x1"),
    ).to_wire()
    body["createdAt"] = iso(job.created_at)
    for image, wire in zip(images, body["images"], strict=True):
        wire["createdAt"] = postgres_time(image.created_at or job.created_at)
    if not config.plain_entities:
        body.update(extra_keys(job, config))
    return body


def deleted_entity(entity: dict[str, Any], config: EmulatorConfig) -> dict[str, Any]:
    """Return the answer to a DELETE: the job as it was, marked deleted (unless entities are plain)."""
    return entity if config.plain_entities else {**entity, "isDeleted": True}
