"""Specs of what the first day reads: counts in the singular for 1, and number options refused in sentences.

- Every printed count says `1 job`, `1 image`, `1 problem` (`leapbatch.errors.plural`), never `1 jobs`.
- A number option refused (`--rps x`, `--max-in-flight 0`) is one sentence, never argparse's `invalid
  _positive_float value`; options that stand in for a manifest's limits have the manifest's bounds, from one source.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from cli_support import Cli

from leapbatch.cli import main
from leapbatch.emulator import EmulatorHandle
from leapbatch.errors import plural

MANIFEST = """\
version: 1
name: single
model: 26a1a203-3a46-42cb-8cfa-f4de075907d8
prompt: "a lone cube"
params: {width: 64, height: 64, steps: 5}
"""


async def leapbatch(*args: str | Path, env: dict[str, str]) -> subprocess.CompletedProcess[bytes]:
    """Run the CLI (stdin empty) and return the finished process."""
    return await Cli()(*args, env=env)


@pytest.mark.parametrize(
    ("count", "noun", "many", "expected"),
    [
        (0, "job", None, "0 jobs"),
        (1, "job", None, "1 job"),
        (2, "entry", "entries", "2 entries"),
        (1, "byte", None, "1 byte"),
    ],
)
def test_plural_is_singular_only_for_one(count: int, noun: str, many: str | None, expected: str) -> None:
    """`plural(1, "job")` is `1 job`; any other count takes the plural."""
    assert expected == plural(count, noun, many)


async def test_a_folder_of_one_job_is_counted_in_the_singular(tmp_path: Path, emulator_server: EmulatorHandle) -> None:
    """validate, plan, run, status, delete --dry-run and verify on a one-job folder, one job in flight: `1 job`,
    `1 image`, `1 problem`, and no line of any of them says `1 jobs`, `1 images` or `1 problems`."""
    manifest, out = tmp_path / "single.yaml", tmp_path / "out"
    manifest.write_text(MANIFEST + "limits: {max_in_flight: 1}\n")
    env = Cli.env(emulator_server)
    ran = await leapbatch("run", manifest, "--out", out, "--quiet", "--speed", "1000", env=env)
    assert 0 == ran.returncode, ran.stderr.decode()
    validated = await leapbatch("validate", manifest, env=env)
    planned = await leapbatch("plan", manifest, env=env)
    status = await leapbatch("status", out, env=env)
    dry = await leapbatch("delete", out, "--dry-run", env=env)
    next((out / "images").iterdir()).unlink()
    (out / "results.json").write_text('{"jobs": []}')
    verified = await leapbatch("verify", out, env=env)

    assert f"{manifest}: ok (1 job, 1 image)\n".encode() == validated.stdout
    assert b"1 job, 1 image\n" in planned.stdout
    assert b" wall clock at 1 job in flight\n" in planned.stdout
    assert b"done: 1 of 1 job finished, 1 image in " in ran.stderr
    assert b"\nremote: 1 job still on the server (1 finished)," in status.stdout
    assert b"dry run: 1 job would be deleted\n" == dry.stderr
    assert b"1 image checked: 2 problems\n" == verified.stderr
    assert b"results: results.json: results.json disagrees with the ledger on 1 job\n" in verified.stdout
    printed = b"".join(p.stdout + p.stderr for p in (ran, validated, planned, status, dry, verified)).decode()
    assert [] == re.findall(r"(?<![\d.,])1 (?:jobs|images|problems|rows|bytes)\b", printed)


def test_one_manifest_problem_is_one_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A manifest with a single problem ends with `1 problem found`."""
    path = tmp_path / "bad.yaml"
    path.write_text(MANIFEST.replace("steps: 5", "steps: 0"))
    assert 2 == main(["validate", str(path)])
    assert capsys.readouterr().err.endswith("\n1 problem found\n")


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["run", "M", "--rps", "x"], "argument --rps: expected a number, got 'x'"),
        (["run", "M", "--rps", "nan"], "argument --rps: expected a number, got 'nan'"),
        (["run", "M", "--max-in-flight", "1.5"], "argument --max-in-flight: expected a whole number, got '1.5'"),
        (
            ["run", "M", "--max-in-flight", "0"],
            "argument --max-in-flight: must be at least 1, got 0 (the bound of limits.max_in_flight in a manifest)",
        ),
        (["run", "M", "--job-timeout", "abc"], "argument --job-timeout: expected a number, got 'abc'"),
        (["run", "M", "--speed", "fast"], "argument --speed: expected a number (or inf), got 'fast'"),
        (["run", "M", "--speed", "-1"], "argument --speed: must be more than 0, got -1"),
        (["run", "M", "--http-timeout", "inf"], "argument --http-timeout: expected a number of seconds, got 'inf'"),
        (["run", "M", "--settle-window", "-1"], "argument --settle-window: must be 0 or more, got -1"),
        (["run", "M", "--max-retry-after", "0"], "argument --max-retry-after: must be more than 0, got 0"),
        (
            ["verify", "O", "--max-retry-after", "x"],
            "argument --max-retry-after: expected a number of seconds, got 'x'",
        ),
        (["delete", "O", "--max-retry-after", "-5"], "argument --max-retry-after: must be more than 0, got -5"),
        (["plan", "M", "--examples", "x"], "argument --examples: expected a whole number, got 'x'"),
    ],
)
def test_a_refused_number_option_is_one_sentence(
    argv: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Exit 2 with `error: argument --X: <sentence>`, never `invalid <function name> value`."""
    assert 2 == main(argv)
    err = capsys.readouterr().err
    assert err.endswith(f"leapbatch {argv[0]}: error: {expected}\n"), err
    assert "invalid" not in err


@pytest.mark.parametrize(
    ("option", "field", "value"),
    [
        ("--rps", "requests_per_second", "2000"),
        ("--rps", "requests_per_second", "0"),
        ("--max-in-flight", "max_in_flight", "257"),
        ("--max-in-flight", "max_in_flight", "0"),
        ("--job-timeout", "job_timeout", "86401"),
        ("--job-timeout", "job_timeout", "-1"),
    ],
)
def test_a_limit_option_is_refused_as_the_manifest_refuses_its_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], option: str, field: str, value: str
) -> None:
    """`--rps 2000` is refused with the very words `limits.requests_per_second: 2000` gets from validate, and so is
    every option standing in for a limit, at both of its bounds."""
    path = tmp_path / "limits.yaml"
    path.write_text(MANIFEST + f"limits: {{{field}: {value}}}\n")
    assert 2 == main(["validate", str(path)])
    manifest_words = capsys.readouterr().err.split(f"limits.{field}: ")[1].split("\n")[0]
    assert 2 == main(["run", str(path), option, value])
    option_words = capsys.readouterr().err.split(f"argument {option}: ")[1].split(" (the bound")[0]
    assert manifest_words == option_words
    assert re.fullmatch(r"must be (at least|at most|more than|less than) \d+, got -?\d+", option_words)


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--rps", "1000"),
        ("--rps", "0.001"),
        ("--max-in-flight", "256"),
        ("--max-in-flight", "1"),
        ("--job-timeout", "86400"),
    ],
)
def test_a_limit_option_takes_every_value_the_manifest_takes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], option: str, value: str
) -> None:
    """The extremes a manifest's limits accept pass the option too (the run then stops at the missing manifest)."""
    assert 2 == main(["run", str(tmp_path / "missing.yaml"), option, value])
    err = capsys.readouterr().err
    assert "argument" not in err
    assert "missing.yaml" in err
