"""Specs of `Terminated` (SIGTERM, SIGHUP): where `leapbatch.cli.signals` raises it, and how the boundary shows it.

The signals are real (`signal.raise_signal` to this very process): a handler that is missing would end the test run,
which is as red as a test gets.
"""

from __future__ import annotations

import errno
import signal
from collections.abc import Callable, Iterator

import pytest
import trio

from leapbatch import errors
from leapbatch.cli import main, signals
from leapbatch.cli._boundary import INTERRUPT_HINT, chosen, is_expected, leaves, render

DISK = OSError(errno.ENOSPC, "No space left on device", "/out/results.json")
BUG = ZeroDivisionError("a bug")


def terminated_by(call: Callable[[], object]) -> list[int]:
    """Return the signal numbers of the `Terminated`s `call()` raised inside `terminable()` (none: it returned)."""
    try:
        with signals.terminable():
            call()
    except BaseException as exc:  # what came out is what the tests check
        return [leaf.signum for leaf in leaves(exc) if isinstance(leaf, errors.Terminated)]
    return []


@pytest.fixture(autouse=True)
def _default_handlers() -> Iterator[None]:
    """Run each test with SIGTERM and SIGHUP at their default actions, and put back what was there."""
    before = {signum: signal.getsignal(signum) for signum in signals.SIGNALS}
    for signum in signals.SIGNALS:
        signal.signal(signum, signal.SIG_DFL)
    yield
    for signum, handler in before.items():
        signal.signal(signum, handler)


@pytest.mark.parametrize(("signum", "code", "name"), [(signal.SIGTERM, 143, "SIGTERM"), (signal.SIGHUP, 129, "SIGHUP")])
def test_the_boundary_names_the_signal_gives_the_hint_and_exits_128_plus_n(
    signum: int, code: int, name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """`interrupted by SIGTERM` and the resume hint on stderr; exit 143 for SIGTERM, 129 for SIGHUP."""
    leaf = errors.Terminated(signum)
    assert (True, code) == (is_expected(leaf), render(leaf))
    assert [f"interrupted by {name}", f"hint: {INTERRUPT_HINT}"] == capsys.readouterr().err.splitlines()


def test_a_group_with_a_signal_in_it_shows_the_signal() -> None:
    """A signal unwinding the nurseries comes out of a group as the leaf shown."""
    terminated = errors.Terminated(signal.SIGTERM)
    assert terminated is chosen(BaseExceptionGroup("run", [BaseExceptionGroup("jobs", [terminated])]))


@pytest.mark.parametrize(
    ("raised", "shown"),
    [
        pytest.param([errors.Terminated(signal.SIGTERM), DISK], 1, id="disk-full-beats-a-signal"),
        pytest.param([errors.Terminated(signal.SIGTERM), BUG], 1, id="a-bug-beats-a-signal"),
        pytest.param([KeyboardInterrupt(), errors.Terminated(signal.SIGTERM)], 1, id="sigterm-143-beats-ctrl-c-130"),
        pytest.param([errors.Terminated(signal.SIGHUP), KeyboardInterrupt()], 1, id="ctrl-c-130-beats-sighup-129"),
        pytest.param(
            [errors.Terminated(signal.SIGHUP), errors.Terminated(signal.SIGTERM)], 1, id="sigterm-beats-sighup"
        ),
    ],
)
def test_a_signal_ranks_with_ctrl_c_after_errors(raised: list[BaseException], shown: int) -> None:
    """Bugs, leapbatch errors and OS errors first; among interruptions the highest exit code, whatever the order."""
    assert (raised[shown], raised[shown]) == (
        chosen(BaseExceptionGroup("g", raised)),
        chosen(BaseExceptionGroup("g", raised[::-1])),
    )


def test_terminable_raises_where_the_main_thread_is_then_puts_the_old_handler_back() -> None:
    """Outside an event loop, SIGTERM raises `Terminated` at once; after the block the default action is back."""
    with pytest.raises(errors.Terminated) as raised, signals.terminable():
        signal.raise_signal(signal.SIGTERM)
    assert signal.SIGTERM == raised.value.signum
    assert signal.SIG_DFL == signal.getsignal(signal.SIGTERM)


def test_an_ignored_signal_stays_ignored() -> None:
    """A process started ignoring SIGHUP (nohup) keeps ignoring it, inside and outside the event loop."""
    signal.signal(signal.SIGHUP, signal.SIG_IGN)

    async def hung_up() -> str:
        signal.raise_signal(signal.SIGHUP)
        await trio.sleep(0.05)
        return "went on"

    with signals.terminable():
        signal.raise_signal(signal.SIGHUP)
        assert "went on" == signals.run(hung_up)
    assert signal.SIG_IGN == signal.getsignal(signal.SIGHUP)


def test_a_signal_inside_the_loop_cancels_the_work_and_raises_terminated() -> None:
    """Inside `run`, SIGTERM cancels the running tasks at their next checkpoint (their cleanup runs) and
    `Terminated` comes out."""
    steps: list[str] = []

    async def working() -> None:
        try:
            signal.raise_signal(signal.SIGTERM)
            await trio.sleep(5)
            steps.append("slept through the signal")
        finally:
            steps.append("cleaned up")

    assert [signal.SIGTERM] == terminated_by(lambda: signals.run(working))
    assert ["cleaned up"] == steps
    assert signal.SIG_DFL == signal.getsignal(signal.SIGTERM)


def test_a_signal_as_the_loop_ends_still_ends_the_command() -> None:
    """SIGHUP raised in the loop's last step (no checkpoint left) still comes out as `Terminated`, never a result."""

    async def last_step() -> str:
        signal.raise_signal(signal.SIGHUP)
        return "result"

    for _ in range(20):  # the signal meets the receiver open, closing, or closed: each way it must come out
        assert [signal.SIGHUP] == terminated_by(lambda: signals.run(last_step))


def test_a_signal_before_the_receiver_opened_is_raised_once_it_is_open() -> None:
    """A signal held before the loop's receiver opened ends the loop before the work starts."""
    started: list[str] = []

    async def work() -> None:
        started.append("started")

    async def guarded() -> None:
        await signals._guarded([signal.SIGTERM], [signal.SIGTERM], work)

    with pytest.raises(errors.Terminated) as raised:
        trio.run(guarded)
    assert (signal.SIGTERM, []) == (raised.value.signum, started)


@pytest.mark.parametrize("command", [[], ["run"], ["delete"], ["verify"]])
def test_the_help_that_lists_exit_codes_lists_the_signals(
    command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """`--help` of leapbatch, run, delete and verify lists 143 (SIGTERM) and 129 (SIGHUP) with the other codes."""
    assert 0 == main([*command, "--help"])
    shown = " ".join(capsys.readouterr().out.split())
    assert ("143 SIGTERM" in shown, "129 SIGHUP" in shown) == (True, True)
