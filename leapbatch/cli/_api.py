"""Build what the commands need to talk to the API: settings, the folder's server check, and a retrying client.

The key goes only to the configured API host: LEAP_BASE_URL, else the documented default. A command that sends
requests for a folder's jobs first checks that the folder belongs to that server (`check_folder_server`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
from pydantic import SecretStr

from leapbatch.api.backoff import MAX_RETRY_AFTER
from leapbatch.api.client import LeapClient, Settings
from leapbatch.api.ratelimit import RequestGate
from leapbatch.api.retry import SafeRetry
from leapbatch.errors import UsageError
from leapbatch.events import EventSink, RequestRetried
from leapbatch.folder.server import LOCAL_EMULATOR, Server, api_server, other_server
from leapbatch.folder.state import LedgerState
from leapbatch.manifest.template import printable


def configured_server(base_url: str | None) -> Server:
    """Return the server a command would talk to: `base_url` (from the environment or the default), None: local."""
    return LOCAL_EMULATOR if base_url is None else api_server(base_url)


def check_folder_server(out: Path, state: LedgerState, configured: Server, *, action: str) -> None:
    """Raise UsageError (exit 2), naming both servers, if the folder's jobs were made on another server.

    Called before anything is sent or recorded: a folder belongs to one server (`leapbatch.folder.server`), so a
    run, delete or repair against another would count the wrong jobs as done, or poll, fetch and delete jobs that
    server never had (and record its 404s as the jobs' fate). Both names are escaped: one comes from a file.
    """
    made_on = other_server(state, configured)
    if made_on is None:
        return
    there, here = printable(str(made_on)), printable(str(configured))
    if made_on.local:
        hint = f"continue it with `leapbatch run --local`; to work on {here}, use another --out folder"
    else:
        via = "without --local, with" if configured.local else "with"
        hint = (
            f"to continue it there, run `leapbatch {action}` {via} LEAP_BASE_URL={there} (only if that server is "
            "yours: it receives your key)" + ("; otherwise use another --out folder" if action == "run" else "")
        )
    raise UsageError(f"{printable(str(out))} was made on {there}; this {action} would use {here}", hint=hint)


def settings_for_folder(out: Path, state: LedgerState, *, action: str) -> tuple[str, SecretStr]:
    """Return the configured base URL and the key, once the folder is known to belong to that server.

    The base URL is LEAP_BASE_URL, else the documented default (`leapbatch.api.client.DEFAULT_BASE_URL`): never a
    URL read from a file (ledger, results, manifest), so the key goes only to the configured API host. A folder
    whose jobs were made on another server is refused (`check_folder_server`); so is a missing key.
    """
    settings = Settings.from_env()
    check_folder_server(out, state, configured_server(settings.base_url), action=action)
    if settings.api_key is None:
        raise UsageError("LEAP_API_KEY is not set", hint="export LEAP_API_KEY=<the key the jobs were created with>")
    return settings.base_url, settings.api_key


def retrying_client(
    http: httpx.AsyncClient,
    *,
    rps: float,
    burst: int,
    events: EventSink,
    on_throttle: Callable[[], object] = lambda: None,
    on_success: Callable[[], object] = lambda: None,
    max_retry_after: float = MAX_RETRY_AFTER,
) -> LeapClient:
    """Return a LeapClient whose requests pass one token bucket and the safe-retry policy."""

    def retried(method: str, path: str, attempt: int, delay: float, exc: Exception) -> None:
        events(RequestRetried(method, path, attempt, delay, str(exc)))

    def throttled() -> None:
        on_throttle()

    def succeeded() -> None:
        on_success()

    retry = SafeRetry(
        on_throttle=throttled,
        on_success=succeeded,
        on_retry=retried,
        max_retry_after=max_retry_after,
        origin=str(http.base_url).rstrip("/"),
    )
    return LeapClient(http, gate=RequestGate(rps, burst), retry=retry)
