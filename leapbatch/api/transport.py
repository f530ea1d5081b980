"""The one translation of httpx's exceptions into leapbatch's words.

httpx raises a tree of its own (`ConnectError`, `ReadTimeout`, `RemoteProtocolError`, `InvalidURL`...). This
module sorts every one of them into a `TransportFailure`, once; the API client and the image download then only
choose their target class (`errors.ConnectError` / `errors.TransportError` for API calls, `errors.DownloadError`
for images). The order of the checks matters: `ConnectTimeout` is a timeout in httpx's tree, but it says the
connection was never made, so the request never reached the server.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import httpx


class TransportFailure(StrEnum):
    """Why no usable HTTP response arrived."""

    CONNECT = "connect"  # the connection was never made: the request provably did not reach the server
    TIMEOUT = "timeout"  # the connection was made, then an answer (or the next bytes of one) did not come in time
    BROKEN = "broken"  # the connection broke, or spoke broken HTTP, after the request may have been served
    ENCODING = "encoding"  # the body's content encoding does not decode
    BAD_URL = "bad_url"  # the URL cannot be requested at all (scheme, syntax, redirect loop)


@dataclass(frozen=True, slots=True)
class Translated:
    """An httpx exception in leapbatch's words: what kind of failure, httpx's name for it and its text."""

    failure: TransportFailure
    name: str
    detail: str


def translate(exc: httpx.HTTPError | httpx.InvalidURL) -> Translated:
    """Return what an httpx exception means."""
    return Translated(_failure(exc), exc.__class__.__name__, str(exc))


def _failure(exc: httpx.HTTPError | httpx.InvalidURL) -> TransportFailure:
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
        return TransportFailure.CONNECT
    if isinstance(exc, httpx.TimeoutException):
        return TransportFailure.TIMEOUT
    if isinstance(exc, httpx.DecodingError):
        return TransportFailure.ENCODING
    if isinstance(exc, httpx.InvalidURL | httpx.UnsupportedProtocol | httpx.TooManyRedirects):
        return TransportFailure.BAD_URL
    return TransportFailure.BROKEN  # ReadError, WriteError, RemoteProtocolError, ProxyError...


# Every exception httpx raises for a request that got no usable response (`InvalidURL` is not an `HTTPError`).
HTTPX_FAILURES = (httpx.HTTPError, httpx.InvalidURL)
