"""Run the `leapbatch` command line in tests: a subprocess, as users run it, next to emulators in the test's nursery.

Imported by name (`from cli_support import Cli`): pytest puts `tests/` on the import path for its conftest.
"""

from __future__ import annotations

import os
import subprocess
import sys

import trio

from leapbatch.emulator import EmulatorHandle


class Cli:
    """Run `python -m leapbatch` in a subprocess without blocking the test's event loop (emulators keep serving).

    `env(handle, key=..., **extra)` is a clean environment: nothing inherited that starts with LEAP_ or LEAPBATCH_,
    pointed at `handle` when given, plus `extra`. Standard input is empty, so nothing can wait for a terminal.
    """

    @staticmethod
    def env(handle: EmulatorHandle | None = None, *, key: str = "test-key", **extra: str) -> dict[str, str]:
        """Return the environment of a CLI subprocess."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LEAP_", "LEAPBATCH_"))}
        if handle is not None:
            env |= {"LEAP_BASE_URL": handle.base_url, "LEAP_API_KEY": key}
        return env | extra

    async def __call__(
        self, *args: str | os.PathLike[str], env: dict[str, str], cwd: os.PathLike[str] | None = None
    ) -> subprocess.CompletedProcess[bytes]:
        """Run the CLI with `args` (in folder `cwd`, if given) and return the finished process (output captured)."""
        return await trio.run_process(
            [sys.executable, "-m", "leapbatch", *map(str, args)],
            env=env,
            cwd=cwd,
            stdin=b"",
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
