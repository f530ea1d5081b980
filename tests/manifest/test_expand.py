"""Expansion: the jobs a manifest makes, their order, keys, seeds, and counts."""

from __future__ import annotations

import json
from typing import Any

import pytest

from leapbatch.errors import ManifestError
from leapbatch.jobs import job_key
from leapbatch.manifest import parse_manifest
from leapbatch.manifest.expand import Expansion, ModelTotals, derived_seed, expand, request_key
from leapbatch.wire import CreateInferenceDto

MODEL = "m1"


def expansion(**data: Any) -> Expansion:
    """Return the expansion of a manifest given as keyword data (version, name, model filled in)."""
    return expand(parse_manifest(json.dumps({"version": 1, "name": "t", "model": MODEL} | data)))


def prompts(result: Expansion) -> list[str]:
    """Return the prompts of the jobs, in order."""
    return [job.request.prompt for job in result.jobs]


def test_matrix_order_is_axis_order_with_the_last_axis_fastest() -> None:
    """Jobs come in the order of the cartesian product of the axes as written."""
    result = expansion(prompt="{a}{b}", matrix={"a": ["1", "2"], "b": ["x", "y"]}, params={"seed": 1})

    assert ["1x", "1y", "2x", "2y"] == prompts(result)


def test_include_entries_come_after_the_matrix() -> None:
    """Include entries are appended after the matrix jobs, in order."""
    result = expansion(prompt="{a}", matrix={"a": ["1"]}, include=[{"a": "3"}, {"a": "2"}], params={"seed": 1})

    assert ["1", "3", "2"] == prompts(result)


def test_every_key_is_the_job_key_of_its_request() -> None:
    """Each job's key equals `jobs.job_key(model, request)`."""
    result = expansion(prompt="{a}", negative_prompt="bad {a}", matrix={"a": ["x", "y"], "prompt_strength": [7, 7.5]})

    assert [job_key(job.model_id, job.request) for job in result.jobs] == [job.key for job in result.jobs]


def test_request_key_matches_job_key_for_unicode_and_legacy_fields() -> None:
    """The fast key of a flat body equals job_key, for non-ASCII text and legacy fields too."""
    request = CreateInferenceDto(
        prompt='un "chat" é 🐈\\n', steps=30, prompt_strength=7.5, seed=3, sampler="ddim", restore_faces=False
    )

    assert job_key("m", request) == request_key("m", request.to_wire())


def test_a_job_without_a_seed_gets_one_derived_from_its_key() -> None:
    """The derived seed is the first 8 hex digits, mod 2**31, of the key of the request without a seed."""
    job = expansion(prompt="a cat").jobs[0]
    unseeded = job.request.model_copy(update={"seed": None})

    assert int(job_key(MODEL, unseeded)[:8], 16) % 2**31 == job.request.seed
    assert derived_seed(MODEL, job.request) == job.request.seed


def test_derived_seeds_and_keys_are_stable_across_versions() -> None:
    """A fixed manifest always gets the same seed and key (changing them would re-run paid jobs)."""
    job = expansion(name="g", prompt="a cat").jobs[0]

    assert (1404159164, "209eaf96a0ed90d70fbf6d1d867fd223f5871b437a9e03cc70526182e03d0e57") == (
        job.request.seed,
        job.key,
    )


def test_derived_seeds_differ_between_prompts() -> None:
    """Different requests get different derived seeds (never one constant seed)."""
    result = expansion(prompt="{a}", matrix={"a": [str(i) for i in range(20)]})

    assert 20 == len({job.request.seed for job in result.jobs})


def test_explicit_seeds_are_kept() -> None:
    """Seeds from a seed axis, params or an include entry are sent as written."""
    result = expansion(prompt="{a}", matrix={"a": ["x"], "seed": [5, 0]}, include=[{"a": "y", "seed": 9}])
    fixed = expansion(prompt="a cat", params={"seed": 77})

    assert [5, 0, 9] == [job.request.seed for job in result.jobs]
    assert 77 == fixed.jobs[0].request.seed


