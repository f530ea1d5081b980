"""A faithful local emulator of Leap's image API: the ground for `leapbatch run --local`, every test and benchmark.

Layers, each usable alone:

```
config.py      EmulatorConfig, the clocks, Stats
state.py       the job table, lifecycle, paging, webhook schedule   (clock injected)
validation.py  create bodies and list queries -> effective values, or class-validator messages
images.py      deterministic PNG rendering + LRU cache
asgi.py        Request, Reply, the request path both apps share (lifespan, counting), the FaultPlan seam
app.py         ApiApp and ImageApp: the routes and their answers
inprocess.py   `Emulator` ties state and apps together; its transport() reaches them without sockets
faults.py      seeded fault injection: fault kinds, profiles (none, flaky, chaos), `fault_plan(...)`
webhooks.py    run_webhooks: the one background task that POSTs entities to webhookUrl when jobs end
serve.py       serve_emulator: both apps on two ports with hypercorn-trio, plus webhooks -> EmulatorHandle
```

Behaviour, in short (docs/emulator.md has the full contract): the four routes exactly as on the wire (create
answers 201 `queued`; findAll a bare array, pages from 1, newest first; remove answers 200 and the job is gone);
bearer auth (any non-empty token, or exactly `config.token`); NestJS error bodies; job state derived lazily from
the clock (queued for the first 10% of `expected_generation_seconds / speed`, then processing, then finished, or
failed with probability `fail_rate`, drawn reproducibly from `seed`); images served from another origin; and
counters at `GET /_emulator/stats`. Faults are off unless `EmulatorConfig(faults=fault_plan("chaos", seed=7))`
(or another plan) turns them on.

Imports from the core: `leapbatch.wire` only (and `leapbatch.errors` if needed); nothing in the core imports this
package except the CLI.

In-process use (no sockets, no lifespan)::

    emulator = Emulator(EmulatorConfig(speed=float("inf")))
    async with httpx.AsyncClient(transport=emulator.transport(), base_url=API_ORIGIN) as http: ...

Served use::

    handle = await nursery.start(serve_emulator, EmulatorConfig(speed=1000))
    handle.base_url, handle.image_base_url
"""

from leapbatch.emulator.app import ApiApp, ImageApp
from leapbatch.emulator.asgi import Fault, FaultPlan, Reply, Request
from leapbatch.emulator.config import (
    WEBHOOK_SHAPES,
    Clock,
    EmulatorConfig,
    JobFate,
    JobFaultPlan,
    ManualClock,
    Stats,
    WebhookShape,
)
from leapbatch.emulator.faults import FAULT_NAMES, PROFILES, InjectedFault, SeededFaultPlan, fault_plan
from leapbatch.emulator.images import ImageCache, render_png
from leapbatch.emulator.inprocess import API_ORIGIN, IMAGE_ORIGIN, Emulator
from leapbatch.emulator.render import image_path
from leapbatch.emulator.serve import EmulatorHandle, serve_emulator
from leapbatch.emulator.state import EmulatorState, Job
from leapbatch.emulator.webhooks import run_webhooks

__all__ = [
    "API_ORIGIN",
    "FAULT_NAMES",
    "IMAGE_ORIGIN",
    "PROFILES",
    "WEBHOOK_SHAPES",
    "ApiApp",
    "Clock",
    "Emulator",
    "EmulatorConfig",
    "EmulatorHandle",
    "EmulatorState",
    "Fault",
    "FaultPlan",
    "ImageApp",
    "ImageCache",
    "InjectedFault",
    "Job",
    "JobFate",
    "JobFaultPlan",
    "ManualClock",
    "Reply",
    "Request",
    "SeededFaultPlan",
    "Stats",
    "WebhookShape",
    "fault_plan",
    "image_path",
    "render_png",
    "run_webhooks",
    "serve_emulator",
]
