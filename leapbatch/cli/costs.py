"""The money options of `plan` and `run` (--price, --max-usd, --max-images), and the estimate both show.

One translation: the manifest's `pricing:` and `budget:` with the command line on top -> a `Price` and `Caps`;
a manifest's jobs and a folder's ledger -> `leapbatch.manifest.cost.estimate`'s dict (what a run would create,
what the folder already committed, and how many new jobs the caps admit).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from leapbatch.cli._common import count, number
from leapbatch.folder.state import LedgerState
from leapbatch.jobs import Job
from leapbatch.manifest import Manifest
from leapbatch.manifest import cost as costs
from leapbatch.manifest.expand import Expansion
from leapbatch.pricing import PRESETS, Price, parse_price
from leapbatch.run.budget import Budget, Caps
from leapbatch.run.resume import Action, classify


def _price(text: str) -> Price:
    try:
        return parse_price(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{exc}, got {text!r}") from None


def add_money_options(parser: argparse.ArgumentParser) -> None:
    """Add --price, --max-usd and --max-images (they override the manifest's `pricing:` and `budget:`)."""
    parser.add_argument(
        "--price",
        type=_price,
        metavar="PRICE",
        help="the price to estimate and commit at, over the manifest's `pricing:`: a Leap preset "
        f"({', '.join(PRESETS)}; default payg), an amount per image (0.02) or per GPU second (0.0004/s)",
    )
    parser.add_argument(
        "--max-usd",
        type=number("an amount", zero=True),
        metavar="AMOUNT",
        help="the most this folder may commit, over all its runs (the price's currency; over budget.max_usd)",
    )
    parser.add_argument(
        "--max-images",
        type=count,
        metavar="N",
        help="the most images this folder may create, over all its runs (over budget.max_images)",
    )


def price_of(manifest: Manifest, args: argparse.Namespace) -> Price:
    """Return the price in force: --price, else the manifest's `pricing:` (pay as you go if it has none)."""
    price: Price | None = args.price
    if price is None:
        return manifest.price
    return price


def caps_of(manifest: Manifest, args: argparse.Namespace) -> Caps:
    """Return the budget caps in force: each of --max-usd and --max-images over the manifest's `budget:`."""
    budget = manifest.budget
    max_usd = args.max_usd if args.max_usd is not None else budget.max_usd
    max_images = args.max_images if args.max_images is not None else budget.max_images
    return Caps(None if max_usd is None else Decimal(repr(max_usd)), max_images)


def to_create(jobs: Sequence[Job], state: LedgerState | None, *, retry_failed: bool) -> list[Job]:
    """Return the jobs a run would create, in the order it creates them (every job, without a ledger)."""
    if state is None:
        return list(jobs)
    return classify(jobs, state, retry_failed=retry_failed).by_action[Action.CREATE]


def estimate(
    expansion: Expansion, state: LedgerState | None, price: Price, caps: Caps, *, retry_failed: bool
) -> dict[str, Any]:
    """Return what a run of `expansion` on a folder with ledger `state` would cost (`cost.estimate`'s dict)."""
    new = to_create(expansion.jobs, state, retry_failed=retry_failed)
    budget = None
    spend = state.spend if state is not None else None
    if caps.max_cost is not None or caps.max_images is not None:
        used = spend.free_images if spend else 0
        within = Budget(caps, price, free_used=used).jobs_within(spend.copy() if spend else LedgerState().spend, new)
        budget = {
            "max_usd": None if caps.max_cost is None else float(caps.max_cost),
            "max_images": caps.max_images,
            "jobs_within": within,
        }
    committed = spend.to_json() if spend is not None and spend.committed_images else None
    return costs.estimate(new, price, axes=expansion.axis_values, committed=committed, budget=budget)
