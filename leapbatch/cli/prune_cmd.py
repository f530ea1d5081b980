"""`leapbatch prune`: remove from an output folder the jobs its manifest no longer has (the dataset is the manifest).

The manifest is `--manifest FILE`, else the one the folder's last `run` recorded, refused (exit 2) when that file is
missing or changed (`leapbatch.cli._dataset`). The folder's lock is held throughout. The decision is pure
(`leapbatch.run.prune.plan_prune`); the write-ahead removal is `prune_jobs`; `--remote` first deletes the jobs'
remote jobs under `delete`'s rules (the folder's server, the key from the environment, a confirmation or `--yes`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pydantic import SecretStr

from leapbatch import __version__
from leapbatch.api.backoff import MAX_RETRY_AFTER
from leapbatch.api.client import api_http
from leapbatch.cli import signals
from leapbatch.cli._api import retrying_client, settings_for_folder
from leapbatch.cli._common import SubParsers, number, say, show
from leapbatch.cli._dataset import RunManifest, last_run_manifest, read_manifest
from leapbatch.cli.ledger_cmds import API_BURST, API_RPS, output_folder
from leapbatch.errors import EXIT_OK, EXIT_SOME_FAILED, UsageError, plural
from leapbatch.events import discard
from leapbatch.folder.images import ImageStore
from leapbatch.folder.ledger import Ledger, now, open_folder
from leapbatch.folder.records import RunRecord
from leapbatch.folder.results import write_results
from leapbatch.folder.state import LedgerState, Phase
from leapbatch.manifest import Manifest
from leapbatch.run.delete import DeleteOutcome, Target, run_deletes
from leapbatch.run.prune import PrunePlan, plan_prune, prune_jobs, remote_targets
from leapbatch.wire import DEFAULT_BASE_URL

DESCRIPTION = f"""\
Remove from an output folder the jobs its manifest no longer has (an axis value cut, a prompt edited): their
images leave images/, and results.json and metadata.jsonl are written again with the manifest's jobs only. Each
job is recorded `pruned` in the ledger before its files are removed. The manifest is --manifest FILE, else the one
the folder's last run recorded (refused if that file is missing or changed since).

