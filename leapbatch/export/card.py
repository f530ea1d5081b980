"""The dataset card: the `README.md` every export starts with, as the Hugging Face Hub reads it.

A YAML header (`license`, `task_categories`, `size_categories`, `pretty_name`, `tags`, and `configs` naming each
split's data files, for a format `datasets` loads), then what a person needs to trust and remake the dataset: the
tool version, the manifest (its path, its sha256, its text), the models, the jobs and images per value of every
variable, what the folder spent, the split, and the commands that reproduce it. Nothing in it depends on the time
or the machine, so a re-export writes the same card.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from leapbatch import __version__
from leapbatch.export.formats import Layout
from leapbatch.export.images import ExportImage
from leapbatch.folder.results import REQUEST_NAMES
from leapbatch.manifest.expand import value_label

_SIZES = (
    (1_000, "n<1K"),
    (10_000, "1K<n<10K"),
    (100_000, "10K<n<100K"),
    (1_000_000, "100K<n<1M"),
    (10_000_000, "1M<n<10M"),
    (100_000_000, "10M<n<100M"),
)


@dataclass(frozen=True, slots=True)
class CardFacts:
    """What the card says beyond the images: where they came from and how the export was made."""

    name: str
    format: str
    license: str
    command: str  # the export command line that made it (as a user would type it)
    manifest_path: str | None = None
    manifest_sha256: str | None = None
    manifest_text: str | None = None
    spend: Mapping[str, Any] | None = None  # `Spend.to_json()`
    currency: str = "USD"
    split_text: str = "train=1"
    seed: int = 0
    caption: str | None = None  # the --caption template, when one replaced the manifest's captions


def size_category(count: int) -> str:
    """Return the Hub's size category of a dataset of `count` images."""
    return next((label for limit, label in _SIZES if count < limit), "100M<n<1B")


def _q(text: str) -> str:
    """Return `text` as a YAML double-quoted scalar (JSON's string escapes are YAML's)."""
    return json.dumps(text, ensure_ascii=False)


def _fence(text: str) -> str:
    """Return a code fence longer than any run of backticks in `text`."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def _header(facts: CardFacts, images: int, layout: Layout) -> list[str]:
    lines = ["---", f"license: {_q(facts.license)}", "task_categories:", "- text-to-image"]
    lines += ["size_categories:", f"- {size_category(images)}", f"pretty_name: {_q(facts.name)}"]
    lines += ["tags:", "- synthetic", "- leapbatch"]
    if layout.data_files:
        lines += ["configs:", "- config_name: default", "  data_files:"]
        for split, files in layout.data_files.items():
            lines += [f"  - split: {_q(split)}", f"    path: {_q(files)}"]
    return [*lines, "---", ""]


def _table(head: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    def cell(value: object) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")

    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return out + ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]


def _counts(images: Sequence[ExportImage]) -> list[str]:
    """Return the models table and, per variable (request fields aside), jobs and images per value."""
    jobs: dict[str, Counter[str]] = {}
    shots: dict[str, Counter[str]] = {}
    seen: set[str] = set()
    for image in images:
        first = image.key not in seen
        seen.add(image.key)
        named = [(name, value) for name, value in image.variables.items() if name not in REQUEST_NAMES]
        for name, value in [("model", image.model_id), *sorted(named)]:
            label = value if isinstance(value, str) else value_label(value)
            jobs.setdefault(name, Counter())[label] += first
            shots.setdefault(name, Counter())[label] += 1
    out = ["## Models", ""]
    out += _table(["model", "jobs", "images"], [(m, n, shots["model"][m]) for m, n in sorted(jobs["model"].items())])
    for name in sorted(set(jobs) - {"model"}):
        out += ["", f"### `{name}`", ""]
        out += _table(["value", "jobs", "images"], [(v, n, shots[name][v]) for v, n in sorted(jobs[name].items())])
    return out


def card_text(facts: CardFacts, splits: Mapping[str, Sequence[ExportImage]], layout: Layout) -> str:
    """Return the export's README.md."""
    everything = [image for images in splits.values() for image in images]
    jobs = len({image.key for image in everything})
    lines = _header(facts, len(everything), layout)
    lines += [f"# {facts.name}", ""]
    lines += [f"{jobs:,} jobs and {len(everything):,} images generated on Leap's image API with leapbatch "]
    lines[-1] += f"{__version__}, exported as `{facts.format}`."
    lines += ["", "## Splits", "", f"`{facts.split_text}`, by job (seed {facts.seed}):", ""]
    lines += _table(["split", "jobs", "images"], [(s, len({i.key for i in v}), len(v)) for s, v in splits.items()])
    captions = f"the `--caption` template `{facts.caption}`" if facts.caption else "the manifest's `caption:`"
    lines += ["", f"Captions (the `text` column) come from {captions} (the rendered prompt where none is set).", ""]
    lines += _counts(everything) if everything else []
    if facts.spend is not None:
        spent = facts.spend
        lines += ["", "## Spend", "", f"The folder committed {spent['images']:,} images, "]
        lines[-1] += f"{spent['cost']:.4f} {facts.currency} at the run's price ({spent['free_images']:,} free)."
    lines += ["", "## Reproduce", ""]
    if facts.manifest_path is not None:
        lines += [f"Manifest `{facts.manifest_path}`, sha256 `{facts.manifest_sha256}`:", ""]
    lines += ["```sh", f"leapbatch run {facts.manifest_path or 'MANIFEST.yaml'} --out OUT", facts.command, "```"]
    if facts.manifest_text is not None:
        fence = _fence(facts.manifest_text)
        lines += ["", "## Manifest", "", f"{fence}yaml", facts.manifest_text.rstrip("\n"), fence]
    lines += ["", "Every file of this export is listed with its sha256 in `SHA256SUMS` (`leapbatch verify` checks it)."]
    return "\n".join(lines) + "\n"
