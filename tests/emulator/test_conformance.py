"""The emulator's contract, run against the in-process apps and the served emulator alike (see conftest.py)."""

from __future__ import annotations

import io
import json
import re
import uuid
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
import trio
from emulator_support import AUTH, FAST, MODEL, TOKEN, MakeTarget, Receiver, Target
from PIL import Image

from leapbatch.api.client import inferences_path
from leapbatch.emulator import EmulatorConfig, ManualClock, image_path
from leapbatch.errors import BadRequestError, KeyRefusedError, NotFoundError
from leapbatch.wire import SPEC_DEFAULTS, CreateInferenceDto, InferenceState, expected_generation_seconds

OTHER_MODEL = "ee88d150-4259-4b77-9d0f-090abe29f650"
DEFAULT_DURATION = expected_generation_seconds(50, 1)  # speed 1: what a job with the spec defaults takes
PAST_ANY_JOB = 200.0  # seconds after which every job of these tests has ended (4 images, 150 steps: 80 s)
SAMPLERS = "ddim, dpm_2a, dpm_plusplus_sde, euler, euler_a, unipc"


# --- routes and shapes ---------------------------------------------------------------------------------------------


async def test_create_answers_201_queued_with_the_spec_defaults(target: Target) -> None:
    """A create with only a prompt answers 201, queued, no images, and echoes the defaults Leap fills in."""
    response = await target.api.post(inferences_path(MODEL), json={"prompt": "a red fox"})

    body = response.json()
    assert 201 == response.status_code
    assert ("queued", "queued", []) == (body["state"], body["status"], body["images"])
    assert {
        "prompt": "a red fox",
        "negativePrompt": SPEC_DEFAULTS["negativePrompt"],
        "steps": 50,
        "width": 1024,
        "height": 1024,
        "numberOfImages": 1,
        "promptStrength": 7,
        "modelId": MODEL,
        "upscalingOption": "x1",
    } == {key: body[key] for key in (*SPEC_DEFAULTS, "prompt", "modelId", "upscalingOption") if key != "seed"}
    assert str(uuid.UUID(body["id"])) == body["id"]


async def test_an_omitted_seed_is_drawn_reproducibly_per_emulator_seed(make_target: MakeTarget) -> None:
    """Without a seed each create draws one (0..2^32-1): identical requests differ, and the same emulator seed and
    requests draw the same seeds again; another emulator seed draws others. A seed sent (or null) is as given."""

    async def seeds(emulator_seed: int) -> list[int]:
        target = await make_target(EmulatorConfig(seed=emulator_seed))
        drawn = [(await target.create(prompt="a fox"))["seed"] for _ in range(3)]
        return [*drawn, (await target.create(prompt="a fox", seed=5))["seed"]]

    first, again, other = await seeds(1), await seeds(1), await seeds(2)

    assert first == again
    assert 3 == len(set(first[:3]))
    assert all(0 <= seed < 2**32 for seed in first)
    assert 5 == first[3]
    assert first[:3] != other[:3]
    assert 4523184 not in first  # not the spec's annotated constant


async def test_entities_carry_the_undocumented_keys_real_answers_had(make_target: MakeTarget) -> None:
    """Every entity has weightsId, workspaceId, sampler, isDeleted and routedToQueue; plain_entities drops them."""
    extra = {"weightsId", "workspaceId", "sampler", "isDeleted", "routedToQueue"}
    full = await (await make_target()).create(sampler="euler")
    plain = await (await make_target(EmulatorConfig(plain_entities=True))).create()

    assert extra <= set(full)
    assert not extra & set(plain)
    assert ("euler", False, "default") == (full["sampler"], full["isDeleted"], full["routedToQueue"])
    assert str(uuid.UUID(full["weightsId"])) == full["weightsId"]
    assert set(plain) | extra == set(full)


