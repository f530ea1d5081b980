"""Prices: what one job costs, from a dated preset of Leap's plans or the user's own figure. Pure.

Leap priced its image API per image, flat, whatever the steps, size or model (docs/leap-api-facts.md, "Pricing");
`numberOfImages` multiplies. A time-priced backend is priced per GPU second instead, from the generation-time model
the runner and `plan` use (`wire.expected_generation_seconds`). Amounts are `Decimal`s, so 40 images at $0.0175 are
$0.70, not $0.7000000000000001; a `Price` is a value, and every estimate names the one it used (`Price.label`).

Included images (a subscription's monthly quota, `included_images_left`) are free: `Quota` hands them out to the
first images priced against it, in order, and prices the rest. A folder's ledger records the free images each create
used, and those are counted off the quota in its later runs and plans (set the figure once, when the folder starts).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from leapbatch.wire import expected_generation_seconds

DEFAULT_CURRENCY = "USD"
LEAP_SOURCE = "Leap's pricing page (leap-docs, 2023-07), docs/leap-api-facts.md"
LEAP_DATE = "2023-07"


@dataclass(frozen=True, slots=True)
class Preset:
    """One of Leap's published plans: the price per image past its monthly quota, and where the figure is from."""

    name: str
    title: str
    per_image: Decimal
    monthly_fee: Decimal
    monthly_images: int  # the plan's quota: images included in the fee


PRESETS = {
    preset.name: preset
    for preset in (
        Preset("payg", "pay as you go", Decimal("0.01"), Decimal(0), 0),
        Preset("starter", "Starter", Decimal("0.0175"), Decimal(5), 250),
        Preset("creator", "Creator", Decimal("0.0125"), Decimal(27), 2_500),
        Preset("professional", "Professional", Decimal("0.009"), Decimal(220), 25_000),
    )
}
DEFAULT_PRESET = "payg"


@dataclass(frozen=True, slots=True)
class Price:
    """What a job costs: per image, or per expected GPU second; `preset` names the Leap plan it came from."""

    per_image: Decimal | None = None
    per_gpu_second: Decimal | None = None
    currency: str = DEFAULT_CURRENCY
    preset: str | None = None
    included_images: int = 0  # images still free this month (a subscription's quota), used first

    def __post_init__(self) -> None:
        if (self.per_image is None) == (self.per_gpu_second is None):
            raise ValueError("a price is per image or per GPU second, not both or neither")

    @classmethod
    def of_preset(cls, name: str, *, included_images: int = 0) -> Price:
        """Return the price of one of Leap's plans (`PRESETS`)."""
        return cls(per_image=PRESETS[name].per_image, preset=name, included_images=included_images)

    def job_cost(self, steps: int | None, number_of_images: int | None, *, free_images: int = 0) -> Decimal:
        """Return what one job costs, `free_images` of its images being covered by the quota."""
        images = number_of_images or 1
        if self.per_gpu_second is not None:
            seconds = Decimal(repr(expected_generation_seconds(steps, images)))
            return self.per_gpu_second * seconds
        assert self.per_image is not None
        return self.per_image * max(0, images - free_images)

    @property
    def label(self) -> str:
        """Return the price for people: `pay as you go: $0.01 per image (leap-docs, 2023-07)`."""
        if self.per_gpu_second is not None:
            return f"{money(self.per_gpu_second, self.currency)} per GPU second (your figure)"
        assert self.per_image is not None
        each = f"{money(self.per_image, self.currency)} per image"
        quota = f", {self.included_images:,} included images left" if self.included_images else ""
        if self.preset is None:
            return f"{each} (your figure){quota}"
        return f"{PRESETS[self.preset].title}: {each} (leap-docs, {LEAP_DATE}){quota}"

    def to_json(self) -> dict[str, object]:
        """Return the price as `plan --json` and `status --json` show it."""
        preset = PRESETS.get(self.preset) if self.preset else None
        return {
            "preset": self.preset,
            "per_image": None if self.per_image is None else float(self.per_image),
            "per_gpu_second": None if self.per_gpu_second is None else float(self.per_gpu_second),
            "currency": self.currency,
            "included_images_left": self.included_images,
            "source": LEAP_SOURCE if preset else "the manifest or the command line",
            "date": LEAP_DATE if preset else None,
            "label": self.label,
        }


DEFAULT_PRICE = Price.of_preset(DEFAULT_PRESET)


class Quota:
    """Prices jobs one after another, the first `price.included_images` images free, less `used` (the free images
    the folder's earlier creates already took)."""

    def __init__(self, price: Price, *, used: int = 0) -> None:
        self.price = price
        self.free_left = max(0, price.included_images - used) if price.per_image is not None else 0

    def charge(self, steps: int | None, number_of_images: int | None) -> tuple[Decimal, int]:
        """Return the cost of the next job and how many of its images were free, using those up."""
        free = min(self.free_left, number_of_images or 1)
        self.free_left -= free
        return self.price.job_cost(steps, number_of_images, free_images=free), free


def parse_price(text: str) -> Price:
    """Return the price a command line names: a preset (`creator`), an amount per image (`0.02`), or per GPU
    second (`0.0004/s`); raise ValueError saying what is accepted."""
    if text in PRESETS:
        return Price.of_preset(text)
    per_second = text.endswith("/s")
    try:
        amount = Decimal(text.removesuffix("/s"))
    except InvalidOperation:
        amount = Decimal(-1)
    if not amount.is_finite() or amount < 0:
        presets = ", ".join(PRESETS)
        raise ValueError(f"expected a preset ({presets}), an amount per image (0.02) or per GPU second (0.0004/s)")
    return Price(per_gpu_second=amount) if per_second else Price(per_image=amount)


def money(amount: Decimal, currency: str = DEFAULT_CURRENCY) -> str:
    """Return an amount for people: `$1,234.50`; `$0.0175` keeps the digits a price has; `12.00 EUR`."""
    exponent = amount.normalize().as_tuple().exponent
    places = max(2, min(4, -exponent)) if isinstance(exponent, int) else 2
    if amount.is_finite():  # half up, as `--confirm-cost` reads the figure shown (format alone rounds half even)
        amount = amount.quantize(Decimal(1).scaleb(-places), ROUND_HALF_UP)
    text = f"{amount:,.{places}f}"
    return f"${text}" if currency == "USD" else f"{text} {currency}"
