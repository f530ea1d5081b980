"""metadata.jsonl's columns: documented, the same on every row of every run, with stable types."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from leapbatch.cli import main

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = """\
version: 1
name: {name}
model: 26a1a203-3a46-42cb-8cfa-f4de075907d8
prompt: "a {{animal}} at dusk"
params: {{width: 64, height: 64, steps: 5, prompt_strength: {strength}}}
matrix:
  animal: [fox, owl]
  seed: [1, 2]
"""


def run(tmp_path: Path, name: str, strength: str) -> Path:
    """Run a 4-job manifest on the emulator and return its folder."""
    manifest = tmp_path / f"{name}.yaml"
    manifest.write_text(MANIFEST.format(name=name, strength=strength), encoding="utf-8")
    out = tmp_path / name
    assert 0 == main(["run", "--local", "--quiet", "--speed", "1000", "--out", str(out), str(manifest)])
    return out


def rows(out: Path) -> list[dict[str, Any]]:
    """Return the folder's metadata rows."""
    return [json.loads(line) for line in (out / "metadata.jsonl").read_text(encoding="utf-8").splitlines()]


def documented_columns() -> list[str]:
    """Return the columns docs/dataset.md's table lists, in order."""
    text = (ROOT / "docs" / "dataset.md").read_text(encoding="utf-8")
    table = text.split("## Columns", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\| `([a-z0-9_<>]+)` \|", table, flags=re.MULTILINE)


def test_every_column_is_documented_in_order(tmp_path: Path) -> None:
    """The columns of a row are docs/dataset.md's table, in its order (`var_<name>` for each variable)."""
    found = list(rows(run(tmp_path, "a", "7"))[0])
    shown = [("var_<name>" if column.startswith("var_") else column) for column in found]
    assert documented_columns() == shown


def test_request_fields_set_by_axes_get_no_var_column(tmp_path: Path) -> None:
    """A `seed` axis is in the `seed` column only: no `var_seed` copy as text."""
    row = rows(run(tmp_path, "a", "7"))[0]
    assert ["var_animal"] == [column for column in row if column.startswith("var_")]
    assert isinstance(row["seed"], int)


def test_types_are_stable_whatever_the_manifest_wrote(tmp_path: Path) -> None:
    """prompt_strength is a float for 7 and 7.5 alike; negative_prompt is text even when none was sent."""
    for out, strength in ((run(tmp_path, "a", "7"), 7.0), (run(tmp_path, "b", "7.5"), 7.5)):
        for row in rows(out):
            assert (float, strength) == (type(row["prompt_strength"]), row["prompt_strength"])
            assert "" == row["negative_prompt"]
            assert (64, 64) == (row["width"], row["height"])


def test_two_runs_concatenate_in_datasets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`datasets.concatenate_datasets` joins two runs' folders (7 and 7.5 as strengths) into 8 rows."""
    import datasets

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    loaded = [
        datasets.load_dataset("imagefolder", data_dir=str(out), split="train", cache_dir=str(tmp_path / "cache"))
        for out in (run(tmp_path, "a", "7"), run(tmp_path, "b", "7.5"))
    ]
    joined = datasets.concatenate_datasets(loaded)
    assert 8 == len(joined)
    assert [7.0] * 4 + [7.5] * 4 == joined["prompt_strength"]
    assert "a fox at dusk" == joined[0]["text"]
