"""`leapbatch status`, `delete` and `verify`: the ledger at work."""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from pydantic import SecretStr
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from leapbatch import __version__
from leapbatch.api.backoff import MAX_RETRY_AFTER
from leapbatch.api.client import api_http, download_http
from leapbatch.cli import signals
from leapbatch.cli._api import retrying_client, settings_for_folder
from leapbatch.cli._common import SubParsers, number, print_json, say, show
from leapbatch.cli._dataset import last_run_dataset, last_run_manifest
from leapbatch.errors import EXIT_OK, EXIT_SOME_FAILED, OutputLockedError, UsageError, plural
from leapbatch.events import discard
from leapbatch.export.verify import is_export, verify_export
from leapbatch.folder.ledger import LEDGER_NAME, FolderLock, Ledger, now, open_folder, read_ledger
from leapbatch.folder.records import RunRecord
from leapbatch.folder.status import folder_usage, status_lines, status_report
from leapbatch.folder.verify import Problem, verify_folder, verify_report
from leapbatch.run.delete import DeleteOutcome, DeletePlan, plan_deletes, run_deletes
from leapbatch.run.repair import fetchable, refetch_images, rewrite_derived
from leapbatch.run.resume import tally
from leapbatch.wire import DEFAULT_BASE_URL

API_RPS = 10.0
API_BURST = 10


def register(sub: SubParsers) -> None:
    """Add `status`, `delete` and `verify`."""
    status = sub.add_parser(
        "status",
        help="where an output folder stands (reads the ledger only; safe while a run works)",
        description="Show jobs by state, images on disk, failures grouped by reason, jobs still on Leap's "
        "servers, what a resume would do, and disk used. Reads the ledger only and takes no lock.",
    )
    status.add_argument("out", metavar="OUT", help="the output folder of a run")
    status.add_argument("--json", action="store_true", help="print one JSON object (shape: docs/cli.md)")
    status.set_defaults(handler=handle_status)

    delete = sub.add_parser(
        "delete",
        help="delete the remote jobs of an output folder from Leap's servers",
        description="Delete the jobs the ledger knows from Leap's servers (each keeps your prompts and images "
        "there until deleted). Finished jobs are deleted only once their images are on disk and verified; failed "
        "jobs only with --include-failed. 404 counts as already gone; every outcome is recorded, so running it "
        f"again does nothing. Needs LEAP_API_KEY; sends it only to LEAP_BASE_URL, else {DEFAULT_BASE_URL}, and "
        "refuses (exit 2) a folder whose jobs were made on another server.",
        epilog="exit codes: 0 done, 1 some jobs refused or not deleted, 2 usage, 3 folder locked by a run, "
        "5 API unavailable, 130 interrupted (Ctrl-C), 143 SIGTERM, 129 SIGHUP (every outcome so far is recorded: "
        "run it again to go on)",
    )
    delete.add_argument("out", metavar="OUT", help="the output folder of a run")
    delete.add_argument("--dry-run", action="store_true", help="show what would be deleted; send nothing")
    delete.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    delete.add_argument("--include-failed", action="store_true", help="also delete failed jobs and earlier attempts")
    delete.add_argument(
        "--force", action="store_true", help="also delete jobs whose images are not verified on disk, or in flight"
    )
    _retry_after_option(delete)
    delete.set_defaults(handler=handle_delete)

    verify = sub.add_parser(
        "verify",
        help="check every image and file of an output folder against its ledger",
        description="Check that every image recorded as finished exists, has its recorded sha256 and size, "
        "decodes and has the recorded dimensions; that images/ holds nothing else; and that metadata.jsonl and "
        "results.json agree with the ledger. --repair fetches missing or damaged images again (while the remote "
        f"job still exists, from LEAP_BASE_URL, else {DEFAULT_BASE_URL}; a folder made on another server is "
        "refused) and rewrites metadata.jsonl and results.json. Given an export (`leapbatch export`), checks "
        "every file against its SHA256SUMS and that nothing else is there.",
        epilog="exit codes: 0 clean, 1 problems found (each listed), 2 usage (--repair: a folder of another "
        "server), 3 locked (a run works on it), 5 API unavailable, 130 interrupted (Ctrl-C), 143 SIGTERM, 129 SIGHUP",
    )
    verify.add_argument("out", metavar="OUT", help="the output folder of a run, or an export's folder")
    verify.add_argument("--json", action="store_true", help="print one JSON object (shape: docs/cli.md)")
    verify.add_argument("--repair", action="store_true", help="fetch missing or damaged images again")
    _retry_after_option(verify)
    verify.set_defaults(handler=handle_verify)


