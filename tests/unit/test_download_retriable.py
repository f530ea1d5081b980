"""Specs of the one download-retriability table: fetch again only what the network or a lagging host explains."""

from __future__ import annotations

import pytest

from leapbatch.errors import DOWNLOAD_RETRIABLE, DownloadError, DownloadFailure, download_retriable

F = DownloadFailure


@pytest.mark.parametrize(
    ("failure", "status", "expected"),
    [
        (F.CONNECTION, None, True),
        (F.TIMEOUT, None, True),
        (F.CUT_SHORT, None, True),
        (F.ENCODING, None, True),
        (F.UNDECODABLE, None, True),  # a partially propagated object looks like this
        (F.BAD_URL, None, False),
        (F.NOT_AN_IMAGE, None, False),
        (F.BAD_BYTES, None, False),
        (F.TOO_BIG, None, False),
        (F.WRONG_SIZE, None, False),
        (F.STATUS, 500, True),
        (F.STATUS, 503, True),
        (F.STATUS, 599, True),
        (F.STATUS, 403, True),  # a CDN that has not caught up with a just-finished job
        (F.STATUS, 404, True),
        (F.STATUS, 408, True),
        (F.STATUS, 425, True),
        (F.STATUS, 429, True),
        (F.STATUS, 400, False),
        (F.STATUS, 401, False),
        (F.STATUS, 410, False),
        (F.STATUS, 204, False),
        (F.STATUS, 301, False),
        (F.STATUS, None, False),
    ],
)
def test_download_retriable_table(failure: DownloadFailure, status: int | None, expected: bool) -> None:
    """Each failure (and status) is retriable exactly as the table says, and DownloadError reports the same."""
    error = DownloadError("x", uri="http://h/x.png", failure=failure, status=status)
    assert (expected, expected) == (download_retriable(failure, status), error.retriable)


def test_every_failure_but_status_is_in_the_table() -> None:
    """The table names every failure kind (a status is decided by its code)."""
    assert set(DownloadFailure) - {F.STATUS} == set(DOWNLOAD_RETRIABLE)
