"""`results.json` is written fast at any size: the document indented, each job on a line of its own."""

from __future__ import annotations

import json

import pytest

from leapbatch.folder.results import results_text


@pytest.mark.parametrize("jobs", [[], [{"key": "a", "files": []}], [{"key": "b", "n": [1, 2]}, {"key": "é\n"}]])
def test_results_text_is_the_document_with_one_line_per_job(jobs: list[dict[str, object]]) -> None:
    """It parses back to exactly the document; the jobs are its last key, one line each; it ends in a newline."""
    document = {"version": 1, "counts": {"finished": len(jobs)}, "jobs": jobs}
    text = results_text(document)

    assert document == json.loads(text)
    assert text.endswith("\n}\n")
    lines = text.splitlines()
    assert [json.loads(line.strip().rstrip(",")) for line in lines if line.startswith("    {")] == jobs
