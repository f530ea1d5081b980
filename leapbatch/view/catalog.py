"""What a person looks at: the dataset's jobs with their variables, where each one stands, and its images.

A `Catalog` is a pure function of the manifest's jobs (None when the folder's manifest cannot be read back) and
the ledger state. It is what the gallery's data file and the contact sheet are drawn from, so both show the same
thing:

- **Variables**: every name a job's values set (matrix axes, names riding along with a mapping axis, names only
  include entries set, `vars` a template uses), in manifest order: the axes' names first, in file order, then the
  others as jobs first set them. Each variable's values are labels (`value_label`: text as is, `true`/`false`,
  numbers as written), in the axis's order, then values only include entries give, as they come. An axis of more
  than `LISTED_VALUES` values (a seed range, say) lists only the values some job has.
- **Entries**: one per job, in the manifest's order (with no manifest: every job the ledger holds, not pruned, in
  the order they were first written). Each has its request as sent, its caption, a status (`done`, `pending`,
  `creating`, `generating`, `failed`, `refused`) with the reason a person reads, and its verified images.
- **Rules**: the matrix (each axis with its names and values), the exclude entries and the sample, as labels, so
  that an empty cell can say why it is empty (`leapbatch.view.absence`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from leapbatch.folder.results import job_of
from leapbatch.folder.state import JobState, LedgerState, Phase
from leapbatch.jobs import Job, Scalar
from leapbatch.manifest import Manifest
from leapbatch.manifest.expand import value_label

LISTED_VALUES = 1000  # an axis with more values lists only those some job has


class Status(StrEnum):
    """Where an entry stands, in a person's words (the ledger's phases, folded)."""

    DONE = "done"  # finished, its images verified on disk
    PENDING = "pending"  # not submitted yet (or pruned: created anew by the next run)
    CREATING = "creating"  # a create was sent; the server has not confirmed it yet
    GENERATING = "generating"  # the server has the job and is working on it
    FAILED = "failed"
    REFUSED = "refused"  # the create was refused for a reason every job shares; the next run tries again


@dataclass(frozen=True, slots=True)
class Picture:
    """One verified image of an entry: its path relative to the folder, its content hash and its size in pixels."""

    index: int
    path: str
    sha256: str
    width: int
    height: int


@dataclass(frozen=True, slots=True)
class Entry:
    """One job as the gallery shows it."""

    key: str
    model_id: str
    request: Mapping[str, Any]  # the body as sent, in Leap's names (camelCase), without its webhook
    variables: Mapping[str, str]  # name -> value label
    text: str  # the caption of its images (the manifest's caption, else the prompt)
    status: Status
    reason: str  # why it has no images yet (empty when done)
    pictures: tuple[Picture, ...] = ()
    inference_id: str | None = None

    @property
    def prompt(self) -> str:
        """Return the prompt as sent."""
        return str(self.request["prompt"])

    @property
    def seed(self) -> int | None:
        """Return the seed as sent (every job leapbatch expands sends one)."""
        seed = self.request.get("seed")
        return seed if isinstance(seed, int) else None


@dataclass(frozen=True, slots=True)
class Variable:
    """A name jobs set and the labels of its values, in order; `axis` is the index of the axis that sets it."""

    name: str
    values: tuple[str, ...]
    axis: int | None = None  # None: set only by include entries or `vars`


@dataclass(frozen=True, slots=True)
class AxisRule:
    """One matrix axis as labels: the names it sets and, for each of its values, the label of each name."""

    names: tuple[str, ...]
    values: tuple[tuple[str | None, ...], ...]  # None: that value does not set the name; () past LISTED_VALUES
    size: int


@dataclass(frozen=True, slots=True)
class Rules:
    """How the manifest chose its jobs, as labels: enough to say why a combination has no job."""

    axes: tuple[AxisRule, ...] = ()
    excludes: tuple[Mapping[str, tuple[str, ...]], ...] = ()
    constants: Mapping[str, str] = field(default_factory=dict)  # `vars`: the same value for every job
    sample: int | None = None  # `sample.count`: how many matrix jobs were kept
    matrix_jobs: int = 0  # the matrix's combinations after exclude: what `sample` picked from


@dataclass(frozen=True, slots=True)
class Catalog:
    """The dataset as a person looks at it (see the module docstring)."""

    name: str
    variables: tuple[Variable, ...]
    entries: tuple[Entry, ...]
    rules: Rules | None  # None when the folder's manifest is not known
    unknown_why: str = ""  # why the manifest is not known (when rules is None)

    def variable(self, name: str) -> Variable | None:
        """Return the variable named `name`, or None."""
        return next((v for v in self.variables if v.name == name), None)


def status_of(state: JobState | None) -> tuple[Status, str]:
    """Return an entry's status and the reason a person reads (empty for a finished job)."""
    if state is None or state.phase is Phase.PRUNED:
        return Status.PENDING, "not submitted yet: the next run creates it"
    if state.phase is Phase.FINISHED:
        return Status.DONE, ""
    if state.phase is Phase.INTENT:
        return Status.CREATING, "a create was sent; the server has not confirmed it yet (the next run settles it)"
    if state.phase is Phase.SUBMITTED:
        return Status.GENERATING, "generating on the server"
    if state.phase is Phase.REFUSED:
        why = state.refusal.reason if state.refusal is not None else "refused"
        return Status.REFUSED, f"refused: {why} (the next run tries again)"
    failure = state.failure
    if failure is None:
        return Status.FAILED, "failed"
    return Status.FAILED, f"failed at {failure.stage.value}: {failure.reason}"