def _retry_after_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--max-retry-after",
        type=number("a number of seconds", infinite=True),
        default=MAX_RETRY_AFTER,
        metavar="S",
        help=f"longest wait a server's Retry-After is honoured for (default {MAX_RETRY_AFTER:g} s)",
    )


def output_folder(text: str) -> Path:
    """Return OUT as a path once it holds a ledger (else a UsageError: not the output folder of a run)."""
    out = Path(text)
    if not os.path.lexists(out / LEDGER_NAME):
        raise UsageError(
            f"{out} has no {LEDGER_NAME}: not the output folder of a run",
            hint="pass the folder `leapbatch run` wrote to (outputs/<name> by default)",
        )
    return out


def handle_status(args: argparse.Namespace) -> int:
    """Print the status of a folder."""
    out = output_folder(args.out)
    state = read_ledger(out)
    report = status_report(out, state, folder_usage(out), tally(state), last_run_dataset(out, state))
    if args.json:
        print_json(report)
    else:
        for line in status_lines(report):
            show(line)
    return EXIT_OK


def _describe_plan(plan: DeletePlan) -> None:
    for key, why in plan.refused[:20]:
        say(f"refused: job {key}: {why}")
    if len(plan.refused) > 20:
        say(f"refused: ... and {len(plan.refused) - 20} more")
    if plan.refused:
        say("hint: `leapbatch verify OUT --repair` restores images; --force deletes anyway (the images are lost)")
    if plan.skipped_failed:
        say(f"kept: {plural(plan.skipped_failed, 'failed job')} (--include-failed deletes them too)")


def _confirm(count: int, out: Path) -> bool:
    if not sys.stdin.isatty():
        raise UsageError(
            f"refusing to delete {plural(count, 'remote job')} without confirmation", hint="pass --yes to confirm"
        )
    answer = input(f"Delete {plural(count, 'job')} of {out} from the server? This cannot be undone. [y/N] ")
    return answer.strip().lower() in ("y", "yes")


def handle_delete(args: argparse.Namespace) -> int:
    """Delete the remote jobs of a folder."""
    out = output_folder(args.out)
    with open_folder(out) as ledger:
        plan = plan_deletes(out, ledger.state, include_failed=args.include_failed, force=args.force)
        _describe_plan(plan)
        if not plan.targets:
            say("nothing to delete")
            return EXIT_SOME_FAILED if plan.refused else EXIT_OK
        if args.dry_run:
            for target in plan.targets:
                show(f"would delete: {target.inference_id} (job {target.key}, {target.why})")
            say(f"dry run: {plural(len(plan.targets), 'job')} would be deleted")
            return EXIT_OK
        base_url, key = settings_for_folder(out, ledger.state, action="delete")  # before asking: it may refuse
        if not args.yes and not _confirm(len(plan.targets), out):
            say("nothing deleted")
            return EXIT_OK
        ledger.append(RunRecord(t=now(), command="delete", tool_version=__version__, base_url=base_url))
        outcome = signals.run(_delete_all, ledger, plan, base_url, key, args.max_retry_after)
    say(f"deleted {outcome.deleted}, already gone {outcome.already_gone}, failed {len(outcome.errors)}")
    for key_, message in outcome.errors[:20]:
        say(f"error: job {key_}: {message}")
    return EXIT_SOME_FAILED if outcome.errors or plan.refused else EXIT_OK


