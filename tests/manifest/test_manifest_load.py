"""Loading manifests: defaults, what the runner reads, and how problems are located."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from leapbatch.errors import ManifestError, Problem, UsageError
from leapbatch.manifest import Limits, load_manifest, parse_manifest

MODEL = "26a1a203-3a46-42cb-8cfa-f4de075907d8"


def doc(**overrides: Any) -> dict[str, Any]:
    """Return a small valid manifest as data, with some keys replaced."""
    return {"version": 1, "name": "cats", "model": MODEL, "prompt": "a {animal}", "matrix": {"animal": ["cat"]}} | (
        overrides
    )


HEAD = "version: 1\nname: cats\nmodel: m1\nprompt: a cat\n"


def problems_of(text: str) -> list[str]:
    """Return the problems of a manifest that must not load, as text."""
    with pytest.raises(ManifestError) as caught:
        parse_manifest(text, "m.yaml")
    return [str(p) for p in caught.value.problems]


def test_defaults_for_what_the_runner_reads() -> None:
    """Without limits, cleanup or output, a manifest gets the documented defaults."""
    manifest = parse_manifest(json.dumps(doc()))

    assert Limits(requests_per_second=10, burst=32, max_in_flight=32, job_timeout=600) == manifest.limits
    assert "never" == manifest.cleanup.delete_remote
    assert Path("outputs/cats") == manifest.output_dir


def test_params_defaults_are_small_and_fast() -> None:
    """Params default to 30 steps, 512x512, one image, prompt strength 7, no seed and no legacy fields."""
    params = parse_manifest(json.dumps(doc())).spec.params

    expected = {"steps": 30, "width": 512, "height": 512, "number_of_images": 1, "prompt_strength": 7}
    assert expected == params.model_dump(exclude_none=True)


def test_limits_cleanup_and_output_are_read() -> None:
    """Set limits, cleanup and output dir come through as written."""
    manifest = parse_manifest(
        json.dumps(
            doc(
                limits={"requests_per_second": 2.5, "burst": 3, "max_in_flight": 4, "job_timeout": 60},
                cleanup={"delete_remote": "after_download"},
                output={"dir": "data/cats"},
            )
        )
    )

    assert (2.5, 3, 4, 60) == (
        manifest.limits.requests_per_second,
        manifest.limits.burst,
        manifest.limits.max_in_flight,
        manifest.limits.job_timeout,
    )
    assert ("after_download", Path("data/cats")) == (manifest.cleanup.delete_remote, manifest.output_dir)


def test_load_records_the_source_path_and_sha256(tmp_path: Path) -> None:
    """`source_sha256` is the sha256 of the file's bytes, comments included."""
    path = tmp_path / "cats.yaml"
    data = ("# my cats\n" + json.dumps(doc())).encode()
    path.write_bytes(data)

    manifest = load_manifest(path)

    assert (path, hashlib.sha256(data).hexdigest()) == (manifest.source_path, manifest.source_sha256)


def test_text_and_bytes_and_a_bom_load_alike() -> None:
    """A manifest loads the same from str, from bytes, and with a UTF-8 byte order mark."""
    text = json.dumps(doc())

    specs = [parse_manifest(t).spec for t in (text, text.encode(), "\ufeff" + text)]

    assert [specs[0]] * 3 == specs


def test_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    """A path that does not exist raises UsageError naming it."""
    with pytest.raises(UsageError) as caught:
        load_manifest(tmp_path / "nope.yaml")

    assert f"{tmp_path / 'nope.yaml'}: no such file" == caught.value.message


def test_a_folder_is_a_usage_error(tmp_path: Path) -> None:
    """A folder given as a manifest raises UsageError."""
    with pytest.raises(UsageError) as caught:
        load_manifest(tmp_path)

    assert f"{tmp_path}: is a folder, not a manifest file" == caught.value.message


def test_problems_carry_file_line_and_column() -> None:
    """A problem is located 1-based at the offending value, with its field path."""
    text = "version: 1\nname: cats\nmodel: m1\nprompt: a cat\nparams:\n  width: 500\n"

    with pytest.raises(ManifestError) as caught:
        parse_manifest(text, "m.yaml")

    assert [Problem("m.yaml", 6, 10, "params.width", "must be a multiple of 8, got 500")] == caught.value.problems


def test_every_problem_of_a_round_is_reported_at_once() -> None:
    """Problems in different keys are all reported, in file order."""
    text = "version: 1\nname: cats\nmodel: m1\nprompt: yes\nparams:\n  steps: 0\n  height: 9\n"

    assert [
        'm.yaml:4:9: prompt: expected text, got `yes`, which YAML reads as the boolean true (hint: quote it: "yes")',
        "m.yaml:6:10: params.steps: must be at least 1, got 0",
        "m.yaml:7:11: params.height: must be a multiple of 8, got 9",
    ] == problems_of(text)


@pytest.mark.parametrize("word", ["no", "No", "off", "ON", "true", "False", "yes"])
def test_yaml_booleans_where_text_is_expected_say_quote_it(word: str) -> None:
    """Every YAML 1.1 boolean spelling in a text field asks to be quoted."""
    text = f"version: 1\nname: cats\nmodel: m1\nprompt: {word}\n"

    assert [
        f"m.yaml:4:9: prompt: expected text, got `{word}`, which YAML reads as the boolean "
        f'{str(word.lower() in ("yes", "true", "on")).lower()} (hint: quote it: "{word}")'
    ] == problems_of(text)


def test_quoted_booleans_and_numbers_are_text() -> None:
    """Quoted `no` and `123` are plain text, in prompts and as axis values."""
    text = 'version: 1\nname: "123"\nmodel: m1\nprompt: "no {n}"\nmatrix:\n  n: ["yes", "007"]\n'

    manifest = parse_manifest(text)

    assert ("123", ["yes", "007"]) == (manifest.name, list(manifest.axes[0].values))


