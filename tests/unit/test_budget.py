"""Specs of the budget caps (`leapbatch.run.budget`), pure: creates are admitted while the folder's committed spend
stays within the caps; the create that would cross one is not admitted, nor any after it in the run; each admitted
create is priced by the run's quota, free images first."""

from __future__ import annotations

from decimal import Decimal

from leapbatch.folder.records import IntentRecord, SubmittedRecord
from leapbatch.folder.spend import Attempt, Spend
from leapbatch.folder.state import fold
from leapbatch.jobs import Job
from leapbatch.pricing import DEFAULT_PRICE, Price
from leapbatch.run.budget import Budget, BudgetStop, Caps
from leapbatch.wire import CreateInferenceDto

STARTER = Price.of_preset("starter")


def admit_all(budget: Budget, spend: Spend, images: list[int]) -> list[Decimal | None]:
    """Try a create of each number of images in turn, counting every admitted one in `spend` as the runner's intent
    does, and return what each was admitted at (None: refused)."""
    costs: list[Decimal | None] = []
    for count in images:
        admitted = budget.admit(spend, 5, count)
        if admitted is not None:
            spend.opened(Attempt(count, admitted[0], free=admitted[1]))
        costs.append(None if admitted is None else admitted[0])
    return costs


def key_of(budget: Budget) -> str:
    """Return the key of the cap `budget` reached."""
    assert budget.reached is not None
    return budget.reached.key


def jobs(count: int, images: int = 1) -> list[Job]:
    """Return `count` jobs of `images` images each."""
    return [
        Job.build("m", CreateInferenceDto(prompt=f"job {i}", steps=5, number_of_images=images)) for i in range(count)
    ]


def test_creates_are_admitted_until_the_image_cap_and_the_crossing_one_is_not() -> None:
    """With max_images 3, three one-image creates are admitted at $0.01 each; the fourth is not, and says why."""
    budget = Budget(Caps(max_images=3), DEFAULT_PRICE)

    costs = admit_all(budget, Spend(), [1, 1, 1, 1])

    assert [Decimal("0.01")] * 3 + [None] == costs
    assert BudgetStop("max_images", "3 of 3 images committed") == budget.reached


def test_after_a_cap_is_reached_no_create_is_admitted_even_one_that_would_fit() -> None:
    """Once the crossing create was refused, every later one is too (the run stops, in order)."""
    budget = Budget(Caps(max_images=3), DEFAULT_PRICE)

    costs = admit_all(budget, Spend(), [2, 2, 1, 1])

    assert [Decimal("0.01") * 2, None, None, None] == costs
    assert BudgetStop("max_images", "2 of 3 images committed") == budget.reached


def test_a_job_that_would_cross_the_cap_half_way_is_not_admitted() -> None:
    """A create of 2 images with one image left under the cap is refused whole."""
    budget = Budget(Caps(max_images=5), DEFAULT_PRICE)

    assert [Decimal("0.02"), Decimal("0.02"), None] == admit_all(budget, Spend(), [2, 2, 2])


def test_caps_count_what_the_folder_already_committed() -> None:
    """The caps bound the folder across runs: spend in its ledger, unknown outcomes included, counts against them."""
    earlier = fold(
        [
            IntentRecord(t=1, key="a", model="m", fingerprint="fa", request={"numberOfImages": 2}, cost=0.02),
            SubmittedRecord(t=2, key="a", inference_id="id-a"),
            IntentRecord(t=3, key="b", model="m", fingerprint="fb", request={"numberOfImages": 1}, cost=0.01),
        ]
    ).spend
    budget = Budget(Caps(max_images=4), DEFAULT_PRICE)

    assert [Decimal("0.01"), None] == admit_all(budget, earlier, [1, 1])


def test_creates_are_admitted_until_the_money_cap() -> None:
    """With max_usd $0.05 at Starter ($0.0175), two creates fit ($0.035), the third would be $0.0525: refused."""
    budget = Budget(Caps(max_cost=Decimal("0.05")), STARTER)

    assert [Decimal("0.0175"), Decimal("0.0175"), None] == admit_all(budget, Spend(), [1, 1, 1])
    assert BudgetStop("max_usd", "$0.035 of $0.05 committed") == budget.reached


