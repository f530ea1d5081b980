"""The exception tree of leapbatch.

Every error a user can cause or meet carries a one-line message (what, and where) and an optional hint (what to
do), and knows the exit code the CLI returns for it. The CLI is the only place that catches these and prints them.

```
LeapbatchError                      exit_code  raised when
├── UsageError                          2      a command line or setting is wrong (e.g. no API key)
├── ManifestError                       2      a manifest fails to load or validate (carries every Problem)
├── OutputLockedError                   3      another runner holds the output folder's lock
├── LedgerCorruptError                  4      the ledger has a bad record before its last line
├── ApiUnavailableError                 5      the API stayed unreachable past the retries
│   └── KeyRefusedError                 5      the API answered 401/403 to any call: the key is wrong or revoked
├── DownloadError                       -      one image download failed or did not verify (`failure` says why,
│                                              and `DOWNLOAD_RETRIABLE` whether fetching it again may help)
└── ApiError                            5      one API call failed (the runner decides what it means for a job)
    ├── TransportError                          no HTTP response: connect, timeout, reset, protocol error
    │   └── ConnectError                        the request provably never reached the server
    ├── ListingIncompleteError                  a listing could not be read to its end (pages, time, paging ignored)
    ├── MalformedResponseError                  a response arrived but its body is not what the API promises
    └── HTTPStatusError                         the server answered with a non-2xx status
        ├── BadRequestError          400        validation failed; `messages` lists every problem
        ├── AuthError                401/403    the key is missing, wrong or revoked (the client raises
        │                                       KeyRefusedError in its place, on every call)
        ├── NotFoundError            404        no such model or inference (on delete: already gone)
        ├── RateLimitedError         429        too many requests; `retry_after` holds the server's wish
        └── ServerError              5xx        the server failed (or a proxy in front of it)
```

Messages never contain the API key: the client only ever puts method, path, status and the server's messages in
them, and the key lives in a header.

Beside the tree, like `KeyboardInterrupt` (Ctrl-C, exit 130): `Terminated` (a `BaseException`, exit 128 + the signal
number), raised when SIGTERM or SIGHUP asks a command to stop (`leapbatch.cli.signals`).
"""

from __future__ import annotations

import signal
from dataclasses import dataclass
from enum import StrEnum

EXIT_OK = 0
EXIT_SOME_FAILED = 1
EXIT_USAGE = 2
EXIT_LOCKED = 3
EXIT_LEDGER_CORRUPT = 4
EXIT_API_UNAVAILABLE = 5
EXIT_BUDGET_REACHED = 6  # a budget cap stopped the creates: raise it and run again
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports a process Ctrl-C ended
EXIT_SIGNAL_BASE = 128  # `Terminated` exits 128 + its signal number: 143 for SIGTERM, 129 for SIGHUP


class LeapbatchError(Exception):
    """Base of every error leapbatch raises on purpose."""

    exit_code: int = EXIT_USAGE

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class Terminated(BaseException):
    """Raised when a signal (SIGTERM, SIGHUP) asks the command to stop; exits 128 + `signum`, like Ctrl-C exits 130.

    A `BaseException`, as `KeyboardInterrupt` is, so no `except Exception` on its way up can take it for a failure
    of one job and carry on: it unwinds everything to the CLI's boundary.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum

    @property
    def name(self) -> str:
        """Return the signal's name, e.g. `SIGTERM`."""
        try:
            return signal.Signals(self.signum).name
        except ValueError:
            return f"signal {self.signum}"

    @property
    def exit_code(self) -> int:
        """Return the exit code a shell reports for a process the signal ended: 128 + its number."""
        return EXIT_SIGNAL_BASE + self.signum


class UsageError(LeapbatchError):
    """Raised when a command line, setting or environment variable is wrong."""

    exit_code = EXIT_USAGE


class NotConfirmedError(UsageError):
    """Raised when a run's cost needs a consent it does not have (or grew past the one given): nothing was sent."""


