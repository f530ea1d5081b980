"""Consent bound to the plan: a costly run asks first, and a consent covers only the cost and jobs it was given for.

The rules (docs/cli.md, "Consent"), checked before anything is sent:
- `--confirm-cost X` binds the run to the folder's total (what it committed plus this run's estimate, as `plan`
  shows it): a larger total refuses the run, whatever the threshold.
- Otherwise a run whose estimate (what it would create) is at most `budget.confirm_above` just runs.
- Above it, a consent the folder recorded covers the run if neither the total nor the manifest's job count grew
  past it; else `--yes` consents, an interactive terminal asks "Continue? [y/N]", and anything else refuses.
- A refusal is `NotConfirmedError` (exit 2), before any create. A consent given is returned as a `consent` record
  for the ledger, so the next run of the same plan (a resume) asks nothing and a grown plan asks again.
- `run --local` bills nothing: it asks nothing, though `--confirm-cost` is still checked if given.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from leapbatch.cli._common import say
from leapbatch.cli.shards import threshold_share
from leapbatch.errors import NotConfirmedError, plural
from leapbatch.folder.ledger import Ledger, now
from leapbatch.folder.records import ConsentRecord
from leapbatch.jobs import Shard
from leapbatch.manifest import Manifest
from leapbatch.pricing import money

_SHOWN = Decimal("0.0001")  # the finest digit `money` shows: the figure a user can confirm


@dataclass(frozen=True, slots=True)
class Asked:
    """What the run is asked to consent to, and how it may consent."""

    threshold: Decimal  # budget.confirm_above
    jobs: int  # the manifest's jobs
    yes: bool = False
    confirm_cost: Decimal | None = None
    local: bool = False
    ask: Callable[[str], bool] | None = None  # None: no terminal to ask on


def consent(cost: Mapping[str, Any], recorded: ConsentRecord | None, asked: Asked) -> ConsentRecord | None:
    """Return the consent record to write, or None if the run needs none; raise NotConfirmedError if refused."""
    currency = cost["price"]["currency"]
    total = Decimal(repr(cost["total"])).quantize(_SHOWN, ROUND_HALF_UP)
    to_spend = Decimal(repr(cost["to_spend"]))

    def record(agreed: Decimal) -> ConsentRecord:
        return ConsentRecord(
            t=now(), total=float(agreed), jobs=asked.jobs, images=cost["images"], price=cost["price"]["label"]
        )

    if asked.confirm_cost is not None:
        if total > asked.confirm_cost:
            raise NotConfirmedError(
                f"the plan costs about {money(total, currency)}, more than the {money(asked.confirm_cost, currency)}"
                " confirmed with --confirm-cost: nothing was created",
                hint=f"check `leapbatch plan` ({_what(cost)}), then confirm its figure: "
                f"--confirm-cost {_figure(total)}",
            )
        return record(asked.confirm_cost)
    if asked.local or to_spend <= asked.threshold:
        return None
    if recorded is not None and total <= Decimal(repr(recorded.total)) and asked.jobs <= recorded.jobs:
        return None
    if asked.yes:
        return record(total)
    question = f"This run creates {_what(cost)}. Continue? [y/N] "
    if asked.ask is not None:
        if asked.ask(question):
            return record(total)
        raise NotConfirmedError("not confirmed: nothing was created")
    grew = ""
    if recorded is not None:
        grew = (
            f"; it grew past what was confirmed ({money(Decimal(repr(recorded.total)), currency)} for "
            f"{plural(recorded.jobs, 'job', grouped=True)}; now {plural(asked.jobs, 'job', grouped=True)})"
        )
    raise NotConfirmedError(
        f"this run creates {_what(cost)}: over budget.confirm_above ({money(asked.threshold, currency)}), it needs"
        f" a consent{grew}",
        hint=f"pass --yes, or --confirm-cost {_figure(total)} to bind it to this plan's total"
        " (`leapbatch plan` shows it)",
    )


def _figure(amount: Decimal) -> str:
    """Return `amount` as `plan` shows it and `--confirm-cost` takes it: `0.40`, `1234.50`, `0.3125`."""
    return money(amount).removeprefix("$").replace(",", "")


def _what(cost: Mapping[str, Any]) -> str:
    """Return `12,000 images, about $150.00 at <price>` (and the folder's total if it committed spend already)."""
    currency = cost["price"]["currency"]
    to_spend = money(Decimal(repr(cost["to_spend"])), currency)
    said = f"{plural(cost['images'], 'image', grouped=True)}, about {to_spend} at {cost['price']['label']}"
    if cost["committed"]:
        said += f" ({money(Decimal(repr(cost['total'])), currency)} in all with what the folder committed)"
    return said


def agree(
    args: argparse.Namespace,
    manifest: Manifest,
    jobs: int,
    cost: dict[str, Any],
    ledger: Ledger,
    *,
    shard: Shard | None = None,
) -> None:
    """Say what the run costs and get the consent it needs (recorded in the ledger), or refuse it (the shell);
    a shard asks above its share of the threshold."""
    if cost["jobs"] and not args.quiet:
        free = " (the emulator bills nothing)" if args.local else ""
        amount = money(Decimal(repr(cost["to_spend"])), cost["price"]["currency"])
        images = plural(cost["images"], "image", grouped=True)
        budget = cost["budget"]
        if budget and budget["jobs_within"] < cost["jobs"]:
            free += f"; the budget admits {budget['jobs_within']:,} of its {plural(cost['jobs'], 'job', grouped=True)}"
        say(f"cost: about {amount} for {images}; an estimate at {cost['price']['label']}{free}")
    asked = Asked(
        threshold=threshold_share(Decimal(repr(manifest.budget.confirm_above)), shard),
        jobs=jobs,
        yes=args.yes,
        confirm_cost=None if args.confirm_cost is None else Decimal(repr(args.confirm_cost)),
        local=args.local,
        ask=ask_terminal if sys.stdin.isatty() and sys.stderr.isatty() else None,
    )
    record = consent(cost, ledger.state.consent, asked)
    if record is not None:
        ledger.append(record)


def ask_terminal(question: str) -> bool:
    """Ask on the terminal; only `y` or `yes` consents (end of input does not)."""
    print(question, end="", file=sys.stderr, flush=True)
    try:
        answer = input()
    except EOFError:
        return False
    return answer.strip().lower() in ("y", "yes")