def test_a_cap_reached_exactly_admits_the_create_that_reaches_it() -> None:
    """Reaching a cap is allowed, crossing it is not: max_usd $0.10 at $0.01 admits exactly ten one-image creates."""
    budget = Budget(Caps(max_cost=Decimal("0.10")), DEFAULT_PRICE)

    costs = admit_all(budget, Spend(), [1] * 11)

    assert [Decimal("0.01")] * 10 + [None] == costs


def test_free_quota_images_cost_nothing_against_the_money_cap() -> None:
    """With 2 included images left and max_usd $0.02 at $0.01, the first two images are free, two more fit."""
    budget = Budget(Caps(max_cost=Decimal("0.02")), Price.of_preset("payg", included_images=2))

    costs = admit_all(budget, Spend(), [1, 1, 1, 1, 1])

    assert [Decimal(0), Decimal(0), Decimal("0.01"), Decimal("0.01"), None] == costs


def test_free_images_the_folder_already_took_are_not_free_again() -> None:
    """A later run's budget starts its quota past the free images the folder's earlier creates used."""
    budget = Budget(Caps(), Price.of_preset("payg", included_images=3), free_used=2)

    assert [Decimal(0), Decimal("0.01")] == admit_all(budget, Spend(), [1, 1])


def test_a_create_refused_by_the_money_cap_takes_no_free_image() -> None:
    """A create that would cross the money cap is not sent and is told no free image (the run stops anyway)."""
    budget = Budget(Caps(max_cost=Decimal(0)), Price.of_preset("payg", included_images=1))
    spend = Spend()

    assert [None] == admit_all(budget, spend, [3])
    assert (0, 0) == (spend.committed_images, spend.free_images)


def test_the_image_cap_counts_free_images_too() -> None:
    """Free images are still images: max_images bounds them whatever they cost."""
    budget = Budget(Caps(max_images=2), Price.of_preset("payg", included_images=10))

    assert [Decimal(0), Decimal(0), None] == admit_all(budget, Spend(), [1, 1, 1])


def test_both_caps_hold_at_once() -> None:
    """With max_images 10 and max_usd $0.03, the money cap stops first; the image cap names itself when it is first."""
    money_first = Budget(Caps(max_cost=Decimal("0.03"), max_images=10), DEFAULT_PRICE)
    images_first = Budget(Caps(max_cost=Decimal("1"), max_images=2), DEFAULT_PRICE)

    assert 3 == len([c for c in admit_all(money_first, Spend(), [1] * 5) if c is not None])
    assert 2 == len([c for c in admit_all(images_first, Spend(), [1] * 5) if c is not None])
    assert ("max_usd", "max_images") == (key_of(money_first), key_of(images_first))


def test_no_caps_admit_everything() -> None:
    """Without caps, every create is admitted at its price."""
    budget = Budget(Caps(), DEFAULT_PRICE)

    assert [Decimal("0.01") * 3] * 100 == admit_all(budget, Spend(), [3] * 100)
    assert budget.reached is None


def test_images_recorded_without_a_cost_are_priced_at_the_runs_price_against_the_money_cap() -> None:
    """Intents written before prices were recorded count at the run's price: 3 unpriced images at $0.01 leave room
    for two more under $0.05."""
    earlier = fold(
        [IntentRecord(t=1, key="a", model="m", fingerprint="fa", request={"numberOfImages": 3}, cost=None)]
    ).spend
    budget = Budget(Caps(max_cost=Decimal("0.05")), DEFAULT_PRICE)

    assert Decimal("0.03") == budget.committed_cost(earlier)
    assert [Decimal("0.01"), Decimal("0.01"), None] == admit_all(budget, earlier, [1, 1, 1])


def test_jobs_within_says_how_many_jobs_in_order_the_budget_admits() -> None:
    """`jobs_within` counts the jobs, in order, a fresh budget admits before it stops (the folder's committed spend
    counted), and leaves the folder's spend as it was."""
    spend = fold(
        [IntentRecord(t=1, key="a", model="m", fingerprint="fa", request={"numberOfImages": 1}, cost=0.01)]
    ).spend
    budget = Budget(Caps(max_images=10), DEFAULT_PRICE)

    assert 4 == budget.jobs_within(spend, jobs(40, images=2))
    assert 1 == spend.committed_images
    assert 9 == Budget(Caps(max_cost=Decimal("0.10")), DEFAULT_PRICE).jobs_within(spend, jobs(40))
    assert 40 == Budget(Caps(), DEFAULT_PRICE).jobs_within(Spend(), jobs(40))
