"""Specs of the CLI's one error boundary: groups are unwrapped once and one leaf is chosen, always the same one."""

from __future__ import annotations

import errno

import pytest

from leapbatch import errors
from leapbatch.cli._boundary import chosen, is_expected, leaves, render

REFUSED = errors.ApiUnavailableError("the API is gone")
LOCKED = errors.OutputLockedError("in use")
DISK = OSError(errno.ENOSPC, "No space left on device", "/out/ledger.jsonl")
BUG = ZeroDivisionError("a bug")


def group(*inner: BaseException) -> BaseExceptionGroup[BaseException]:
    """Return a group of `inner`, nested one level deeper for each further item (as nurseries nest)."""
    head, *rest = inner
    return BaseExceptionGroup("outer", [head, *([group(*rest)] if rest else [])])


@pytest.mark.parametrize(
    ("raised", "expected"),
    [
        pytest.param(REFUSED, REFUSED, id="a-plain-error-is-its-own-leaf"),
        pytest.param(group(DISK), DISK, id="one-error-in-a-group"),
        pytest.param(group(KeyboardInterrupt(), DISK), DISK, id="disk-full-beats-ctrl-c"),
        pytest.param(group(DISK, LOCKED, REFUSED), REFUSED, id="leapbatch-errors-beat-os-errors-highest-code-first"),
        pytest.param(group(LOCKED, REFUSED), REFUSED, id="order-does-not-matter"),
        pytest.param(group(REFUSED, LOCKED), REFUSED, id="order-does-not-matter-reversed"),
        pytest.param(group(REFUSED, BUG, KeyboardInterrupt()), BUG, id="a-bug-is-always-shown"),
    ],
)
def test_the_boundary_chooses_one_leaf(raised: BaseException, expected: BaseException) -> None:
    """Bugs first, then leapbatch errors (highest exit code), then OS errors, then Ctrl-C, wherever they sit."""
    assert expected is chosen(raised)


def test_leaves_flattens_nested_groups() -> None:
    """Every leaf of nested groups comes out, in order."""
    assert [REFUSED, DISK, LOCKED] == list(leaves(group(REFUSED, DISK, LOCKED)))


@pytest.mark.parametrize(
    ("leaf", "code", "first_line"),
    [
        (REFUSED, errors.EXIT_API_UNAVAILABLE, "error: the API is gone"),
        (LOCKED, errors.EXIT_LOCKED, "error: in use"),
        (DISK, errors.EXIT_USAGE, "error: No space left on device: /out/ledger.jsonl"),
        (KeyboardInterrupt(), errors.EXIT_INTERRUPTED, "interrupted"),
    ],
)
def test_each_expected_leaf_is_one_line_a_hint_and_its_code(
    leaf: BaseException, code: int, first_line: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """An expected failure prints its line (and a hint when it has one) on stderr and returns its exit code."""
    assert (True, code) == (is_expected(leaf), render(leaf))
    lines = capsys.readouterr().err.splitlines()
    assert first_line == lines[0]
    assert all(line.startswith("hint: ") for line in lines[1:])


def test_a_bug_is_not_expected() -> None:
    """Anything that is not a leapbatch error, an OS error or Ctrl-C is a bug (the boundary re-raises it)."""
    assert not is_expected(BUG)
