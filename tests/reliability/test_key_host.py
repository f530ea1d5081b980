"""The key goes only to the configured API host, and a folder belongs to one server: through the real CLI.

Rules (leapbatch/cli/_api.py, leapbatch/folder/server.py):
- `delete` and `verify --repair` send the key to LEAP_BASE_URL, else the documented default, and to no host read
  from a file: a host planted in the ledger receives nothing, and a path planted there is not followed.
- A folder belongs to the server its jobs were made on (`run --local`: the local emulator, whatever its port).
  `run`, `delete` and `verify --repair` against another server exit 2 before sending or recording anything, with
  one line naming both servers. Origins compare normalised. A folder that holds no job takes its next run's server.

Every server is on 127.0.0.1: an emulator stands in for Leap, both as LEAP_BASE_URL and as the documented default
(the CLI runs with `leapbatch.wire.DEFAULT_BASE_URL` pointed at it, so no request can leave the machine even when
LEAP_BASE_URL is unset), and a tiny recording server stands in for the host an attacker writes into a ledger.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, cast

import pytest
import trio
from cli_support import Cli
from hypercorn.config import Config
from hypercorn.trio import serve

from leapbatch.emulator import EmulatorHandle
from leapbatch.folder.ledger import LEDGER_NAME, read_ledger
from leapbatch.wire import origin

StartEmulator = Callable[..., Awaitable[EmulatorHandle]]
KEY = "sk-key-host-5ca1ab1e"
JOBS = 4
MANIFEST = """\
version: 1
name: keyhost
model: 26a1a203-3a46-42cb-8cfa-f4de075907d8
prompt: "a {animal}"
params: {width: 64, height: 64, steps: 5}
matrix:
  animal: [cat, dog]
  seed: [1, 2]
limits: {requests_per_second: 200, burst: 50}
"""
# `python -m leapbatch` with Leap's documented default pointed at a local stand-in (argv[1]), set before the CLI
# is imported so every module that reads the default sees it.
WITH_DEFAULT = """\
import sys
import leapbatch.wire
leapbatch.wire.DEFAULT_BASE_URL = sys.argv.pop(1)
from leapbatch.cli import main
sys.exit(main(sys.argv[1:]))
"""
Scope = Mapping[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


@dataclass
class Recorder:
    """A server that answers every request 404 (as a hostile host would to a DELETE) and records who asked."""

    url: str = ""
    seen: list[tuple[str, str, str | None]] = field(default_factory=list)  # method, path, Authorization header

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI connection: lifespan events, or one HTTP request."""
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        headers = {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope["headers"]}
        self.seen.append((scope["method"], scope["path"], headers.get("authorization")))
        while (await receive()).get("more_body"):
            pass
        body = json.dumps({"statusCode": 404, "message": "Not Found", "error": "Not Found"}).encode()
        await send({"type": "http.response.start", "status": 404, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body})


@pytest.fixture
async def recorder(nursery: trio.Nursery) -> Recorder:
    """Return a recording server on 127.0.0.1 (a free port), serving until the test ends."""
    app = Recorder()
    config = Config()
    config.bind = ["127.0.0.1:0"]
    config.errorlog = logging.getLogger("hypercorn.error")
    binds: list[str] = await nursery.start(partial(serve, cast(Any, app), config, mode="asgi"))
    app.url = binds[0]
    return app


NOWHERE = "http://127.0.0.1:9"  # the discard port: the default where a test expects no use of it


async def leapbatch(
    *args: str | Path, base_url: str | None, default: str = NOWHERE
) -> subprocess.CompletedProcess[bytes]:
    """Run the CLI with the key, LEAP_BASE_URL=`base_url` (None: unset) and the documented default at `default`."""
    env = Cli.env(LEAP_API_KEY=KEY) | ({"LEAP_BASE_URL": base_url} if base_url is not None else {})
    return await trio.run_process(
        [sys.executable, "-c", WITH_DEFAULT, default, *map(str, args)],
        env=env,
        stdin=b"",
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )


