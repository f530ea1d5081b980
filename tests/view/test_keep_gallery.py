"""`run --gallery` keeps the page current: each change of the ledger is written, a page that reloads data.js sees
the new revision, and a gallery that can no longer be written is said once while the run goes on."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from pathlib import Path
from typing import cast

import pytest
import trio
from trio.testing import MockClock

from leapbatch.cli import gallery_cmd
from leapbatch.cli._dataset import last_run_manifest
from leapbatch.folder.ledger import Ledger, read_ledger
from leapbatch.folder.state import LedgerState
from leapbatch.view.catalog import Catalog, catalog

ROOT = Path(__file__).resolve().parents[2]


class Held:
    """What keep_gallery reads of a Ledger: its state, which a run replaces as records arrive."""

    def __init__(self, state: LedgerState) -> None:
        self.state = state


def revision(gallery: Path) -> tuple[str, list[str]]:
    """Return data.js's revision and each job's status."""
    text = (gallery / "data.js").read_text(encoding="utf-8")
    data = json.loads(text[text.index("{") : -2])
    return data["revision"], [data["statuses"][i] for i in data["jobs"]["status"]]


async def until(condition: Callable[[], bool]) -> None:
    """Wait (a minute at most) until `condition` holds: the disk has no event to wait on."""
    with trio.fail_after(60):
        while not condition():  # noqa: ASYNC110 -- polling files another thread writes
            await trio.sleep(0.02)


async def test_each_ledger_change_is_written_and_a_failure_is_said_once(
    example: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Empty ledger: every job pending; the finished state arrives: every job done, a new revision; then a link
    planted at data.js: one note, and keep_gallery returns instead of failing the run."""
    out = example
    finished = read_ledger(out)
    found = last_run_manifest(finished)
    assert found.manifest is not None
    manifest, jobs = found.manifest, found.jobs

    def snapshot(state: LedgerState) -> Catalog:
        return catalog(state, jobs, manifest, name=manifest.name)

    monkeypatch.setattr(gallery_cmd, "REFRESH_SECONDS", 0.02)
    held = Held(LedgerState())
    dest = tmp_path / "gallery"
    capsys.readouterr()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(gallery_cmd.keep_gallery, out, dest, cast(Ledger, held), snapshot)
        await until((dest / "data.js").exists)
        first, statuses = revision(dest)
        assert set(statuses) == {"pending"}
        held.state = finished
        await until(lambda: revision(dest)[0] != first)
        assert set(revision(dest)[1]) == {"done"}
        (dest / "data.js").unlink()
        (dest / "data.js").symlink_to(tmp_path / "elsewhere.js")
        held.state = LedgerState()
        said: list[str] = []

        def noted() -> bool:
            said.append(capsys.readouterr().err)
            return "no longer kept current" in "".join(said)

        await until(noted)
        await trio.sleep(0.2)
        assert nursery.child_tasks == frozenset()  # it returned: the run's nursery goes on
    assert not (tmp_path / "elsewhere.js").exists()


async def test_a_slow_catalog_is_taken_less_often(monkeypatch: pytest.MonkeyPatch, mock_clock: MockClock) -> None:
    """A catalog that takes 1 s of the run's loop is taken again only after LOOP_SHARE s, however busy the ledger."""
    mock_clock.autojump_threshold = 0.05  # virtual time jumps only once the worker thread is back, never before
    taken: list[float] = []
    seconds = iter(float(n) for n in range(1000))
    monkeypatch.setattr(gallery_cmd, "perf_counter", lambda: next(seconds))  # each catalog "takes" 1 s
    monkeypatch.setattr(gallery_cmd, "build_gallery", lambda *args: None)
    held = Held(LedgerState())

    def snapshot(state: LedgerState) -> Catalog:
        taken.append(trio.current_time())
        state.changes += 1  # the ledger changed again meanwhile
        return catalog(state, None, None, name="busy")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(gallery_cmd.keep_gallery, Path("out"), Path("gallery"), cast(Ledger, held), snapshot)
        await trio.sleep(3 * gallery_cmd.LOOP_SHARE - 1)
        nursery.cancel_scope.cancel()
    assert len(taken) == 3
    assert [round(b - a) for a, b in itertools.pairwise(taken)] == [gallery_cmd.LOOP_SHARE] * 2
