"""Specs of a user's first day, through the real CLI in a subprocess against a served emulator.

- LEAP_BASE_URL must be `http(s)://host[:port]` and LEAP_API_KEY sendable in a header: otherwise every command that
  reads them (run, delete, verify --repair, prune --remote) exits 2, with the corrected value as the hint, before
  any request.
- `run --local` without `--out` writes to `<output.dir>-local`: the Quick start and the real run never share a folder.
- `verify` while a run works on the folder says so (exit 3) instead of listing the run's unfinished files.
- A reader that stops early (`| head -1`) ends a command quietly with 141, never `error: Broken pipe`.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import trio
from cli_support import Cli

from leapbatch.api.client import Settings
from leapbatch.cli._common import print_json, show
from leapbatch.emulator import EmulatorHandle
from leapbatch.errors import UsageError
from leapbatch.folder.ledger import LOCK_NAME, FolderLock, read_ledger
from leapbatch.folder.state import Phase

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_JOBS = 12
MANIFEST = """\
version: 1
name: firstday
model: 26a1a203-3a46-42cb-8cfa-f4de075907d8
prompt: "a {{colour}} cube"
params: {{width: 64, height: 64, steps: 5}}
matrix:
  colour: [{colours}]
"""


async def leapbatch(
    *args: str | Path, env: dict[str, str], cwd: Path | None = None
) -> subprocess.CompletedProcess[bytes]:
    """Run the CLI in `cwd` (stdin empty) and return the finished process."""
    return await trio.run_process(
        [sys.executable, "-m", "leapbatch", *map(str, args)],
        env=env,
        cwd=cwd,
        stdin=b"",
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )


async def made(tmp_path: Path, handle: EmulatorHandle, colours: str = "red, blue") -> tuple[Path, Path]:
    """Write the manifest and run it into tmp_path/out against `handle`; return both paths."""
    manifest, out = tmp_path / "firstday.yaml", tmp_path / "out"
    manifest.write_text(MANIFEST.format(colours=colours))
    done = await leapbatch("run", manifest, "--out", out, "--quiet", "--speed", "1000", env=Cli.env(handle))
    assert 0 == done.returncode, done.stderr.decode()
    return manifest, out


@pytest.mark.parametrize(
    ("value", "error", "hint"),
    [
        (
            "https://api.tryleap.ai/api/v1",
            "LEAP_BASE_URL has a path (/api/v1): it must be only scheme://host[:port], leapbatch adds "
            "/api/v1/images/models/... itself",
            "export LEAP_BASE_URL=https://api.tryleap.ai",
        ),
        (
            "api.tryleap.ai",
            "LEAP_BASE_URL has no scheme: it must start with https:// (or http:// for a server on this machine)",
            "export LEAP_BASE_URL=https://api.tryleap.ai",
        ),
        (
            "localhost:8000",
            "LEAP_BASE_URL has no scheme: it must start with https:// (or http:// for a server on this machine)",
            "export LEAP_BASE_URL=http://localhost:8000",
        ),
        (
            "127.0.0.1:8787/api/v1/",
            "LEAP_BASE_URL has no scheme: it must start with https:// (or http:// for a server on this machine)",
            "export LEAP_BASE_URL=http://127.0.0.1:8787",
        ),
        (
            "[::1]:8787",
            "LEAP_BASE_URL has no scheme: it must start with https:// (or http:// for a server on this machine)",
            "export LEAP_BASE_URL=http://[::1]:8787",
        ),
        (
            "https://me:s3cret@api.tryleap.ai",
            "LEAP_BASE_URL has user info (before an @): it must be only scheme://host[:port]; the key goes in "
            "LEAP_API_KEY",
            "export LEAP_BASE_URL=https://api.tryleap.ai",
        ),
        (
            "https://api.tryleap.ai/?token=x",
            "LEAP_BASE_URL has a query or fragment (after a ? or #): it must be only scheme://host[:port]",
            "export LEAP_BASE_URL=https://api.tryleap.ai",
        ),
        (
            "HTTPS://API.tryleap.ai:443/api/v1",
            "LEAP_BASE_URL has a path (/api/v1): it must be only scheme://host[:port], leapbatch adds "
            "/api/v1/images/models/... itself",
            "export LEAP_BASE_URL=https://api.tryleap.ai",
        ),
        ("https://api.tryleap.ai:99999", "LEAP_BASE_URL has a port that is not a number from 1 to 65535", None),
        ("http://localhost:eighty", "LEAP_BASE_URL has a port that is not a number from 1 to 65535", None),
        ("localhost:0", "LEAP_BASE_URL has a port that is not a number from 1 to 65535", None),
        ("ftp://api.tryleap.ai", "LEAP_BASE_URL must start with https:// or http://, not ftp://", None),
        ("https://", "LEAP_BASE_URL has no host: it must be scheme://host[:port]", None),
        ("https://api.try leap.ai", "LEAP_BASE_URL has a space or control character (at position 16)", None),
    ],
)
def test_a_base_url_that_is_no_origin_is_exit_2_with_the_value_meant(value: str, error: str, hint: str | None) -> None:
    """A path, query, user info or no scheme: exit 2, the hint the corrected value (http:// only for this machine);
    a port out of range, no host or another scheme: a plain message; a secret in the URL is never repeated."""
    with pytest.raises(UsageError) as caught:
        Settings.from_env({"LEAP_BASE_URL": value, "LEAP_API_KEY": "k"})
    plain = "set it to the API's origin, e.g. LEAP_BASE_URL=https://api.tryleap.ai, or unset it for that default"
    assert (2, error, hint or plain) == (caught.value.exit_code, caught.value.message, caught.value.hint)
    assert "s3cret" not in f"{caught.value.message} {caught.value.hint}"
    assert "token" not in f"{caught.value.message} {caught.value.hint}"


@pytest.mark.parametrize(
    "value", ["https://api.tryleap.ai", "https://api.tryleap.ai/", "http://127.0.0.1:8787", "http://[::1]:8787/"]
)
def test_an_origin_is_kept_as_given(value: str) -> None:
    """An origin, with or without one trailing slash, is the base URL as written."""
    assert value == Settings.from_env({"LEAP_BASE_URL": value}).base_url


# what each command needs to reach the point where it reads the settings (the folder has 2 finished jobs)
COMMANDS: dict[str, Callable[[Path, Path], list[str | Path]]] = {
    "run": lambda manifest, out: ["run", manifest, "--out", out, "--quiet"],
    "delete": lambda manifest, out: ["delete", out, "--yes"],
    "verify --repair": lambda manifest, out: ["verify", out, "--repair"],
    "prune --remote": lambda manifest, out: [
        "prune",
        out,
        "--manifest",
        manifest.with_name("kept.yaml"),
        "--remote",
        "--yes",
    ],
}


@pytest.mark.parametrize("command", list(COMMANDS))
async def test_unsendable_settings_stop_every_command_before_any_request(
    tmp_path: Path, emulator_server: EmulatorHandle, command: str
) -> None:
    """A key with a space or a control character, or a base URL with a path (pointing at the live server): every
    command that reads them exits 2 naming the variable, and the server receives no request at all."""
    manifest, out = await made(tmp_path, emulator_server)
    next(iter(sorted((out / "images").iterdir()))).unlink()  # verify --repair has an image to fetch
    manifest.with_name("kept.yaml").write_text(MANIFEST.format(colours="red"))  # prune has a job (and its remote job)
    before = emulator_server.stats()["requests"]
    base = Cli.env(emulator_server)
    cases = {
        "LEAP_API_KEY has a character that cannot be sent in an HTTP header (at position 4)": base
        | {"LEAP_API_KEY": "abc def"},
        "LEAP_API_KEY has a character that cannot be sent in an HTTP header (at position 2)": base
        | {"LEAP_API_KEY": "a\x01b"},
        "LEAP_BASE_URL has a path (/api/v1)": base | {"LEAP_BASE_URL": f"{emulator_server.base_url}/api/v1"},
    }
    for error, env in cases.items():
        done = await leapbatch(*COMMANDS[command](manifest, out), env=env)
        assert (2, True) == (done.returncode, f"\nerror: {error}".encode() in b"\n" + done.stderr), done.stderr
        assert b"Traceback" not in done.stderr
    assert before == emulator_server.stats()["requests"]


async def test_the_quick_start_and_the_real_run_use_two_folders(
    tmp_path: Path, emulator_server: EmulatorHandle
) -> None:
    """`run --local manifests/example.yaml` writes outputs/example-local/; the real run of the same manifest then
    writes outputs/example/ and creates every job on the server, never taking the local images as done."""
    (tmp_path / "manifests").mkdir()
    shutil.copy(ROOT / "manifests" / "example.yaml", tmp_path / "manifests" / "example.yaml")

    local = await leapbatch("run", "--local", "manifests/example.yaml", "--quiet", env=Cli.env(), cwd=tmp_path)
    assert 0 == local.returncode, local.stderr.decode()
    assert b"12 images in outputs/example-local " in local.stderr
    assert not (tmp_path / "outputs" / "example").exists()

    real = await leapbatch(
        "run", "manifests/example.yaml", "--quiet", "--speed", "1000", env=Cli.env(emulator_server), cwd=tmp_path
    )
    assert 0 == real.returncode, real.stderr.decode()
    assert b"done: 12 of 12 jobs finished, 12 images in outputs/example " in real.stderr
    assert EXAMPLE_JOBS == emulator_server.stats()["jobs"]["created"]
    jobs = read_ledger(tmp_path / "outputs" / "example").jobs.values()
    assert (EXAMPLE_JOBS, False) == (sum(job.phase is Phase.FINISHED for job in jobs), any(j.local for j in jobs))
    assert EXAMPLE_JOBS == len(list((tmp_path / "outputs" / "example-local" / "images").iterdir()))


async def test_verify_while_a_run_works_says_so_and_exits_3(tmp_path: Path, emulator_server: EmulatorHandle) -> None:
    """While the folder's lock is held (a run works on it; its metadata.jsonl is not written yet), verify exits 3
    saying a run is working on it, with a hint to verify after it ends; once it ends, verify is clean."""
    _, out = await made(tmp_path, emulator_server)
    metadata = (out / "metadata.jsonl").read_bytes()
    (out / "metadata.jsonl").unlink()  # as during a run: written at its end
    with FolderLock(out):
        for extra in ([], ["--json"]):
            done = await leapbatch("verify", out, *extra, env=Cli.env())
            error = f"error: the output folder {out} is in use by another leapbatch process (pid {os.getpid()})"
            hint = f"hint: verify it after the run ends; `leapbatch status {out}` works meanwhile\n"
            assert (3, b"") == (done.returncode, done.stdout), done.stderr.decode()
            assert done.stderr.startswith(f"{error}: a run is working on it".encode()), done.stderr.decode()
            assert done.stderr.endswith(hint.encode())
            assert b"missing" not in done.stderr
    (out / "metadata.jsonl").write_bytes(metadata)
    after = await leapbatch("verify", out, env=Cli.env())
    assert (0, b"2 images checked: all good\n") == (after.returncode, after.stderr)


async def test_verify_checks_a_folder_whose_lock_cannot_be_opened_for_writing(
    tmp_path: Path, emulator_server: EmulatorHandle
) -> None:
    """A read-only copy (the lock file cannot be opened for writing) is verified all the same, without the lock."""
    _, out = await made(tmp_path, emulator_server)
    lock = out / LOCK_NAME
    if os.geteuid() == 0:  # root writes through permissions: an immutable file refuses even root
        if shutil.which("chattr") is None or (await trio.run_process(["chattr", "+i", lock], check=False)).returncode:
            pytest.skip("no way to make the lock file unwritable for root here")
    else:
        lock.chmod(0o444)
    try:
        done = await leapbatch("verify", out, env=Cli.env())
    finally:
        if os.geteuid() == 0:
            await trio.run_process(["chattr", "-i", lock])
    assert (0, b"2 images checked: all good\n") == (done.returncode, done.stderr)


@pytest.mark.parametrize(
    "args",
    [
        ["status", "{out}"],
        ["status", "{out}", "--json"],
        ["verify", "{out}", "--missing"],  # one image is missing: a problem line on stdout
        ["verify", "{out}", "--json", "--missing"],
        ["plan", "{manifest}"],
        ["validate", "{manifest}"],
        ["schema"],
        ["delete", "{out}", "--dry-run"],
    ],
)
async def test_a_closed_stdout_ends_a_command_quietly_with_141(
    tmp_path: Path, emulator_server: EmulatorHandle, args: list[str]
) -> None:
    """stdout a pipe whose reader is gone: exit 141 (128 + SIGPIPE), nothing on stderr (no `Broken pipe`, no hint)."""
    manifest, out = await made(tmp_path, emulator_server)
    if "--missing" in args:
        next(iter(sorted((out / "images").iterdir()))).unlink()
    args = [arg for arg in args if arg != "--missing"]
    reader, writer = os.pipe()
    os.close(reader)
    try:
        done = await trio.run_process(
            [sys.executable, "-m", "leapbatch", *(a.format(out=out, manifest=manifest) for a in args)],
            env=Cli.env(emulator_server),
            stdin=b"",
            stdout=writer,
            capture_stderr=True,
            check=False,
        )
    finally:
        os.close(writer)
    assert (141, b"") == (done.returncode, done.stderr)


async def test_status_piped_to_head_prints_its_first_line_and_no_error(
    tmp_path: Path, emulator_server: EmulatorHandle
) -> None:
    """`leapbatch status OUT | head -1` in a shell: the first line, and nothing on stderr."""
    _, out = await made(tmp_path, emulator_server)
    command = f"{sys.executable} -m leapbatch status {out} | head -1"
    done = await trio.run_process(["sh", "-c", command], capture_stdout=True, capture_stderr=True, check=False)
    assert (0, f"folder: {out}\n".encode(), b"") == (done.returncode, done.stdout, done.stderr)


@pytest.mark.parametrize("write", [lambda: show("a line"), lambda: print_json({"a": 1})])
def test_data_meets_a_closed_reader_at_once_not_at_exit(
    write: Callable[[], None], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`show` and `print_json` flush: a reader gone is a BrokenPipeError inside the command (where the boundary
    ends it with 141), never one the interpreter meets flushing stdout at exit (`Exception ignored`, exit 120)."""
    reader, writer = os.pipe()
    os.close(reader)
    stream = io.TextIOWrapper(io.BufferedWriter(io.FileIO(writer, "w"), buffer_size=1 << 16))
    monkeypatch.setattr(sys, "stdout", stream)
    try:
        with pytest.raises(BrokenPipeError):
            write()
    finally:
        monkeypatch.undo()
        with contextlib.suppress(BrokenPipeError):
            stream.close()


async def test_a_closed_stderr_ends_a_command_with_141_and_keeps_stdout_whole(
    tmp_path: Path, emulator_server: EmulatorHandle
) -> None:
    """stderr a pipe whose reader is gone, stdout a file: verify's problem lines all reach the file; exit 141."""
    _, out = await made(tmp_path, emulator_server)
    for image in (out / "images").iterdir():
        image.unlink()
    reader, writer = os.pipe()
    os.close(reader)
    with (tmp_path / "stdout").open("wb") as stdout:
        try:
            done = await trio.run_process(
                [sys.executable, "-m", "leapbatch", "verify", out], stdin=b"", stdout=stdout, stderr=writer, check=False
            )
        finally:
            os.close(writer)
    lines = (tmp_path / "stdout").read_bytes().splitlines()
    assert (141, 2) == (done.returncode, len(lines))
    assert all(line.startswith(b"missing: ") for line in lines), lines