Their jobs on Leap's servers stay (and are counted) unless --remote: then they are deleted first, under the same
rules as `leapbatch delete` (LEAP_API_KEY, sent only to LEAP_BASE_URL, else {DEFAULT_BASE_URL}; a folder made on
another server is refused). A pruned job that the manifest lists again is created anew by the next run: that pays
for it again."""

EPILOG = """\
exit codes: 0 done (or nothing to prune), 1 some remote jobs not deleted (--remote), 2 usage (no manifest that
            matches the last run, no confirmation, a link in images/; --remote: a folder of another server, no key),
            3 folder locked, 4 ledger corrupt, 5 API unavailable (--remote)"""


def register(sub: SubParsers) -> None:
    """Add `prune`."""
    parser = sub.add_parser(
        "prune",
        help="remove the jobs the manifest no longer has from an output folder",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("out", metavar="OUT", help="the output folder of a run")
    parser.add_argument(
        "--manifest", type=Path, metavar="FILE", help="the manifest whose jobs stay (default: the last run's)"
    )
    parser.add_argument("--remote", action="store_true", help="also delete their jobs from the server first")
    parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    parser.add_argument("--dry-run", action="store_true", help="show what would be pruned; change nothing")
    parser.add_argument(
        "--max-retry-after",
        type=number("a number of seconds", infinite=True),
        default=MAX_RETRY_AFTER,
        metavar="S",
        help=f"with --remote: longest wait a server's Retry-After is honoured for (default {MAX_RETRY_AFTER:g} s)",
    )
    parser.set_defaults(handler=handle_prune)


def _manifest(args: argparse.Namespace, state: LedgerState) -> tuple[Manifest, RunManifest]:
    found = read_manifest(args.manifest, state) if args.manifest is not None else last_run_manifest(state)
    if found.manifest is None:
        raise UsageError(
            f"cannot tell which jobs to prune: {found.dataset.why}",
            hint="pass the manifest whose jobs stay with --manifest FILE, or run it first (`leapbatch run FILE`)",
        )
    return found.manifest, found


def _check(plan: PrunePlan, found: RunManifest, out: Path) -> None:
    if plan.keeps_none:
        raise UsageError(
            f"{found.dataset.path} has none of the {len(plan.jobs)} jobs of {out}: pruning would empty the dataset",
            hint="check --manifest (prune keeps the jobs a manifest lists); to start over, use another output folder",
        )


def _describe(plan: PrunePlan, targets: list[Target]) -> None:
    for job in plan.jobs:
        show(f"would prune: job {job.key} ({job.phase.value}, {plural(len(job.images), 'image')})")
    for target in targets:
        show(f"would delete: {target.inference_id} (job {target.key}, {target.why})")
    remote = f"; {plural(len(targets), 'remote job')} would be deleted" if targets else ""
    say(f"dry run: {_jobs(len(plan.jobs), plan.images)} would be pruned{remote}")


def _confirm(plan: PrunePlan, targets: list[Target], found: RunManifest, out: Path) -> bool:
    what = _jobs(len(plan.jobs), plan.images)
    if not sys.stdin.isatty():
        raise UsageError(
            f"refusing to prune {what} without confirmation", hint="pass --yes to confirm (--dry-run lists them)"
        )
    remote = f" and delete {plural(len(targets), 'remote job')} from the server" if targets else ""
    answer = input(
        f"Prune {what} of {out} that {found.dataset.path} no longer has{remote}? This cannot be undone. [y/N] "
    )
    return answer.strip().lower() in ("y", "yes")


def handle_prune(args: argparse.Namespace) -> int:
    """Prune the jobs the manifest no longer has (and, with --remote, their remote jobs)."""
    out = output_folder(args.out)
    with open_folder(out) as ledger:
        manifest, found = _manifest(args, ledger.state)
        plan = plan_prune(ledger.state, {job.key for job in found.jobs})
        _check(plan, found, out)
        targets = remote_targets(ledger.state, plan) if args.remote else []
        if args.dry_run:
            _describe(plan, targets)
            return EXIT_OK
        # The folder's server is checked before asking: it may refuse.
        settings = settings_for_folder(out, ledger.state, action="prune --remote") if targets else None
        if (plan.jobs or targets) and not args.yes and not _confirm(plan, targets, found, out):
            say("nothing pruned")
            return EXIT_OK
        deleted = None if settings is None else _delete(ledger, targets, settings, args.max_retry_after)
        outcome = prune_jobs(ledger, ImageStore(out), plan)
        if outcome.jobs or outcome.images:
            write_results(out, found.jobs, ledger.state, name=manifest.name)
        _report(ledger.state, out, outcome.jobs, outcome.images, deleted)
    return EXIT_SOME_FAILED if deleted is not None and deleted.errors else EXIT_OK


def _delete(
    ledger: Ledger, targets: list[Target], settings: tuple[str, SecretStr], max_retry_after: float
) -> DeleteOutcome:
    base_url, key = settings
    ledger.append(RunRecord(t=now(), command="prune", tool_version=__version__, base_url=base_url))
    outcome = signals.run(_delete_all, ledger, targets, base_url, key, max_retry_after)
    say(f"deleted {outcome.deleted}, already gone {outcome.already_gone}, failed {len(outcome.errors)}")
    for key_, message in outcome.errors[:20]:
        say(f"error: job {key_}: {message}")
    return outcome


async def _delete_all(
    ledger: Ledger, targets: list[Target], base_url: str, key: SecretStr, max_retry_after: float
) -> DeleteOutcome:
    async with api_http(base_url, key) as http:
        client = retrying_client(http, rps=API_RPS, burst=API_BURST, events=discard, max_retry_after=max_retry_after)
        return await run_deletes(client, ledger, targets)


def _report(state: LedgerState, out: Path, jobs: int, images: int, deleted: DeleteOutcome | None) -> None:
    if not jobs and not images and deleted is None:
        say("nothing to prune")
        return
    say(f"pruned {_jobs(jobs, images)}")
    pruned = [job for job in state.jobs.values() if job.phase is Phase.PRUNED]
    remote = sum(1 for job in pruned if job.remote_exists)
    if remote:
        say(f"note: {plural(remote, 'pruned job')} still on the server; `leapbatch delete {out}` removes them")


def _jobs(jobs: int, images: int) -> str:
    return f"{plural(jobs, 'job')} ({plural(images, 'image')})"
