"""Pure: a folder's budget caps, checked before every create against what its ledger says was committed.

The rules (docs/cli.md, "Budget"):
- **Caps** are `max_cost` (in the price's currency: the manifest's `budget.max_usd` or `--max-usd`) and
  `max_images` (`budget.max_images` or `--max-images`); the command line wins. They bound the **folder**, across
  every run of it, so a resume, a crash or a second run continues from the true total.
- **Counted on committed spend** (`leapbatch.folder.spend`): an intent counts from the moment it is written, a
  create with an unknown outcome counts as spent, a create the server refused counts nothing.
- **The create that would cross a cap is not sent**, nor any create after it in the run (`reached` says which cap
  and where the folder stands): the run finishes the jobs in flight, then stops with one line and exit 6.
- Every create admitted is priced by the run's `Quota` (a subscription's free images first, less those the folder
  already took), and that cost (and its free images) is what its intent records.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from leapbatch.errors import plural
from leapbatch.folder.spend import Attempt, Spend
from leapbatch.jobs import Job, Shard
from leapbatch.pricing import Price, Quota, money


@dataclass(frozen=True, slots=True)
class Caps:
    """The most a folder may commit: money (in the price's currency) and images; None: no cap."""

    max_cost: Decimal | None = None
    max_images: int | None = None

    def share(self, shard: Shard | None) -> Caps:
        """Return a shard's part of these caps (itself without a shard): the parts of every shard add up to them."""
        if shard is None:
            return self
        cost = None if self.max_cost is None else share_amount(self.max_cost, shard)
        return Caps(cost, None if self.max_images is None else shard.share(self.max_images))


_FINEST = Decimal("0.0001")  # the finest digit an amount is shown (and split) in


def share_amount(amount: Decimal, shard: Shard) -> Decimal:
    """Return a shard's part of `amount`, split in ten-thousandths: the parts of every shard add up to it (or less
    than one ten-thousandth below)."""
    return Decimal(shard.share(int(amount / _FINEST))) * _FINEST


@dataclass(frozen=True, slots=True)
class BudgetStop:
    """Which cap the next create would have crossed, and the folder's committed spend against it."""

    key: str  # the manifest key of the cap: `max_usd` or `max_images`
    committed: str  # e.g. `$0.39 of $0.40 committed`


class Budget:
    """Admit creates while the folder's committed spend stays within the caps; price each one admitted."""

    def __init__(self, caps: Caps, price: Price, *, free_used: int = 0) -> None:
        self.caps = caps
        self._quota = Quota(price, used=free_used)
        self.reached: BudgetStop | None = None

    @property
    def price(self) -> Price:
        """Return the price creates are committed at."""
        return self._quota.price

    def admit(self, spend: Spend, steps: int | None, number_of_images: int) -> tuple[Decimal, int] | None:
        """Return the cost of the next create and its free images, or None (and set `reached`) if it would cross a
        cap; once a cap was reached, no create is admitted again in this run."""
        if self.reached is not None:
            return None
        images = spend.committed_images + number_of_images
        if self.caps.max_images is not None and images > self.caps.max_images:
            self.reached = BudgetStop(
                "max_images",
                f"{spend.committed_images:,} of {plural(self.caps.max_images, 'image', grouped=True)} committed",
            )
            return None
        free_before = self._quota.free_left
        cost, free = self._quota.charge(steps, number_of_images)
        committed = self.committed_cost(spend)
        if self.caps.max_cost is not None and committed + cost > self.caps.max_cost:
            self._quota.free_left = free_before  # not sent: its free images are still free
            currency = self.price.currency
            self.reached = BudgetStop(
                "max_usd", f"{money(committed, currency)} of {money(self.caps.max_cost, currency)} committed"
            )
            return None
        return cost, free

    def jobs_within(self, spend: Spend, jobs: Iterable[Job]) -> int:
        """Return how many of `jobs`, created in order, this budget admits before it stops (a fresh budget's
        answer: use one Budget for this and another for the run)."""
        trial = spend.copy()
        admitted = 0
        for job in jobs:
            admitted_cost = self.admit(trial, job.request.steps, job.image_count)
            if admitted_cost is None:
                break
            cost, free = admitted_cost
            trial.opened(Attempt(job.image_count, cost, free=free))
            admitted += 1
        return admitted

    def committed_cost(self, spend: Spend) -> Decimal:
        """Return the folder's committed money, images recorded without a cost priced at the run's price."""
        unpriced = spend.spent.unpriced + spend.unknown.unpriced
        return spend.committed_cost + (self.price.job_cost(None, unpriced) if unpriced else Decimal(0))
