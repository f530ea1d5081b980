"""Specs of the waits `run --local` cuts to what its emulator can need (`leapbatch.cli.local_waits`)."""

from __future__ import annotations

import pytest

from leapbatch.cli.emulator_cmd import DEFAULT_FAULT_DELAY, DEFAULT_LIST_LAG
from leapbatch.cli.local_waits import max_retry_after, settle_window


@pytest.mark.parametrize(("local", "expected"), [(True, 2.0), (False, 120.0)])
def test_retry_after_is_honoured_up_to_2_s_on_the_emulator(local: bool, expected: float) -> None:
    """Without --max-retry-after, a Retry-After waits at most 2 s with --local and 120 s elsewhere."""
    assert expected == max_retry_after(None, local=local)


@pytest.mark.parametrize(("local", "expected"), [(True, 12.0), (False, 30.0)])
def test_the_settle_window_covers_the_emulators_longest_lag(local: bool, expected: float) -> None:
    """Without --settle-window, a lost create is looked for 12 s with --local (its 2 s late commit plus 5 s listing
    lag, plus 5 s) and 30 s elsewhere."""
    assert (2.0, 5.0) == (DEFAULT_FAULT_DELAY, DEFAULT_LIST_LAG)
    assert expected == settle_window(None, local=local)
    assert settle_window(None, local=True) >= DEFAULT_FAULT_DELAY + DEFAULT_LIST_LAG + 5.0


@pytest.mark.parametrize("local", [True, False])
def test_an_option_given_always_wins(local: bool) -> None:
    """--max-retry-after and --settle-window, when given, are used as they are, 0 included."""
    assert (300.0, 0.0) == (max_retry_after(300.0, local=local), settle_window(0.0, local=local))
