"""Bad input is one located line and its exit code, never a traceback: through the real CLI, in a subprocess.

Rules (leapbatch/manifest/check.py, leapbatch/cli/__init__.py, leapbatch/cli/_common.py):
- A range axis of any size is counted, not measured (`len()` of a range fails past 2**63 - 1 values): a range end
  at or past 2**63 (or a start below -2**63) is a manifest error at its `file:line:col` (the job cap, or the
  field's bound), exit 2, at `validate`, `plan` and `run` alike.
- `output.dir` holding a NUL character (`"\\0"` in YAML) is a manifest error at its `file:line:col`, exit 2, at
  `validate`, `plan` and `run` alike, and nothing is created.
- Every command survives a stdout and stderr that cannot encode what it prints (`PYTHONIOENCODING=ascii`, latin-1,
  `LC_ALL=C` without UTF-8 mode): lines write such characters as backslash escapes (`\\xe9`), JSON documents as
  JSON escapes (`\\u00e9`), so `plan --json` parses to exactly the data it gives on a UTF-8 stdout.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from cli_support import Cli

from leapbatch.errors import EXIT_OK, EXIT_USAGE

MODEL = "26a1a203-3a46-42cb-8cfa-f4de075907d8"
HEAD = f'version: 1\nname: bad\nmodel: {MODEL}\nprompt: "a {{n}} cat"\n'
COMMANDS = [("validate",), ("plan",), ("plan", "--json"), ("run", "--local", "--quiet")]
CAP = "over the limit of 1,000,000 (hint: split the manifest into several)"
PYTHON_ENV = ("PYTHONIOENCODING", "PYTHONUTF8", "PYTHONCOERCECLOCALE", "LC_ALL", "LC_CTYPE", "LANG")


async def leapbatch(cli: Cli, *args: str | Path, **env: str) -> subprocess.CompletedProcess[bytes]:
    """Run the CLI with no key and no inherited encoding settings, plus `env`."""
    clean = {k: v for k, v in cli.env().items() if k not in PYTHON_ENV}
    return await cli(*args, env=clean | env)


def one_error(done: subprocess.CompletedProcess[bytes]) -> list[str]:
    """Return the stderr lines of a manifest error, asserting exit 2 and no traceback."""
    err = done.stderr.decode()
    assert (EXIT_USAGE, False) == (done.returncode, "Traceback" in err), err
    return err.splitlines()


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
@pytest.mark.parametrize(
    ("matrix", "where", "message"),
    [
        pytest.param(
            "  n: {range: [1, 9223372036854775808]}\n",
            "6:3",
            f"matrix: 9,223,372,036,854,775,808 jobs, {CAP}",
            id="end-2**63",
        ),
        pytest.param(
            "  n: {range: [1, 99999999999999999999999]}\n",
            "6:3",
            f"matrix: 99,999,999,999,999,999,999,999 jobs, {CAP}",
            id="end-far-past",
        ),
        pytest.param(
            "  n: {range: [-9223372036854775809, 0]}\n",
            "6:3",
            f"matrix: 9,223,372,036,854,775,810 jobs, {CAP}",
            id="start-below-2**63",
        ),
        pytest.param(
            "  n: [a, b]\n  seed: {range: [1, 9223372036854775808]}\n",
            "7:17",
            "matrix.seed.range: must be at most 2147483647, got 9223372036854775808",
            id="a-request-field-range",
        ),
    ],
)
async def test_a_range_past_2_63_is_a_located_manifest_error(
    tmp_path: Path, cli: Cli, command: tuple[str, ...], matrix: str, where: str, message: str
) -> None:
    """A huge range is counted, not measured: one located problem, exit 2, nothing created."""
    manifest = tmp_path / "m.yaml"
    manifest.write_text(HEAD + "matrix:\n" + matrix + f"output: {{dir: {json.dumps(str(tmp_path / 'out'))}}}\n")

    done = await leapbatch(cli, *command, manifest)

    assert [f"error: {manifest}:{where}: {message}", "1 problem found"] == one_error(done)
    assert ["m.yaml"] == os.listdir(tmp_path)


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
async def test_an_output_dir_with_a_nul_is_a_located_manifest_error(
    tmp_path: Path, cli: Cli, command: tuple[str, ...]
) -> None:
    """`output.dir: "out\\0x"` is refused where it is written, by every command: validate no longer says ok."""
    manifest = tmp_path / "m.yaml"
    folder = json.dumps(str(tmp_path / "out")).removesuffix('"') + '\\0x"'  # a YAML escape: a real NUL
    manifest.write_text(HEAD + "matrix: {n: [a]}\n" + f"output:\n  dir: {folder}\n")

    done = await leapbatch(cli, *command, manifest)

    at = len(str(tmp_path / "out")) + 1
    expected = f"error: {manifest}:7:8: output.dir: holds a NUL character (\\x00) at character {at}: no file system"
    lines = one_error(done)
    assert (2, True, "1 problem found") == (len(lines), lines[0].startswith(expected), lines[1]), lines
    assert ["m.yaml"] == os.listdir(tmp_path)


UNICODE_MANIFEST = f"""\
version: 1
name: unicode
model: {MODEL}
prompt: "un chat {{{{ é }}}} 猫, {{mood}}"
params: {{width: 64, height: 64, steps: 5}}
matrix:
  mood: [heureux, "fâché ü"]
