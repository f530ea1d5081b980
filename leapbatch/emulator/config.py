"""The emulator's settings and counters: `EmulatorConfig`, the clocks it can run on, and `Stats`.

Settings come in two kinds. Most are faithful (Leap's defaults and limits, as docs/leap-api-facts.md gives them).
The triggers are server conditions a test turns on whole, not per request: `clock_offset` (the server's wall clock
runs ahead or behind), `billing_limit` (creates are refused with 402 once that many images were made) and `models`
(only these model ids exist). Rate-based faults live in the fault plan (faults.py). A trigger or a plan makes the
stats carry their `faults` group, where each trigger counts the answers it changed.

`images` picks what the image host draws (images.py): `abstract` (the library's default, so a faithful emulator's
bytes and stats never change) or `subject` (what `leapbatch emulator` and `run --local` serve). In subject mode
the stats gain a `subjects` group with the first image served: images served per subject drawn (`abstract` for a
prompt naming none) and the subject of each of the last `SUBJECT_JOBS_KEPT` jobs whose images were served, by
inference id. Both stay bounded: there are as many subjects as icons, and old jobs drop out of the second map.
"""

from __future__ import annotations

import math
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from leapbatch.wire import expected_generation_seconds

if TYPE_CHECKING:
    from leapbatch.emulator.asgi import FaultPlan


Clock = Callable[[], float]

ROUTES = ("create", "list", "get", "delete", "image")

JobFate = Literal["fail", "stuck"]
WebhookShape = Literal["bare", "result"]
WEBHOOK_SHAPES: tuple[WebhookShape, ...] = ("bare", "result")
ImageMode = Literal["subject", "abstract"]
IMAGE_MODES: tuple[ImageMode, ...] = ("subject", "abstract")
SUBJECT_JOBS_KEPT = 1000  # jobs whose subject the stats remember (the oldest are forgotten first)


@runtime_checkable
class JobFaultPlan(Protocol):
    """A fault plan that also decides, once per created job, whether the job fails or gets stuck."""

    def job_fate(self, key: str) -> JobFate | None:
        """Return the fate of the job whose identity is `key` (its request and occurrence), or None."""
        ...


class ManualClock:
    """A clock that moves only when told: inject it as `clock=` to put jobs in exact states (a fake for tests)."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move the clock forward by `seconds`."""
        self.now += seconds


@dataclass(frozen=True, slots=True)
class EmulatorConfig:
    """How the emulator behaves; every field but `images` has the default `leapbatch emulator` uses."""

    token: str | None = None  # the only bearer token accepted; None accepts any non-empty token
    speed: float = 1.0  # simulated generation runs this many times faster than Leap (inf: instant)
    fail_rate: float = 0.0  # the probability that a job ends `failed` instead of `finished`
    seed: int = 0  # seeds the job fates of `fail_rate` (a fault plan carries its own seed)
    default_page_size: int = 10
    max_page_size: int = 100  # a bigger pageSize is capped, not rejected
    max_dimension: int = 2048  # the largest width or height accepted (Leap documents none; images are rendered)
    max_body_bytes: int = 100 * 1024  # NestJS's default body limit
    image_cache_size: int = 256  # rendered PNGs kept in memory (least recently used are dropped)
    webhook_timeout: float = 5.0  # seconds for one webhook delivery (there is one attempt)
    faults: FaultPlan | None = None  # decides per request whether to misbehave; None never does
    plain_entities: bool = False  # leave out the undocumented keys real answers carried (weightsId, ...)
    webhook_shape: WebhookShape = "bare"  # the webhook body: the entity, or {"result": entity}
    clock_offset: float = 0.0  # seconds the server's wall clock (createdAt, Date) runs ahead (+) or behind (-)
    billing_limit: int | None = None  # images the account may make; creates past it answer 402
    models: frozenset[str] | None = None  # the model ids that exist; None: every id does
    images: ImageMode = "abstract"  # what images show; `leapbatch emulator` and `run --local` use "subject"

    def __post_init__(self) -> None:
        if not self.speed > 0:  # also rejects NaN
            raise ValueError(f"speed must be > 0 (inf for instant jobs), got {self.speed}")
        if not 0.0 <= self.fail_rate <= 1.0:
            raise ValueError(f"fail_rate must be between 0 and 1, got {self.fail_rate}")
        if not 1 <= self.default_page_size <= self.max_page_size:
            raise ValueError("page sizes must satisfy 1 <= default_page_size <= max_page_size")
        if self.token is not None and not self.token:
            raise ValueError("token must be non-empty (or None to accept any token)")
        if self.webhook_shape not in WEBHOOK_SHAPES:
            raise ValueError(f"webhook_shape must be one of {', '.join(WEBHOOK_SHAPES)}, got {self.webhook_shape!r}")
        if not math.isfinite(self.clock_offset):
            raise ValueError(f"clock_offset must be a finite number of seconds, got {self.clock_offset}")
        if self.billing_limit is not None and self.billing_limit < 0:
            raise ValueError(f"billing_limit must be >= 0 images, got {self.billing_limit}")
        if self.models is not None and not all(self.models):
            raise ValueError("models must be non-empty ids")
        if self.images not in IMAGE_MODES:
            raise ValueError(f"images must be one of {', '.join(IMAGE_MODES)}, got {self.images!r}")

    @property
    def has_triggers(self) -> bool:
        """Return whether a server condition (clock offset, billing limit, model list) is on."""
        return self.clock_offset != 0.0 or self.billing_limit is not None or self.models is not None

    def duration(self, steps: int, number_of_images: int) -> float:
        """Return how many clock seconds a job with these parameters takes."""
        if math.isinf(self.speed):
            return 0.0
        return expected_generation_seconds(steps, number_of_images) / self.speed


