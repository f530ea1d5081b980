"""`leapbatch emulator`: served from a real process, stopped by Ctrl-C, and its options checked."""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

import httpx
import pytest

from leapbatch.cli import main

STARTUP_SECONDS = 30  # a generous bound for a cold interpreter on a loaded CI machine; never waited in full


class Lines:
    """The lines a process prints, each waited for with a bound (unbuffered, so `select` sees every byte)."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        assert process.stdout is not None
        self._fd = process.stdout.fileno()
        self._buffer = b""

    def next(self) -> str:
        """Return the next line, failing the test if none comes in time."""
        while b"\n" not in self._buffer:
            ready, _, _ = select.select([self._fd], [], [], STARTUP_SECONDS)
            chunk = os.read(self._fd, 4096) if ready else b""
            assert chunk, "the emulator printed nothing more"
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.decode()


@pytest.fixture
def emulator_process() -> Iterator[subprocess.Popen[bytes]]:
    """Start `python -m leapbatch emulator` on free ports; kill it at the end if the test did not stop it."""
    command = [sys.executable, "-m", "leapbatch", "emulator", "--port", "0", "--image-port", "0", "--speed", "inf"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0, env=env)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()


def test_the_command_serves_until_ctrl_c_and_exits_cleanly(emulator_process: subprocess.Popen[bytes]) -> None:
    """It prints its URLs, serves requests, and on SIGINT exits 0 without a traceback."""
    lines = Lines(emulator_process)
    api, images, hint = lines.next().split(), lines.next().split(), lines.next()
    base_url = api[1]
    with httpx.Client(base_url=base_url, headers={"Authorization": "Bearer any"}) as http:
        created = http.post("/api/v1/images/models/demo/inferences", json={"prompt": "a red fox", "width": 64})
        stats = http.get("/_emulator/stats").json()

    emulator_process.send_signal(signal.SIGINT)
    _, stderr = emulator_process.communicate(timeout=STARTUP_SECONDS)

    assert (["api:", "images:"], 201, 1) == ([api[0], images[0]], created.status_code, stats["jobs"]["created"])
    assert base_url.startswith("http://127.0.0.1:")
    assert images[1] != base_url
    assert f"{base_url}/api/v1/images/models/demo/inferences" in hint
    assert (0, "(Ctrl-C stops it)\n") == (emulator_process.returncode, stderr.decode())


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--speed", "0"], "error: --speed must be greater than 0, got 0.0"),
        (["--speed", "nan"], "error: --speed must be greater than 0, got nan"),
        (["--fail-rate", "1.5"], "error: --fail-rate must be between 0 and 1, got 1.5"),
        (["--fail-rate", "-0.1"], "error: --fail-rate must be between 0 and 1, got -0.1"),
        (["--port", "65536"], "error: --port must be between 0 and 65535, got 65536"),
        (["--port", "9000", "--image-port", "9000"], "error: --port and --image-port are both 9000"),
        (["--token", " "], "error: --token must not be empty"),
        (["--clock-offset", "nan"], "error: --clock-offset must be a number of seconds, got nan"),
        (["--clock-offset", "inf"], "error: --clock-offset must be a number of seconds, got inf"),
        (["--billing-limit", "-1"], "error: --billing-limit must be 0 or more images, got -1"),
        (["--models", " , "], "error: --models needs at least one model id"),
        (["--list-lag", "-1"], "error: the list lag must be a number of seconds >= 0, got -1.0"),
        (["--trickle-rate", "0"], "error: the trickle rate must be a number of bytes per second > 0, got 0.0"),
    ],
)
def test_bad_options_are_usage_errors(options: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    """An impossible option exits 2 with a one-line error and a hint, before anything is served."""
    code = main(["emulator", *options])

    err = capsys.readouterr().err
    assert (2, message) == (code, err.splitlines()[0])
    assert err.splitlines()[1].startswith("hint: ")


def test_a_port_in_use_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    """Asking for a port another process listens on exits 2 and says so, without a traceback."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        code = main(["emulator", "--port", str(port), "--image-port", "0"])

    err = capsys.readouterr().err
    assert (2, f"error: cannot listen on 127.0.0.1 (ports {port} and 0): address already in use") == (
        code,
        err.splitlines()[0],
    )


def test_help_names_every_option(capsys: pytest.CaptureFixture[str]) -> None:
    """`--help` exits 0 and documents each option."""
    code = main(["emulator", "--help"])

    out = capsys.readouterr().out
    options = [
        "--host",
        "--port",
        "--image-port",
        "--token",
        "--speed",
        "--fail-rate",
        "--seed",
        "--plain-entities",
        "--webhook-shape",
        "--clock-offset",
        "--billing-limit",
        "--models",
        "--faults",
        "--fault-delay",
        "--list-lag",
        "--trickle-rate",
    ]
    assert (0, options) == (code, [option for option in options if option in out])


def test_server_conditions_are_announced_and_served() -> None:
    """--models, --billing-limit and --clock-offset print a `conditions:` line on stderr and hold over HTTP: another
    model is 404 `Model not found`, the clock (Date, createdAt) runs 300 s behind, creates past the limit are 402."""
    command = [sys.executable, "-m", "leapbatch", "emulator", "--port", "0", "--image-port", "0", "--speed", "inf"]
    command += ["--models", "sdxl", "--billing-limit", "1", "--clock-offset", "-300"]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0, env={**os.environ, "PYTHONUNBUFFERED": "1"}
    )
    try:
        base_url = Lines(process).next().split()[1]
        with httpx.Client(base_url=base_url, headers={"Authorization": "Bearer any"}) as http:
            made = http.post("/api/v1/images/models/sdxl/inferences", json={"prompt": "a fox", "width": 64})
            past_limit = http.post("/api/v1/images/models/sdxl/inferences", json={"prompt": "a fox", "width": 64})
            other = http.get("/api/v1/images/models/sd15/inferences")
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=STARTUP_SECONDS)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()

    now = datetime.now(UTC)
    created_at = datetime.fromisoformat(made.json()["createdAt"])
    assert (201, 402, 404) == (made.status_code, past_limit.status_code, other.status_code)
    assert "Model not found" == other.json()["message"]
    assert timedelta(seconds=290) < now - created_at < timedelta(seconds=310)
    assert timedelta(seconds=290) < now - parsedate_to_datetime(made.headers["date"]) < timedelta(seconds=310)
    assert "conditions: clock -300 s; billing limit 1 images; models sdxl\n" in stderr.decode()