limits: {{requests_per_second: 200, burst: 50}}
"""
ENCODINGS = [
    pytest.param({"PYTHONIOENCODING": "ascii"}, "ascii", id="PYTHONIOENCODING=ascii"),
    pytest.param({"PYTHONIOENCODING": "ascii:strict"}, "ascii", id="PYTHONIOENCODING=ascii:strict"),
    pytest.param({"PYTHONIOENCODING": "latin-1"}, "latin-1", id="PYTHONIOENCODING=latin-1"),
    pytest.param({"LC_ALL": "C", "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0"}, "ascii", id="LC_ALL=C"),
]


@pytest.mark.parametrize(("env", "encoding"), ENCODINGS)
async def test_every_command_survives_a_stdout_that_cannot_encode_its_text(
    tmp_path: Path, cli: Cli, env: dict[str, str], encoding: str
) -> None:
    """Non-ASCII prompts, values and file names print as escapes on a narrow stdout; JSON stays exact."""
    manifest = tmp_path / "chat.yaml"
    out = tmp_path / "out"
    manifest.write_text(UNICODE_MANIFEST + f"output: {{dir: {json.dumps(str(out))}}}\n")
    bad = tmp_path / "mauvais-é.yaml"
    bad.write_text(UNICODE_MANIFEST.replace("prompt:", "prömpt:"))
    commands: list[tuple[str | Path, ...]] = [
        ("validate", manifest),
        ("plan", manifest),
        ("plan", "--json", manifest),
        ("schema",),
        ("run", "--local", "--plain", "--speed", "1000", "--out", out, manifest),
        ("status", out),
        ("status", "--json", out),
        ("verify", out),
        ("verify", "--json", out),
        ("plan", manifest),  # with a ledger to compare with
    ]

    for args in commands:
        done = await leapbatch(cli, *args, **env)
        said = (done.returncode, done.stdout.decode(encoding), done.stderr.decode(encoding))
        assert (EXIT_OK, False) == (said[0], "Traceback" in said[2]), (args, said)
    refused = await leapbatch(cli, "validate", bad, **env)
    narrow = await leapbatch(cli, "plan", "--json", manifest, **env)
    wide = await leapbatch(cli, "plan", "--json", manifest, PYTHONIOENCODING="utf-8")
    shown = await leapbatch(cli, "plan", manifest, **env)

    lines = refused.stderr.decode(encoding).splitlines()
    assert (EXIT_USAGE, 2, "1 problem found") == (refused.returncode, len(lines), lines[-1]), lines
    assert "fâché ü" in wide.stdout.decode()
    assert json.loads(wide.stdout) == json.loads(narrow.stdout.decode(encoding))
    if encoding == "ascii":
        assert "un chat { \\xe9 } \\u732b, f\\xe2ch\\xe9 \\xfc" in shown.stdout.decode(encoding)


NOT_UTF8 = os.fsdecode(b"chat-\xff.yaml")  # a Latin-1 file name on a UTF-8 system: a lone surrogate in Python


@pytest.mark.parametrize("command", [("validate",), ("plan",), ("plan", "--json")], ids=" ".join)
async def test_a_manifest_path_that_is_not_utf8_is_shown_escaped(
    tmp_path: Path, cli: Cli, command: tuple[str, ...]
) -> None:
    """A file name that is no UTF-8 is read, and shown as an escape (`\\udcff`) instead of crashing the output."""
    manifest = tmp_path / NOT_UTF8
    manifest.write_text(UNICODE_MANIFEST + f"output: {{dir: {json.dumps(str(tmp_path / 'out'))}}}\n")

    done = await leapbatch(cli, *command, manifest, PYTHONIOENCODING="utf-8")

    shown = done.stdout.decode()
    assert (EXIT_OK, "") == (done.returncode, done.stderr.decode())
    if "--json" in command:
        assert str(manifest) == json.loads(shown)["manifest"]  # a JSON escape: the exact name comes back
    else:
        assert f"{tmp_path}/chat-\\udcff.yaml" == shown.split(":" if command == ("validate",) else " ")[0]


async def test_a_manifest_path_that_is_not_utf8_runs(tmp_path: Path, cli: Cli) -> None:
    """`run` of a manifest whose file name is no UTF-8 runs (the run record keeps the name, escaped)."""
    manifest = tmp_path / NOT_UTF8
    manifest.write_text(UNICODE_MANIFEST + f"output: {{dir: {json.dumps(str(tmp_path / 'out'))}}}\n")

    out = ("--out", tmp_path / "out")  # --local alone writes to output.dir + "-local"
    done = await leapbatch(
        cli, "run", "--local", "--quiet", "--speed", "1000", *out, manifest, PYTHONIOENCODING="utf-8"
    )

    err = done.stderr.decode()
    assert (EXIT_OK, False) == (done.returncode, "Traceback" in err), err
    assert err.startswith("done: 2 of 2 jobs finished"), err
    assert (
        "chat-\\\\xff.yaml" in (tmp_path / "out" / "ledger.jsonl").read_text()
    )  # the name, escaped, in the run record