def _labels(values: Mapping[str, Scalar]) -> dict[str, str]:
    return {name: value_label(value) for name, value in values.items()}


def _entry(job: Job, state: JobState | None) -> Entry:
    status, reason = status_of(state)
    pictures: tuple[Picture, ...] = ()
    if state is not None and status is Status.DONE:
        pictures = tuple(Picture(i.index, i.path, i.sha256, i.width, i.height) for i in state.images)
    request = job.request.to_wire()
    request.pop("webhookUrl", None)
    return Entry(
        key=job.key,
        model_id=job.model_id,
        request=request,
        variables=_labels(job.variables),
        text=job.text,
        status=status,
        reason=reason,
        pictures=pictures,
        inference_id=state.inference_id if state is not None else None,
    )


def _axis_rules(manifest: Manifest) -> list[AxisRule]:
    rules = []
    for axis in manifest.axes:
        names = axis.names if axis.mapping else (axis.label,)
        values: tuple[tuple[str | None, ...], ...] = ()
        if axis.size <= LISTED_VALUES:
            if axis.mapping:
                values = tuple(tuple(_label_in(value, name) for name in names) for value in axis.values)
            else:
                values = tuple((value_label(value),) for value in axis.values)
        rules.append(AxisRule(tuple(names), values, axis.size))
    return rules


def _label_in(value: Mapping[str, Scalar], name: str) -> str | None:
    return value_label(value[name]) if name in value else None


def _variables(axes: Sequence[AxisRule], entries: Sequence[Entry]) -> tuple[Variable, ...]:
    """Return the variables: axis names first (their listed values in order), then the names only jobs set."""
    order: dict[str, list[str]] = {}
    axis_of: dict[str, int] = {}
    for number, axis in enumerate(axes):
        for position, name in enumerate(axis.names):
            axis_of.setdefault(name, number)
            order.setdefault(name, [])
            for labels in axis.values:
                label = labels[position]
                if label is not None and label not in order[name]:
                    order[name].append(label)
    seen: dict[str, set[str]] = {name: set(values) for name, values in order.items()}
    unlisted: dict[str, list[str]] = {name: [] for name, axis in axis_of.items() if not axes[axis].values}
    for entry in entries:
        for name, label in entry.variables.items():
            known = seen.setdefault(name, set())
            if label not in known:
                known.add(label)
                (unlisted[name] if name in unlisted else order.setdefault(name, [])).append(label)
    for name, found in unlisted.items():
        order[name] = sorted(found, key=_numeric_first)
    return tuple(Variable(name, tuple(values), axis_of.get(name)) for name, values in order.items())


def _numeric_first(label: str) -> tuple[int, float, str]:
    """Sort key of an unlisted axis's labels: numbers by value (a seed range), then text."""
    try:
        return (0, float(label), "")
    except ValueError:
        return (1, 0.0, label)


def catalog(
    state: LedgerState,
    jobs: Sequence[Job] | None,
    manifest: Manifest | None,
    *,
    name: str,
    matrix_jobs: int = 0,
    unknown_why: str = "",
) -> Catalog:
    """Return the catalog of a folder: the manifest's `jobs` (None: every job the ledger holds) and their states.

    `matrix_jobs` is what `sample` picked from: the matrix's combinations after exclude; only read when the
    manifest has a sample.
    """
    if jobs is None or manifest is None:
        held = [js for js in state.jobs.values() if js.phase is not Phase.PRUNED]
        entries = tuple(_entry(job_of(js), js) for js in held)
        return Catalog(name, _variables((), entries), entries, None, unknown_why)
    entries = tuple(_entry(job, state.jobs.get(job.key)) for job in jobs)
    axes = _axis_rules(manifest)
    sample = manifest.spec.sample
    rules = Rules(
        axes=tuple(axes),
        excludes=tuple(
            {k: tuple(sorted(value_label(v) for v in vs)) for k, vs in e.items()} for e in manifest.excludes
        ),
        constants=_labels(manifest.variables),
        sample=None if sample is None else sample.count,
        matrix_jobs=matrix_jobs,
    )
    return Catalog(name, _variables(axes, entries), entries, rules)