def test_ranges_are_inclusive_with_an_optional_step() -> None:
    """`{range: [a, b]}` includes both ends; `step` spaces the values."""
    result = expansion(prompt="a cat", matrix={"seed": {"range": [1, 4]}, "steps": {"range": [20, 40], "step": 10}})

    assert [(seed, steps) for seed in (1, 2, 3, 4) for steps in (20, 30, 40)] == [
        (job.request.seed, job.request.steps) for job in result.jobs
    ]


def test_mapping_values_set_request_fields_and_variables_together() -> None:
    """A mapping-valued axis sets width and height, or several template variables, at once."""
    result = expansion(
        prompt="{light}, {mood}",
        params={"seed": 1},
        matrix={
            "size": [{"width": 512, "height": 768}, {"width": 768, "height": 512}],
            "lighting": [{"light": "golden", "mood": "warm"}],
        },
    )

    assert [("golden, warm", 512, 768), ("golden, warm", 768, 512)] == [
        (job.request.prompt, job.request.width, job.request.height) for job in result.jobs
    ]


def test_params_are_defaults_that_axes_and_includes_override() -> None:
    """A field comes from the combination, else params, else the documented defaults."""
    result = expansion(
        prompt="{a}",
        params={"steps": 25, "seed": 1},
        matrix={"a": ["x"], "width": [256]},
        include=[{"a": "y", "steps": 40}],
    )

    assert [(25, 256, 512), (40, 512, 512)] == [
        (job.request.steps, job.request.width, job.request.height) for job in result.jobs
    ]


def test_wire_body_holds_the_documented_fields_only() -> None:
    """Without a negative prompt or legacy fields, the body has exactly the always-sent fields."""
    job = expansion(prompt="a cat", params={"seed": 3}).jobs[0]

    expected = {
        "prompt": "a cat",
        "steps": 30,
        "width": 512,
        "height": 512,
        "numberOfImages": 1,
        "promptStrength": 7,
        "seed": 3,
    }
    assert expected == job.request.to_wire()


def test_an_empty_negative_prompt_is_sent_as_empty() -> None:
    """`negative_prompt: ""` sends an empty negative prompt instead of Leap's default."""
    job = expansion(prompt="a cat", negative_prompt="").jobs[0]

    assert "" == job.request.to_wire()["negativePrompt"]


def test_legacy_fields_are_sent_only_when_set() -> None:
    """Legacy fields appear in the body only when a manifest sets them."""
    result = expansion(prompt="a cat", matrix={"sampler": ["ddim"], "upscale_by": ["x2"]})

    assert ("ddim", "x2") == (
        result.jobs[0].request.to_wire()["sampler"],
        result.jobs[0].request.to_wire()["upscaleBy"],
    )


def test_integral_prompt_strength_is_sent_as_an_integer() -> None:
    """`prompt_strength: 7.0` is sent as 7 (what is hashed is what is sent); 7.5 stays 7.5."""
    result = expansion(prompt="a cat", matrix={"prompt_strength": [7.0, 7.5]})

    assert [7, 7.5] == [job.request.to_wire()["promptStrength"] for job in result.jobs]
    assert isinstance(result.jobs[0].request.prompt_strength, int)


def test_exclude_drops_matching_combinations_and_lists_match_any() -> None:
    """An exclude entry drops combinations matching all its keys; a list matches any of its items."""
    result = expansion(
        prompt="{a}{b}",
        params={"seed": 1},
        matrix={"a": ["1", "2", "3"], "b": ["x", "y"]},
        exclude=[{"a": "1", "b": "x"}, {"a": ["2", "3"], "b": "y"}],
    )

    assert (["1y", "2x", "3x"], 6, 3) == (prompts(result), result.combinations, result.excluded)


def test_include_names_it_omits_come_from_vars() -> None:
    """An include entry that leaves out a name uses the value in vars."""
    result = expansion(prompt="{a} {b}", vars={"b": "default"}, include=[{"a": "x"}, {"a": "y", "b": "own"}])

    assert ["x default", "y own"] == prompts(result)


def test_equal_requests_collapse_into_the_first_and_are_counted() -> None:
    """Combinations and include entries whose requests are equal make one job; the count is reported."""
    result = expansion(
        prompt="{a}", matrix={"a": ["x", "y"], "seed": [1, 1]}, include=[{"a": "x", "seed": 1}, {"a": "z", "seed": 1}]
    )

    assert (["x", "y", "z"], 3) == (prompts(result), result.duplicates)
    assert len(result.jobs) == result.combinations - result.excluded - result.duplicates + result.included


