"""EmulatorState without sockets: lifecycle boundaries, fates, paging, webhook schedule, config checks."""

from __future__ import annotations

from typing import Any

import pytest

from leapbatch.emulator import EmulatorConfig, EmulatorState, ManualClock
from leapbatch.wire import SPEC_DEFAULTS, InferenceState, expected_generation_seconds

MODEL = "model-a"


def request(**fields: Any) -> dict[str, Any]:
    """Return an effective create body: the spec defaults, a prompt, and `fields`."""
    return {"prompt": "a red fox", **SPEC_DEFAULTS, **fields}


def state_with(clock: ManualClock | None = None, **config: Any) -> EmulatorState:
    """Return an empty state with the given config fields and a manual clock."""
    return EmulatorState(EmulatorConfig(**config), image_base_url="http://images.test", clock=clock or ManualClock())


def test_states_change_at_ten_percent_and_at_the_end() -> None:
    """A job is queued before 10% of its duration, processing from 10% until 100%, finished from 100%."""
    clock = ManualClock(start=0.0)
    job = state_with(clock).create(MODEL, request(steps=150))  # 20 s at speed 1
    duration = expected_generation_seconds(150, 1)

    states = [job.state_at(duration * share) for share in (0.0, 0.0999, 0.1, 0.9999, 1.0, 5.0)]

    expected = ["queued", "queued", "processing", "processing", "finished", "finished"]
    assert expected == [state.value for state in states]


def test_speed_divides_the_duration_and_inf_is_instant() -> None:
    """Duration is Leap's expected time divided by speed; speed inf makes a job terminal at once."""
    expected = expected_generation_seconds(50, 2)

    assert expected / 4 == EmulatorConfig(speed=4.0).duration(50, 2)
    assert 0.0 == EmulatorConfig(speed=float("inf")).duration(50, 2)
    clock = ManualClock()
    job = state_with(clock, speed=float("inf")).create(MODEL, request())
    assert InferenceState.FINISHED is job.state_at(clock())


@pytest.mark.parametrize(
    "config",
    [
        {"speed": 0.0},
        {"speed": -1.0},
        {"speed": float("nan")},
        {"fail_rate": 1.5},
        {"fail_rate": -0.1},
        {"default_page_size": 0},
        {"default_page_size": 20, "max_page_size": 10},
        {"token": ""},
    ],
)
def test_impossible_configs_are_refused(config: dict[str, Any]) -> None:
    """A config that cannot work raises ValueError when built."""
    with pytest.raises(ValueError, match="must"):
        EmulatorConfig(**config)


def _fates(seed: int, count: int = 40) -> list[bool]:
    state = state_with(fail_rate=0.5, seed=seed)
    return [state.create(MODEL, request(seed=n)).fails for n in range(count)]


def test_fates_reproduce_with_the_seed_and_change_without_it() -> None:
    """The same seed gives the same failing jobs; another seed gives another pattern."""
    assert _fates(seed=1) == _fates(seed=1)
    assert _fates(seed=1) != _fates(seed=2)
    assert 0 < sum(_fates(seed=1)) < 40


def test_fates_do_not_depend_on_creation_order() -> None:
    """A job's fate comes from its request, not from when it arrived among others."""
    forward = state_with(fail_rate=0.5, seed=3)
    backward = state_with(fail_rate=0.5, seed=3)
    seeds = list(range(30))

    ahead = {n: forward.create(MODEL, request(seed=n)).fails for n in seeds}
    behind = {n: backward.create(MODEL, request(seed=n)).fails for n in reversed(seeds)}

    assert ahead == behind


def test_resubmitting_a_request_draws_a_new_fate() -> None:
    """Identical requests each get their own draw, so a failed job may succeed when sent again."""
    state = state_with(fail_rate=0.5, seed=0)

    fates = [state.create(MODEL, request()).fails for _ in range(40)]

    assert 0 < sum(fates) < 40


def test_pages_slice_newest_first_and_only_finished_filters() -> None:
    """Paging slices the newest-first list; only_finished keeps jobs finished now."""
    clock = ManualClock(start=0.0)
    state = state_with(clock)
    quick = state.create(MODEL, request(steps=1))
    slow = [state.create(MODEL, request(steps=150, seed=n)) for n in range(3)]
    clock.advance(expected_generation_seconds(1, 1))

    pages = [[job.id for job in state.page(MODEL, page=n, page_size=3)] for n in (1, 2, 3)]

    assert [[slow[2].id, slow[1].id, slow[0].id], [quick.id], []] == pages
    assert [quick] == state.page(MODEL, page=1, page_size=10, only_finished=True)


def test_rendered_bodies_follow_the_state_and_are_cached() -> None:
    """The body of a state is rendered once; the finished body lists its image URIs on the image host."""
    clock = ManualClock(start=0.0)
    state = state_with(clock, speed=float("inf"))
    job = state.create(MODEL, request(numberOfImages=2))

    body = state.render(job)

    assert body is state.render(job)
    assert [
        f"http://images.test/image-gen-{job.id}/generated_images/0.png",
        f"http://images.test/image-gen-{job.id}/generated_images/1.png",
    ] == [image["uri"] for image in body["images"]]
    assert "queued" == state.render(job, InferenceState.QUEUED)["state"]


def test_due_webhooks_are_taken_once_in_terminal_state() -> None:
    """A webhook is due when its job ends, carries the terminal entity, is taken once, and skips deleted jobs."""
    clock = ManualClock(start=0.0)
    state = state_with(clock)
    kept = state.create(MODEL, request(steps=1), webhook_url="http://hook.test/a")
    gone = state.create(MODEL, request(steps=1, seed=9), webhook_url="http://hook.test/b")
    state.create(MODEL, request(steps=150))  # no webhook: never due
    state.delete(MODEL, gone.id)

    early = state.take_due_webhooks()
    clock.now = kept.ends
    due = state.take_due_webhooks()

    assert [] == early
    assert [("http://hook.test/a", kept.id, "finished")] == [(url, body["id"], body["state"]) for url, body in due]
    assert ([], None) == (state.take_due_webhooks(), state.next_webhook_due())


def test_stats_snapshot_has_every_group() -> None:
    """The stats snapshot names every counted route and derives live jobs."""
    state = state_with()
    job = state.create(MODEL, request())
    state.create(MODEL, request())
    state.delete(MODEL, job.id)

    assert {
        "requests": {"create": 0, "list": 0, "get": 0, "delete": 0, "image": 0},
        "jobs": {"created": 2, "deleted": 1, "live": 1},
        "images": {"made": 2},
        "image_requests_with_authorization": 0,
        "webhooks": {"delivered": 0, "failed": 0},
    } == state.stats.snapshot()
