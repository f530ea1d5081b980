"""`--shard I/N` of `plan` and `run`: one machine's slice of a manifest, its folder and its share of the limits.

One rule: the manifest and the command line describe the whole dataset; a shard takes its part. Shard I of N holds
the jobs whose key falls in it (`leapbatch.jobs.Shard`: balanced, and stable under edits), writes to its own folder
(output.dir + `-shard-I-of-N` unless --out says otherwise), and gets 1/N of the rate limits (requests per second,
burst, jobs in flight: never less than one), of the budget caps and of the confirmation threshold, so N shards
started at once ask the API, and spend, no more than one run of the whole manifest would.
"""

from __future__ import annotations

import argparse
from decimal import Decimal
from pathlib import Path

from leapbatch.cli._common import beside
from leapbatch.errors import UsageError
from leapbatch.folder.shards import other_holding
from leapbatch.folder.state import LedgerState
from leapbatch.jobs import Shard
from leapbatch.manifest.template import printable
from leapbatch.run.budget import share_amount


def _shard(text: str) -> Shard:
    try:
        return Shard.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{exc}, got {text!r}") from None


def add_shard_option(parser: argparse.ArgumentParser, *, doing: str) -> None:
    """Add --shard I/N."""
    parser.add_argument(
        "--shard",
        type=_shard,
        metavar="I/N",
        help=f"{doing} only shard I of N (1/4 to 4/4) of the manifest's jobs, chosen by job key; into its own folder "
        "(output.dir-shard-I-of-N), with 1/N of the rate limits and budget caps; `leapbatch merge` joins the shards",
    )


def shard_out(out: Path, shard: Shard | None) -> Path:
    """Return a shard's default output folder: `out` with `-shard-I-of-N` added to its name (`out` itself for None)."""
    return out if shard is None else beside(out, shard.suffix, what="a shard")


def check_folder_shard(out: Path, state: LedgerState, shard: Shard | None) -> None:
    """Raise UsageError (exit 2) if the folder holds another shard of its manifest, or all of it, than `shard`."""
    held = other_holding(state, shard)
    if held is None:
        return
    this = "the whole manifest" if shard is None else f"shard {shard}"
    if held.shard is None:
        hint = "a shard has its own folder: drop --out, or pass another"
    elif shard is None:
        hint = f"pass --shard {held.shard} to continue it, or `leapbatch merge` the shards into a new folder"
    else:
        hint = f"pass --shard {held.shard} to continue it, or another --out for shard {shard}"
    raise UsageError(f"{printable(str(out))} holds {held}; this run is {this}", hint=hint)


def rate_share(rps: float, shard: Shard | None) -> float:
    """Return a shard's part of a requests-per-second limit."""
    return rps if shard is None else rps / shard.count


def count_share(amount: int, shard: Shard | None) -> int:
    """Return a shard's part of a count limit (burst, jobs in flight): the parts add up to it, each at least one."""
    return amount if shard is None else max(1, shard.share(amount))


def threshold_share(amount: Decimal, shard: Shard | None) -> Decimal:
    """Return a shard's part of the confirmation threshold."""
    return amount if shard is None else share_amount(amount, shard)
