"""`plan`, `plan --json` and `schema` through the CLI's one entry point."""

from __future__ import annotations

import json
import operator
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from leapbatch.cli import main

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "manifests").glob("*.yaml"))


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Run the CLI and return its exit code, stdout and stderr."""
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def test_plan_json_is_one_object_with_the_documented_shape(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """`plan --json` prints one JSON object with the documented keys, totals and estimates."""
    manifest = str(ROOT / "manifests" / "include-exclude.yaml")
    code, out, err = run(["plan", "--json", manifest, "--out", str(tmp_path)], capsys)

    plan = json.loads(out)
    assert (0, "") == (code, err)
    assert {
        "manifest", "name", "output_dir", "format", "jobs", "images", "combinations", "excluded", "included",
        "duplicates", "sampled_out", "shard", "models", "axes", "estimate", "cost", "examples", "ledger",
    } == set(plan)  # fmt: skip
    assert plan["ledger"] is None  # no ledger in that folder: nothing to compare with
    assert plan["shard"] is None  # the whole manifest
    assert (11, 11, 12, 3, 2, 0, 0) == (
        plan["jobs"],
        plan["images"],
        plan["combinations"],
        plan["excluded"],
        plan["included"],
        plan["duplicates"],
        plan["sampled_out"],
    )
    assert {"26a1a203-3a46-42cb-8cfa-f4de075907d8": {"jobs": 11, "images": 11}} == plan["models"]
    assert {"apple": 4, "pear": 3, "lemon": 1, "fig": 2, "pomegranate": 1} == plan["axes"]["fruit"]
    assert {"generation_seconds", "wall_clock_seconds", "max_in_flight", "requests_per_second"} == set(plan["estimate"])
    assert ["key", "model", "request", "variables"] == sorted(plan["examples"][0])


def test_plan_estimate_spreads_generation_over_jobs_in_flight(capsys: pytest.CaptureFixture[str]) -> None:
    """The wall-clock estimate is the summed generation time divided by max_in_flight (here the binding limit)."""
    _, out, _ = run(["plan", "--json", str(ROOT / "manifests" / "sampling.yaml")], capsys)

    estimate = json.loads(out)["estimate"]
    assert 8 == estimate["max_in_flight"]
    assert round(estimate["generation_seconds"] / 8, 1) == estimate["wall_clock_seconds"]


def test_plan_text_shows_totals_axes_time_and_examples(capsys: pytest.CaptureFixture[str]) -> None:
    """`plan` prints totals, per-model and per-axis counts, the time estimate and example prompts."""
    code, out, _ = run(["plan", str(ROOT / "manifests" / "example.yaml"), "--examples", "1"], capsys)

    lines = out.splitlines()
    assert 0 == code
    assert "12 jobs, 12 images" == lines[1]
    assert "  from 12 combinations: 2 excluded, 0 duplicates collapsed, 0 sampled out; 2 included" == lines[2]
    assert "  model 26a1a203-3a46-42cb-8cfa-f4de075907d8: 12 jobs, 12 images" == lines[3]
    assert "    animal  cat (5), fox (4), owl (2), red panda (1)" in lines
    assert any(line.startswith("  time: about ") for line in lines)
    assert "    a watercolor illustration of a cat in a forest" in lines


def test_plan_of_an_invalid_manifest_fails_like_validate(capsys: pytest.CaptureFixture[str]) -> None:
    """`plan` on a bad manifest prints its problems and exits 2."""
    path = ROOT / "tests" / "manifests" / "invalid" / "unused-axis.yaml"

    code, out, err = run(["plan", str(path)], capsys)

    assert (2, "") == (code, out)
    assert err.startswith(f"error: {path}:7:10: matrix.style: ")


def test_plan_of_a_missing_file_is_a_usage_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """A missing manifest is one error line and a hint, exit 2."""
    code, _, err = run(["plan", str(tmp_path / "nope.yaml")], capsys)

    assert (2, [f"error: {tmp_path / 'nope.yaml'}: no such file", "hint: check the manifest's path"]) == (
        code,
        err.splitlines(),
    )


def test_schema_is_json_schema_of_the_format(capsys: pytest.CaptureFixture[str]) -> None:
    """`schema` prints a draft 2020-12 JSON Schema that requires version and name and forbids unknown keys."""
    code, out, _ = run(["schema"], capsys)

    schema = json.loads(out)
    assert 0 == code
    assert "https://json-schema.org/draft/2020-12/schema" == schema["$schema"]
    assert (["version", "name"], False) == (schema["required"], schema["additionalProperties"])


def _schema(capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    """Return the schema `leapbatch schema` prints."""
    main(["schema"])
    loaded: dict[str, Any] = json.loads(capsys.readouterr().out)
    return loaded


def _check(schema: dict[str, Any], value: Any, root: dict[str, Any], where: str = "") -> list[str]:  # noqa: C901 -- one branch per JSON-schema keyword
    """Return where `value` breaks `schema`: the keywords leapbatch's schema uses, enough for this test."""
    if "$ref" in schema:
        return _check(root["$defs"][schema["$ref"].split("/")[-1]], value, root, where)
    if "anyOf" in schema:
        return [] if any(not _check(s, value, root, where) for s in schema["anyOf"]) else [f"{where}: anyOf"]
    kinds: dict[str, type | tuple[type, ...]] = {
        "string": str, "integer": int, "number": (int, float), "boolean": bool, "object": dict, "array": list,
    }  # fmt: skip
    wanted = schema.get("type")
    if wanted is not None:
        names = wanted if isinstance(wanted, list) else [wanted]
        ok = any(
            isinstance(value, kinds[n]) and not (n in ("integer", "number") and isinstance(value, bool)) for n in names
        )
        if not ok:
            return [f"{where}: not {wanted}"]
    errors = []
    if "const" in schema and value != schema["const"]:
        errors.append(f"{where}: not {schema['const']}")
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{where}: not in enum")
    if "pattern" in schema and not re.search(schema["pattern"], value):
        errors.append(f"{where}: pattern")
    for key, test in (("minimum", operator.ge), ("maximum", operator.le)):
        if key in schema and not test(value, schema[key]):
            errors.append(f"{where}: {key}")
    if "multipleOf" in schema and value % schema["multipleOf"]:
        errors.append(f"{where}: multipleOf")
    if isinstance(value, dict):
        for name in schema.get("required", []):
            if name not in value:
                errors.append(f"{where}.{name}: required")
        for name, item in value.items():
            sub = schema.get("properties", {}).get(name, schema.get("additionalProperties", True))
            if sub is False:
                errors.append(f"{where}.{name}: not allowed")
            elif isinstance(sub, dict):
                errors += _check(sub, item, root, f"{where}.{name}")
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            errors += _check(schema["items"], item, root, f"{where}[{i}]")
    return errors


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_schema_accepts_every_example(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Each example manifest satisfies the schema (checked with a small validator of the keywords it uses)."""
    schema = _schema(capsys)

    assert [] == _check(schema, yaml.safe_load(path.read_text(encoding="utf-8")), schema)


def test_schema_rejects_what_the_loader_rejects(capsys: pytest.CaptureFixture[str]) -> None:
    """The schema flags an unknown key, a wrong version and a width that is not a multiple of 8."""
    schema = _schema(capsys)
    bad = {"version": 2, "name": "x", "promt": "a", "params": {"width": 500}}

    assert [".version: not 1", ".promt: not allowed", ".params.width: multipleOf"] == _check(schema, bad, schema)


@pytest.mark.parametrize("command", ["validate", "plan", "schema"])
def test_every_command_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    """`--help` describes each command and exits 0."""
    code, out, _ = run([command, "--help"], capsys)

    assert 0 == code
    assert f"usage: leapbatch {command}" in out


def test_plan_text_escapes_control_characters_from_the_manifest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Prompts and values holding ESC, C1 or bidi overrides are shown escaped, never written raw to the terminal."""
    path = tmp_path / "hostile.yaml"
    path.write_text(
        'version: 1\nname: h\nmodel: m1\nprompt: "{s}"\nmatrix:\n  s: ["a\\e[2Jb", "c\\u202ed", "e\\x9bf"]\n',
        encoding="utf-8",
    )

    code, out, _ = run(["plan", str(path)], capsys)

    assert (0, set()) == (code, {c for c in out if c in "\x1b\u202e\x9b"})
    assert "    a\\x1b[2Jb" in out.splitlines()


def test_problems_escape_control_characters_from_the_manifest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A key or value holding control characters appears escaped in error messages."""
    path = tmp_path / "hostile.yaml"
    path.write_text('version: 1\nname: "bad\\e]0;x\\a"\nmodel: m1\nprompt: a cat\n"\\e[31m": 1\n', encoding="utf-8")

    code, _, err = run(["validate", str(path)], capsys)

    assert 2 == code
    assert [
        f'error: {path}:2:7: name: not a valid name: "bad\\x1b]0;x\\x07" '
        "(hint: use up to 64 letters, digits, - and _, starting with a letter or digit)",
        f"error: {path}:5:1: \\x1b[31m: unknown key (hint: known keys: version, name, model, prompt, "
        "negative_prompt, caption, vars, params, matrix, exclude, include, sample, limits, cleanup, output, pricing, "
        "budget)",
        "2 problems found",
    ] == err.splitlines()
