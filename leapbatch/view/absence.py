"""Why a cell of a grid is empty: the values it asks for, and the rules that chose the manifest's jobs.

A cell asks for some values (`style = ink`, `animal = owl`, ...). When no job has them all, `why_empty` says why,
in this order:

1. the folder's manifest is not known: no rule can be consulted ("no job has ...");
2. a value no combination gives (only include entries set it, or no axis lists it): "only include entries set
   animal = red panda, and none with place = city";
3. no single combination gives the values together (two values of one axis, or a mapping value that sets another
   label): "no combination sets painter = Monet with era = 1830";
4. every combination with the values is dropped by exclude entries: "excluded by exclude entry 1 (animal: owl,
   place: city)" when one entry drops them all, else "excluded by exclude entries 1, 3" (each combination is
   charged to the first entry that drops it);
5. the manifest samples its matrix: "sampled out: sample keeps 40 of 120 combinations";
6. else the combination's request equals another job's: "a duplicate: its request equals another job's".

Step 4 looks at each combination the cell's values allow, up to `MAX_COMBINATIONS`; past that it says
"left out by exclude or sample". The gallery's script (leapbatch/view/static/gallery.js, `whyEmpty`) follows the
same steps with the same words; a browser test holds the two to the example manifest's cells.
"""

from __future__ import annotations

from collections.abc import Mapping
from itertools import product

from leapbatch.view.catalog import AxisRule, Catalog, Rules

MAX_COMBINATIONS = 20_000
UNLISTED = "left out by exclude or sample"


def _values(asked: Mapping[str, str]) -> str:
    return ", ".join(f"{name} = {label}" for name, label in asked.items())


def _compatible(axis: AxisRule, asked: Mapping[str, str]) -> list[int]:
    """Return the indices of the axis's values that agree with every asked name the axis sets."""
    positions = [(p, asked[name]) for p, name in enumerate(axis.names) if name in asked]
    return [i for i, labels in enumerate(axis.values) if all(labels[p] == label for p, label in positions)]


def _excluded_by(rules: Rules, assign: Mapping[str, str]) -> int | None:
    """Return the index of the first exclude entry that drops a combination, or None."""
    for number, entry in enumerate(rules.excludes):
        if all(name in assign and assign[name] in labels for name, labels in entry.items()):
            return number
    return None


def _assign(rules: Rules, picks: tuple[int, ...]) -> dict[str, str]:
    """Return the names and labels one combination (a value index per axis) sets, with the constants."""
    assign = dict(rules.constants)
    for axis, pick in zip(rules.axes, picks, strict=True):
        assign.update({n: v for n, v in zip(axis.names, axis.values[pick], strict=True) if v is not None})
    return assign


def _entry_text(entry: Mapping[str, tuple[str, ...]]) -> str:
    return ", ".join(f"{name}: {' | '.join(labels)}" for name, labels in entry.items())


def _outside_the_matrix(catalog: Catalog, rules: Rules, asked: Mapping[str, str]) -> str | None:
    """Return the reason of step 2 (a value no combination gives), or None."""
    axis_of = {name: axis for axis in rules.axes for name in axis.names}
    for name, label in asked.items():
        if rules.constants.get(name) == label:
            continue
        axis = axis_of.get(name)
        if axis is not None and not axis.values:
            continue  # an axis too long to list: step 4 cannot look, and the fallback speaks
        position = axis.names.index(name) if axis is not None else -1
        if axis is not None and any(labels[position] == label for labels in axis.values):
            continue
        variable = catalog.variable(name)
        if variable is not None and label in variable.values:
            others = {k: v for k, v in asked.items() if k != name}
            return f"only include entries set {name} = {label}" + (
                f", and none with {_values(others)}" if others else ""
            )
        return f"no job has {name} = {label}"
    return None


def _dropped(rules: Rules, asked: Mapping[str, str]) -> str:
    """Return the reason of steps 3 to 6, for values every axis can give."""
    if any(not axis.values for axis in rules.axes):
        return UNLISTED
    choices = [_compatible(axis, asked) for axis in rules.axes]
    if any(not c for c in choices):
        return f"no combination sets {_values(asked)} together"
    total = 1
    for c in choices:
        total *= len(c)
    if total > MAX_COMBINATIONS:
        return UNLISTED
    dropped_by = [_excluded_by(rules, _assign(rules, picks)) for picks in product(*choices)]
    if None not in dropped_by:
        numbers = sorted({number for number in dropped_by if number is not None})
        if len(numbers) == 1:
            return f"excluded by exclude entry {numbers[0] + 1} ({_entry_text(rules.excludes[numbers[0]])})"
        return "excluded by exclude entries " + ", ".join(str(number + 1) for number in numbers)
    if rules.sample is not None:
        return f"sampled out: sample keeps {rules.sample:,} of {rules.matrix_jobs:,} combinations"
    return "a duplicate: its request equals another job's"


def why_empty(catalog: Catalog, asked: Mapping[str, str]) -> str:
    """Return why no job of the catalog has every value `asked` names (see the module docstring)."""
    rules = catalog.rules
    if rules is None:
        return f"no job has {_values(asked)}"
    return _outside_the_matrix(catalog, rules, asked) or _dropped(rules, asked)