def test_legacy_params_are_accepted_and_checked() -> None:
    """Legacy request fields are valid params; a wrong sampler names the choices."""
    good = doc(params={"sampler": "euler_a", "upscale_by": "x2", "restore_faces": True, "version": "v1"})

    assert "euler_a" == parse_manifest(json.dumps(good)).spec.params.sampler
    assert [
        "m.yaml:6:12: params.sampler: expected 'ddim', 'dpm_2a', 'dpm_plusplus_sde', 'euler', 'euler_a' or 'unipc', "
        'got the string "euler_b"'
    ] == problems_of(HEAD + "params:\n  sampler: euler_b\n")


def test_unknown_keys_get_a_did_you_mean() -> None:
    """An unknown key in limits suggests the closest known one."""
    text = HEAD + "limits:\n  max_inflight: 4\n"

    assert ["m.yaml:6:3: limits.max_inflight: unknown key (hint: did you mean 'max_in_flight'?)"] == problems_of(text)


def test_unknown_keys_far_from_any_list_the_known_ones() -> None:
    """An unknown key like no known one lists the keys that are allowed there."""
    text = HEAD + "cleanup:\n  zzz: 1\n"

    assert ["m.yaml:6:3: cleanup.zzz: unknown key (hint: known keys: delete_remote)"] == problems_of(text)


def test_no_matrix_means_one_job_from_the_top_level() -> None:
    """A manifest with no matrix and no include describes exactly one combination."""
    manifest = parse_manifest(json.dumps({"version": 1, "name": "one", "model": "m1", "prompt": "a cat"}))

    assert (True, 1) == (manifest.uses_matrix, manifest.combinations)


def test_include_entries_alone_make_no_matrix_job() -> None:
    """With include entries and no matrix, the include entries are the only jobs."""
    data = {"version": 1, "name": "two", "model": "m1", "prompt": "a {animal}", "include": [{"animal": "owl"}]}

    manifest = parse_manifest(json.dumps(data))

    assert (False, 0) == (manifest.uses_matrix, manifest.combinations)


def test_the_job_cap_is_counted_before_expansion() -> None:
    """A matrix of a million and one combinations is refused from the axis sizes alone."""
    text = "version: 1\nname: x\nmodel: m1\nprompt: '{a}'\nmatrix:\n  a: {range: [0, 1000000]}\n"

    assert [
        "m.yaml:6:3: matrix: 1,000,001 jobs, over the limit of 1,000,000 (hint: split the manifest into several)"
    ] == (problems_of(text))


def test_an_unknown_variable_in_a_mapping_axis_entry_is_located_at_the_entry() -> None:
    """A mapping entry that lacks a name the template needs is reported at that entry."""
    text = (
        "version: 1\nname: x\nmodel: m1\nprompt: '{light} {mood}'\nmatrix:\n  lighting:\n"
        "    - {light: golden, mood: warm}\n    - {light: dim}\n"
    )

    assert [
        "m.yaml:8:7: matrix.lighting[1]: sets no `mood`, and vars has none (hint: add mood: ... here, or to vars)"
    ] == problems_of(text)


def test_a_prompt_axis_provides_templates() -> None:
    """An axis named `prompt` sets the prompt; its values are templates too."""
    data = doc(prompt=None, matrix={"prompt": ["a {animal}", "two {animal}s"], "animal": ["cat"]})
    del data["prompt"]

    manifest = parse_manifest(json.dumps(data))

    assert {"a {animal}", "two {animal}s"} == set(manifest.templates)


ISSUE_EXAMPLE = """\
version: 1                       # required
name: animals                    # letters, digits, - and _; output goes to outputs/<name>/ by default
model: 26a1a203-3a46-42cb-8cfa-f4de075907d8   # default model id; may also be a matrix axis `model`
prompt: "a {style} painting of a {animal}, {light} light"   # template: {name} = an axis or a var
negative_prompt: "blurry, watermark"           # may be a template too
vars: {}                         # constant template variables
params:                          # CreateInferenceDto defaults for every job (snake_case)
  steps: 30
  width: 512
  height: 512
  number_of_images: 1
  prompt_strength: 7
matrix:                          # the cartesian product of the axes
  animal: [cat, dog, fox]
  style: [watercolor, "oil painting"]
  seed: {range: [1, 4]}          # inclusive: 1,2,3,4; {range: [0, 100], step: 10}; or a plain list
  lighting:                      # values that are mappings set several names at once (they move together)
    - {light: golden, mood: warm}
    - {light: overcast, mood: calm}
exclude:                         # drop every combination that matches all keys of an entry
  - {animal: fox, style: watercolor}        # a list value matches any of its items
include:                         # each entry adds one combination; names it omits come from vars or fail
  - {animal: owl, style: watercolor, seed: 7, light: golden, mood: warm}
sample: {count: 10, seed: 1}     # optional seeded subset; a larger count keeps the earlier picks
limits: {requests_per_second: 5, max_in_flight: 8, job_timeout: 600}
output: {dir: outputs/animals}
"""


def test_the_issue_example_loads() -> None:
    """The example manifest of the format's specification is valid as written."""
    manifest = parse_manifest(ISSUE_EXAMPLE, "animals.yaml")

    assert ("animals", Path("outputs/animals"), 48) == (manifest.name, manifest.output_dir, manifest.combinations)


def test_unused_names_in_mapping_values_are_metadata() -> None:
    """A mapping value may carry names no template uses (`mood` here): they are kept, not refused."""
    manifest = parse_manifest(ISSUE_EXAMPLE, "animals.yaml")

    assert ("light", "mood") == manifest.axes[3].names
