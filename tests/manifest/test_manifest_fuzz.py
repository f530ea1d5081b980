"""Hostile input: whatever the text, loading either succeeds or raises ManifestError, never anything else."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leapbatch.errors import ManifestError, Problem
from leapbatch.manifest import parse_manifest
from leapbatch.manifest.expand import expand

# LEAPBATCH_FUZZ_EXAMPLES=5000 runs a long campaign; CI keeps the default small.
EXAMPLES = int(os.environ.get("LEAPBATCH_FUZZ_EXAMPLES", "100"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
EXAMPLE = (Path(__file__).resolve().parents[2] / "manifests" / "example.yaml").read_text(encoding="utf-8")
KEYS = [
    "version", "name", "model", "prompt", "negative_prompt", "caption", "vars", "params", "matrix", "exclude",
    "include", "sample", "limits", "cleanup", "output", "range", "step", "seed", "steps", "width", "count", "animal",
    "style",
]  # fmt: skip
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["", "a {animal}", "{style}", "{x.y}", "{{", "m1", "yes", "no", "1:30", "0755", "2024-01-01"]),
    st.text(max_size=12),
)
STRUCTURES = st.recursive(
    SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=6), children, max_size=5),
    ),
    max_leaves=25,
)


def badly_formed(text: str | bytes) -> list[str]:
    """Load and expand a manifest; return its problems that are not well formed (any other exception fails)."""
    try:
        expand(parse_manifest(text, "fuzz.yaml"))
    except ManifestError as exc:
        problems = exc.problems
    else:
        return []
    return [str(p) for p in problems if not _located(p)] if problems else ["ManifestError without problems"]


def _located(problem: Problem) -> bool:
    return bool(problem.path == "fuzz.yaml" and problem.line >= 0 and problem.col >= 0 and problem.message)


@SETTINGS
@given(st.binary(max_size=300))
def test_random_bytes_fail_cleanly(data: bytes) -> None:
    """Random bytes load or fail with ManifestError."""
    assert [] == badly_formed(data)


@SETTINGS
@given(st.text(max_size=300))
def test_random_text_fails_cleanly(text: str) -> None:
    """Random text, surrogates and control characters included, loads or fails with ManifestError."""
    assert [] == badly_formed(text)


@SETTINGS
@given(st.dictionaries(st.sampled_from(KEYS), STRUCTURES, max_size=8))
def test_random_structures_fail_cleanly(data: dict[str, Any]) -> None:
    """Random manifest-like structures, dumped as YAML, load or fail with ManifestError."""
    base = {"version": 1, "name": "fuzz", "model": "m1", "prompt": "a cat"}
    assert [] == badly_formed(yaml.safe_dump(base | data, allow_unicode=True))


@SETTINGS
@given(
    st.lists(st.tuples(st.integers(0, len(EXAMPLE)), st.integers(0, 8), st.text(max_size=4)), min_size=1, max_size=4)
)
def test_edits_of_a_valid_manifest_fail_cleanly(edits: list[tuple[int, int, str]]) -> None:
    """Random insertions and deletions in the example manifest load or fail with ManifestError."""
    text = EXAMPLE
    for at, cut, insert in edits:
        text = text[:at] + insert + text[at + cut :]
    assert [] == badly_formed(text)


@settings(max_examples=max(EXAMPLES // 2, 1), deadline=None)
@given(st.recursive(SCALARS, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=3), c, max_size=3)))
def test_random_json_documents_fail_cleanly(value: Any) -> None:
    """Any JSON document (JSON is YAML) loads or fails with ManifestError."""
    assert [] == badly_formed(json.dumps(value))


def test_the_unedited_example_is_ok() -> None:
    """The fuzzing seed itself is a valid manifest."""
    assert 12 == len(expand(parse_manifest(EXAMPLE)).jobs)