async def test_create_echoes_the_values_sent(target: Target) -> None:
    """Every field sent comes back as sent (integral floats as integers, upscaleBy as upscalingOption)."""
    sent: dict[str, Any] = {
        "prompt": "a blue heron",
        "negativePrompt": "blurry",
        "steps": 30,
        "width": 512.0,
        "height": 768,
        "numberOfImages": 4,
        "promptStrength": 7.5,
        "seed": 42,
        "upscaleBy": "x2",
        "sampler": "euler_a",
        "enhancePrompt": True,
        "unknownKey": "ignored",
    }

    body = await target.create(**sent)

    assert {
        "prompt": "a blue heron",
        "negativePrompt": "blurry",
        "steps": 30,
        "width": 512,
        "height": 768,
        "numberOfImages": 4,
        "promptStrength": 7.5,
        "seed": 42,
        "upscalingOption": "x2",
    } == {key: body[key] for key in (*SPEC_DEFAULTS, "prompt", "upscalingOption")}
    assert "unknownKey" not in body


async def test_timestamps_are_in_leaps_two_styles(target: Target, manual_clock: ManualClock) -> None:
    """A job's createdAt is ISO 8601 with `T` and `+00:00`; an image's is Leap's `2023-06-20 07:04:01.634307+00`."""
    created = await target.create()
    manual_clock.advance(PAST_ANY_JOB)

    body = (await target.get(created["id"])).json()

    job_stamp, image_stamp = body["createdAt"], body["images"][0]["createdAt"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00", job_stamp), job_stamp
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}\+00", image_stamp), image_stamp
    assert timedelta(0) == datetime.fromisoformat(job_stamp).utcoffset()
    assert datetime.fromisoformat(image_stamp + ":00") > datetime.fromisoformat(job_stamp)
    assert 1 == len((await target.leap.find_one(MODEL, created["id"])).images)  # our own client reads both


async def test_find_one_answers_the_entity(target: Target) -> None:
    """GET of a job answers 200 with the same entity the create returned (still queued)."""
    created = await target.create(seed=7)

    response = await target.get(created["id"])

    assert 200 == response.status_code
    assert created == response.json()


async def test_find_all_answers_a_bare_array_newest_first(target: Target) -> None:
    """The listing is a JSON array (no envelope) of the model's jobs, newest first."""
    ids = [(await target.create(seed=seed))["id"] for seed in range(3)]

    response = await target.api.get(inferences_path(MODEL))

    assert 200 == response.status_code
    assert list(reversed(ids)) == [entity["id"] for entity in response.json()]


async def test_delete_answers_200_with_the_deleted_job_and_the_job_is_gone(target: Target) -> None:
    """A delete answers the job as it was, marked isDeleted; then it is not found, not deletable, not listed."""
    created = await target.create()
    path = inferences_path(MODEL, created["id"])

    deleted = await target.api.delete(path)

    assert 200 == deleted.status_code
    assert {**created, "isDeleted": True} == deleted.json()
    assert 404 == (await target.api.get(path)).status_code
    assert 404 == (await target.api.delete(path)).status_code
    assert [] == (await target.api.get(inferences_path(MODEL))).json()


async def test_deleted_jobs_lose_their_images(target: Target, manual_clock: ManualClock) -> None:
    """An image served before its job is deleted is 404 afterwards."""
    created = await target.create(width=64, height=64)
    manual_clock.advance(PAST_ANY_JOB)
    uri = (await target.get(created["id"])).json()["images"][0]["uri"]
    assert 200 == (await target.images.get(uri)).status_code

    await target.api.delete(inferences_path(MODEL, created["id"]))

    assert 404 == (await target.images.get(uri)).status_code


async def test_jobs_belong_to_their_model(target: Target) -> None:
    """Another model lists none of this model's jobs, and cannot get or delete them."""
    created = await target.create()

    listed = await target.api.get(inferences_path(OTHER_MODEL))
    got = await target.get(created["id"], model=OTHER_MODEL)
    deleted = await target.api.delete(inferences_path(OTHER_MODEL, created["id"]))

    assert ([], 404, 404) == (listed.json(), got.status_code, deleted.status_code)
    assert 200 == (await target.get(created["id"])).status_code


