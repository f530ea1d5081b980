"""Plan summaries: an Expansion -> one plain dict (what `plan --json` prints) -> the lines `plan` shows people.

Pure: `summarize` is a function of its arguments only (no clock, files or manifest), so later inputs such as a
ledger's state can be added as more plain arguments. The time estimate uses the generation-time model shared with
the emulator and the runner (`wire.expected_generation_seconds`): the sum over jobs, spread over `max_in_flight`
jobs at once, but never less than the longest job or than the jobs' creates at `requests_per_second`. The cost
comes in already estimated (`leapbatch.manifest.cost`), as it depends on the folder's ledger.
"""

from __future__ import annotations

from typing import Any

from leapbatch.errors import plural
from leapbatch.manifest.cost import lines as cost_lines
from leapbatch.manifest.expand import Expansion
from leapbatch.manifest.template import printable
from leapbatch.wire import expected_generation_seconds

PLAN_FORMAT = 1
_VALUES_SHOWN = 8


def summarize(
    expansion: Expansion,
    *,
    max_in_flight: int,
    requests_per_second: float,
    cost: dict[str, Any],
    examples: int = 3,
) -> dict[str, Any]:
    """Return the plan of an expansion as a JSON-ready dict (its shape is documented in docs/manifest.md);
    `cost` is `leapbatch.manifest.cost.estimate`'s dict."""
    jobs = expansion.jobs
    seconds = [expected_generation_seconds(job.request.steps, job.request.number_of_images) for job in jobs]
    generation = sum(seconds)
    wall = max(generation / max_in_flight, len(jobs) / requests_per_second, max(seconds, default=0.0))
    return {
        "format": PLAN_FORMAT,
        "jobs": len(jobs),
        "images": expansion.images,
        "combinations": expansion.combinations,
        "excluded": expansion.excluded,
        "included": expansion.included,
        "duplicates": expansion.duplicates,
        "sampled_out": expansion.sampled_out,
        "shard": None
        if expansion.shard is None
        else {"index": expansion.shard.index, "count": expansion.shard.count, "manifest_jobs": expansion.all_jobs},
        "models": {model: {"jobs": t.jobs, "images": t.images} for model, t in expansion.models.items()},
        "axes": expansion.axis_values,
        "estimate": {
            "generation_seconds": round(generation, 1),
            "wall_clock_seconds": round(wall, 1),
            "max_in_flight": max_in_flight,
            "requests_per_second": requests_per_second,
        },
        "cost": cost,
        "examples": [
            {"key": job.key, "model": job.model_id, "request": job.request.to_wire(), "variables": dict(job.variables)}
            for job in jobs[: max(examples, 0)]
        ],
    }


def duration(seconds: float) -> str:
    """Return a duration for people: `45 s`, `3 min 20 s`, `2 h 5 min`."""
    total = round(seconds)
    if total < 60:
        return f"{total} s"
    if total < 3600:
        return f"{total // 60} min {total % 60} s"
    return f"{total // 3600} h {total % 3600 // 60} min"


def render(summary: dict[str, Any], *, folder: str | None = None) -> list[str]:
    """Return the lines of a plan for people, from `summarize`'s dict; text from the manifest is shown escaped
    (`folder`: the output folder whose ledger the cost counts, if it has one)."""
    lines = [f"{plural(summary['jobs'], 'job', grouped=True)}, {plural(summary['images'], 'image', grouped=True)}"]
    shard = summary["shard"]
    if shard is not None:
        lines[0] = f"shard {shard['index']}/{shard['count']}: {lines[0]}, of the manifest's {shard['manifest_jobs']:,}"
    if summary["combinations"]:
        lines.append(
            f"  from {summary['combinations']:,} combinations: {summary['excluded']:,} excluded, "
            f"{plural(summary['duplicates'], 'duplicate', grouped=True)} collapsed, "
            f"{summary['sampled_out']:,} sampled out; "
            f"{summary['included']:,} included"
        )
    else:
        lines.append(
            f"  from {plural(summary['included'], 'include entry', 'include entries', grouped=True)}, "
            f"{plural(summary['duplicates'], 'duplicate', grouped=True)} collapsed"
        )
    for model, totals in summary["models"].items():
        jobs, images = plural(totals["jobs"], "job", grouped=True), plural(totals["images"], "image", grouped=True)
        lines.append(f"  model {printable(model)}: {jobs}, {images}")
    if summary["axes"]:
        lines.append("  axes:")
        width = max(len(name) for name in summary["axes"])
        for name, counts in summary["axes"].items():
            shown = ", ".join(
                f"{printable(value)} ({count:,})" for value, count in list(counts.items())[:_VALUES_SHOWN]
            )
            more = f", ... ({len(counts):,} values)" if len(counts) > _VALUES_SHOWN else ""
            lines.append(f"    {name:<{width}}  {shown}{more}")
    estimate = summary["estimate"]
    lines.append(
        f"  time: about {duration(estimate['generation_seconds'])} of generation, "
        f"{duration(estimate['wall_clock_seconds'])} wall clock at {plural(estimate['max_in_flight'], 'job')} in flight"
    )
    lines += cost_lines(summary["cost"], folder=folder)
    if summary["examples"]:
        lines.append("  examples:")
    for example in summary["examples"]:
        request = example["request"]
        lines.append(f"    {printable(request['prompt'])}")  # prompts are sent as written, shown escaped
        size = f"{request.get('width', '?')}x{request.get('height', '?')}, {request.get('steps', '?')} steps"
        lines.append(f"      seed {request.get('seed')}, {size}, key {example['key'][:12]}")
    return lines
