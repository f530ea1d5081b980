"""What a folder's creates committed, from its ledger: the pure tally `state.fold` keeps as it folds the records.

Every intent is one create that may be paid for; it commits its `cost` (and its images) from the moment it is
written, so a crash, a lost answer or a kill -9 can never leave spend uncounted. Then each attempt is:

| charge    | reached by                                                   | counts as             |
|-----------|--------------------------------------------------------------|-----------------------|
| `unknown` | the intent, until the create's outcome is known; for good    | committed (not spent) |
|           | when a later intent of the job replaces it unanswered        |                       |
| `spent`   | `submitted` (created or adopted), `finished`, or any failure | spent (and committed) |
|           | after the job was made (generate, timeout, download)         |                       |
| `none`    | `refused`, or a `failed` create with `no_job` (the server    | nothing               |
|           | answered no, or never got the request)                       |                       |

So an unknown outcome counts as spent until proven otherwise, and only a refusal gives the money back. The tally
is kept as records arrive (O(1) each), so the runner can check a budget before every create of a million jobs.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from decimal import Decimal
from enum import StrEnum
from typing import Any

from leapbatch.folder.records import (
    FailedRecord,
    FailStage,
    FinishedRecord,
    IntentRecord,
    Record,
    RefusedRecord,
    SubmittedRecord,
)


class Charge(StrEnum):
    """Whether a create was paid for, as far as the ledger knows."""

    UNKNOWN = "unknown"
    SPENT = "spent"
    NONE = "none"


@dataclass(frozen=True, slots=True)
class Attempt:
    """One create of a job: the images and cost it commits (cost None: recorded before prices were)."""

    images: int
    cost: Decimal | None
    charge: Charge = Charge.UNKNOWN
    free: int = 0  # images the included quota covered

    @classmethod
    def of(cls, intent: IntentRecord) -> Attempt:
        """Return the attempt an intent opens."""
        images = intent.request.get("numberOfImages") or 1
        cost = None if intent.cost is None else Decimal(repr(intent.cost))
        return cls(images if isinstance(images, int) else 1, cost, free=intent.free_images)


@dataclass(slots=True)
class Tally:
    """Images and money of some attempts; `unpriced` of those images had no recorded cost, `free` were covered by
    the included quota."""

    images: int = 0
    cost: Decimal = field(default_factory=Decimal)
    unpriced: int = 0
    free: int = 0

    def add(self, attempt: Attempt, sign: int = 1) -> None:
        """Count `attempt` in (sign 1) or out (sign -1)."""
        self.images += sign * attempt.images
        self.free += sign * attempt.free
        if attempt.cost is None:
            self.unpriced += sign * attempt.images
        else:
            self.cost += sign * attempt.cost


@dataclass(slots=True)
class Spend:
    """The folder's attempts by charge: `spent` (made), `unknown` (maybe made); `committed` is both."""

    spent: Tally = field(default_factory=Tally)
    unknown: Tally = field(default_factory=Tally)

    @property
    def committed_images(self) -> int:
        """Return the images spent or maybe spent."""
        return self.spent.images + self.unknown.images

    @property
    def free_images(self) -> int:
        """Return the images of the included quota the folder's creates took (a refused create gives them back)."""
        return self.spent.free + self.unknown.free

    @property
    def committed_cost(self) -> Decimal:
        """Return the money spent or maybe spent (images without a recorded cost not included)."""
        return self.spent.cost + self.unknown.cost

    def copy(self) -> Spend:
        """Return an independent copy (to try admissions on without touching the folder's tally)."""
        return Spend(replace(self.spent), replace(self.unknown))

    def to_json(self) -> dict[str, Any]:
        """Return the tally as `plan --json` and `status --json` show it (costs as recorded, in their currency)."""
        return {
            "images": self.committed_images,
            "cost": float(self.committed_cost),
            "spent": {"images": self.spent.images, "cost": float(self.spent.cost)},
            "unknown": {"images": self.unknown.images, "cost": float(self.unknown.cost)},
            "unpriced_images": self.spent.unpriced + self.unknown.unpriced,
            "free_images": self.free_images,
        }

    def opened(self, attempt: Attempt) -> Attempt:
        """Count a new attempt (an intent was written) and return it."""
        self.unknown.add(attempt)
        return attempt

    def charged(self, attempt: Attempt, record: Record) -> Attempt:
        """Return `attempt` after `record` about its job, moved between the tallies if its charge changed."""
        charge = _charge_after(attempt.charge, record)
        if charge is attempt.charge:
            return attempt
        for tally, old_or_new in ((self._tally(attempt.charge), -1), (self._tally(charge), 1)):
            if tally is not None:
                tally.add(attempt, old_or_new)
        return replace(attempt, charge=charge)

    def _tally(self, charge: Charge) -> Tally | None:
        return {Charge.SPENT: self.spent, Charge.UNKNOWN: self.unknown}.get(charge)


def _charge_after(charge: Charge, record: Record) -> Charge:
    """Return an attempt's charge after `record` (see the table above); a refusal only ends an unknown outcome."""
    if isinstance(record, SubmittedRecord | FinishedRecord):
        return Charge.SPENT
    if isinstance(record, RefusedRecord):
        return Charge.NONE if charge is Charge.UNKNOWN else charge
    if isinstance(record, FailedRecord):
        if record.stage is not FailStage.CREATE or record.inference_id is not None:
            return Charge.SPENT
        return Charge.NONE if record.no_job and charge is Charge.UNKNOWN else charge
    return charge
