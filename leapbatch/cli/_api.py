"""Build what the commands need to talk to the API: settings, and a client with the token bucket and retries."""

from __future__ import annotations

from collections.abc import Callable

import httpx
from pydantic import SecretStr

from leapbatch.api.backoff import MAX_RETRY_AFTER
from leapbatch.api.client import LeapClient, Settings
from leapbatch.api.ratelimit import RequestGate
from leapbatch.api.retry import SafeRetry
from leapbatch.errors import UsageError
from leapbatch.events import EventSink, RequestRetried
from leapbatch.folder.state import LedgerState


def settings_for_folder(state: LedgerState) -> tuple[str, SecretStr]:
    """Return the base URL (LEAP_BASE_URL, else the folder's last real run's) and the key, or raise UsageError."""
    settings = Settings.from_env()
    if settings.api_key is None:
        raise UsageError("LEAP_API_KEY is not set", hint="export LEAP_API_KEY=<the key the jobs were created with>")
    base_url = settings.base_url
    remote_runs = [run for run in state.runs if not run.local and run.command == "run"]
    if not settings.base_url_from_env and remote_runs:
        base_url = remote_runs[-1].base_url
    return base_url, settings.api_key


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

    retry = SafeRetry(on_throttle=throttled, on_success=succeeded, on_retry=retried, max_retry_after=max_retry_after)
    return LeapClient(http, gate=RequestGate(rps, burst), retry=retry)
