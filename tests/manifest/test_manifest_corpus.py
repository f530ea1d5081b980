"""The named corpus: every invalid manifest gives exactly its expected error lines, and every example is valid."""

from __future__ import annotations

from pathlib import Path

import pytest

from leapbatch.cli import main
from leapbatch.manifest.safe_yaml import MAX_BYTES

ROOT = Path(__file__).resolve().parents[2]
INVALID = sorted((ROOT / "tests" / "manifests" / "invalid").glob("*.yaml"))
EXAMPLES = sorted((ROOT / "manifests").glob("*.yaml"))


def test_the_corpus_is_large_and_complete() -> None:
    """At least 30 invalid manifests, each with an .err file beside it, and the values files they name in files/."""
    folder = ROOT / "tests" / "manifests" / "invalid"
    errs = sorted(folder.glob("*.err"))
    others = sorted(p.name for p in folder.iterdir() if p.suffix not in (".yaml", ".err"))
    assert len(INVALID) >= 30
    assert ([p.with_suffix(".err") for p in INVALID], ["files"]) == (errs, others)


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.stem)
def test_invalid_manifest_reports_exact_lines(
    path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`validate` prints exactly the .err lines on stderr, nothing on stdout, and exits 2."""
    monkeypatch.chdir(ROOT)
    expected = path.with_suffix(".err").read_text(encoding="utf-8").splitlines()

    code = main(["validate", str(path.relative_to(ROOT))])

    out, err = capsys.readouterr()
    assert (2, "", expected) == (code, out, err.splitlines())
    assert "Traceback" not in err


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_manifest_is_valid(
    path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every manifest under manifests/ validates, with one `ok` line."""
    monkeypatch.chdir(ROOT)
    relative = str(path.relative_to(ROOT))

    code = main(["validate", relative])

    out, err = capsys.readouterr()
    assert (0, "") == (code, err)
    assert out.startswith(f"{relative}: ok (")


def test_examples_cover_each_feature() -> None:
    """The examples include the Quick start one and one per feature."""
    expected = {
        "example", "ranges-and-seeds", "linked-axes", "include-exclude", "models-axis", "sampling", "values-files",
    }  # fmt: skip
    assert expected <= {p.stem for p in EXAMPLES}


def test_quick_start_example_is_about_a_dozen_small_jobs(capsys: pytest.CaptureFixture[str]) -> None:
    """manifests/example.yaml makes 12 jobs of 512x512 images."""
    main(["validate", str(ROOT / "manifests" / "example.yaml")])

    assert capsys.readouterr().out.endswith(": ok (12 jobs, 12 images)\n")


def test_too_big_file_is_refused_before_parsing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A file over 1 MiB is one problem naming its size and the limit."""
    path = tmp_path / "big.yaml"
    path.write_text("version: 1\n" + "#" * MAX_BYTES, encoding="utf-8")

    code = main(["validate", str(path)])

    expected = [
        f"error: {path}: file is 1,048,587 bytes, over the 1,048,576-byte limit "
        "(hint: a manifest describes jobs with a matrix; split it or use ranges instead of long lists)",
        "1 problem found",
    ]
    assert (2, expected) == (code, capsys.readouterr().err.splitlines())


def test_validate_reports_every_file(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """With several files, valid ones print `ok`, and the problems of all invalid ones are listed together."""
    monkeypatch.chdir(ROOT)
    files = ["manifests/example.yaml", "tests/manifests/invalid/duplicate-key.yaml", "missing.yaml"]

    code = main(["validate", *files])

    out, err = capsys.readouterr()
    assert 2 == code
    assert ["manifests/example.yaml: ok (12 jobs, 12 images)"] == out.splitlines()
    assert [
        "error: missing.yaml: no such file (hint: check the manifest's path)",
        "error: tests/manifests/invalid/duplicate-key.yaml:5:1: prompt: duplicate key (first at line 4) "
        "(hint: remove one)",
        "2 problems found",
    ] == err.splitlines()