async def made_on(tmp_path: Path, base_url: str | None, *extra: str) -> Path:
    """Run the manifest into tmp_path/out against `base_url` (None: `--local`) and return the folder."""
    manifest = tmp_path / "keyhost.yaml"
    manifest.write_text(MANIFEST)
    out = tmp_path / "out"
    local = ("--local",) if base_url is None else ()
    done = await leapbatch(
        "run", manifest, "--out", out, "--quiet", "--speed", "1000", *local, *extra, base_url=base_url
    )
    assert 0 == done.returncode, done.stderr.decode()
    return out


def plant(out: Path, base_url: str) -> None:
    """Edit the folder's ledger as an attacker would: every record's base_url becomes `base_url`."""
    ledger = out / LEDGER_NAME
    lines = [json.loads(line) for line in ledger.read_text().splitlines()]
    ledger.write_text(
        "".join(json.dumps(r | ({"base_url": base_url} if "base_url" in r else {})) + "\n" for r in lines)
    )


def deleted_records(out: Path) -> int:
    """Return how many jobs the ledger records as deleted (or already gone)."""
    return sum(1 for job in read_ledger(out).jobs.values() if job.deleted)


async def test_delete_sends_the_key_to_no_host_the_ledger_names(
    tmp_path: Path, start_emulator: StartEmulator, recorder: Recorder
) -> None:
    """LEAP_BASE_URL unset, the ledger naming another host: exit 2 naming both; that host gets no request at all."""
    leap = await start_emulator()
    out = await made_on(tmp_path, leap.base_url)
    plant(out, recorder.url)
    done = await leapbatch("delete", out, "--yes", base_url=None, default=leap.base_url)
    assert 2 == done.returncode, done.stderr.decode()
    assert f"error: {out} was made on {recorder.url}; this delete would use {leap.base_url}\n" in done.stderr.decode()
    assert f"LEAP_BASE_URL={recorder.url}" in done.stderr.decode()
    assert [] == recorder.seen
    assert (0, JOBS) == (leap.stats()["requests"]["delete"], leap.stats()["jobs"]["live"])
    assert 0 == deleted_records(out)


async def test_repair_sends_the_key_to_no_host_the_ledger_names(
    tmp_path: Path, start_emulator: StartEmulator, recorder: Recorder
) -> None:
    """`verify --repair` of a missing image, the ledger naming another host: exit 2; that host gets nothing."""
    leap = await start_emulator()
    out = await made_on(tmp_path, leap.base_url)
    plant(out, recorder.url)
    lost = sorted((out / "images").iterdir())[0]
    lost.unlink()
    requests = leap.stats()["requests"]
    done = await leapbatch("verify", out, "--repair", base_url=None, default=leap.base_url)
    assert 2 == done.returncode, done.stderr.decode()
    assert f"error: {out} was made on {recorder.url}; this verify --repair would use {leap.base_url}\n" in (
        done.stderr.decode()
    )
    assert [] == recorder.seen
    assert requests == leap.stats()["requests"]
    assert not lost.exists()


async def test_a_path_the_ledger_names_is_not_followed(tmp_path: Path, start_emulator: StartEmulator) -> None:
    """The ledger naming Leap's origin with another path (and case, and slash): the deletes go to the configured
    URL, so every job is deleted, none recorded "already gone" from a 404 of the wrong path."""
    leap = await start_emulator()
    out = await made_on(tmp_path, leap.base_url)
    plant(out, leap.base_url.replace("http://", "HTTP://") + "/planted/")
    done = await leapbatch("delete", out, "--yes", base_url=None, default=leap.base_url)
    assert 0 == done.returncode, done.stderr.decode()
    assert f"deleted {JOBS}, already gone 0, failed 0".encode() in done.stderr
    assert (JOBS, 0) == (leap.stats()["requests"]["delete"], leap.stats()["jobs"]["live"])


