"""Stream one image body from its host into a sink, under a byte cap, and say why when it fails.

This is the download's network half: status, declared length, the byte cap, and every way the connection can
fail, each raised as a `DownloadError` whose `failure` decides whether fetching again may help (the table is
`errors.DOWNLOAD_RETRIABLE`). What the bytes must be (an image of the right type and size) is the sink's business
(`leapbatch.folder.images.PartFile`); the sink may refuse the declared type or the first bytes by raising
`DownloadError`, and the body stops there.

The caller's `httpx.AsyncClient` is used as it is (`leapbatch.api.client.download_http()`, which carries no
Authorization header); no header is ever added here. Only the host goes into messages: a signed URL's query
string is nobody's business. A URI that carries userinfo (`https://user:secret@host/...`) or a scheme other than
http(s) is refused before any request: credentials in an image URI are a server's mistake, never followed.

Every body has a deadline as a whole (`deadline`, by default four read timeouts): a host that trickles a byte a
second passes every read timeout, and would otherwise hold a job forever.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

import httpx
import trio

from leapbatch.api.transport import HTTPX_FAILURES, Translated, TransportFailure, translate
from leapbatch.errors import DownloadError, DownloadFailure

DEFAULT_MAX_BYTES = 64 * 1024 * 1024
BODY_DEADLINE_FACTOR = 4  # a whole body may take this many read timeouts


class BodySink(Protocol):
    """Where a body goes: it may refuse the declared Content-Type, or any chunk, by raising `DownloadError`."""

    def accept(self, content_type: str | None) -> None:
        """Check the Content-Type header (None when absent) before any byte is taken."""

    def write(self, chunk: bytes) -> None:
        """Take the next bytes of the body."""


def host_of(uri: str) -> str:
    """Return the host of `uri` for messages (never its path, query or userinfo)."""
    try:
        return httpx.URL(uri).host or "an unknown host"
    except httpx.InvalidURL:
        return "an invalid URL"


def recorded_uri(uri: str) -> str:
    """Return `uri` as the ledger keeps it: without a query or fragment (a signed URL's token is not kept)."""
    try:
        url = httpx.URL(uri)
    except httpx.InvalidURL:
        return uri.split("?", 1)[0].split("#", 1)[0]
    return str(url.copy_with(query=None, fragment=None))


def check_uri(uri: str, where: str) -> None:
    """Raise `DownloadError` (BAD_URL) for a URI that is not plain http(s) or that carries userinfo."""
    try:
        url = httpx.URL(uri)
    except httpx.InvalidURL:
        raise DownloadError(f"{where}: not a valid URL", uri=uri, failure=DownloadFailure.BAD_URL) from None
    if url.scheme not in ("http", "https"):
        raise DownloadError(f"{where}: not an http(s) URL", uri=uri, failure=DownloadFailure.BAD_URL)
    if url.userinfo:
        message = f"{where}: the URL carries credentials (userinfo); it is not followed"
        raise DownloadError(message, uri=uri, failure=DownloadFailure.BAD_URL)


async def stream_body(
    http: httpx.AsyncClient,
    uri: str,
    sink: BodySink,
    *,
    where: str,
    max_bytes: int = DEFAULT_MAX_BYTES,
    deadline: float | None = None,
) -> int:
    """GET `uri` and feed its body to `sink`; return the bytes received, or raise `DownloadError`."""
    check_uri(uri, where)
    limit = deadline if deadline is not None else (http.timeout.read or 30.0) * BODY_DEADLINE_FACTOR
    received = 0
    with trio.move_on_after(limit) as scope:
        received = await _stream(http, uri, sink, where=where, max_bytes=max_bytes)
    if scope.cancelled_caught:
        raise DownloadError(
            f"{where}: no complete body within {limit:g} s (the deadline of a whole body)",
            uri=uri,
            failure=DownloadFailure.TIMEOUT,
        )
    return received


async def _stream(http: httpx.AsyncClient, uri: str, sink: BodySink, *, where: str, max_bytes: int) -> int:
    try:
        async with http.stream("GET", uri) as response:
            _check_status(response, where, uri)
            sink.accept(response.headers.get("content-type"))
            declared = _declared_length(response)
            if declared is not None and declared > max_bytes:
                raise DownloadError(
                    f"{where}: announces {declared} bytes, over the {max_bytes}-byte cap",
                    uri=uri,
                    failure=DownloadFailure.TOO_BIG,
                )
            await _feed(response, sink, where=where, uri=uri, max_bytes=max_bytes)
            # h11 raises when the peer closes before Content-Length; this guards any transport that would not.
            if declared is not None and response.num_bytes_downloaded < declared:
                raise _cut_short(response, where, uri)
            return response.num_bytes_downloaded
    except HTTPX_FAILURES as exc:
        raise _failed(translate(exc), where, uri) from None


async def _feed(response: httpx.Response, sink: BodySink, *, where: str, uri: str, max_bytes: int) -> None:
    received = 0
    chunks = response.aiter_bytes()
    try:
        async for chunk in chunks:
            try:
                received += len(chunk)
                _check_cap(received, where, uri, max_bytes)
                sink.write(chunk)
            except BaseException:
                await _unwind(chunks)
                raise
    except HTTPX_FAILURES as exc:
        translated = translate(exc)
        if translated.failure is TransportFailure.TIMEOUT:
            raise DownloadError(
                f"{where}: no data in time after {response.num_bytes_downloaded}{_of(response)} bytes"
                f" ({translated.name})",
                uri=uri,
                failure=DownloadFailure.TIMEOUT,
            ) from None
        if translated.failure is TransportFailure.BROKEN:
            raise _cut_short(response, where, uri) from None
        raise _failed(translated, where, uri) from None


async def _unwind(chunks: AsyncIterator[bytes]) -> None:
    """End httpx's chain of body generators from the inside, so that each one finishes now.

    httpx 0.28 nests async generators (aiter_bytes > aiter_raw > the transport's streams) and closing the outer one
    leaves the inner ones suspended until the garbage collector finds them, where trio warns (encode/httpx#3686).
    Running the chain on under a cancelled scope makes its next checkpoint, deep inside, raise `Cancelled`, which
    unwinds every generator on its way out; the scope then swallows it.
    """
    with trio.CancelScope() as scope:
        scope.cancel()
        async for _ in chunks:
            pass


def _check_cap(received: int, where: str, uri: str, max_bytes: int) -> None:
    if received > max_bytes:
        raise DownloadError(f"{where}: body passed the {max_bytes}-byte cap", uri=uri, failure=DownloadFailure.TOO_BIG)


def _check_status(response: httpx.Response, where: str, uri: str) -> None:
    status = response.status_code
    if status != 200:
        raise DownloadError(f"{where}: HTTP {status}", uri=uri, failure=DownloadFailure.STATUS, status=status)


def _declared_length(response: httpx.Response) -> int | None:
    value = response.headers.get("content-length", "").strip()
    return int(value) if value.isascii() and value.isdigit() else None


def _of(response: httpx.Response) -> str:
    declared = _declared_length(response)
    return f" of {declared}" if declared is not None else ""


def _cut_short(response: httpx.Response, where: str, uri: str) -> DownloadError:
    return DownloadError(
        f"{where}: cut short after {response.num_bytes_downloaded}{_of(response)} bytes",
        uri=uri,
        failure=DownloadFailure.CUT_SHORT,
    )


# What each transport failure is called in a download's message, and which download failure it is.
_DOWNLOAD_FAILURES: dict[TransportFailure, tuple[str, DownloadFailure]] = {
    TransportFailure.CONNECT: ("connection failed", DownloadFailure.CONNECTION),
    TransportFailure.BROKEN: ("connection failed", DownloadFailure.CONNECTION),
    TransportFailure.TIMEOUT: ("no answer in time", DownloadFailure.TIMEOUT),
    TransportFailure.ENCODING: ("the body's content encoding is broken", DownloadFailure.ENCODING),
    TransportFailure.BAD_URL: ("", DownloadFailure.BAD_URL),
}


def _failed(translated: Translated, where: str, uri: str) -> DownloadError:
    text, failure = _DOWNLOAD_FAILURES[translated.failure]
    if translated.name == "InvalidURL":
        return DownloadError(f"{where}: invalid URL ({translated.detail})", uri=uri, failure=failure)
    return DownloadError(f"{where}: {text or translated.detail} ({translated.name})", uri=uri, failure=failure)
