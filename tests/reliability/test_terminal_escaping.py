"""Server text is shown escaped on the terminal and kept as received in files: through the real CLI.

Rules (leapbatch/cli/_boundary.py, leapbatch/cli/_common.py, leapbatch/cli/progress.py):
- Whatever the server says (error messages, which reach errors, progress notes and failure reasons) may hold
  escape sequences, C1 codes and bidi overrides. No such character reaches stdout or stderr raw: lines show them
  the way manifest text is shown (`leapbatch.manifest.template.printable`: `\\x1b`, `\\u202e`), JSON documents as
  JSON escapes (`\\u001b`), which parse back to exactly the server's text.
- The ledger and results.json keep the text exactly as received: escaping is for the terminal only.
- A failure is still one `error:` line (and a hint) with its exit code, never a traceback.

The servers are real, on 127.0.0.1 port 0: a tiny hostile ASGI app served with hypercorn, alone (it refuses every
create, or the key, with hostile messages) or in front of the emulator (it lets creates through but answers them
with a hostile 500, so the run settles them by listing and says so in a note).
"""

from __future__ import annotations

import json
import logging
import re
import subprocess
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, cast

import httpx
import trio
from cli_support import Cli
from hypercorn.config import Config
from hypercorn.trio import serve

from leapbatch.emulator import EmulatorHandle
from leapbatch.errors import EXIT_API_UNAVAILABLE, EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE
from leapbatch.folder.ledger import LEDGER_NAME

