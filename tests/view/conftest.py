"""A finished folder of the Quick start example, made once per session for the view tests (which only read it:
a test that spoils a folder copies it first), and its catalog."""

from __future__ import annotations

from pathlib import Path

import pytest

from leapbatch.cli import main
from leapbatch.cli._dataset import folder_catalog
from leapbatch.folder.ledger import read_ledger
from leapbatch.view.catalog import Catalog

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "manifests" / "example.yaml"


@pytest.fixture(scope="session")
def example(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Return a finished folder of the Quick start example (12 jobs, real PNGs from the emulator)."""
    out = tmp_path_factory.mktemp("view") / "example"
    assert 0 == main(["run", "--local", "--quiet", "--speed", "1000", "--out", str(out), str(EXAMPLE)])
    return out


@pytest.fixture(scope="session")
def shown(example: Path) -> Catalog:
    """Return the example folder's catalog."""
    return folder_catalog(example, read_ledger(example))
