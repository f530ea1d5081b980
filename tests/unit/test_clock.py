"""Specs of `ServerClock`: the server's clock offset, learned from its answers, and the allowance it leaves."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime

import pytest

from leapbatch.api.clock import FALLBACK, SLACK, ServerClock, date_header_time


def test_before_any_answer_the_offset_is_unknown_and_the_fallback_allowed() -> None:
    """No observation: offset 0, give or take FALLBACK (120 s) either way."""
    clock = ServerClock()
    assert (0.0, FALLBACK) == (clock.offset().seconds, clock.offset().uncertainty)
    assert 1000.0 - FALLBACK == clock.earliest_server_time(1000.0)


@pytest.mark.parametrize("offset", [-86_400.0, -300.0, 0.0, 42.0, 3_600.0])
def test_a_created_at_between_send_and_receipt_teaches_the_offset(offset: float) -> None:
    """A createdAt stamped between our send (t=1000) and receipt (t=1000.2) bounds the offset within 0.1 s + SLACK."""
    clock = ServerClock()
    clock.observe_created(datetime.fromtimestamp(1000.1 + offset, UTC), 1000.0, 1000.2)
    estimate = clock.offset()
    assert estimate.seconds == pytest.approx(offset, abs=1e-6)
    assert estimate.uncertainty == pytest.approx(0.1 + SLACK, abs=1e-6)
    assert clock.earliest_server_time(2000.0) == pytest.approx(2000.0 + offset - 0.1 - SLACK, abs=1e-6)


def test_a_date_header_counts_its_whole_second() -> None:
    """`Date: ...:40` read between 1000 and 1000.5 (ours) allows offsets from 40-1000.5 to 41-1000."""
    clock = ServerClock()
    moment = datetime(2026, 12, 3, 12, 0, 40, tzinfo=UTC)
    clock.observe_date(format_datetime(moment, usegmt=True), 1000.0, 1000.5)
    low, high = moment.timestamp() - 1000.5, moment.timestamp() + 1.0 - 1000.0
    assert clock.offset().seconds == pytest.approx((low + high) / 2)
    assert clock.offset().uncertainty == pytest.approx((high - low) / 2 + SLACK)


def test_one_wild_answer_does_not_move_the_median() -> None:
    """Of three answers, one a day off: the estimate stays with the other two."""
    clock = ServerClock()
    for server in (1000.0, 1000.0, 1000.0 + 86_400.0):
        clock.observe(server, server, 1000.0, 1000.0)
    assert 0.0 == clock.offset().seconds


@pytest.mark.parametrize("header", [None, "", "soon", "Mon, 99 Foo 2026 99:99:99 GMT"])
def test_an_unreadable_date_header_teaches_nothing(header: str | None) -> None:
    """A missing or garbled Date header is ignored."""
    clock = ServerClock()
    clock.observe_date(header, 1000.0, 1000.1)
    assert date_header_time(header) is None
    assert FALLBACK == clock.offset().uncertainty


def test_a_date_header_and_a_created_at_that_disagree_widen_the_allowance_to_cover_both() -> None:
    """A front end whose Date says the server is on our time while its database stamps createdAt 300 s behind: the
    earliest server time allowed covers the database's stamps too (it used to follow the median alone)."""
    clock = ServerClock()
    for _ in range(3):
        clock.observe_date(format_datetime(datetime.fromtimestamp(1000.0, UTC), usegmt=True), 1000.0, 1000.1)
    for _ in range(2):
        clock.observe_created(datetime.fromtimestamp(1000.05 - 300.0, UTC), 1000.0, 1000.1)
    assert clock.earliest_server_time(1000.0) <= 1000.0 - 300.0