@dataclass
class Stats:
    """What the emulator saw; `snapshot()` is the JSON served at `GET /_emulator/stats`."""

    requests: Counter[str] = field(default_factory=Counter)
    jobs_created: int = 0
    images_made: int = 0  # what the account was billed for (numberOfImages of every job made); deletes give none back
    jobs_deleted: int = 0
    image_requests_with_authorization: int = 0
    webhooks_delivered: int = 0
    webhooks_failed: int = 0
    ambiguous_creates: int = 0  # jobs created whose 201 was lost, late or garbled by a fault
    faults: Counter[str] = field(default_factory=Counter)  # every fault served, by name
    report_faults: bool = False  # whether the snapshot carries the fault groups (only with a fault plan)
    subject_images: Counter[str] = field(default_factory=Counter)  # images served in subject mode, per subject
    job_subjects: OrderedDict[str, str] = field(default_factory=OrderedDict)  # inference id -> subject, newest last

    def drew(self, inference_id: str, subject: str) -> None:
        """Count an image served in subject mode, showing `subject`, for the job `inference_id`."""
        self.subject_images[subject] += 1
        self.job_subjects[inference_id] = subject
        self.job_subjects.move_to_end(inference_id)
        while len(self.job_subjects) > SUBJECT_JOBS_KEPT:
            self.job_subjects.popitem(last=False)

    def snapshot(self) -> dict[str, Any]:
        """Return the counters as a JSON-ready dict (one key per group, so new groups slot in)."""
        snapshot: dict[str, Any] = {
            "requests": {route: self.requests[route] for route in ROUTES},
            "jobs": {
                "created": self.jobs_created,
                "deleted": self.jobs_deleted,
                "live": self.jobs_created - self.jobs_deleted,
            },
            "images": {"made": self.images_made},
            "image_requests_with_authorization": self.image_requests_with_authorization,
            "webhooks": {"delivered": self.webhooks_delivered, "failed": self.webhooks_failed},
        }
        if self.report_faults:  # a faithful emulator's stats keep their shape
            snapshot["ambiguous_creates"] = self.ambiguous_creates
            snapshot["faults"] = {name: self.faults[name] for name in sorted(self.faults)}
        if self.subject_images:  # only once subject mode served an image: abstract stats keep their shape
            snapshot["subjects"] = {
                "images": {name: self.subject_images[name] for name in sorted(self.subject_images)},
                "jobs": dict(self.job_subjects),
            }
        return snapshot
