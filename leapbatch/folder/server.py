"""Which server an output folder belongs to: pure rules over its ledger (no network, no environment).

A folder's jobs exist on one server only, so a folder belongs to one server:
- The identity of a server is either **the local emulator** (the one `run --local` starts: it listens on a new
  random port every run, so its URL is no identity) or an API **origin**, `scheme://host[:port]`, normalised: the
  scheme and host in lower case, the scheme's default port (80, 443) dropped, and path, query, trailing slash and
  user info ignored. `http://API.example.com:80/` and `http://api.example.com` are one server.
- A `run` record says which server its run worked on, from fields every ledger already has: `local: true` is the
  local emulator (whatever its `base_url`), anything else is the origin of `base_url`. An old ledger reads the same.
  A `base_url` that is not an http(s) URL with a host is its own identity, equal to no real origin.
- The folder's server (`folder_server`) is that of the runs its jobs were made in: none while the ledger holds no
  job that may exist on a server (a folder with no run yet, or only runs that made nothing, such as runs whose
  every create was `refused`, takes the server of its next run: a mistyped LEAP_BASE_URL can be corrected); the local
  emulator when every job was made by `run --local`; otherwise the server of the last `run` record that was not
  `--local`. Only `run` records count: a `delete` record names where a delete was sent, not where jobs live.
  (Every `run` after the first job is checked with `other_server`, so its record names the same server.)

The callers (`leapbatch.cli._api`) compare the folder's server with the configured one before anything is sent
and refuse a mismatch; the key itself only ever goes to the configured server, never to a host read from a file.
"""

from __future__ import annotations

from dataclasses import dataclass

from leapbatch.folder.records import RunRecord
from leapbatch.folder.state import LedgerState, Phase
from leapbatch.wire import origin  # one parse of base URLs, shared with the API's settings


@dataclass(frozen=True, slots=True)
class Server:
    """One server a folder's jobs can live on: the local emulator (`local`), or one normalised API `origin`."""

    origin: str = ""  # "" for the local emulator
    local: bool = False

    def __str__(self) -> str:
        return "the local emulator" if self.local else self.origin


LOCAL_EMULATOR = Server(local=True)


def api_server(base_url: str) -> Server:
    """Return the server a base URL names (a string that is not an http(s) URL stands for itself)."""
    return Server(origin(base_url) or base_url.strip())


def run_server(record: RunRecord) -> Server:
    """Return the server a `run` record's run worked on: the local emulator if `local`, else its URL's origin."""
    return LOCAL_EMULATOR if record.local else api_server(record.base_url)


def folder_server(state: LedgerState) -> Server | None:
    """Return the server the folder's jobs were made on, or None while it holds no job (see the module's rules)."""
    made = [job for job in state.jobs.values() if job.phase is not Phase.REFUSED or job.orphans]
    if not made:
        return None
    if all(job.local for job in made):
        return LOCAL_EMULATOR
    remote = [run for run in state.runs if run.command == "run" and not run.local]
    return run_server(remote[-1]) if remote else None


def other_server(state: LedgerState, configured: Server) -> Server | None:
    """Return the folder's server when it is not `configured` (the caller must refuse), else None."""
    made_on = folder_server(state)
    return made_on if made_on is not None and made_on != configured else None
