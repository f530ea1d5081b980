"""Specs of prices (`leapbatch.pricing`): the dated presets of Leap's plans, the command line's `--price` forms, job
costs and free quotas in exact decimals, and amounts written for people."""

from __future__ import annotations

from decimal import Decimal
from typing import get_args

import pytest

from leapbatch.manifest.models import PresetName
from leapbatch.pricing import DEFAULT_PRICE, LEAP_DATE, PRESETS, Price, Quota, money, parse_price
from leapbatch.wire import expected_generation_seconds


def test_presets_carry_leaps_published_figures() -> None:
    """The presets are Leap's plans of 2023-07 (docs/leap-api-facts.md, "Pricing"): price per image past the quota,
    monthly fee, images included."""
    figures = {name: (p.per_image, p.monthly_fee, p.monthly_images) for name, p in PRESETS.items()}

    assert {
        "payg": (Decimal("0.01"), Decimal(0), 0),
        "starter": (Decimal("0.0175"), Decimal(5), 250),
        "creator": (Decimal("0.0125"), Decimal(27), 2_500),
        "professional": (Decimal("0.009"), Decimal(220), 25_000),
    } == figures
    assert "2023-07" == LEAP_DATE


def test_the_manifest_accepts_exactly_the_presets_there_are() -> None:
    """`pricing.preset` in a manifest names one of `PRESETS`, no more and no fewer."""
    assert sorted(PRESETS) == sorted(get_args(PresetName))


def test_with_no_price_set_a_job_costs_pay_as_you_go_and_says_so() -> None:
    """The default price is pay as you go, $0.01 an image, and its label names the preset and its date."""
    assert (Decimal("0.01"), "payg") == (DEFAULT_PRICE.per_image, DEFAULT_PRICE.preset)
    assert "pay as you go: $0.01 per image (leap-docs, 2023-07)" == DEFAULT_PRICE.label


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("payg", Price(per_image=Decimal("0.01"), preset="payg")),
        ("starter", Price(per_image=Decimal("0.0175"), preset="starter")),
        ("creator", Price(per_image=Decimal("0.0125"), preset="creator")),
        ("professional", Price(per_image=Decimal("0.009"), preset="professional")),
        ("0.02", Price(per_image=Decimal("0.02"))),
        ("0", Price(per_image=Decimal(0))),
        ("0.0004/s", Price(per_gpu_second=Decimal("0.0004"))),
    ],
)
def test_parse_price_reads_a_preset_an_amount_per_image_or_per_gpu_second(text: str, expected: Price) -> None:
    """`--price` takes a preset name, an amount per image, or an amount per GPU second ending in `/s`."""
    assert expected == parse_price(text)


@pytest.mark.parametrize("text", ["", "cheap", "Creator", "-0.01", "0.01/h", "/s", "nan", "inf", "1e999999999x"])
def test_parse_price_refuses_anything_else_saying_what_it_accepts(text: str) -> None:
    """Anything but a preset or a finite amount >= 0 raises ValueError naming the accepted forms."""
    with pytest.raises(ValueError, match=r"expected a preset \(payg, starter, creator, professional\)"):
        parse_price(text)


def test_a_price_is_per_image_or_per_gpu_second_never_both_or_neither() -> None:
    """A Price with both figures, or none, is refused."""
    with pytest.raises(ValueError, match="not both or neither"):
        Price()
    with pytest.raises(ValueError, match="not both or neither"):
        Price(per_image=Decimal(1), per_gpu_second=Decimal(1))


def test_costs_are_exact_decimals() -> None:
    """40 one-image jobs at Starter's $0.0175 cost exactly $0.70, not 0.7000000000000001."""
    starter = Price.of_preset("starter")

    total = sum((starter.job_cost(50, 1) for _ in range(40)), Decimal(0))

    assert Decimal("0.70") == total
    assert "0.7000" == str(total)


def test_number_of_images_multiplies_and_steps_do_not_matter_per_image() -> None:
    """A per-image price is flat whatever the steps; numberOfImages multiplies (None means 1)."""
    creator = Price.of_preset("creator")

    assert [Decimal("0.0125"), Decimal("0.0125"), Decimal("0.0500")] == [
        creator.job_cost(1, None),
        creator.job_cost(150, 1),
        creator.job_cost(50, 4),
    ]


def test_a_gpu_second_price_follows_the_runners_duration_model() -> None:
    """Per GPU second, a job costs the rate times `wire.expected_generation_seconds(steps, images)`."""
    rate = Decimal("0.0004")
    price = Price(per_gpu_second=rate)

    assert rate * Decimal(repr(expected_generation_seconds(30, 2))) == price.job_cost(30, 2)


def test_a_quota_gives_its_free_images_first_then_prices_the_rest() -> None:
    """With 3 included images left, jobs of 2 images cost 0 (2 free), then 1 image's price (1 free), then the full
    price (none free)."""
    quota = Quota(Price.of_preset("starter", included_images=3))

    charges = [quota.charge(5, 2) for _ in range(3)]

    assert [(Decimal(0), 2), (Decimal("0.0175"), 1), (Decimal("0.0350"), 0)] == charges
    assert 0 == quota.free_left


def test_a_quota_starts_past_the_free_images_already_used() -> None:
    """`used` free images (the folder's earlier creates) are off the quota; it never goes below none."""
    price = Price.of_preset("payg", included_images=3)

    assert [2, 0] == [Quota(price, used=1).free_left, Quota(price, used=5).free_left]


def test_a_gpu_second_price_has_no_free_images() -> None:
    """Included images are a per-image plan's quota: a per-GPU-second price starts with none."""
    assert 0 == Quota(Price(per_gpu_second=Decimal("0.001"), included_images=5)).free_left


@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [
        (Decimal("0.70"), "USD", "$0.70"),
        (Decimal("0.7000"), "USD", "$0.70"),
        (Decimal("0.0175"), "USD", "$0.0175"),
        (Decimal("0.009"), "USD", "$0.009"),
        (Decimal("1234.5"), "USD", "$1,234.50"),
        (Decimal(0), "USD", "$0.00"),
        (Decimal(12), "EUR", "12.00 EUR"),
        (Decimal("0.123456"), "USD", "$0.1235"),
    ],
)
def test_money_is_written_for_people(amount: Decimal, currency: str, expected: str) -> None:
    """Two decimals at least, up to four when a price has them, thousands grouped; `$` for USD, else the code."""
    assert expected == money(amount, currency)
