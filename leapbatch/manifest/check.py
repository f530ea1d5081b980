"""Round two of loading a manifest: the rules that look at more than one key at a time.

`check(spec, locator, ...)` takes a `ManifestSpec` that passed round one (YAML and types) and returns a `Manifest`,
or raises `ManifestError` with every problem found. The rules: names are identifiers; an axis or mapping-entry name
like a request field sets that field, any other name is a template variable; each name comes from one axis; every
template variable resolves, for every matrix combination and every include entry, from the combination or `vars`;
every axis changes the jobs (it sets a request field or a variable some template uses: an unused one would only
repeat jobs), every var is used, and every name in an include entry is used or set by the matrix (else it is a
typo); extra names in mapping values are metadata; exclude entries name matrix names and values that exist; and the
caps hold. A name whose own definition was bad is treated as known, and a name an unknown variable probably meant
is not also called unused, so one typo gives one problem, not a cascade.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from leapbatch.errors import ManifestError
from leapbatch.jobs import Scalar
from leapbatch.manifest import wording
from leapbatch.manifest.check_core import CheckerCore, axis_loc, in_domain, is_int, known_names
from leapbatch.manifest.models import (
    MAX_AXES,
    MAX_EXCLUDE,
    MAX_JOBS,
    REQUEST_FIELDS,
    TEMPLATE_FIELDS,
    Axis,
    Manifest,
    ManifestSpec,
)
from leapbatch.manifest.safe_yaml import Loc, Locator
from leapbatch.manifest.template import Template


def check(spec: ManifestSpec, locator: Locator, source_sha256: str, source_path: Path | None) -> Manifest:
    """Return the checked Manifest for a spec, or raise ManifestError with every problem found."""
    return _Checker(spec, locator).manifest(source_sha256, source_path)


class _Checker(CheckerCore):
    """Round two: the rules that look at more than one key, each problem located at the key it is about."""

    def variables(self) -> dict[str, Scalar]:
        """Check `vars`; return the good ones."""
        out: dict[str, Scalar] = {}
        for name, value in self.spec.vars.items():
            loc = ("vars", name)
            if not self.name(name, loc):
                continue
            if name in REQUEST_FIELDS:
                self.add(loc, f"`{name}` is a request field, not a template variable", "set it under params:", key=True)
            elif self.value(name, value, loc):
                out[name] = value
            else:
                self.doubtful.add(name)
        return out

    def axes(self) -> list[Axis]:
        """Check every axis; return the good ones (each name set by one axis only)."""
        if len(self.spec.matrix) > MAX_AXES:
            self.add(("matrix",), f"{len(self.spec.matrix)} axes, over the limit of {MAX_AXES}", "use mapping values")
        out: list[Axis] = []
        setters: dict[str, str] = {}
        for label, raw in self.spec.matrix.items():
            axis = self.axis(label, raw, ("matrix", label))
            if axis is None:
                self.doubtful.add(label)
                if isinstance(raw, list):
                    self.doubtful.update(k for entry in raw if isinstance(entry, dict) for k in entry)
                continue
            for name in axis.names:
                if name in setters:
                    self.add(
                        axis_loc(axis, name), f"`{name}` is also set by matrix.{setters[name]}", "set it in one axis"
                    )
                setters.setdefault(name, label)
            out.append(axis)
        return out

    def axis(self, label: str, raw: object, loc: Loc) -> Axis | None:
        """Check one axis: a list of single values, a list of mappings, or a range."""
        if not self.name(label, loc):
            return None
        if isinstance(raw, dict):
            return self.range_axis(label, raw, loc)
        if not isinstance(raw, list):
            self.add(
                loc, f"expected a list or {{range: [a, b]}}, got {self.got(loc, raw)}", "write [value] for one value"
            )
            return None
        if not raw:
            self.add(loc, "empty axis: the matrix would have no jobs", "give it at least one value, or remove it")
            return None
        mapping = any(isinstance(v, dict) for v in raw)
        ok, names = True, dict.fromkeys([] if mapping else [label])
        for i, entry in enumerate(raw):
            if mapping != isinstance(entry, dict):
                self.add((*loc, i), "mixes single values and mappings", "an axis holds one kind of value")
                ok = False
            elif isinstance(entry, dict):
                if not entry:
                    self.add((*loc, i), "empty mapping", "give it the names this value sets: {light: golden}")
                    ok = False
                for name, value in entry.items():
                    ok = self.name(name, (*loc, i, name)) and self.value(name, value, (*loc, i, name)) and ok
                    names[name] = None
            else:
                ok = self.value(label, entry, (*loc, i)) and ok
        return Axis(label, raw, mapping, tuple(names)) if ok else None

    def range_axis(self, label: str, raw: dict[str, Any], loc: Loc) -> Axis | None:
        """Check `{range: [start, end], step: n}`: whole numbers, start <= end, step >= 1, values in bounds."""
        unknown = [key for key in raw if key not in ("range", "step")]
        for key in unknown:
            known = ["range", "step", "values_file"]
            hint = wording.did_you_mean(key, known) or "a range is {range: [start, end], step: n}"
            self.add((*loc, key), "unknown key", hint, key=True)
        if "range" not in raw:
            if not unknown:
                self.add(
                    loc, "expected a list or {range: [a, b]}, got a mapping", "write mappings as list items: [{...}]"
                )
            return None
        bounds, step = raw["range"], raw.get("step", 1)
        if not (isinstance(bounds, list) and len(bounds) == 2 and all(is_int(b) for b in bounds)):
            hint = "for other values, write a list: [0.5, 1, 2.5]"
            self.add((*loc, "range"), "expected [start, end]: two whole numbers", hint)
            return None
        if not is_int(step) or step < 1:
            self.add((*loc, "step"), f"expected a whole number of at least 1, got {self.got((*loc, 'step'), step)}")
            return None
        start, end = bounds
        if start > end:
            self.add((*loc, "range"), f"starts at {start}, after its end {end}", f"write [{end}, {start}]")
            return None
        if unknown:
            return None
        values = range(start, end + 1, step)
        # The first two values and the last decide every bound, and a multiple of 8 for width and height.
        for value in dict.fromkeys((*values[:2], values[-1])):  # slices and ends only: a range may be huge
            if not self.value(label, value, (*loc, "range")):
                return None
        return Axis(label, values, False, (label,))

    def matrix_templates(self, axes: list[Axis], prompt: Template | None, negative: Template | None) -> Iterator[Loc]:
        """Yield the location of every template a matrix job may render (top level first)."""
        if prompt is not None:
            yield ("prompt",)
        if negative is not None:
            yield ("negative_prompt",)
        for axis in axes:
            for field in TEMPLATE_FIELDS:
                if field not in axis.names:
                    continue
                for i, entry in enumerate(axis.values):
                    if not axis.mapping:
                        yield ("matrix", axis.label, i)
                    elif field in entry:
                        yield ("matrix", axis.label, i, field)

    def template_at(self, loc: Loc) -> Template | None:
        """Return the parsed template written at `loc` in the spec."""
        text: Any = self.spec
        for item in loc:
            text = getattr(text, str(item)) if isinstance(text, ManifestSpec) else text[item]
        return self.templates.get(text) if isinstance(text, str) else None

    def matrix(
        self, axes: list[Axis], prompt: Template | None, negative: Template | None, variables: dict[str, Scalar]
    ) -> set[str]:
        """Check that matrix jobs resolve every name and that every axis counts; return the template names used."""
        setters = {name: axis for axis in axes for name in axis.names}
        known = (set(variables) | set(setters) | self.doubtful) - set(REQUEST_FIELDS)
        used: set[str] = set()
        for loc in self.matrix_templates(axes, prompt, negative):
            template = self.template_at(loc)
            for name in template.names if template else ():
                used.add(name)
                if name not in known and name not in REQUEST_FIELDS:
                    close = wording.close_match(name, sorted(known))
                    self.suspects.update([close] if close else [])
                    hint = f"did you mean '{close}'?" if close else "set it in vars or as a matrix axis"
                    self.add(loc, f"unknown template variable {{{name}}} (known: {known_names(known)})", hint)
        for field, top in (("model", self.spec.model), ("prompt", self.spec.prompt)):
            axis = setters.get(field)
            if top is None and axis is None and field not in self.doubtful:
                self.add((field,), f"required: set `{field}:` or a matrix axis named {field}", key=True)
            if top is None and axis is not None and axis.mapping:
                for i, entry in enumerate(axis.values):
                    if field not in entry:
                        self.add(("matrix", axis.label, i), f"sets no {field}, and there is no top-level {field}")
        for axis in axes:
            self.axis_used(axis, used, variables)
        return used

    def axis_used(self, axis: Axis, used: set[str], variables: dict[str, Scalar]) -> None:
        """Check that an axis changes the jobs: it sets a request field or a variable some template uses.

        A scalar axis that does neither would only repeat the same jobs. A mapping axis may carry extra names no
        template uses (they go into each job's variables, the dataset's metadata) as long as one name counts.
        """
        if self.broken or any(name in self.suspects for name in axis.names):
            return
        counted = [name for name in axis.names if name in REQUEST_FIELDS or name in used]
        if not counted:
            name = axis.names[0]
            what = f"`{name}` is not" if not axis.mapping else f"none of {', '.join(axis.names)} is"
            self.add(
                axis_loc(axis, name) if not axis.mapping else ("matrix", axis.label),
                f"{what} used by any template, so this axis would only repeat the same jobs",
                f"use {{{name}}} in a template, or remove it (templates use: {known_names(used)})",
            )
        for name in counted if axis.mapping else ():
            if name in used and name not in variables:
                for i, entry in enumerate(axis.values):
                    if name not in entry:
                        close = wording.close_match(name, sorted(entry))
                        hint = f"is `{close}` a typo of `{name}`?" if close else f"add {name}: ... here, or to vars"
                        self.add(("matrix", axis.label, i), f"sets no `{name}`, and vars has none", hint)

    def matrix_caption(self, axes: list[Axis], variables: dict[str, Scalar]) -> set[str]:
        """Check that the caption resolves for every matrix job; return the names it uses.

        The caption is not sent, so it counts for `vars` (a trigger word may live only there) but not for an axis:
        an axis only the caption uses would still repeat the same jobs.
        """
        if self.caption is None:
            return set()
        setters = {name: axis for axis in axes for name in axis.names}
        known = (set(variables) | set(setters) | self.doubtful) - set(REQUEST_FIELDS)
        for name in self.caption.names:
            if name not in known and name not in REQUEST_FIELDS:
                close = wording.close_match(name, sorted(known))
                self.suspects.update([close] if close else [])
                hint = f"did you mean '{close}'?" if close else "set it in vars or as a matrix axis"
                self.add(("caption",), f"unknown template variable {{{name}}} (known: {known_names(known)})", hint)
            axis = setters.get(name)
            if axis is not None and axis.mapping and name not in variables:
                for i, entry in enumerate(axis.values):
                    if name not in entry:
                        self.add(("matrix", axis.label, i), f"sets no `{name}` for the caption, and vars has none")
        return set(self.caption.names)

    def include(
        self,
        i: int,
        entry: dict[str, Any],
        prompt: Template | None,
        negative: Template | None,
        variables: dict[str, Scalar],
        matrix_names: set[str],
    ) -> tuple[dict[str, Scalar] | None, set[str]]:
        """Check one include entry; return it (None if bad) and the template names it uses."""
        loc: Loc = ("include", i)
        if not entry:
            self.add(loc, "empty include entry", "give it the names of one job, e.g. {animal: owl, seed: 7}")
            return None, set()
        ok = True
        for name, value in entry.items():
            ok = self.name(name, (*loc, name)) and self.value(name, value, (*loc, name)) and ok
        if not ok:
            return None, set(entry)
        templates = [
            self.templates.get(entry[field]) if field in entry else top
            for field, top in (("prompt", prompt), ("negative_prompt", negative))
        ]
        used = {name for template in (*templates, self.caption) if template for name in template.names}
        if templates[0] is None:
            self.add(loc, "no prompt: the entry sets none and there is no top-level prompt", "add prompt: to it")
        if "model" not in entry and self.spec.model is None:
            self.add(loc, "no model: the entry sets none and there is no top-level model", "add model: to it")
        for name in sorted(used - set(entry) - set(variables) - self.doubtful - set(REQUEST_FIELDS)):
            said = f"no value for {{{name}}}: the entry does not set `{name}` and vars has none"
            close = wording.close_match(name, sorted({*entry, *variables} - set(REQUEST_FIELDS)))
            self.suspects.update([close] if close else [])
            hint = f"did you mean '{close}'?" if close else f"add {name}: ... to the entry, or to vars"
            self.add(loc, said, hint)
        for name in entry:
            # A name the matrix also sets is metadata, as in mapping values; any other unused name is a typo.
            if name not in REQUEST_FIELDS and name not in used and name not in matrix_names:
                hint = wording.did_you_mean(name, sorted(used)) or f"its templates use: {known_names(used)}"
                self.add((*loc, name), "not used by this entry's templates nor set by the matrix", hint, key=True)
        return dict(entry), used

    def excludes(self, axes: list[Axis]) -> list[dict[str, frozenset[Scalar]]]:  # noqa: C901 -- one pass over the exclude entries, each check worded where it is made
        """Check the exclude entries against the names and values the matrix sets; return them as sets."""
        if len(self.spec.exclude) > MAX_EXCLUDE:
            self.add(("exclude",), f"{len(self.spec.exclude)} entries, over the limit of {MAX_EXCLUDE}", "use lists")
        domains: dict[str, range | set[Any]] = {}
        for axis in axes:
            if isinstance(axis.values, range):
                domains[axis.label] = axis.values
                continue
            for name in axis.names:
                found = {entry[name] for entry in axis.values if name in entry} if axis.mapping else set(axis.values)
                domains[name] = found
        out: list[dict[str, frozenset[Scalar]]] = []
        for i, entry in enumerate(self.spec.exclude):
            loc: Loc = ("exclude", i)
            if not entry:
                self.add(loc, "empty exclude entry: it would drop every combination", "remove it")
            matched: dict[str, frozenset[Scalar]] = {}
            for name, value in entry.items():
                nloc = (*loc, name)
                if name not in domains:
                    if name not in self.doubtful:
                        hint = wording.did_you_mean(name, sorted(domains)) or f"the matrix sets: {known_names(domains)}"
                        self.add(nloc, "not set by any matrix axis, so this entry never matches", hint, key=True)
                    continue
                values: list[Any] = value if isinstance(value, list) else [value]
                if not values:
                    self.add(nloc, "empty list: this entry never matches", "list the values to drop, or remove it")
                for j, item in enumerate(values):
                    vloc = (*nloc, j) if isinstance(value, list) else nloc
                    if isinstance(item, dict | list):
                        self.add(vloc, f"expected a single value, got {self.got(vloc, item)}")
                    elif not in_domain(item, domains[name]):
                        shown = sorted(str(v) for v in domains[name]) if isinstance(domains[name], set) else []
                        hint = wording.did_you_mean(str(item), shown) or f"{name} takes: {_range_text(domains[name])}"
                        self.add(vloc, f"{self.got(vloc, item)} is not a value of {name}, so this never matches", hint)
                matched[name] = frozenset(v for v in values if not isinstance(v, dict | list))
            out.append(matched)
        return out

    def output(self) -> None:
        """Check `output.dir`: a path no file system takes (one that holds a NUL character) is refused here."""
        folder = self.spec.output.dir
        if folder is not None and "\x00" in folder:
            at = folder.index("\x00") + 1
            message = f"holds a NUL character (\\x00) at character {at}: no file system takes one in a path"
            self.add(("output", "dir"), message, "remove it")

    def pricing(self) -> None:
        """Check `pricing`: one form of price (a preset, per_image or per_gpu_second), each with what it allows."""
        pricing = self.spec.pricing
        forms = [name for name in ("preset", "per_image", "per_gpu_second") if getattr(pricing, name) is not None]
        if len(forms) > 1:
            said, hint = f"set with `{forms[0]}`: a price has one form", "keep one of " + " and ".join(forms)
            self.add(("pricing", forms[1]), said, hint)
        elif pricing.preset is not None and pricing.currency != "USD":
            self.add(("pricing", "currency"), "Leap's presets are priced in USD", "use `per_image` for your price")
        elif pricing.per_gpu_second is not None and pricing.included_images_left:
            self.add(("pricing", "included_images_left"), "a price per GPU second has no image quota", "remove it")

    def manifest(self, source_sha256: str, source_path: Path | None) -> Manifest:
        """Run every rule; return the Manifest or raise ManifestError."""
        spec = self.spec
        prompt = self.template(spec.prompt, ("prompt",))
        negative = self.template(spec.negative_prompt, ("negative_prompt",))
        self.caption = self.template(spec.caption, ("caption",))
        variables = self.variables()
        axes = self.axes()
        used: set[str] = set()
        uses_matrix = bool(spec.matrix) or not spec.include
        if uses_matrix:
            used |= self.matrix(axes, prompt, negative, variables)
            used |= self.matrix_caption(axes, variables)
        includes: list[dict[str, Scalar]] = []
        matrix_names = {name for axis in axes for name in axis.names}
        for i, entry in enumerate(spec.include):
            checked, names = self.include(i, entry, prompt, negative, variables, matrix_names)
            used |= names
            if checked is not None:
                includes.append(checked)
        excludes = self.excludes(axes)
        for name in variables:
            if name not in used and name not in self.suspects and not self.broken:
                self.add(
                    ("vars", name), "not used by any template", f"use {{{name}}} in a template, or remove it", key=True
                )
        self.output()
        self.pricing()
        combinations = 1 if uses_matrix else 0
        for axis in axes:
            combinations *= axis.size
        if combinations + len(spec.include) > MAX_JOBS:
            total = combinations + len(spec.include)
            self.add(("matrix",), f"{total:,} jobs, over the limit of {MAX_JOBS:,}", "split the manifest into several")
        if self.problems:
            raise ManifestError(self.problems)
        return Manifest(
            spec=spec,
            axes=tuple(axes),
            prompt=prompt,
            negative_prompt=negative,
            caption=self.caption,
            templates=self.templates,
            variables=variables,
            excludes=tuple(excludes),
            includes=tuple(includes),
            source_sha256=source_sha256,
            source_path=source_path,
            locator=self.locator,
        )


def _range_text(domain: range | set[Any]) -> str:
    if isinstance(domain, range):
        step = f" step {domain.step}" if domain.step != 1 else ""
        return f"{domain.start} to {domain[-1]}{step}"
    shown = sorted(str(v) for v in domain)
    return ", ".join(shown[:10]) + (", ..." if len(shown) > 10 else "")