class BudgetReachedError(LeapbatchError):
    """Raised when a budget cap kept creates from being sent: the run finished what was in flight, then stopped."""

    exit_code = EXIT_BUDGET_REACHED


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a manifest, located at `path:line:col` (1-based; 0 when unknown)."""

    path: str
    line: int
    col: int
    field: str
    message: str
    hint: str | None = None

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}:{self.col}" if self.line else self.path
        head = f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"
        return f"{head} (hint: {self.hint})" if self.hint else head


class ManifestError(LeapbatchError):
    """Raised when a manifest fails to load or validate; `problems` holds every problem found, in file order."""

    exit_code = EXIT_USAGE

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(problems, key=lambda p: (p.path, p.line, p.col, p.field, p.message))
        count = len(self.problems)
        first = str(self.problems[0]) if self.problems else "invalid manifest"
        more = f" (and {count - 1} more)" if count > 1 else ""
        super().__init__(first + more, hint="fix the lines above; `leapbatch validate FILE` lists every problem")


class OutputLockedError(LeapbatchError):
    """Raised when another leapbatch process holds the output folder."""

    exit_code = EXIT_LOCKED


class LedgerCorruptError(LeapbatchError):
    """Raised when a ledger record before the last line cannot be read (the file is left untouched)."""

    exit_code = EXIT_LEDGER_CORRUPT


class ApiUnavailableError(LeapbatchError):
    """Raised when the batch cannot go on: the key was refused, or the API stayed unreachable."""

    exit_code = EXIT_API_UNAVAILABLE


class KeyRefusedError(ApiUnavailableError):
    """Raised in place of `AuthError` by the API client: the key was refused, so no call of the batch can work."""

    def __init__(self, cause: AuthError) -> None:
        super().__init__(
            f"the API key was refused ({cause.message})",
            hint="check LEAP_API_KEY (and LEAP_BASE_URL); nothing was lost: run the same command again to resume",
        )
        self.status = cause.status


class DownloadFailure(StrEnum):
    """Why one image download failed."""

    STATUS = "status"  # the image host answered a status other than 200 (see `download_retriable`)
    CONNECTION = "connection"  # no response, or the connection broke before the body began
    TIMEOUT = "timeout"  # no answer, or no next bytes, in time
    CUT_SHORT = "cut_short"  # the body ended (or broke) before its declared length
    ENCODING = "encoding"  # the body's content encoding is broken
    UNDECODABLE = "undecodable"  # complete bytes of the right type that do not decode
    BAD_URL = "bad_url"  # the URI cannot be fetched (scheme, syntax, redirect loop)
    NOT_AN_IMAGE = "not_an_image"  # the Content-Type is not an image type we accept
    BAD_BYTES = "bad_bytes"  # empty, not PNG/JPEG/WebP magic, or magic that disagrees with the Content-Type
    TOO_BIG = "too_big"  # announced or streamed past the byte cap
    WRONG_SIZE = "wrong_size"  # decodes, but not to the requested width and height


# Worth fetching the same URI again (within the caller's budget)? Yes when the failure is one of the network's or
# of a host still catching up; no when the host would serve the same bytes again.
DOWNLOAD_RETRIABLE: dict[DownloadFailure, bool] = {
    DownloadFailure.CONNECTION: True,
    DownloadFailure.TIMEOUT: True,
    DownloadFailure.CUT_SHORT: True,
    DownloadFailure.ENCODING: True,
    # A partially propagated object looks exactly like this, and one more GET is cheap next to a lost paid image.
    DownloadFailure.UNDECODABLE: True,
    DownloadFailure.BAD_URL: False,
    DownloadFailure.NOT_AN_IMAGE: False,
    DownloadFailure.BAD_BYTES: False,
    DownloadFailure.TOO_BIG: False,
    DownloadFailure.WRONG_SIZE: False,
}
# 403/404: an image host or CDN that has not caught up with a just-finished job; 408/425/429: come back later.
RETRIABLE_IMAGE_STATUSES = frozenset({403, 404, 408, 425, 429})


def download_retriable(failure: DownloadFailure, status: int | None = None) -> bool:
    """Return whether a download that failed this way may succeed if sent again."""
    if failure is DownloadFailure.STATUS:
        return status is not None and (status >= 500 or status in RETRIABLE_IMAGE_STATUSES)
    return DOWNLOAD_RETRIABLE[failure]


class DownloadError(LeapbatchError):
    """Raised when an image download fails or its bytes do not verify; nothing is left at the final path."""

    exit_code = EXIT_SOME_FAILED

    def __init__(self, message: str, *, uri: str, failure: DownloadFailure, status: int | None = None) -> None:
        super().__init__(message)
        self.uri = uri
        self.failure = failure
        self.status = status

    @property
    def retriable(self) -> bool:
        """Return whether fetching the same URI again may help."""
        return download_retriable(self.failure, self.status)


class ApiError(LeapbatchError):
    """Raised when one call to the Leap API fails."""

    exit_code = EXIT_API_UNAVAILABLE

    def __init__(self, message: str, *, method: str, path: str, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.method = method
        self.path = path


class TransportError(ApiError):
    """Raised when no HTTP response arrived (timeout, reset, protocol error): the request may have been served."""


class ConnectError(TransportError):
    """Raised when the connection could not be made, so the request never reached the server."""


class ListingIncompleteError(ApiError):
    """Raised when a listing could not be read to its end (too many pages, too slow, or paging ignored)."""


class MalformedResponseError(ApiError):
    """Raised when a response arrived but its body does not parse as the API promises."""

    def __init__(self, message: str, *, method: str, path: str, status: int) -> None:
        super().__init__(message, method=method, path=path)
        self.status = status


class HTTPStatusError(ApiError):
    """Raised when the server answers a non-2xx status; the message joins the server's own messages."""

    def __init__(
        self,
        *,
        status: int,
        messages: list[str],
        method: str,
        path: str,
        retry_after: float | None = None,
    ) -> None:
        said = "; ".join(messages) if messages else "no message"
        super().__init__(f"HTTP {status} from {method} {path}: {said}", method=method, path=path)
        self.status = status
        self.messages = messages
        self.retry_after = retry_after


