"""A finished output folder to export: a small real run against the bundled emulator, made once per session."""

from __future__ import annotations

from pathlib import Path

import pytest
from export_support import MANIFEST

from leapbatch.cli import main


@pytest.fixture(scope="session")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Return a finished folder of 13 jobs (14 images, real PNGs) whose manifest is still beside it, unchanged."""
    root = tmp_path_factory.mktemp("export-source")
    manifest = root / "critters.yaml"
    manifest.write_text(MANIFEST, encoding="utf-8")
    out = root / "critters"
    code = main(["run", "--local", "--quiet", "--speed", "1000", "--out", str(out), str(manifest)])
    assert 0 == code
    return out
