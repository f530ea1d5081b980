"""Specs of `run.fetch`, `folder.images` and `folder.atomic`: verified downloads from a real local host, safe paths."""

from __future__ import annotations

import hashlib
import io
import json
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any, cast

import httpx
import hypercorn
import hypercorn.trio
import pytest
import trio
from PIL import Image

from leapbatch import crashpoints
from leapbatch.api.client import download_http
from leapbatch.api.download import recorded_uri
from leapbatch.errors import DownloadError, UsageError
from leapbatch.folder.atomic import write_atomic, write_text_atomic
from leapbatch.folder.images import ImageInfo, ImageStore, StoredImage, inspect_file, sweep_parts
from leapbatch.run.fetch import download_image

KEY = hashlib.sha256(b"a job").hexdigest()
WIDTH, HEIGHT = 64, 48


def encode(fmt: str, size: tuple[int, int] = (WIDTH, HEIGHT)) -> bytes:
    """Return a noisy RGB image of `size` (noise keeps the file a few KB, so it can be cut and streamed)."""
    buffer = io.BytesIO()
    Image.effect_noise(size, 64).convert("RGB").save(buffer, fmt)
    return buffer.getvalue()


PNG = encode("PNG")
JPEG = encode("JPEG")
WEBP = encode("WEBP")
SMALL_PNG = encode("PNG", (32, 32))
# One flipped byte inside the first IDAT chunk: the file is complete, its checksum is not.
CORRUPT_PNG = PNG[:60] + bytes([PNG[60] ^ 0xFF]) + PNG[61:]

Send = Callable[[dict[str, Any]], Awaitable[None]]
Route = Callable[[Send], Awaitable[None]]