class BadRequestError(HTTPStatusError):
    """Raised on 400: the server rejected the request body."""


class AuthError(HTTPStatusError):
    """Raised on 401 or 403: the API key is missing, wrong or revoked."""


class NotFoundError(HTTPStatusError):
    """Raised on 404: no such model or inference."""


class RateLimitedError(HTTPStatusError):
    """Raised on 429: the server asks to slow down (see `retry_after`)."""


class ServerError(HTTPStatusError):
    """Raised on 5xx (and any other unexpected status)."""


def status_of(exc: ApiError) -> int | None:
    """Return the HTTP status an API error carries, or None when no response arrived."""
    return exc.status if isinstance(exc, HTTPStatusError) else None


def status_error_class(status: int) -> type[HTTPStatusError]:
    """Return the exception class for an HTTP status."""
    if status == 400:
        return BadRequestError
    if status in (401, 403):
        return AuthError
    if status == 404:
        return NotFoundError
    if status == 429:
        return RateLimitedError
    if 400 <= status < 500:
        return HTTPStatusError
    return ServerError


def plural(count: int, noun: str, many: str | None = None, *, grouped: bool = False) -> str:
    """Return a count with its noun, singular only for 1: `1 job`, `0 jobs`, `2 entries` (`many="entries"`).

    Every message that counts something says it this way (`grouped` writes thousands as `12,345`).
    """
    number = f"{count:,}" if grouped else str(count)
    return f"{number} {noun if count == 1 else many or noun + 's'}"
