"""The validation functions on their own: effective values and query parsing (messages are in test_conformance)."""

from __future__ import annotations

import pytest

from leapbatch.emulator.validation import (
    InvalidRequestError,
    ListQuery,
    parse_json,
    validate_create,
    validate_list_query,
)
from leapbatch.wire import SPEC_DEFAULTS


def test_defaults_fill_every_absent_or_null_field() -> None:
    """Absent and null optional fields take the spec defaults; legacy fields stay absent."""
    assert {"prompt": "a", **SPEC_DEFAULTS} == validate_create({"prompt": "a", "seed": None, "extra": 1})


def test_numbers_are_normalised_as_javascript_reads_them() -> None:
    """Integral floats become ints; fractional strengths stay floats."""
    effective = validate_create({"prompt": "a", "width": 512.0, "promptStrength": 7.5, "seed": 12.0})

    assert (512, int, 7.5, 12, int) == (
        effective["width"],
        type(effective["width"]),
        effective["promptStrength"],
        effective["seed"],
        type(effective["seed"]),
    )


def test_max_dimension_is_configurable() -> None:
    """The largest accepted width or height comes from the caller."""
    with pytest.raises(InvalidRequestError) as raised:
        validate_create({"prompt": "a", "width": 1024}, max_dimension=512)

    assert ["width must not be greater than 512"] == raised.value.messages


@pytest.mark.parametrize("raw", [b"{", b"[NaN]", b'{"a": Infinity}', b"\xff"])
def test_parse_json_refuses_what_is_not_json(raw: bytes) -> None:
    """Broken JSON, NaN, Infinity and bad UTF-8 are all `body must be valid JSON`."""
    with pytest.raises(InvalidRequestError) as raised:
        parse_json(raw)

    assert ["body must be valid JSON"] == raised.value.messages


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (b"", ListQuery(only_finished=False, page=1, page_size=10)),
        (b"onlyFinished=true&page=3&pageSize=7", ListQuery(only_finished=True, page=3, page_size=7)),
        (b"onlyFinished=1&pageSize=5000", ListQuery(only_finished=True, page=1, page_size=100)),
        (b"onlyFinished=FALSE&page=", ListQuery(only_finished=False, page=1, page_size=10)),
    ],
)
def test_list_queries_take_defaults_and_cap_the_page_size(query: bytes, expected: ListQuery) -> None:
    """Missing values take defaults, and a page size above the maximum is capped."""
    assert expected == validate_list_query(query, default_page_size=10, max_page_size=100)


def test_list_query_reports_every_problem() -> None:
    """Each bad parameter adds its message."""
    with pytest.raises(InvalidRequestError) as raised:
        validate_list_query(b"onlyFinished=x&page=-1&pageSize=%20", default_page_size=10, max_page_size=100)

    expected = [
        "onlyFinished must be a boolean value",
        "page must not be less than 1",
        "pageSize must be an integer number",
    ]
    assert expected == raised.value.messages