async def respond(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    """Send a complete response with a Content-Length."""
    headers = [*headers, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def image(body: bytes, content_type: bytes = b"image/png", status: int = 200) -> Route:
    """Route: answer `status` with `body` labelled `content_type`."""
    return partial(respond, status=status, body=body, headers=[(b"content-type", content_type)])


async def cut_mid_stream(send: Send) -> None:
    """Route: announce the whole PNG, send 1000 bytes, close the connection."""
    headers = [(b"content-type", b"image/png"), (b"content-length", str(len(PNG)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": PNG[:1000], "more_body": True})


async def announce_too_much(send: Send) -> None:
    """Route: announce 4096 bytes, then send nothing (a client that reads on waits until its timeout)."""
    headers = [(b"content-type", b"image/png"), (b"content-length", b"4096")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await trio.sleep_forever()


async def stream_too_much(send: Send) -> None:
    """Route: stream 3 x 1000 bytes of PNG without a length, then stall (the cap is passed at the 3rd chunk)."""
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"image/png")]})
    for start in (0, 1000, 2000):
        await send({"type": "http.response.body", "body": PNG[start : start + 1000], "more_body": True})
    await trio.sleep_forever()


async def stall(send: Send) -> None:
    """Route: send the headers of a PNG, then nothing."""
    headers = [(b"content-type", b"image/png"), (b"content-length", str(len(PNG)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await trio.sleep_forever()


async def redirect(send: Send) -> None:
    """Route: redirect to the good PNG."""
    await respond(send, 302, b"", [(b"location", b"/good.png")])


ROUTES: dict[str, Route] = {
    "/good.png": image(PNG),
    "/good-with-params.png": image(PNG, b"Image/PNG; charset=binary"),
    "/photo.jpg": image(JPEG, b"image/jpeg"),
    "/photo.webp": image(WEBP, b"image/webp"),
    "/page.html": image(b"<html>not found</html>", b"text/html; charset=utf-8"),
    "/untyped": image(PNG, b""),
    "/html-as-png": image(b"<html>not found</html>"),
    "/jpeg-as-png": image(JPEG),
    "/empty.png": image(b""),
    "/truncated.png": image(PNG[: len(PNG) // 2]),
    "/corrupt.png": image(CORRUPT_PNG),
    "/small.png": image(SMALL_PNG),
    "/cut.png": cut_mid_stream,
    "/announces-too-much.png": announce_too_much,
    "/streams-too-much.png": stream_too_much,
    "/stall.png": stall,
    "/redirect": redirect,
}


class ImageHost:
    """A plain ASGI app standing in for Leap's image host; it records every request's headers."""

    def __init__(self) -> None:
        self.base = ""
        self.seen: list[dict[str, str]] = []

    def url(self, path: str) -> str:
        """Return the absolute URL of `path` on this host."""
        return self.base + path

    async def __call__(self, scope: dict[str, Any], receive: Callable[[], Awaitable[Any]], send: Send) -> None:
        """Serve one ASGI connection (answering the lifespan protocol, which hypercorn-trio requires)."""
        if scope["type"] == "lifespan":
            while (await receive())["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        self.seen.append({k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]})
        path: str = scope["path"]
        if path.startswith("/status/"):
            await respond(send, int(path.removeprefix("/status/")), b"no", [(b"content-type", b"text/plain")])
        elif path in ROUTES:
            await ROUTES[path](send)
        else:
            await respond(send, 404, b"no such image", [(b"content-type", b"text/plain")])


@pytest.fixture
async def host(nursery: trio.Nursery) -> ImageHost:
    """Serve an `ImageHost` with hypercorn on 127.0.0.1, on a free port (stopped with the test's nursery)."""
    app = ImageHost()
    config = hypercorn.Config()
    config.bind = ["127.0.0.1:0"]
    config.loglevel = "WARNING"
    binds = await nursery.start(partial(hypercorn.trio.serve, cast(Any, app), config))  # hypercorn's TypedDicts
    app.base = binds[0]
    return app


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    """The download client leapbatch uses, with a short timeout so a wrong wait fails instead of hanging."""
    async with download_http(timeout=httpx.Timeout(5.0, pool=None)) as client:
        yield client


@pytest.fixture
def store(tmp_path: Path) -> ImageStore:
    """An ImageStore over an empty output folder."""
    return ImageStore(tmp_path / "out")


def files(store: ImageStore) -> list[str]:
    """Return the names in the store's images folder."""
    return sorted(p.name for p in store.images.iterdir()) if store.images.exists() else []


async def fail(store: ImageStore, http: httpx.AsyncClient, uri: str, **kw: Any) -> DownloadError:
    """Download `uri` expecting a DownloadError, and check that nothing was left in the images folder."""
    with pytest.raises(DownloadError) as caught:
        await download_image(http, store, uri, key=KEY, index=0, width=WIDTH, height=HEIGHT, **kw)
    assert [] == files(store)
    return caught.value


@pytest.mark.parametrize(
    ("path", "body", "ext", "content_type"),
    [
        ("/good.png", PNG, "png", "image/png"),
        ("/good-with-params.png", PNG, "png", "image/png"),
        ("/photo.jpg", JPEG, "jpg", "image/jpeg"),
        ("/photo.webp", WEBP, "webp", "image/webp"),
        ("/redirect", PNG, "png", "image/png"),
    ],
)
async def test_good_image_is_stored_under_its_key(
    store: ImageStore, http: httpx.AsyncClient, host: ImageHost, path: str, body: bytes, ext: str, content_type: str
) -> None:
    """A good image lands at images/<key>-<index>.<ext> with its hash, size and type, and no .part remains."""
    uri = host.url(path)
    stored = await download_image(http, store, uri, key=KEY, index=2, width=WIDTH, height=HEIGHT)
    expected = StoredImage(
        path=f"images/{KEY}-2.{ext}",
        sha256=hashlib.sha256(body).hexdigest(),
        bytes=len(body),
        width=WIDTH,
        height=HEIGHT,
        content_type=content_type,
        uri=uri,
        index=2,
    )
    assert expected == stored
    assert [f"{KEY}-2.{ext}"] == files(store)
    assert body == (store.root / stored.path).read_bytes()


async def test_download_sends_no_authorization(store: ImageStore, http: httpx.AsyncClient, host: ImageHost) -> None:
    """The image host receives only httpx's own default headers: no Authorization, nothing added."""
    await download_image(http, store, host.url("/good.png"), key=KEY, index=0, width=WIDTH, height=HEIGHT)
    assert [["accept", "accept-encoding", "connection", "host", "user-agent"]] == [sorted(h) for h in host.seen]


@pytest.mark.parametrize(
    ("path", "message", "retriable"),
    [
        ("/page.html", "content type text/html is not image/jpeg, image/png, image/webp", False),
        ("/untyped", "content type (none) is not image/jpeg, image/png, image/webp", False),
        ("/html-as-png", "bytes are not a PNG, JPEG or WebP (starts with 3c68746d6c3e6e6f)", False),
        ("/jpeg-as-png", "bytes are a JPEG but the content type says image/png", False),
        ("/empty.png", "the body is empty", False),
        ("/small.png", f"decodes to 32x32, expected {WIDTH}x{HEIGHT}", False),
        ("/truncated.png", "does not decode as PNG (Truncated File Read)", True),
        ("/corrupt.png", "does not decode as PNG (broken PNG file (bad header checksum in b'IDAT'))", True),
        ("/cut.png", f"cut short after 1000 of {len(PNG)} bytes", True),
        ("/status/404", "HTTP 404", True),
        ("/status/403", "HTTP 403", True),
        ("/status/429", "HTTP 429", True),
        ("/status/500", "HTTP 500", True),
        ("/status/503", "HTTP 503", True),
        ("/status/401", "HTTP 401", False),
        ("/status/410", "HTTP 410", False),
        ("/status/204", "HTTP 204", False),
    ],
)
async def test_bad_download_raises_and_leaves_nothing(
    store: ImageStore, http: httpx.AsyncClient, host: ImageHost, path: str, message: str, retriable: bool
) -> None:
    """Each bad answer raises DownloadError with a one-line reason and the right retriability, leaving no file."""
    uri = host.url(path)
    error = await fail(store, http, uri)
    assert (f"image 0 from 127.0.0.1: {message}", uri, retriable) == (error.message, error.uri, error.retriable)


async def test_announced_oversize_is_refused_before_the_body(
    store: ImageStore, http: httpx.AsyncClient, host: ImageHost
) -> None:
    """A Content-Length over the cap is refused from the headers (the body never comes, so reading would time out)."""
    error = await fail(store, http, host.url("/announces-too-much.png"), max_bytes=1000)
    assert ("image 0 from 127.0.0.1: announces 4096 bytes, over the 1000-byte cap", False) == (
        error.message,
        error.retriable,
    )


async def test_streamed_oversize_is_refused_as_the_cap_is_passed(
    store: ImageStore, http: httpx.AsyncClient, host: ImageHost
) -> None:
    """An undeclared body is cut off at the chunk that passes the cap (the server stalls after it)."""
    error = await fail(store, http, host.url("/streams-too-much.png"), max_bytes=2500)
    assert ("image 0 from 127.0.0.1: body passed the 2500-byte cap", False) == (error.message, error.retriable)


async def test_silent_server_times_out_as_retriable(store: ImageStore, host: ImageHost) -> None:
    """A server that stops sending makes a retriable timeout error."""
    async with download_http(timeout=httpx.Timeout(0.2, pool=None)) as impatient:
        error = await fail(store, impatient, host.url("/stall.png"))
    expected = f"image 0 from 127.0.0.1: no data in time after 0 of {len(PNG)} bytes (ReadTimeout)"
    assert (expected, True) == (error.message, error.retriable)


async def test_refused_connection_is_retriable(store: ImageStore, http: httpx.AsyncClient) -> None:
    """No server listening makes a retriable connection error."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    error = await fail(store, http, f"http://127.0.0.1:{port}/x.png")
    assert ("image 0 from 127.0.0.1: connection failed (ConnectError)", True) == (error.message, error.retriable)


async def test_unsupported_scheme_is_not_retriable(store: ImageStore, http: httpx.AsyncClient) -> None:
    """A URI that is not http(s) cannot succeed on a second try."""
    error = await fail(store, http, "ftp://127.0.0.1/x.png")
    assert ("image 0 from 127.0.0.1: not an http(s) URL", False) == (error.message, error.retriable)


@pytest.mark.parametrize("userinfo", ["user:secret@", "token@"])
async def test_a_uri_with_credentials_is_never_followed(
    store: ImageStore, http: httpx.AsyncClient, host: ImageHost, userinfo: str
) -> None:
    """A URI carrying userinfo is refused before any request (not retriable), and the secret is not in the message."""
    error = await fail(store, http, host.url("/x.png").replace("http://", "http://" + userinfo))
    assert ("image 0 from 127.0.0.1: the URL carries credentials (userinfo); it is not followed", False) == (
        error.message,
        error.retriable,
    )
    assert [] == host.seen


async def test_crash_points_see_part_then_final(
    store: ImageStore, http: httpx.AsyncClient, host: ImageHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`mid-download` fires with bytes in the .part file; `after-rename` with the image in place and no .part."""
    seen: list[tuple[str, list[str], int]] = []

    def record(name: str) -> None:
        seen.append((name, files(store), sum(p.stat().st_size for p in store.images.iterdir())))

    monkeypatch.setattr(crashpoints, "crashpoint", record)
    await download_image(http, store, host.url("/good.png"), key=KEY, index=0, width=WIDTH, height=HEIGHT)
    assert ["mid-download", "after-rename"] == [name for name, _, _ in seen]
    assert ([f"{KEY}-0.part"], True) == (seen[0][1], seen[0][2] > 0)
    assert ([f"{KEY}-0.png"], len(PNG)) == (seen[1][1], seen[1][2])


async def test_cancelled_download_leaves_nothing(
    store: ImageStore, http: httpx.AsyncClient, host: ImageHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A download cancelled after its first chunk removes its .part file."""
    with trio.CancelScope() as scope:
        monkeypatch.setattr(crashpoints, "crashpoint", lambda name: scope.cancel())
        await download_image(http, store, host.url("/good.png"), key=KEY, index=0, width=WIDTH, height=HEIGHT)
    assert (True, []) == (scope.cancelled_caught, files(store))


async def test_download_replaces_leftovers(store: ImageStore, http: httpx.AsyncClient, host: ImageHost) -> None:
    """A crash's .part and an unrecorded earlier file are overwritten by a fresh download."""
    store.images.mkdir(parents=True)
    store.part_path(KEY, 0).write_bytes(b"half of something")
    store.image_path(KEY, 0).write_bytes(b"an image the ledger never recorded")
    await download_image(http, store, host.url("/good.png"), key=KEY, index=0, width=WIDTH, height=HEIGHT)
    assert ([f"{KEY}-0.png"], PNG) == (files(store), store.image_path(KEY, 0).read_bytes())


@pytest.mark.parametrize(
    "key",
    ["../etc/passwd", KEY.upper(), KEY[:-1], KEY + "0", KEY[:-1] + "\0", KEY + "\n", "", "٣" * 64, f"../{KEY[3:]}"],
)
def test_image_path_refuses_keys_that_are_not_64_hex(store: ImageStore, key: str) -> None:
    """Only 64 lower-case hex digits make a file name."""
    with pytest.raises(ValueError, match="64 lower-case hex digits"):
        store.image_path(key, 0)


@pytest.mark.parametrize("index", [-1, True, 1.5, "0"])
def test_image_path_refuses_indexes_that_are_not_natural(store: ImageStore, index: Any) -> None:
    """An image index is a non-negative int."""
    with pytest.raises(ValueError, match="non-negative integer"):
        store.image_path(KEY, index)


@pytest.mark.parametrize("ext", ["gif", "png/../x", ""])
def test_image_path_refuses_unknown_extensions(store: ImageStore, ext: str) -> None:
    """Only png, jpg and webp are extensions of stored images."""
    with pytest.raises(ValueError, match="image extension"):
        store.image_path(KEY, 0, ext)


def test_image_path_and_relative(store: ImageStore) -> None:
    """Paths are images/<key>-<index>.<ext> under the root, recorded relative to it."""
    path = store.image_path(KEY, 3, "jpg")
    assert (store.root / "images" / f"{KEY}-3.jpg", f"images/{KEY}-3.jpg") == (path, store.relative(path))


def test_relative_refuses_paths_outside_the_root(store: ImageStore, tmp_path: Path) -> None:
    """A path outside the output folder has no relative form."""
    with pytest.raises(ValueError, match="not inside the output folder"):
        store.relative(tmp_path / "elsewhere.png")


def test_images_link_pointing_outside_is_refused(store: ImageStore, tmp_path: Path) -> None:
    """An images/ symlink to a folder outside the root is refused with a UsageError naming both."""
    (tmp_path / "elsewhere").mkdir()
    store.root.mkdir()
    store.images.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(UsageError, match="outside the output folder") as caught:
        store.image_path(KEY, 0)
    assert f"{tmp_path / 'elsewhere'}/{KEY}-0.png" in caught.value.message


def test_images_link_inside_the_root_is_refused(store: ImageStore) -> None:
    """An images/ symlink is refused even when it stays inside the root: nothing in a folder is used through a link."""
    (store.root / "real-images").mkdir(parents=True)
    store.images.symlink_to(store.root / "real-images")
    with pytest.raises(UsageError, match=r"images is a symbolic link"):
        store.image_path(KEY, 0)


def test_planted_part_link_is_refused(store: ImageStore, tmp_path: Path) -> None:
    """A .part name that is a symlink to a file outside the root is refused, so it is never written through."""
    store.images.mkdir(parents=True)
    store.part_path(KEY, 0).symlink_to(tmp_path / "victim")
    with pytest.raises(UsageError, match="outside the output folder"):
        store.part_path(KEY, 0)


async def test_download_into_outside_link_sends_nothing(
    store: ImageStore, http: httpx.AsyncClient, host: ImageHost, tmp_path: Path
) -> None:
    """A download into an images/ link pointing outside fails before any request."""
    (tmp_path / "elsewhere").mkdir()
    store.root.mkdir()
    store.images.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(UsageError):
        await download_image(http, store, host.url("/good.png"), key=KEY, index=0, width=WIDTH, height=HEIGHT)
    assert ([], []) == (host.seen, os.listdir(tmp_path / "elsewhere"))


def test_sweep_parts_removes_only_part_files(tmp_path: Path) -> None:
    """sweep_parts removes images/*.part and returns them; other files and folders stay."""
    images = tmp_path / "images"
    (images / "folder.part").mkdir(parents=True)
    for name in (f"{KEY}-0.part", f"{KEY}-1.part", f"{KEY}-0.png", "notes.partial", "x.part.png"):
        (images / name).write_bytes(b"x")
    (tmp_path / "results.part").write_bytes(b"x")
    removed = sweep_parts(tmp_path)
    assert [images / f"{KEY}-0.part", images / f"{KEY}-1.part"] == removed
    assert [f"{KEY}-0.png", "folder.part", "notes.partial", "x.part.png"] == sorted(os.listdir(images))
    assert (tmp_path / "results.part").exists()


def test_sweep_parts_without_images_folder(tmp_path: Path) -> None:
    """A fresh output folder has nothing to sweep."""
    assert [] == sweep_parts(tmp_path)


def test_write_atomic_writes_and_leaves_no_temp_file(tmp_path: Path) -> None:
    """write_atomic creates the file with the bytes, and the folder holds nothing else."""
    write_atomic(tmp_path / "results.json", b'{"ok": true}')
    assert (["results.json"], b'{"ok": true}') == (os.listdir(tmp_path), (tmp_path / "results.json").read_bytes())


def test_write_atomic_replaces_rather_than_rewrites(tmp_path: Path) -> None:
    """A reader holding the old file still reads the old bytes: the new content is a new file renamed over it."""
    path = tmp_path / "results.json"
    path.write_text("old")
    with path.open() as reader:
        write_text_atomic(path, json.dumps({"new": "é"}))
        assert ("old", '{"new": "\\u00e9"}') == (reader.read(), path.read_text())
    assert ["results.json"] == os.listdir(tmp_path)


def test_write_text_atomic_encodes_utf8(tmp_path: Path) -> None:
    """write_text_atomic stores text as UTF-8."""
    write_text_atomic(tmp_path / "metadata.jsonl", "prompt: café\n")
    assert "prompt: café\n".encode() == (tmp_path / "metadata.jsonl").read_bytes()


def test_write_atomic_failure_leaves_no_temp_file(tmp_path: Path) -> None:
    """When the rename fails (the target is a folder), the temp file is removed and the target is untouched."""
    (tmp_path / "results.json").mkdir()
    with pytest.raises(OSError, match="directory"):
        write_atomic(tmp_path / "results.json", b"{}")
    assert (["results.json"], []) == (os.listdir(tmp_path), os.listdir(tmp_path / "results.json"))


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (PNG, ("png", WIDTH, HEIGHT, None)),
        (JPEG, ("jpg", WIDTH, HEIGHT, None)),
        (WEBP, ("webp", WIDTH, HEIGHT, None)),
        (PNG[:500], ("png", None, None, "does not decode as PNG (Truncated File Read)")),
        (b"<html>", (None, None, None, "not a PNG, JPEG or WebP (starts with 3c68746d6c3e)")),
        (b"", (None, None, None, "the file is empty")),
    ],
)
def test_inspect_file(tmp_path: Path, data: bytes, expected: tuple[Any, ...]) -> None:
    """inspect_file reports hash, size, format and pixel size, or what is wrong with the file."""
    path = tmp_path / "image"
    path.write_bytes(data)
    assert ImageInfo(hashlib.sha256(data).hexdigest(), len(data), *expected) == inspect_file(path)


def test_inspect_missing_file_raises(tmp_path: Path) -> None:
    """A file that is not there is an OSError for the caller to report."""
    with pytest.raises(FileNotFoundError):
        inspect_file(tmp_path / "missing.png")


@pytest.mark.parametrize(
    ("uri", "kept"),
    [
        ("https://cdn.example/i/0.png?X-Amz-Signature=abc&token=t", "https://cdn.example/i/0.png"),
        ("https://cdn.example/i/0.png#frag", "https://cdn.example/i/0.png"),
        ("https://cdn.example/i/0.png", "https://cdn.example/i/0.png"),
    ],
)
def test_the_ledger_keeps_an_image_uri_without_its_query(uri: str, kept: str) -> None:
    """A signed URL's token is used for the download, never kept: the ledger's URI has no query or fragment."""
    assert kept == recorded_uri(uri)