async def test_unknown_inference_is_404_with_a_nest_body(target: Target) -> None:
    """GET of an id that never existed answers 404 with a NestJS body."""
    response = await target.get("no-such-id")

    assert 404 == response.status_code
    assert {"statusCode": 404, "message": "Inference no-such-id not found", "error": "Not Found"} == response.json()


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/"),
        ("GET", "/api/v1/images/models"),
        ("GET", f"/api/v1/images/models/{MODEL}"),
        ("POST", f"/api/v1/images/models/{MODEL}/inferences/x/y"),
        ("GET", "/api/v2/images/models/m/inferences"),
    ],
)
async def test_unknown_routes_are_404(target: Target, method: str, path: str) -> None:
    """A path that is no route answers 404 `Cannot METHOD path`, before any auth check."""
    response = await target.anon.request(method, path)

    assert 404 == response.status_code
    assert {"statusCode": 404, "message": f"Cannot {method} {path}", "error": "Not Found"} == response.json()


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("PUT", f"/api/v1/images/models/{MODEL}/inferences", "GET, POST"),
        ("DELETE", f"/api/v1/images/models/{MODEL}/inferences", "GET, POST"),
        ("POST", f"/api/v1/images/models/{MODEL}/inferences/some-id", "DELETE, GET"),
        ("PATCH", f"/api/v1/images/models/{MODEL}/inferences/some-id", "DELETE, GET"),
        ("POST", "/_emulator/stats", "GET"),
    ],
)
async def test_wrong_methods_are_405(target: Target, method: str, path: str, allow: str) -> None:
    """A known path with another method answers 405 with an Allow header and a NestJS body."""
    response = await target.api.request(method, path)

    assert (405, allow) == (response.status_code, response.headers["allow"])
    assert {"statusCode": 405, "message": f"Cannot {method} {path}", "error": "Method Not Allowed"} == response.json()


# --- auth ----------------------------------------------------------------------------------------------------------

UNAUTHORIZED = {"statusCode": 401, "message": "Unauthorized"}
ROUTES = [
    ("POST", inferences_path(MODEL)),
    ("GET", inferences_path(MODEL)),
    ("GET", inferences_path(MODEL, "some-id")),
    ("DELETE", inferences_path(MODEL, "some-id")),
]


@pytest.mark.parametrize(("method", "path"), ROUTES)
@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Basic dGVzdDp0ZXN0"}, {"Authorization": "Bearer"}, {"Authorization": TOKEN}],
    ids=["missing", "basic-scheme", "no-token", "no-scheme"],
)
async def test_every_route_needs_a_bearer_token(
    target: Target, method: str, path: str, headers: dict[str, str]
) -> None:
    """Without `Authorization: Bearer <token>` every API route answers 401 with NestJS's bare body."""
    response = await target.anon.request(method, path, headers=headers, json={"prompt": "a red fox"})

    assert (401, UNAUTHORIZED) == (response.status_code, response.json())


async def test_any_token_is_accepted_by_default(target: Target) -> None:
    """With no configured token, any non-empty bearer token (any case of `bearer`) is accepted."""
    response = await target.anon.get(inferences_path(MODEL), headers={"Authorization": "bearer whatever"})

    assert 200 == response.status_code


async def test_only_the_configured_token_is_accepted(make_target: MakeTarget) -> None:
    """With a configured token, another token answers 401 and that token is served."""
    target = await make_target(EmulatorConfig(token="right-token"))

    wrong = await target.anon.get(inferences_path(MODEL), headers={"Authorization": "Bearer wrong-token"})
    right = await target.anon.get(inferences_path(MODEL), headers={"Authorization": "Bearer right-token"})

    assert (401, UNAUTHORIZED, 200) == (wrong.status_code, wrong.json(), right.status_code)


# --- validation ----------------------------------------------------------------------------------------------------