def test_sample_keeps_count_matrix_jobs_in_matrix_order_and_all_includes() -> None:
    """`sample` keeps `count` matrix jobs (in matrix order) plus every include entry."""
    full = expansion(prompt="{a}", matrix={"a": [str(i) for i in range(50)]}, include=[{"a": "extra"}])
    sampled = expansion(
        prompt="{a}", matrix={"a": [str(i) for i in range(50)]}, include=[{"a": "extra"}], sample={"count": 10}
    )

    order = [job.key for job in full.jobs]
    kept = [job.key for job in sampled.jobs]
    assert (11, 40, "extra") == (len(kept), sampled.sampled_out, sampled.jobs[-1].request.prompt)
    assert kept[:-1] == sorted(kept[:-1], key=order.index)


def test_a_larger_sample_keeps_every_earlier_pick() -> None:
    """Raising the sample count only adds jobs."""

    def picked(count: int) -> set[str]:
        result = expansion(prompt="{a}", matrix={"a": [str(i) for i in range(100)]}, sample={"count": count, "seed": 4})
        return {job.key for job in result.jobs}

    assert picked(10) < picked(11) < picked(30)


def test_the_sample_seed_changes_the_pick() -> None:
    """Another sample seed picks other jobs."""

    def picked(seed: int) -> set[str]:
        result = expansion(prompt="{a}", matrix={"a": [str(i) for i in range(100)]}, sample={"count": 10, "seed": seed})
        return {job.key for job in result.jobs}

    assert picked(1) != picked(2)


def test_a_sample_larger_than_the_matrix_keeps_everything() -> None:
    """A count above the number of jobs samples nothing out."""
    result = expansion(prompt="{a}", matrix={"a": ["x", "y"]}, sample={"count": 5})

    assert (2, 0) == (len(result.jobs), result.sampled_out)


def test_excluding_everything_is_an_error() -> None:
    """A manifest whose exclude drops every combination has no jobs: that is an error."""
    with pytest.raises(ManifestError) as caught:
        expansion(prompt="{a}", matrix={"a": ["x"]}, exclude=[{"a": "x"}])

    assert "drops all 1 combinations, so the manifest has no jobs" == caught.value.problems[0].message


def test_a_prompt_that_renders_empty_is_an_error() -> None:
    """A prompt that renders to only spaces is reported with the values that made it."""
    with pytest.raises(ManifestError) as caught:
        expansion(prompt="{a}", matrix={"a": [" ", "x"]})

    assert [("prompt", "renders to empty text (for a= )")] == [(p.field, p.message) for p in caught.value.problems]


def test_totals_per_model_and_per_axis_value() -> None:
    """Counts of jobs and images per model, and of jobs per axis value, cover every job."""
    result = expansion(
        prompt="{a}",
        params={"seed": 1},
        matrix={"model": ["m1", "m2"], "a": ["x", "y"], "number_of_images": [1, 3]},
        exclude=[{"model": "m2", "a": "y"}],
    )

    assert (12, {"m1": ModelTotals(4, 8), "m2": ModelTotals(2, 4)}) == (result.images, result.models)
    assert {
        "model": {"m1": 4, "m2": 2},
        "a": {"x": 4, "y": 2},
        "number_of_images": {"1": 3, "3": 3},
    } == result.axis_values


def test_job_variables_hold_the_values_that_made_the_job() -> None:
    """A job's variables are the combination's names and the vars its templates used."""
    job = expansion(
        prompt="{a} by {artist}", vars={"artist": "me"}, matrix={"a": ["x"], "seed": [4], "steps": [20]}
    ).jobs[0]

    assert {"a": "x", "seed": 4, "steps": 20, "artist": "me"} == dict(job.variables)


def test_unused_mapping_names_ride_along_as_variables() -> None:
    """Names in mapping values that no template uses end up in the job's variables (dataset metadata)."""
    result = expansion(prompt="{light}", matrix={"lighting": [{"light": "golden", "mood": "warm"}]}, params={"seed": 1})

    assert ("golden", {"light": "golden", "mood": "warm"}) == (
        result.jobs[0].request.prompt,
        dict(result.jobs[0].variables),
    )