KEY = "any-key-5ca1ab1e"
# An SGR colour, a bidi override, a C1 CSI that clears the screen, an isolate: what a hostile server would send.
HOSTILE = ["\x1b[31mred\x1b[0m \u202eevil", "\x9b2J\u2066wiped"]
SHOWN = ["\\x1b[31mred\\x1b[0m \\u202eevil", "\\x9b2J\\u2066wiped"]  # the same text as the terminal shows it
# What must never reach a terminal raw: C0 controls but newline, DEL, C1, bidi embeddings, overrides and isolates.
RAW = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
MANIFEST = """\
version: 1
name: escaping
model: 26a1a203-3a46-42cb-8cfa-f4de075907d8
prompt: "a {animal}"
params: {width: 64, height: 64, steps: 5}
matrix:
  animal: [cat]
limits: {requests_per_second: 200, burst: 50}
"""
Scope = Mapping[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
Answer = tuple[int, bytes]
Respond = Callable[[str, str, bytes, dict[str, str]], Awaitable[Answer]]


def nest_body(status: int, error: str) -> bytes:
    """Return a NestJS error body whose messages are the hostile ones."""
    return json.dumps({"statusCode": status, "message": HOSTILE, "error": error}).encode()


@dataclass
class Hostile:
    """An ASGI app that answers each request as `respond(method, path, body, headers)` decides."""

    respond: Respond
    url: str = ""
    seen: list[tuple[str, str]] = field(default_factory=list)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI connection: lifespan events, or one HTTP request."""
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        headers = {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope["headers"]}
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        query = scope["query_string"].decode("latin-1")
        path = scope["path"] + (f"?{query}" if query else "")
        self.seen.append((scope["method"], path))
        status, answer = await self.respond(scope["method"], path, body, headers)
        await send(
            {"type": "http.response.start", "status": status, "headers": [(b"content-type", b"application/json")]}
        )
        await send({"type": "http.response.body", "body": answer})


async def refuse_creates(method: str, path: str, body: bytes, headers: dict[str, str]) -> Answer:
    """Answer every create 400 with hostile messages, every listing with no jobs, anything else 404."""
    if method == "POST":
        return 400, nest_body(400, "Bad Request")
    if method == "GET" and path.split("?")[0].endswith("/inferences"):
        return 200, b"[]"
    return 404, nest_body(404, "Not Found")


async def refuse_key(method: str, path: str, body: bytes, headers: dict[str, str]) -> Answer:
    """Answer everything 401 with hostile messages."""
    return 401, nest_body(401, "Unauthorized")


@dataclass
class LosingProxy:
    """Forward everything to `upstream`, but answer each create a hostile 500 after the job was made.

    With `refuse_deletes`, every DELETE is answered 400 with hostile messages instead (and not forwarded).
    """

    upstream: httpx.AsyncClient
    refuse_deletes: bool = False

    async def __call__(self, method: str, path: str, body: bytes, headers: dict[str, str]) -> Answer:
        """Forward one request; hide a create's answer behind a hostile 500."""
        if method == "DELETE" and self.refuse_deletes:
            return 400, nest_body(400, "Bad Request")
        sent: dict[str, str] = {name: headers[name] for name in ("authorization", "content-type") if name in headers}
        response = await self.upstream.request(method, path, content=body, headers=sent)
        if method == "POST":
            return 500, nest_body(500, "Internal Server Error")
        return response.status_code, response.content


async def serve_hostile(nursery: trio.Nursery, respond: Respond) -> Hostile:
    """Serve a `Hostile` app on 127.0.0.1 (a free port) until the test ends."""
    app = Hostile(respond)
    config = Config()
    config.bind = ["127.0.0.1:0"]
    config.errorlog = logging.getLogger("hypercorn.error")
    binds: list[str] = await nursery.start(partial(serve, cast(Any, app), config, mode="asgi"))
    app.url = binds[0]
    return app


async def leapbatch(cli: Cli, *args: str | Path, base_url: str) -> subprocess.CompletedProcess[bytes]:
    """Run the CLI against `base_url` with any key."""
    return await cli(*args, env=cli.env(LEAP_BASE_URL=base_url, LEAP_API_KEY=KEY))


def terminal_text(done: subprocess.CompletedProcess[bytes]) -> tuple[str, str]:
    """Return stdout and stderr, asserting they decode and hold no raw terminal control and no traceback."""
    out, err = done.stdout.decode(), done.stderr.decode()
    assert (None, None) == (RAW.search(out), RAW.search(err)), (out, err)
    assert "Traceback" not in err, err
    return out, err


def manifest_in(tmp_path: Path) -> Path:
    """Write the one-job manifest into tmp_path and return its path."""
    path = tmp_path / "escaping.yaml"
    path.write_text(MANIFEST)
    return path


def ledger_records(out: Path) -> list[dict[str, Any]]:
    """Return the ledger's records."""
    return [json.loads(line) for line in (out / LEDGER_NAME).read_text().splitlines()]


async def test_refused_creates_show_escaped_and_are_kept_as_received(
    tmp_path: Path, nursery: trio.Nursery, cli: Cli
) -> None:
    """A create refused with hostile text: run, status --json and their lines show it escaped; files keep it."""
    server = await serve_hostile(nursery, refuse_creates)
    out = tmp_path / "out"

    ran = await leapbatch(
        cli, "run", manifest_in(tmp_path), "--out", out, "--plain", "--speed", "1000", base_url=server.url
    )
    terminal_text(ran)
    status_json = await leapbatch(cli, "status", out, "--json", base_url=server.url)
    shown, _ = terminal_text(status_json)

    reason = "; ".join(HOSTILE)
    assert EXIT_SOME_FAILED == ran.returncode, ran.stderr.decode()
    assert [reason] == [r["reason"] for r in ledger_records(out) if r["type"] == "failed"]
    results = json.loads((out / "results.json").read_text())
    assert [reason] == [job["failure"]["reason"] for job in results["jobs"]]
    assert (EXIT_OK, [reason]) == (status_json.returncode, [f["reason"] for f in json.loads(shown)["failures"]])
    assert "\\u001b[31mred" in shown  # written as a JSON escape, not dropped


async def test_status_lines_show_failure_reasons_escaped(tmp_path: Path, nursery: trio.Nursery, cli: Cli) -> None:
    """`status` shows a hostile failure reason escaped, the way manifest text is shown."""
    server = await serve_hostile(nursery, refuse_creates)
    out = tmp_path / "out"
    await leapbatch(cli, "run", manifest_in(tmp_path), "--out", out, "--quiet", "--speed", "1000", base_url=server.url)

    status = await leapbatch(cli, "status", out, base_url=server.url)

    shown, _ = terminal_text(status)
    assert EXIT_OK == status.returncode
    assert "; ".join(SHOWN) in shown


async def test_a_refused_key_is_one_escaped_error_line(tmp_path: Path, nursery: trio.Nursery, cli: Cli) -> None:
    """The boundary renders the server's words escaped: one `error:` line, a hint, exit 5 (after the run's cost
    estimate, which comes before anything is sent)."""
    server = await serve_hostile(nursery, refuse_key)

    ran = await leapbatch(
        cli, "run", manifest_in(tmp_path), "--out", tmp_path / "out", "--plain", "--speed", "1000", base_url=server.url
    )

    _, err = terminal_text(ran)
    lines = err.splitlines()
    assert EXIT_API_UNAVAILABLE == ran.returncode, err
    assert (3, True, True, True) == (
        len(lines),
        lines[0].startswith("cost: "),
        lines[1].startswith("error: the API key was refused"),
        lines[2].startswith("hint: "),
    )
    assert "; ".join(SHOWN) in lines[1]


async def test_a_note_and_a_delete_error_with_the_servers_words_are_escaped(
    tmp_path: Path, nursery: trio.Nursery, emulator_server: EmulatorHandle, cli: Cli
) -> None:
    """A create answered with a hostile 500 is settled by listing, and a delete refused with hostile text fails:
    the note and the error line that say so show the server's text escaped."""
    async with httpx.AsyncClient(base_url=emulator_server.base_url) as upstream:
        proxy = LosingProxy(upstream)
        server = await serve_hostile(nursery, proxy)
        out = tmp_path / "out"

        ran = await leapbatch(
            cli, "run", manifest_in(tmp_path), "--out", out, "--plain", "--speed", "1000", base_url=server.url
        )
        proxy.refuse_deletes = True
        deleted = await leapbatch(cli, "delete", out, "--yes", base_url=server.url)

    _, ran_err = terminal_text(ran)
    _, delete_err = terminal_text(deleted)
    notes = [line for line in ran_err.splitlines() if line.startswith("note: create of job")]
    refusals = [line for line in delete_err.splitlines() if line.startswith("error: job ")]
    assert EXIT_OK == ran.returncode, ran_err
    assert 1 == len(notes), ran_err
    assert "; ".join(SHOWN) in notes[0]
    assert [True] == [r["adopted"] for r in ledger_records(out) if r["type"] == "submitted"]
    assert (EXIT_SOME_FAILED, 1) == (deleted.returncode, len(refusals)), delete_err
    assert "; ".join(SHOWN) in refusals[0]


async def test_file_names_are_shown_escaped(tmp_path: Path, cli: Cli) -> None:
    """A manifest whose file name holds an escape sequence and a bidi override: `validate` and `plan` lines, and
    the problems of a bad one, show the name escaped."""
    good = tmp_path / "good-\x1b[2J-\u202e.yaml"
    good.write_text(MANIFEST + f"output: {{dir: {json.dumps(str(tmp_path / 'out'))}}}\n")
    bad = tmp_path / "bad-\x1b[2J-\u202e.yaml"
    bad.write_text(MANIFEST.replace("prompt:", "promt:"))
    shown_name = "\\x1b[2J-\\u202e.yaml"

    commands: list[tuple[str | Path, ...]] = [("validate", good), ("plan", good), ("validate", bad)]
    runs = [await leapbatch(cli, *args, base_url="http://127.0.0.1:9") for args in commands]

    said = [terminal_text(done) for done in runs]
    assert [EXIT_OK, EXIT_OK, EXIT_USAGE] == [done.returncode for done in runs]
    assert [True, True, True] == [shown_name in text for text in (said[0][0], said[1][0], said[2][1])], said