BAD_BODIES: list[tuple[str, Any, list[str]]] = [
    ("array", [{"prompt": "a"}], ["body must be a JSON object"]),
    ("string", "a red fox", ["body must be a JSON object"]),
    ("null", None, ["body must be a JSON object"]),
    ("not-json", b'{"prompt": ', ["body must be valid JSON"]),
    ("nan", b'{"prompt": "a", "seed": NaN}', ["body must be valid JSON"]),
    ("empty-object", {}, ["prompt must be a string", "prompt should not be empty"]),
    ("prompt-null", {"prompt": None}, ["prompt must be a string", "prompt should not be empty"]),
    ("prompt-number", {"prompt": 5}, ["prompt must be a string"]),
    ("prompt-empty", {"prompt": ""}, ["prompt should not be empty"]),
    ("negative-prompt-list", {"negativePrompt": ["x"]}, ["negativePrompt must be a string"]),
    ("width-not-multiple", {"width": 500}, ["width must be a multiple of 8"]),
    ("width-zero", {"width": 0}, ["width must not be less than 8"]),
    ("width-negative", {"width": -16}, ["width must not be less than 8"]),
    ("height-7", {"height": 7}, ["height must not be less than 8", "height must be a multiple of 8"]),
    ("width-huge", {"width": 4096}, ["width must not be greater than 2048"]),
    ("width-string", {"width": "512"}, ["width must be an integer number"]),
    ("width-bool", {"width": True}, ["width must be an integer number"]),
    ("width-fraction", {"width": 512.5}, ["width must be an integer number"]),
    ("images-5", {"numberOfImages": 5}, ["numberOfImages must not be greater than 4"]),
    ("images-0", {"numberOfImages": 0}, ["numberOfImages must not be less than 1"]),
    ("images-fraction", {"numberOfImages": 1.5}, ["numberOfImages must be an integer number"]),
    ("strength-31", {"promptStrength": 31}, ["promptStrength must not be greater than 30"]),
    ("strength-negative", {"promptStrength": -0.5}, ["promptStrength must not be less than 0"]),
    (
        "strength-string",
        {"promptStrength": "7"},
        ["promptStrength must be a number conforming to the specified constraints"],
    ),
    ("steps-0", {"steps": 0}, ["steps must not be less than 1"]),
    ("steps-string", {"steps": "50"}, ["steps must be an integer number"]),
    ("seed-string", {"seed": "1"}, ["seed must be an integer number"]),
    ("seed-bool", {"seed": False}, ["seed must be an integer number"]),
    ("webhook-number", {"webhookUrl": 5}, ["webhookUrl must be a string"]),
    ("version-number", {"version": 2}, ["version must be a string"]),
    ("enhance-string", {"enhancePrompt": "yes"}, ["enhancePrompt must be a boolean value"]),
    ("restore-number", {"restoreFaces": 1}, ["restoreFaces must be a boolean value"]),
    ("upscale-x3", {"upscaleBy": "x3"}, ["upscaleBy must be one of the following values: x1, x2, x4"]),
    ("sampler-plms", {"sampler": "plms"}, [f"sampler must be one of the following values: {SAMPLERS}"]),
    (
        "many-at-once",
        {"prompt": 1, "width": 12, "numberOfImages": 9, "promptStrength": 99, "sampler": 3},
        [
            "prompt must be a string",
            "width must be a multiple of 8",
            "numberOfImages must not be greater than 4",
            "promptStrength must not be greater than 30",
            f"sampler must be one of the following values: {SAMPLERS}",
        ],
    ),
]


@pytest.mark.parametrize(("body", "expected"), [case[1:] for case in BAD_BODIES], ids=[c[0] for c in BAD_BODIES])
async def test_bad_bodies_are_400_with_every_problem(target: Target, body: Any, expected: list[str]) -> None:
    """A bad create body answers 400 listing every problem, class-validator style, and creates no job."""
    if isinstance(body, bytes):
        content = body
    else:
        needs_prompt = isinstance(body, dict) and body and "prompt" not in body
        content = json.dumps({"prompt": "a red fox", **body} if needs_prompt else body).encode()

    response = await target.api.post(
        inferences_path(MODEL), content=content, headers={"Content-Type": "application/json"}
    )

    assert {"statusCode": 400, "message": expected, "error": "Bad Request"} == response.json()
    assert (400, 0) == (response.status_code, (await target.stats())["jobs"]["created"])


async def test_an_empty_body_is_read_as_an_empty_object(target: Target) -> None:
    """A create without a body is told what is missing, as NestJS (Express) does."""
    response = await target.api.post(inferences_path(MODEL))

    assert ["prompt must be a string", "prompt should not be empty"] == response.json()["message"]


async def test_a_body_over_the_limit_is_413(target: Target) -> None:
    """A create body over 100 KiB is refused with NestJS's 413, and creates no job."""
    response = await target.api.post(inferences_path(MODEL), json={"prompt": "x" * 200_000})

    assert {"statusCode": 413, "message": "request entity too large", "error": "Payload Too Large"} == response.json()
    assert (413, 0) == (response.status_code, (await target.stats())["jobs"]["created"])


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("page=0", ["page must not be less than 1"]),
        ("page=two", ["page must be an integer number"]),
        ("page=3.14", ["page must be an integer number"]),  # the official Python SDK's README example: refused
        ("pageSize=2.0", ["pageSize must be an integer number"]),
        ("pageSize=0", ["pageSize must not be less than 1"]),
        ("pageSize=1_0", ["pageSize must be an integer number"]),
        ("onlyFinished=maybe", ["onlyFinished must be a boolean value"]),
    ],
)
async def test_bad_list_queries_are_400(target: Target, query: str, expected: list[str]) -> None:
    """A bad findAll query answers 400 with its problems."""
    response = await target.api.get(f"{inferences_path(MODEL)}?{query}")

    assert {"statusCode": 400, "message": expected, "error": "Bad Request"} == response.json()


