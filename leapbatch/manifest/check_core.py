"""The shared core of round two (`leapbatch.manifest.check`): problems at their keys, names, values, templates."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from pydantic import ValidationError

from leapbatch.errors import Problem
from leapbatch.manifest import safe_yaml as manifest_yaml
from leapbatch.manifest import wording
from leapbatch.manifest.models import (
    FIELD_TYPES,
    MAX_TEXT,
    REQUEST_FIELDS,
    TEMPLATE_FIELDS,
    VAR_RE,
    Axis,
    ManifestSpec,
    error_hint,
)
from leapbatch.manifest.safe_yaml import Loc, Locator
from leapbatch.manifest.template import Template, TemplateError
from leapbatch.manifest.template import parse as parse_template


def axis_loc(axis: Axis, name: str) -> Loc:
    """Return where an axis sets `name`: the axis itself, or the first of its entries that sets it."""
    if axis.mapping:
        for i, entry in enumerate(axis.values):
            if name in entry:
                return ("matrix", axis.label, i, name)
    return ("matrix", axis.label)


def known_names(names: Iterable[object]) -> str:
    listed = ", ".join(sorted(str(n) for n in names))
    return listed or "none"


def is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def in_domain(value: object, domain: range | set[Any]) -> bool:
    if isinstance(domain, range):
        return is_int(value) and value in domain
    return value in domain


class CheckerCore:
    """What every rule of round two shares: the problems found so far, and the checks of one name, value or template."""

    def __init__(self, spec: ManifestSpec, locator: Locator) -> None:
        self.spec, self.locator = spec, locator
        self.problems: list[Problem] = []
        self.templates: dict[str, Template] = {}
        self.doubtful: set[str] = set()  # names of axes and vars that failed: known, so no follow-on problems
        self.suspects: set[str] = set()  # names an unknown template variable probably meant: not "unused"
        self.broken = False  # a template failed to parse: which names are used is unknown
        self.caption: Template | None = None  # the caption template (set first: include entries render it too)

    def add(self, loc: Loc, message: str, hint: str | None = None, *, key: bool = False) -> None:
        """Record a problem at `loc` (at its key with `key`)."""
        self.problems.append(self.locator.problem(loc, message, hint, key=key))

    def got(self, loc: Loc, value: object) -> str:
        """Describe the value at `loc` for an "expected X, got Y" message."""
        return manifest_yaml.describe(self.locator.exact(loc), value)

    def template(self, text: str | None, loc: Loc) -> Template | None:
        """Parse a template and remember it; report it (and return None) if it does not parse."""
        if text is None:
            return None
        try:
            parsed = parse_template(text)
        except TemplateError as exc:
            self.add(loc, f"{exc.message} (at character {exc.column})", exc.hint)
            self.broken = True
            return None
        for name in parsed.names:
            if name in REQUEST_FIELDS:
                self.add(loc, f"{{{name}}} names a request field, not a template variable", "rename the variable")
        self.templates[text] = parsed
        return parsed

    def name(self, name: str, loc: Loc) -> bool:
        """Check that a name is an identifier."""
        if re.match(VAR_RE, name) and len(name) <= 64:
            return True
        self.add(loc, f"`{name}` is not a valid name", "use letters, digits and _, not starting with a digit", key=True)
        return False

    def value(self, name: str, value: object, loc: Loc) -> bool:
        """Check one value for `name`: a request field's type and bounds, or a template variable's text or number."""
        if isinstance(value, dict | list):
            self.add(loc, f"expected a single value, got {self.got(loc, value)}")
            return False
        if name in FIELD_TYPES:
            try:
                FIELD_TYPES[name].validate_python(value)
            except ValidationError as exc:
                for error in exc.errors():
                    self.problems.append(wording.explain(self.locator, loc, error, error_hint))
                return False
            return name not in TEMPLATE_FIELDS or self.template(str(value), loc) is not None
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            node = self.locator.exact(loc)
            hint = manifest_yaml.quote_hint(node) if node is not None else None
            self.add(loc, f"expected text or a number, got {self.got(loc, value)}", hint)
            return False
        if isinstance(value, str) and len(value) > MAX_TEXT:
            self.add(loc, f"is {len(value):,} characters, over the {MAX_TEXT:,}-character limit")
            return False
        return True
