"""Properties of expansion over generated manifests: counts add up, keys identify requests, sampling is stable."""

from __future__ import annotations

import itertools
import json
import math
import random
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leapbatch.jobs import canonical_json, job_key
from leapbatch.manifest import parse_manifest
from leapbatch.manifest.expand import Expansion, expand

SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NAMES = ["a", "b", "c", "d"]
VALUES = st.sampled_from(["x", "y", "z", "w"])


@st.composite
def matrices(draw: st.DrawFn) -> dict[str, Any]:
    """Draw a manifest: 1-4 template axes (values may repeat), maybe a steps axis, excludes and includes."""
    names = NAMES[: draw(st.integers(1, 4))]
    matrix: dict[str, Any] = {name: draw(st.lists(VALUES, min_size=1, max_size=3)) for name in names}
    if draw(st.booleans()):
        matrix["steps"] = draw(st.lists(st.sampled_from([10, 20]), min_size=1, max_size=2))
    exclude = draw(
        st.lists(
            st.dictionaries(
                st.sampled_from(names), st.one_of(VALUES, st.lists(VALUES, min_size=1, max_size=2)), min_size=1
            ),
            max_size=3,
        )
    )
    exclude = [e for e in exclude if all(_domain_ok(matrix[k], v) for k, v in e.items())]
    include = draw(st.lists(st.fixed_dictionaries({name: VALUES for name in names}), max_size=3))
    combos = [dict(zip(matrix, values, strict=True)) for values in itertools.product(*matrix.values())]
    if not include and all(any(_matches(c, e) for e in exclude) for c in combos):
        exclude = []  # a manifest with no job left is an error, tested elsewhere
    prompt = "|".join("{" + name + "}" for name in names)
    return {
        "version": 1,
        "name": "p",
        "model": "m1",
        "prompt": prompt,
        "matrix": matrix,
        "exclude": exclude,
        "include": include,
    }


def _domain_ok(axis: list[Any], value: Any) -> bool:
    return all(v in axis for v in (value if isinstance(value, list) else [value]))


def _matches(combo: dict[str, Any], entry: dict[str, Any]) -> bool:
    return all(combo[k] in (v if isinstance(v, list) else [v]) for k, v in entry.items())


def expanded(data: dict[str, Any]) -> Expansion:
    """Return the expansion of manifest data."""
    return expand(parse_manifest(json.dumps(data)))


@SETTINGS
@given(matrices())
def test_job_count_is_product_minus_excluded_plus_included_minus_duplicates(data: dict[str, Any]) -> None:
    """jobs = product of axis sizes - excluded + included - duplicates, each counted by brute force."""
    matrix = data["matrix"]
    combos = [dict(zip(matrix, values, strict=True)) for values in itertools.product(*matrix.values())]
    kept = [c for c in combos if not any(_matches(c, e) for e in data["exclude"])]
    requests = {(tuple(c[n] for n in NAMES if n in c), c.get("steps", 30)) for c in kept}
    requests |= {(tuple(i[n] for n in NAMES if n in i), 30) for i in data["include"]}

    result = expanded(data)

    assert (math.prod(len(v) for v in matrix.values()), len(combos) - len(kept)) == (
        result.combinations,
        result.excluded,
    )
    assert len(requests) == len(result.jobs)
    assert result.combinations - result.excluded + result.included - result.duplicates == len(result.jobs)


@SETTINGS
@given(matrices())
def test_keys_are_unique_and_identify_requests(data: dict[str, Any]) -> None:
    """Distinct jobs have distinct keys, and distinct keys have distinct requests."""
    jobs = expanded(data).jobs

    keys = {job.key for job in jobs}
    bodies = {canonical_json([job.model_id, job.request.to_wire()]) for job in jobs}
    assert len(jobs) == len(keys) == len(bodies)


@SETTINGS
@given(matrices(), st.randoms(use_true_random=False))
def test_reordering_axes_keys_and_mapping_entries_changes_no_key(data: dict[str, Any], rng: random.Random) -> None:
    """Shuffling the top-level keys, the axes and the keys of every mapping gives the same set of keys."""

    def shuffled(mapping: dict[str, Any]) -> dict[str, Any]:
        items = list(mapping.items())
        rng.shuffle(items)
        return dict(items)

    other = shuffled(data)
    other["matrix"] = shuffled(data["matrix"])
    other["exclude"] = [shuffled(e) for e in data["exclude"]]
    other["include"] = [shuffled(i) for i in data["include"]]

    assert {job.key for job in expanded(data).jobs} == {job.key for job in expanded(other).jobs}


@SETTINGS
@given(matrices())
def test_expansion_is_deterministic(data: dict[str, Any]) -> None:
    """Expanding the same manifest twice gives the same jobs in the same order."""
    assert [job.key for job in expanded(data).jobs] == [job.key for job in expanded(data).jobs]


@SETTINGS
@given(st.integers(1, 40), st.integers(1, 40), st.integers(0, 2**32))
def test_sampling_is_prefix_stable(small: int, large: int, seed: int) -> None:
    """The jobs picked with a smaller count are all picked with a larger one."""
    small, large = sorted((small, large))
    base = {
        "version": 1,
        "name": "s",
        "model": "m1",
        "prompt": "{a} {b}",
        "matrix": {"a": list("abcdef"), "b": list("uvwxyz")},
    }

    def picked(count: int) -> set[str]:
        return {job.key for job in expanded(base | {"sample": {"count": count, "seed": seed}}).jobs}

    assert picked(small) <= picked(large)
    assert (min(small, 36), min(large, 36)) == (len(picked(small)), len(picked(large)))


FIELD_VALUES: dict[str, list[Any]] = {
    "prompt_strength": [0, 7, 7.0, 7.5, 30],
    "seed": [0, 1, 2**31 - 1],
    "width": [8, 512, 2048],
    "sampler": ["ddim", "euler"],
    "restore_faces": [True, False],
    "steps": [1, 30],
}


@SETTINGS
@given(
    st.dictionaries(
        st.sampled_from(sorted(FIELD_VALUES)),
        st.integers(0, 2**10),
        min_size=1,
    ).map(
        lambda picks: {
            name: [v for i, v in enumerate(FIELD_VALUES[name]) if (bits >> i) & 1] or FIELD_VALUES[name][:1]
            for name, bits in picks.items()
        }
    )
)
def test_request_field_axes_give_one_job_per_distinct_request(matrix: dict[str, list[Any]]) -> None:
    """Keys equal `jobs.job_key`, and `7` and `7.0` are one request: jobs = distinct requests."""
    data = {"version": 1, "name": "f", "model": "m1", "prompt": "a cat", "matrix": matrix}
    distinct = {tuple(values) for values in itertools.product(*matrix.values())}  # 7 == 7.0 in Python too

    jobs = expanded(data).jobs

    assert [job_key(job.model_id, job.request) for job in jobs] == [job.key for job in jobs]
    assert len(distinct) == len(jobs)