# --- paging --------------------------------------------------------------------------------------------------------


async def _list_ids(target: Target, **params: Any) -> list[str]:
    response = await target.api.get(inferences_path(MODEL), params=params)
    assert 200 == response.status_code
    return [entity["id"] for entity in response.json()]


async def test_pages_are_disjoint_newest_first_and_end_with_an_empty_page(target: Target) -> None:
    """Pages from 1 split the jobs, newest first, without overlap, and the page after the last is empty."""
    ids = [(await target.create(seed=seed))["id"] for seed in range(7)]

    pages = [await _list_ids(target, page=page, pageSize=3) for page in (1, 2, 3, 4)]

    newest_first = list(reversed(ids))
    assert [newest_first[0:3], newest_first[3:6], newest_first[6:7], []] == pages


async def test_page_size_has_a_default_and_a_cap(make_target: MakeTarget) -> None:
    """Without pageSize a page holds the default; a pageSize above the maximum is capped, not rejected."""
    target = await make_target(EmulatorConfig(default_page_size=2, max_page_size=4))
    for seed in range(5):
        await target.create(seed=seed)

    assert (2, 4) == (len(await _list_ids(target)), len(await _list_ids(target, pageSize=1000)))


async def test_only_finished_lists_only_finished_jobs(target: Target, manual_clock: ManualClock) -> None:
    """onlyFinished=true leaves out jobs still queued or processing."""
    quick = await target.create(steps=1)
    slow = await target.create(steps=150)
    manual_clock.advance(expected_generation_seconds(1, 1) + 0.01)

    assert [quick["id"]] == await _list_ids(target, onlyFinished="true")
    assert [slow["id"], quick["id"]] == await _list_ids(target, onlyFinished="false")


# --- lifecycle -----------------------------------------------------------------------------------------------------


async def test_a_job_goes_queued_processing_finished(target: Target, manual_clock: ManualClock) -> None:
    """A job is queued for the first 10% of its duration, then processing, then finished with its images."""
    created = await target.create(width=64, height=64)
    seen = []
    for share in (0.05, 0.5, 1.0):
        manual_clock.now = 1000.0 + share * DEFAULT_DURATION + 0.001
        body = (await target.get(created["id"])).json()
        seen.append((body["state"], body["status"], len(body["images"])))

    assert [("queued", "queued", 0), ("processing", "processing", 0), ("finished", "finished", 1)] == seen


async def test_fail_rate_one_ends_every_job_failed(make_target: MakeTarget, manual_clock: ManualClock) -> None:
    """With fail_rate=1 every job ends failed, without images."""
    target = await make_target(EmulatorConfig(fail_rate=1.0), clock=manual_clock)
    created = await target.create()
    manual_clock.advance(PAST_ANY_JOB)

    body = (await target.get(created["id"])).json()

    assert ("failed", "failed", []) == (body["state"], body["status"], body["images"])


async def test_speed_makes_jobs_finish_sooner(make_target: MakeTarget, manual_clock: ManualClock) -> None:
    """At speed 100 a default job has finished after a hundredth of its duration."""
    target = await make_target(EmulatorConfig(speed=100.0), clock=manual_clock)
    created = await target.create()
    manual_clock.advance(DEFAULT_DURATION / 100 + 0.001)

    assert "finished" == (await target.get(created["id"])).json()["state"]


# --- images --------------------------------------------------------------------------------------------------------


async def _image_uris(target: Target, manual_clock: ManualClock, **body: Any) -> list[str]:
    created = await target.create(**body)
    manual_clock.advance(PAST_ANY_JOB)
    entity = (await target.get(created["id"])).json()
    return [image["uri"] for image in entity["images"]]


