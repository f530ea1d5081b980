"""`leapbatch merge`: join the output folders of a manifest's shards (`run --shard I/N`) into one new folder."""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

from leapbatch.cli._common import SubParsers, print_json, say
from leapbatch.errors import plural
from leapbatch.folder.merge import merge
from leapbatch.folder.state import Phase

DESCRIPTION = """\
Merge output folders, usually the shards of one manifest (`leapbatch run M --shard I/N`, one per machine), into
a new folder, as if one run had made them all: the ledgers are unioned (a job is its key, so a job in two folders
is one job: the folder where it got furthest decides its state), every finished image is copied and checked
against its record, and results.json and metadata.jsonl are written. The folders merged are read, never changed.
Afterwards `leapbatch verify OUT` checks the result, `status` and `delete` work on it, and `leapbatch run M --out
OUT` (no --shard) resumes the whole manifest there, creating only the jobs no shard finished."""

EPILOG = """\
example: leapbatch merge outputs/faces-shard-*-of-4 --into outputs/faces
exit codes: 0 merged, 2 usage (a folder missing, not an output folder, from another server, or OUT already
            holds a ledger), 3 a folder is in use by a run, 4 a ledger is corrupt"""


def register(sub: SubParsers) -> None:
    """Add `merge`."""
    parser = sub.add_parser(
        "merge",
        help="join the output folders of a manifest's shards into one",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("folders", nargs="+", type=Path, metavar="DIR", help="output folders to merge (the shards)")
    parser.add_argument("--into", type=Path, required=True, metavar="OUT", help="the new folder to merge them into")
    parser.add_argument("--json", action="store_true", help="print one JSON object (shape: docs/cli.md)")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    """Merge the folders and say what the result holds."""
    merged = merge(args.folders, args.into)
    jobs = [job for job in merged.state.jobs.values() if job.phase is not Phase.PRUNED]
    phases = Counter(job.phase.value for job in jobs)
    images = sum(len(job.images) for job in jobs)
    if args.json:
        print_json(
            {
                "into": str(args.into),
                "folders": [str(folder) for folder in args.folders],
                "jobs": len(jobs),
                "states": dict(sorted(phases.items())),
                "images": images,
                "duplicates": merged.duplicates,
                "missing_shards": list(merged.missing_shards),
            }
        )
        return 0
    states = ", ".join(f"{count:,} {phase}" for phase, count in sorted(phases.items()))
    say(
        f"merged {plural(len(args.folders), 'folder')} into {args.into}: {plural(len(jobs), 'job', grouped=True)}"
        f" ({states}), {plural(images, 'image', grouped=True)}; "
        f"{plural(merged.duplicates, 'job', grouped=True)} in more than one folder, counted once"
    )
    if merged.missing_shards:
        say(
            f"note: no folder holds shard {', '.join(merged.missing_shards)}: their jobs are not in {args.into}; "
            f"run the manifest there (`leapbatch run M --out {args.into}`) to make them"
        )
    say(f"next: leapbatch verify {args.into}  ·  leapbatch status {args.into}")
    return 0