async def test_a_local_folder_refuses_a_real_run(tmp_path: Path, start_emulator: StartEmulator) -> None:
    """`run --local`, then the same folder against "Leap": exit 2 naming both, no request, nothing recorded."""
    leap = await start_emulator()
    out = await made_on(tmp_path, None)
    before = (out / LEDGER_NAME).read_bytes()
    done = await leapbatch("run", tmp_path / "keyhost.yaml", "--out", out, base_url=leap.base_url)
    assert 2 == done.returncode, done.stderr.decode()
    assert f"error: {out} was made on the local emulator; this run would use {leap.base_url}\n" in done.stderr.decode()
    assert b"hint: continue it with `leapbatch run --local`; to work on" in done.stderr
    assert {"create": 0, "list": 0, "get": 0, "delete": 0, "image": 0} == leap.stats()["requests"]
    assert before == (out / LEDGER_NAME).read_bytes()
    again = await leapbatch("run", tmp_path / "keyhost.yaml", "--out", out, "--local", base_url=None)
    assert 0 == again.returncode, again.stderr.decode()  # another emulator, another port: the same server


async def test_a_local_folder_an_older_leapbatch_ran_for_real_stays_local(
    tmp_path: Path, start_emulator: StartEmulator
) -> None:
    """A ledger from before the rule: `run --local` made every job, then a real run recorded itself and made none
    ("0 new, 4 done"). Its jobs are the emulator's, so a real run is still refused."""
    leap = await start_emulator()
    out = await made_on(tmp_path, None)
    run = {"v": 1, "t": 2e9, "type": "run", "command": "run", "tool_version": "0.1.0", "base_url": leap.base_url}
    with (out / LEDGER_NAME).open("a") as ledger:
        ledger.write(json.dumps(run) + "\n")
    done = await leapbatch("run", tmp_path / "keyhost.yaml", "--out", out, base_url=leap.base_url)
    assert 2 == done.returncode, done.stderr.decode()
    assert f"was made on the local emulator; this run would use {leap.base_url}".encode() in done.stderr
    assert 0 == sum(leap.stats()["requests"].values())


async def test_a_delete_record_naming_another_host_is_no_server(
    tmp_path: Path, start_emulator: StartEmulator, recorder: Recorder
) -> None:
    """Only `run` records say where jobs live: a planted `delete` record naming another host changes nothing; the
    repair goes to the configured server, and the planted host receives nothing."""
    leap = await start_emulator()
    out = await made_on(tmp_path, leap.base_url)
    record = {"v": 1, "t": 2e9, "type": "run", "command": "delete", "tool_version": "0.1.0", "base_url": recorder.url}
    with (out / LEDGER_NAME).open("a") as ledger:
        ledger.write(json.dumps(record) + "\n")
    lost = sorted((out / "images").iterdir())[0]
    lost.unlink()
    done = await leapbatch("verify", out, "--repair", base_url=None, default=leap.base_url)
    assert 0 == done.returncode, done.stderr.decode()
    assert (True, []) == (lost.exists(), recorder.seen)


async def test_a_planted_host_is_shown_escaped(tmp_path: Path, start_emulator: StartEmulator) -> None:
    """The folder's server comes from a file: the refusal shows it with control characters escaped."""
    leap = await start_emulator()
    out = await made_on(tmp_path, leap.base_url)
    plant(out, "http://evil\x1b]0;owned\x07.example")
    done = await leapbatch("delete", out, "--yes", base_url=leap.base_url)
    assert 2 == done.returncode, done.stderr.decode()
    assert b"\x1b" not in done.stderr
    assert b"was made on http://evil\\x1b]0;owned\\x07.example; this delete" in done.stderr