async def test_images_are_pngs_of_the_requested_size(target: Target, manual_clock: ManualClock) -> None:
    """Each image URI serves a PNG (type and length set) that decodes to the requested width and height."""
    uris = await _image_uris(target, manual_clock, width=64, height=128, numberOfImages=2)
    found = []
    for uri in uris:
        response = await target.images.get(uri)
        picture = Image.open(io.BytesIO(response.content))
        found.append((response.status_code, response.headers["content-type"], picture.format, picture.size))
        assert str(len(response.content)) == response.headers["content-length"]

    assert [(200, "image/png", "PNG", (64, 128))] * 2 == found
    assert [urlsplit(uris[0]).path.replace("/0.png", f"/{n}.png") for n in range(2)] == [
        urlsplit(uri).path for uri in uris
    ]


async def test_images_come_from_another_origin(target: Target, manual_clock: ManualClock) -> None:
    """Image URIs point at the image host, not at the API's origin, laid out as on Leap's CDN."""
    (uri,) = await _image_uris(target, manual_clock, width=64, height=64)

    api, image = urlsplit(target.base_url), urlsplit(uri)
    assert (api.scheme, api.netloc) != (image.scheme, image.netloc)
    assert f"/image-gen-{uri.split('/image-gen-')[1].split('/')[0]}/generated_images/0.png" == image.path


async def test_image_bytes_are_deterministic(target: Target, manual_clock: ManualClock) -> None:
    """Same prompt, seed and size give the same bytes; another seed or prompt gives other bytes."""
    same = dict(prompt="a lighthouse", seed=3, width=64, height=64)
    variants = [same, same, {**same, "seed": 4}, {**same, "prompt": "a lighthouse at dusk"}]
    contents = []
    for body in variants:
        (uri,) = await _image_uris(target, manual_clock, **body)
        contents.append((await target.images.get(uri)).content)

    assert contents[0] == contents[1]
    assert 3 == len(set(contents))


async def test_images_do_not_exist_before_the_job_finishes(target: Target) -> None:
    """The image of a queued job, and an index beyond numberOfImages, are 404."""
    created = await target.create(width=64, height=64)
    base = target.emulator.image_base_url

    early = await target.images.get(base + image_path(created["id"], 0))
    beyond = await target.images.get(base + image_path(created["id"], 1))

    assert (404, 404) == (early.status_code, beyond.status_code)


async def test_the_image_host_needs_no_auth_and_counts_requests_carrying_it(
    target: Target, manual_clock: ManualClock
) -> None:
    """Images are served without a key, and a request that carried one is counted (it must never happen)."""
    (uri,) = await _image_uris(target, manual_clock, width=64, height=64)

    plain = await target.images.get(uri)
    leaked = await target.images.get(uri, headers=AUTH)

    assert (200, 200) == (plain.status_code, leaked.status_code)
    assert 1 == (await target.stats())["image_requests_with_authorization"]


# --- webhooks ------------------------------------------------------------------------------------------------------


async def _eventually(target: Target, group: str, key: str, expected: int) -> None:
    """Wait until a counter reaches `expected` (a webhook is counted just after the receiver answers)."""
    with trio.fail_after(10):
        # The counter moves in the emulator's delivery task after its HTTP round trip: nothing to wait on but it.
        while (await target.stats())[group][key] != expected:  # noqa: ASYNC110
            await trio.sleep(0.005)


async def test_webhooks_post_the_finished_entity(make_target: MakeTarget, webhook_receiver: Receiver) -> None:
    """When a job ends, its webhookUrl receives the entity in its final state, and the delivery is counted."""
    target = await make_target(EmulatorConfig(speed=FAST))
    created = await target.create(webhookUrl=webhook_receiver.url, width=64, height=64)

    with trio.fail_after(10):
        path, body = await webhook_receiver.received.receive()

    assert ("/hook", created["id"], "finished", 1) == (path, body["id"], body["state"], len(body["images"]))
    await _eventually(target, "webhooks", "delivered", 1)
    assert {"delivered": 1, "failed": 0} == (await target.stats())["webhooks"]


async def test_the_webhook_body_can_wrap_the_entity_in_result(
    make_target: MakeTarget, webhook_receiver: Receiver
) -> None:
    """With webhook_shape "result" the body is {"result": entity}, the shape Leap's starter app reads."""
    target = await make_target(EmulatorConfig(speed=FAST, webhook_shape="result"))
    created = await target.create(webhookUrl=webhook_receiver.url, width=64, height=64)

    with trio.fail_after(10):
        _, body = await webhook_receiver.received.receive()

    assert ["result"] == list(body)
    assert (created["id"], "finished") == (body["result"]["id"], body["result"]["state"])


