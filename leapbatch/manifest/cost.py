"""Cost estimates for `plan` and the run's consent: jobs to create x a `Price` -> one plain dict -> lines. Pure.

Resume-aware by its arguments: the caller passes only the jobs a run would create (new ones; done jobs cost
nothing) and what the folder's ledger already committed (jobs in flight or with an unknown create are already
spent), so `total` is the folder's whole cost when the run is done. Jobs are priced in the order a run creates
them, so a subscription's free images go to the same jobs in the estimate as in the run. Every estimate names its
price (`price.label`: the preset and its date, or "your figure").
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from leapbatch.errors import plural
from leapbatch.jobs import Job
from leapbatch.manifest.expand import value_label
from leapbatch.manifest.template import printable
from leapbatch.pricing import Price, Quota, money

_VALUES_SHOWN = 8


def estimate(
    jobs: Sequence[Job],
    price: Price,
    *,
    axes: Mapping[str, Iterable[str]],
    committed: Mapping[str, Any] | None = None,
    budget: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Return the cost of creating `jobs` at `price`, in total, per model and per axis value, as a JSON-ready dict.

    `axes` gives each axis name's values in the order `plan` shows them (a value no new job has costs 0).
    `committed` is `Spend.to_json()` of the folder (None: no ledger yet); `budget` is the caps with how many of the
    jobs fit within them (`jobs_within`), or None for no caps.
    """
    quota = Quota(price, used=committed["free_images"] if committed else 0)
    total = Decimal(0)
    models: dict[str, Decimal] = {}
    by_axis = {name: dict.fromkeys(values, Decimal(0)) for name, values in axes.items()}  # in the plan's order
    for job in jobs:
        cost, _ = quota.charge(job.request.steps, job.image_count)
        total += cost
        models[job.model_id] = models.get(job.model_id, Decimal(0)) + cost
        for name, values in by_axis.items():
            if name in job.variables:
                label = value_label(job.variables[name])
                values[label] = values.get(label, Decimal(0)) + cost
    already = Decimal(repr(committed["cost"])) if committed else Decimal(0)
    return {
        "estimate": True,
        "price": price.to_json(),
        "to_spend": float(total),
        "jobs": len(jobs),
        "images": sum(job.image_count for job in jobs),
        "models": {model: float(cost) for model, cost in models.items()},
        "axes": {name: {value: float(cost) for value, cost in values.items()} for name, values in by_axis.items()},
        "committed": dict(committed) if committed else None,
        "total": float(already + total),
        "budget": dict(budget) if budget else None,
    }


def lines(cost: Mapping[str, Any], *, folder: str | None = None) -> list[str]:
    """Return the cost section of `plan` for people, from `estimate`'s dict."""
    currency = cost["price"]["currency"]

    def amount(value: float) -> str:
        return money(Decimal(repr(value)), currency)

    images = plural(cost["images"], "new image" if cost["committed"] else "image", grouped=True)
    shown = [f"  cost: about {amount(cost['to_spend'])} for {images}; an estimate at {cost['price']['label']}"]
    if len(cost["models"]) > 1:
        shown += [f"    model {printable(model)}: {amount(value)}" for model, value in cost["models"].items()]
    for name, values in cost["axes"].items():
        parts = [f"{printable(value)} {amount(each)}" for value, each in list(values.items())[:_VALUES_SHOWN]]
        more = f", ... ({len(values):,} values)" if len(values) > _VALUES_SHOWN else ""
        shown.append(f"    {name}: {', '.join(parts)}{more}")
    committed = cost["committed"]
    if committed:
        where = f" in {folder}" if folder else ""
        shown.append(
            f"    already committed{where}: {amount(committed['cost'])} ({plural(committed['images'], 'image')}: "
            f"{committed['spent']['images']:,} made, {committed['unknown']['images']:,} with no answer yet, "
            f"counted as spent); total {amount(cost['total'])}"
        )
    budget = cost["budget"]
    if budget:
        caps = [f"{amount(budget['max_usd'])}" if budget["max_usd"] is not None else None]
        caps.append(plural(budget["max_images"], "image", grouped=True) if budget["max_images"] is not None else None)
        within = budget["jobs_within"]
        fits = "all fit" if within == cost["jobs"] else f"the run stops after {within:,} of {cost['jobs']:,} new jobs"
        shown.append(f"    budget: at most {' and '.join(c for c in caps if c)}: {fits}")
    return shown