async def test_a_real_folder_refuses_a_local_run(tmp_path: Path, start_emulator: StartEmulator) -> None:
    """A folder made on "Leap", then `run --local` into it: exit 2 naming both, nothing recorded or started."""
    leap = await start_emulator()
    out = await made_on(tmp_path, leap.base_url)
    before = (out / LEDGER_NAME).read_bytes()
    requests = leap.stats()["requests"]
    done = await leapbatch("run", tmp_path / "keyhost.yaml", "--out", out, "--local", base_url=None)
    assert 2 == done.returncode, done.stderr.decode()
    assert f"error: {out} was made on {leap.base_url}; this run would use the local emulator\n" in done.stderr.decode()
    assert f"without --local, with LEAP_BASE_URL={leap.base_url}".encode() in done.stderr
    assert (requests, before) == (leap.stats()["requests"], (out / LEDGER_NAME).read_bytes())


async def test_a_folder_of_one_server_refuses_another(tmp_path: Path, start_emulator: StartEmulator) -> None:
    """Made on one API host, run against another: exit 2 naming both; the other host receives nothing."""
    leap, other = await start_emulator(), await start_emulator()
    out = await made_on(tmp_path, leap.base_url)
    done = await leapbatch("run", tmp_path / "keyhost.yaml", "--out", out, base_url=other.base_url)
    assert 2 == done.returncode, done.stderr.decode()
    assert f"error: {out} was made on {leap.base_url}; this run would use {other.base_url}\n" in done.stderr.decode()
    assert 0 == sum(other.stats()["requests"].values())


async def test_a_folder_without_jobs_takes_the_server_of_its_next_run(
    tmp_path: Path, start_emulator: StartEmulator, recorder: Recorder
) -> None:
    """A ledger whose only run (on another host) made no job: the next run works on its own server, which the
    folder then belongs to (a later `run --local` is refused)."""
    leap = await start_emulator()
    out = tmp_path / "out"
    out.mkdir()
    run = {"v": 1, "t": 1.0, "type": "run", "command": "run", "tool_version": "0.1.0", "base_url": recorder.url}
    (out / LEDGER_NAME).write_text(json.dumps(run) + "\n")
    first = await made_on(tmp_path, leap.base_url)
    assert (JOBS, []) == (leap.stats()["jobs"]["created"], recorder.seen)
    local = await leapbatch("run", tmp_path / "keyhost.yaml", "--out", first, "--local", base_url=None)
    assert 2 == local.returncode
    assert f"was made on {leap.base_url}; this run would use the local emulator".encode() in local.stderr


async def test_the_same_server_written_another_way_continues(tmp_path: Path, start_emulator: StartEmulator) -> None:
    """Origins compare normalised: a trailing slash and an upper-case scheme name the same server."""
    leap = await start_emulator()
    out = await made_on(tmp_path, leap.base_url)
    again = leap.base_url.replace("http://", "HTTP://") + "/"
    done = await leapbatch("delete", out, "--yes", base_url=again)
    assert 0 == done.returncode, done.stderr.decode()
    assert (JOBS, 0) == (leap.stats()["requests"]["delete"], leap.stats()["jobs"]["live"])


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://api.tryleap.ai", "https://api.tryleap.ai"),
        ("https://API.tryleap.ai:443/", "https://api.tryleap.ai"),
        ("HTTP://127.0.0.1:80", "http://127.0.0.1"),
        ("http://127.0.0.1:8787/api/v1", "http://127.0.0.1:8787"),
        ("https://user:pw@api.tryleap.ai:8443", "https://api.tryleap.ai:8443"),
        ("http://[::1]:8787", "http://[::1]:8787"),
        ("api.tryleap.ai", None),
        ("ftp://api.tryleap.ai", None),
        ("http://127.0.0.1:99999", None),
    ],
)
def test_origins_are_normalised(url: str, expected: str | None) -> None:
    """scheme and host in lower case, the default port dropped, path and user info ignored; non-URLs have none."""
    assert expected == origin(url)