async def test_failed_webhook_deliveries_are_counted(make_target: MakeTarget, webhook_receiver: Receiver) -> None:
    """A webhook answered with a 5xx, or sent to a closed port, counts as failed and breaks nothing."""
    target = await make_target(EmulatorConfig(speed=FAST))
    with trio.socket.socket() as probe:  # a port that was free a moment ago refuses connections
        await probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    await target.create(webhookUrl=webhook_receiver.url + "/fail")
    await target.create(webhookUrl=f"http://127.0.0.1:{closed_port}/hook")

    await _eventually(target, "webhooks", "failed", 2)

    assert {"delivered": 0, "failed": 2} == (await target.stats())["webhooks"]


# --- stats ---------------------------------------------------------------------------------------------------------


async def test_stats_count_every_request_to_each_route(target: Target, manual_clock: ManualClock) -> None:
    """After a known sequence of requests (some rejected), the counters hold exactly what was sent."""
    created = await target.create(width=64, height=64)  # create 1
    await target.api.post(inferences_path(MODEL), json={"prompt": ""})  # create 2: 400
    await target.anon.post(inferences_path(MODEL), json={"prompt": "a"})  # create 3: 401
    await target.api.get(inferences_path(MODEL))  # list 1
    await target.get(created["id"])  # get 1
    await target.get("no-such-id")  # get 2: 404
    await target.anon.get("/no/such/route")  # no route: not counted
    manual_clock.advance(PAST_ANY_JOB)
    uri = (await target.get(created["id"])).json()["images"][0]["uri"]  # get 3
    await target.images.get(uri)  # image 1
    await target.images.get(uri, headers=AUTH)  # image 2, carrying a key
    await target.api.delete(inferences_path(MODEL, created["id"]))  # delete 1
    await target.api.delete(inferences_path(MODEL, created["id"]))  # delete 2: 404

    assert {
        "requests": {"create": 3, "list": 1, "get": 3, "delete": 2, "image": 2},
        "jobs": {"created": 1, "deleted": 1, "live": 0},
        "images": {"made": 1},
        "image_requests_with_authorization": 1,
        "webhooks": {"delivered": 0, "failed": 0},
    } == await target.stats()


# --- LeapClient interoperates --------------------------------------------------------------------------------------


async def test_leap_client_round_trip(target: Target, manual_clock: ManualClock) -> None:
    """LeapClient creates, finds, lists, pages through and removes jobs on the emulator."""
    requests = [CreateInferenceDto(prompt="a red fox", seed=seed, width=64, height=64) for seed in range(3)]
    created = [await target.leap.create(MODEL, request) for request in requests]
    manual_clock.advance(PAST_ANY_JOB)

    found = await target.leap.find_one(MODEL, created[0].id)
    first_page = await target.leap.find_all(MODEL, page=1, page_size=2)
    everything = [entity.id async for entity in target.leap.iter_all(MODEL, page_size=1)]
    await target.leap.remove(MODEL, created[0].id)

    assert (InferenceState.QUEUED, InferenceState.FINISHED, 1) == (created[0].state, found.state, len(found.images))
    assert [created[2].id, created[1].id] == [entity.id for entity in first_page]
    assert [job.id for job in reversed(created)] == everything
    with pytest.raises(NotFoundError):
        await target.leap.find_one(MODEL, created[0].id)
    with pytest.raises(NotFoundError):
        await target.leap.remove(MODEL, created[0].id)


async def test_leap_client_sees_typed_errors(make_target: MakeTarget) -> None:
    """The emulator's 400 and 401 reach LeapClient as BadRequestError (with messages) and KeyRefusedError."""
    target = await make_target(EmulatorConfig(token="another-token"))

    with pytest.raises(KeyRefusedError):
        await target.leap.find_all(MODEL)
    target = await make_target()
    with pytest.raises(BadRequestError) as raised:
        await target.leap.create(MODEL, CreateInferenceDto(prompt="a red fox", width=500, number_of_images=5))
    assert ["width must be a multiple of 8", "numberOfImages must not be greater than 4"] == raised.value.messages
