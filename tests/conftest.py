"""Fixtures every test may use: local emulators on 127.0.0.1 port 0, a clock moved by hand, the CLI as a subprocess.

`emulator_server` is a real emulator (API and image host on two free ports, webhooks running) served in the
test's own nursery with jobs 1000 times faster than Leap; `start_emulator(config, **options)` starts another with
any `EmulatorConfig` (options go to `serve_emulator`, e.g. `clock=`). Both stop when the test ends. `cli` runs
`python -m leapbatch` (see `tests/cli_support.py`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import pytest
import trio
from cli_support import Cli

from leapbatch.emulator import EmulatorConfig, EmulatorHandle, ManualClock, serve_emulator

FAST = 1000.0  # a default job (50 steps, 1 image) takes ~9 ms instead of ~9 s

StartEmulator = Callable[..., Awaitable[EmulatorHandle]]


@pytest.fixture
def manual_clock() -> ManualClock:
    """Return a clock at t=1000 that moves only by `advance`."""
    return ManualClock()


@pytest.fixture
async def start_emulator(nursery: trio.Nursery) -> StartEmulator:
    """Return `start(config=None, **options) -> EmulatorHandle`, serving emulators until the test ends."""

    async def start(config: EmulatorConfig | None = None, **options: Any) -> EmulatorHandle:
        handle: EmulatorHandle = await nursery.start(
            partial(serve_emulator, config or EmulatorConfig(speed=FAST), **options)
        )
        return handle

    return start


@pytest.fixture
async def emulator_server(start_emulator: StartEmulator) -> EmulatorHandle:
    """Return a running emulator with fast jobs (speed 1000) that accepts any bearer token."""
    return await start_emulator()


@pytest.fixture
def cli() -> Cli:
    """Return the CLI runner (see `Cli`)."""
    return Cli()
