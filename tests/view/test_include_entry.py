"""A job reruns exactly from the include entry of its variables and its seed (the gallery's "copy as include entry").

The page writes `{name: label, ..., "seed": seed}` with the names that are request fields as numbers or booleans
and every other value as text; added to the manifest's include list, it is the same request, so the same key.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from leapbatch.folder.results import REQUEST_NAMES
from leapbatch.folder.state import LedgerState
from leapbatch.manifest import parse_manifest
from leapbatch.manifest.expand import expand
from leapbatch.view.catalog import catalog

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ["example.yaml", "values-files.yaml"]


def entry_text(variables: dict[str, str], seed: int) -> str:
    """Return the include entry as the page writes it: JSON, which is YAML's flow mapping too."""
    typed = {name: json.loads(label) if name in REQUEST_NAMES else label for name, label in variables.items()}
    return json.dumps({**typed, "seed": seed}, ensure_ascii=False)


@pytest.mark.parametrize("name", MANIFESTS)
def test_the_include_entry_of_every_job_is_a_duplicate_of_it(name: str) -> None:
    """Each job's entry, appended to `include`, adds no job: it is the same request as the job."""
    path = ROOT / "manifests" / name
    text = path.read_text(encoding="utf-8")
    manifest = parse_manifest(text, source_path=path)
    jobs = expand(manifest).jobs
    entries = catalog(LedgerState(), jobs, manifest, name=manifest.name).entries
    lines = [f"  - {entry_text(dict(e.variables), e.seed or 0)}" for e in entries]
    head = text if "\ninclude:" in text else text + "\ninclude:\n"
    again = expand(parse_manifest(head.rstrip("\n") + "\n" + "\n".join(lines) + "\n", source_path=path))
    assert [job.key for job in again.jobs] == [job.key for job in jobs]
    assert again.duplicates == expand(manifest).duplicates + len(jobs)
