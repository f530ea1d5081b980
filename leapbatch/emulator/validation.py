"""Validate request bodies and queries the way Leap's NestJS `ValidationPipe` does, with class-validator messages.

Every problem is reported, one message per failed rule, fields in the DTO's order. When a value has the wrong type,
only the type message is given (its range rules would say nothing useful). `null` counts as absent for optional
fields (class-validator's `@IsOptional`), unknown keys are ignored, and absent fields take the spec's defaults, so
the job echoes the values it actually uses. Numbers must be JSON numbers (not strings, not booleans); integral
floats such as `512.0` count as integers, as they do in JavaScript.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import parse_qs

from leapbatch.wire import SPEC_DEFAULTS

Kind = Literal["string", "integer", "number", "boolean", "choice"]

UPSCALE_CHOICES = ("x1", "x2", "x4")
SAMPLER_CHOICES = ("ddim", "dpm_2a", "dpm_plusplus_sde", "euler", "euler_a", "unipc")


class InvalidRequestError(Exception):
    """Raised when a request fails validation; `messages` lists every problem."""

    def __init__(self, messages: list[str]) -> None:
        super().__init__("; ".join(messages))
        self.messages = messages


@dataclass(frozen=True, slots=True)
class Rule:
    """The constraints on one field of the create body."""

    kind: Kind
    minimum: float | None = None
    maximum: float | None = None
    multiple_of: int | None = None
    choices: tuple[str, ...] = ()


@functools.cache
def create_rules(max_dimension: int) -> Mapping[str, Rule]:
    """Return the rules of every optional field of the create body, in the DTO's order."""
    dimension = Rule("integer", minimum=8, maximum=max_dimension, multiple_of=8)
    return {
        "negativePrompt": Rule("string"),
        "steps": Rule("integer", minimum=1),
        "width": dimension,
        "height": dimension,
        "numberOfImages": Rule("integer", minimum=1, maximum=4),
        "promptStrength": Rule("number", minimum=0, maximum=30),
        "seed": Rule("integer"),
        "webhookUrl": Rule("string"),
        "version": Rule("string"),
        "enhancePrompt": Rule("boolean"),
        "restoreFaces": Rule("boolean"),
        "upscaleBy": Rule("choice", choices=UPSCALE_CHOICES),
        "sampler": Rule("choice", choices=SAMPLER_CHOICES),
    }


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def parse_json(raw: bytes) -> object:
    """Return the JSON document in `raw` (UTF-8; NaN and Infinity are not JSON)."""
    try:
        return _DECODER.decode(raw.decode("utf-8"))
    except ValueError:  # UnicodeDecodeError and JSONDecodeError are both ValueErrors
        raise InvalidRequestError(["body must be valid JSON"]) from None


def _number(value: object) -> float | int | None:
    """Return `value` if it is a JSON number (bools are not), as an int when integral."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        return int(value) if value.is_integer() else value
    return value


def _limit(bound: float) -> str:
    return str(int(bound)) if float(bound).is_integer() else str(bound)


def check(name: str, value: object, rule: Rule) -> tuple[object, list[str]]:
    """Return the normalised value and every message for one field's value."""
    if rule.kind == "string":
        return value, ([] if isinstance(value, str) else [f"{name} must be a string"])
    if rule.kind == "boolean":
        return value, ([] if isinstance(value, bool) else [f"{name} must be a boolean value"])
    if rule.kind == "choice":
        ok = isinstance(value, str) and value in rule.choices
        return value, ([] if ok else [f"{name} must be one of the following values: {', '.join(rule.choices)}"])
    number = _number(value)
    if number is None or (rule.kind == "integer" and not isinstance(number, int)):
        what = "an integer number" if rule.kind == "integer" else "a number conforming to the specified constraints"
        return value, [f"{name} must be {what}"]
    messages = []
    if rule.minimum is not None and number < rule.minimum:
        messages.append(f"{name} must not be less than {_limit(rule.minimum)}")
    if rule.maximum is not None and number > rule.maximum:
        messages.append(f"{name} must not be greater than {_limit(rule.maximum)}")
    if rule.multiple_of is not None and number % rule.multiple_of:
        messages.append(f"{name} must be a multiple of {rule.multiple_of}")
    return number, messages


def validate_create(body: object, *, max_dimension: int = 2048) -> dict[str, Any]:
    """Return the effective create body (spec defaults filled in), or raise `InvalidRequestError` with every problem."""
    if not isinstance(body, dict):
        raise InvalidRequestError(["body must be a JSON object"])
    messages: list[str] = []
    prompt = body.get("prompt")
    if not isinstance(prompt, str):
        messages.append("prompt must be a string")
    if prompt is None or prompt == "":
        messages.append("prompt should not be empty")
    effective: dict[str, Any] = {"prompt": prompt, **SPEC_DEFAULTS}
    for name, rule in create_rules(max_dimension).items():
        value = body.get(name)
        if value is None:
            continue
        normalised, problems = check(name, value, rule)
        messages.extend(problems)
        effective[name] = normalised
    if messages:
        raise InvalidRequestError(messages)
    return effective


@dataclass(frozen=True, slots=True)
class ListQuery:
    """The effective query of findAll."""

    only_finished: bool
    page: int
    page_size: int


_INTEGER = re.compile(r"-?[0-9]{1,18}")


def _query_int(name: str, raw: str | None, default: int, messages: list[str]) -> int:
    if raw is None or raw == "":
        return default
    if not _INTEGER.fullmatch(raw):  # stricter than int(), which takes "1_0", " 7" and non-ASCII digits
        messages.append(f"{name} must be an integer number")
        return default
    value = int(raw)
    if value < 1:
        messages.append(f"{name} must not be less than 1")
    return value


def validate_list_query(query_string: bytes, *, default_page_size: int, max_page_size: int) -> ListQuery:
    """Return the findAll query (pageSize capped at `max_page_size`) or raise `InvalidRequestError`."""
    params = parse_qs(query_string.decode("latin-1"), keep_blank_values=True)

    def first(name: str) -> str | None:
        return params[name][0] if name in params else None

    messages: list[str] = []
    finished = (first("onlyFinished") or "false").lower()
    if finished not in ("true", "false", "1", "0"):
        messages.append("onlyFinished must be a boolean value")
    page = _query_int("page", first("page"), 1, messages)
    page_size = _query_int("pageSize", first("pageSize"), default_page_size, messages)
    if messages:
        raise InvalidRequestError(messages)
    return ListQuery(only_finished=finished in ("true", "1"), page=page, page_size=min(page_size, max_page_size))
