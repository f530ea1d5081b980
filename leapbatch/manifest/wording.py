"""Problems worded for people: pydantic's errors explained at their `file:line:col`, and did-you-mean hints."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from difflib import get_close_matches
from typing import Any

from leapbatch.errors import Problem
from leapbatch.manifest.safe_yaml import NUMBER, Loc, Locator, describe, quote_hint, shorten


def close_match(name: str, known: Sequence[str]) -> str | None:
    """Return the known name closest to `name`, if one is close enough to be a typo of it."""
    close = get_close_matches(name, list(known), n=1, cutoff=0.6)
    return close[0] if close else None


def did_you_mean(name: str, known: Sequence[str]) -> str | None:
    """Return "did you mean 'x'?" for the closest known name, or None."""
    close = close_match(name, known)
    return f"did you mean '{close}'?" if close else None


HintFor = Callable[[str, Loc, Mapping[str, Any]], "str | None"]
_BOUNDS = {
    "greater_than_equal": "at least",
    "greater_than": "more than",
    "less_than_equal": "at most",
    "less_than": "less than",
}


def _number(value: object) -> str:
    """Return a bound as people write it: 30, not 30.0."""
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def explain(locator: Locator, base: Loc, error: Mapping[str, Any], hint_for: HintFor) -> Problem:  # noqa: C901 -- one table of pydantic error kinds, read top to bottom
    """Return the Problem for one pydantic error (`base` prefixes its `loc`), worded for people.

    `hint_for(kind, loc, ctx)` may supply the hint the format knows best (a did-you-mean, where a key belongs).
    """
    loc: Loc = (*base, *error["loc"])
    kind, ctx, value = error["type"], error.get("ctx") or {}, error.get("input")
    node = locator.exact(loc)
    got = describe(node, value)
    hint = None
    if kind == "missing":
        message, hint = "required key is missing", f"add `{loc[-1]}:`"
    elif kind == "extra_forbidden":
        return locator.problem(loc, "unknown key", hint=hint_for(kind, loc, ctx), key=True)
    elif kind == "string_type":
        message, hint = f"expected text, got {got}", quote_hint(node) if node is not None else None
        if node is None and isinstance(value, bool | int | float):
            hint = "quote it"
    elif kind in ("int_type", "int_from_float", "float_type"):
        message = f"expected {'a number' if kind == 'float_type' else 'a whole number'}, got {got}"
        if isinstance(value, str) and NUMBER.match(value.strip()):
            hint = "remove the quotes"
    elif kind == "bool_type":
        message = f"expected true or false, got {got}"
    elif kind in ("dict_type", "model_type", "model_attributes_type"):
        message = f"expected a mapping (key: value lines), got {got}"
    elif kind == "list_type":
        message, hint = f"expected a list, got {got}", "write [value] for one value"
    elif kind == "literal_error":
        message = f"expected {ctx.get('expected')}, got {got}"
    elif kind in _BOUNDS:
        word, bound = next((_BOUNDS[kind], v) for k, v in ctx.items() if k in ("ge", "gt", "le", "lt"))
        message = f"must be {word} {_number(bound)}, got {_number(value)}"
    elif kind == "multiple_of":
        message = f"must be a multiple of {_number(ctx.get('multiple_of'))}, got {_number(value)}"
    elif kind == "string_too_short":
        message = "must not be empty"
    elif kind == "string_too_long":
        message = f"is {len(str(value)):,} characters, over the {ctx.get('max_length'):,}-character limit"
    elif kind == "string_pattern_mismatch":
        message = f'not a valid {loc[-1] if loc else "value"}: "{shorten(str(value))}"'
    else:
        message = str(error.get("msg", "invalid value"))
    return locator.problem(loc, message, hint_for(kind, loc, ctx) or hint)