async def _delete_all(
    ledger: Ledger, plan: DeletePlan, base_url: str, key: SecretStr, max_retry_after: float
) -> DeleteOutcome:
    with Progress(
        TextColumn("deleting"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), transient=False
    ) as progress:
        task = progress.add_task("delete", total=len(plan.targets))
        async with api_http(base_url, key) as http:
            client = retrying_client(
                http, rps=API_RPS, burst=API_BURST, events=discard, max_retry_after=max_retry_after
            )
            return await run_deletes(client, ledger, plan.targets, on_done=lambda: progress.advance(task))


def handle_verify(args: argparse.Namespace) -> int:
    """Verify (and optionally repair) a folder, or check an export against its SHA256SUMS."""
    if not os.path.lexists(Path(args.out) / LEDGER_NAME) and is_export(Path(args.out)):
        return _verify_export(Path(args.out), args)
    out = output_folder(args.out)
    restored = 0
    if args.repair:
        with open_folder(out) as ledger:
            dataset = last_run_manifest(ledger.state)
            problems, _ = verify_folder(out, ledger.state, dataset.dataset.keys, dataset.captions)
            wanted = fetchable(ledger.state, problems)
            if wanted:
                base_url, key = settings_for_folder(out, ledger.state, action="verify --repair")
                restored = signals.run(_refetch, out, ledger, wanted, base_url, key, args.max_retry_after)
            if problems:
                name = out.name if dataset.manifest is None else dataset.manifest.name
                rewrite_derived(out, ledger.state, None if dataset.manifest is None else dataset.jobs, name=name)
    with no_run_working(out):
        state = read_ledger(out, whole=True)
        dataset = last_run_manifest(state)
        problems, checked = verify_folder(out, state, dataset.dataset.keys, dataset.captions)
    if args.json:
        print_json(verify_report(out, problems, checked, restored))
    else:
        for problem in problems:
            show(f"{problem.kind}: {problem.path or out}: {problem.detail}")
        if args.repair:
            say(f"repair: {plural(restored, 'image')} fetched again; metadata.jsonl and results.json rewritten")
        say(f"{plural(checked, 'image')} checked: " + (plural(len(problems), "problem") if problems else "all good"))
    return EXIT_OK if not problems else EXIT_SOME_FAILED


def _verify_export(dest: Path, args: argparse.Namespace) -> int:
    """Check an export (`leapbatch export`): every file it lists, with its sha256, and nothing else."""
    if args.repair:
        raise UsageError(f"{dest} is an export: --repair mends output folders", hint="export it again instead")
    problems, checked = verify_export(dest)
    if args.json:
        print_json(verify_report(dest, problems, checked) | {"export": True, "files_checked": checked})
    else:
        for problem in problems:
            show(f"{problem.kind}: {problem.path}: {problem.detail}")
        say(
            f"export: {plural(checked, 'file')} checked: "
            + (plural(len(problems), "problem") if problems else "all good")
        )
    return EXIT_OK if not problems else EXIT_SOME_FAILED


@contextlib.contextmanager
def no_run_working(out: Path, doing: str = "verify") -> Iterator[None]:
    """Hold the folder's lock while it is checked: a run working on it (exit 3) is said so, not reported as problems.

    While a run works, images are still arriving and metadata.jsonl and results.json are written only at its end, so
    a check then would list them as missing. A folder whose lock cannot be opened for writing (a read-only copy) is
    checked without it: no leapbatch process can be writing to it with our rights either.
    """
    lock = FolderLock(out)
    try:
        lock.acquire()
    except OutputLockedError as exc:
        raise OutputLockedError(
            f"{exc.message}: a run is working on it, and its images, metadata.jsonl and results.json are final only "
            "when it ends",
            hint=f"{doing} it after the run ends; `leapbatch status {out}` works meanwhile",
        ) from None
    except OSError as exc:
        if exc.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise
    try:
        yield
    finally:
        lock.release()


async def _refetch(
    out: Path, ledger: Ledger, problems: list[Problem], base_url: str, key: SecretStr, max_retry_after: float
) -> int:
    async with api_http(base_url, key) as http, download_http() as downloads:
        client = retrying_client(http, rps=API_RPS, burst=API_BURST, events=discard, max_retry_after=max_retry_after)
        return await refetch_images(out, ledger, problems, client=client, downloads=downloads)
