"""Values from files: `{values_file: ...}` axes and `{file: ...}` include entries make the jobs inline values make."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path

import pytest
from pydantic import ValidationError

from leapbatch.errors import ManifestError
from leapbatch.manifest import load_manifest, parse_manifest
from leapbatch.manifest.data_files import BOOL_FIELDS, NUMBER_FIELDS, WHOLE_FIELDS
from leapbatch.manifest.expand import expand
from leapbatch.manifest.models import FIELD_TYPES
from leapbatch.manifest.safe_yaml import MAX_BYTES

HEAD = "version: 1\nname: cats\nmodel: m1\n"


def write(folder: Path, files: Mapping[str, str | bytes]) -> Path:
    """Write files into `folder` (the manifest is `m.yaml`) and return the manifest's path."""
    for name, content in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    return folder / "m.yaml"


def keys(path: Path) -> list[str]:
    """Return the job keys of the manifest at `path`, in order."""
    return [job.key for job in expand(load_manifest(path)).jobs]


def problems(path: Path) -> list[str]:
    """Return the problems of a manifest file that must not load, as text."""
    with pytest.raises(ManifestError) as caught:
        load_manifest(path)
    return [str(p) for p in caught.value.problems]


AXIS = HEAD + 'prompt: "a {animal} by {artist}"\nmatrix:\n  animal: [cat, dog]\n  artist: {values_file: artists.txt}\n'


def test_a_values_file_makes_the_jobs_of_the_same_list_inline(tmp_path: Path) -> None:
    """An axis read from a file gives the jobs, keys and order of the same values written as a list."""
    inline = write(tmp_path / "inline", {"m.yaml": AXIS.replace("{values_file: artists.txt}", "[Monet, Klimt]")})
    from_file = write(tmp_path / "file", {"m.yaml": AXIS, "artists.txt": "Monet\nKlimt\n"})

    assert keys(inline) == keys(from_file)


def test_a_reordered_values_file_changes_the_order_but_no_key(tmp_path: Path) -> None:
    """Reordering a values file reorders the jobs and keeps every key."""
    before = keys(write(tmp_path / "a", {"m.yaml": AXIS, "artists.txt": "Monet\nKlimt\nDali\n"}))
    after = keys(write(tmp_path / "b", {"m.yaml": AXIS, "artists.txt": "Dali\nMonet\nKlimt\n"}))

    assert (sorted(before), True) == (sorted(after), before != after)


def test_comments_blank_lines_and_surrounding_space_are_skipped(tmp_path: Path) -> None:
    """`#` lines (after blanks) and blank lines are no values; each value is stripped; a `#` later in a line stays."""
    text = "# painters\n\n  Monet  \n\t# not yet: Dali\n   \nKlimt #2\r\n"
    manifest = load_manifest(write(tmp_path, {"m.yaml": AXIS, "artists.txt": text}))

    assert ["Monet", "Klimt #2"] == list(manifest.axes[1].values)


def test_a_value_twice_in_a_file_collapses_as_it_does_inline(tmp_path: Path) -> None:
    """A duplicate line makes a duplicate job, counted and dropped exactly like a duplicate inline value."""
    inline = expand(
        load_manifest(write(tmp_path / "a", {"m.yaml": AXIS.replace("{values_file: artists.txt}", "[Monet, Monet]")}))
    )
    from_file = expand(load_manifest(write(tmp_path / "b", {"m.yaml": AXIS, "artists.txt": "Monet\nMonet\n"})))

    assert ([j.key for j in inline.jobs], inline.duplicates) == ([j.key for j in from_file.jobs], from_file.duplicates)


def test_a_numeric_axis_from_a_file_is_read_as_numbers(tmp_path: Path) -> None:
    """A `seed` axis from a text file sends whole numbers, the jobs of `seed: [1, 2]`."""
    text = HEAD + 'prompt: "a cat"\nmatrix:\n  seed: {values_file: seeds.txt}\n'
    inline = write(tmp_path / "a", {"m.yaml": text.replace("{values_file: seeds.txt}", "[1, 2]")})
    from_file = write(tmp_path / "b", {"m.yaml": text, "seeds.txt": "1\n2\n"})

    assert ([1, 2], keys(inline)) == ([j.request.seed for j in expand(load_manifest(from_file)).jobs], keys(from_file))


ROWS = HEAD + 'prompt: "a {animal}"\ninclude:\n  - {file: rows.csv}\n'
INLINE_ROWS = HEAD + (
    'prompt: "a {animal}"\ninclude:\n'
    "  - {animal: owl, seed: 7, steps: 20, prompt_strength: 7.5, restore_faces: true}\n"
    '  - {animal: "big, \\"grey\\" fox", seed: 8}\n'
)


def test_csv_rows_are_the_include_entries_written_inline(tmp_path: Path) -> None:
    """CSV rows give the jobs of the same entries inline: numbers and booleans converted, quotes read, empty unset."""
    csv = 'animal,seed,steps,prompt_strength,restore_faces\r\nowl, 7 ,20,7.5,TRUE\r\n"big, ""grey"" fox",8,,,\r\n'
    from_file = load_manifest(write(tmp_path / "a", {"m.yaml": ROWS, "rows.csv": csv}))
    inline = load_manifest(write(tmp_path / "b", {"m.yaml": INLINE_ROWS}))

    assert list(inline.includes) == list(from_file.includes)
    assert [j.key for j in expand(inline).jobs] == [j.key for j in expand(from_file).jobs]


def test_jsonl_rows_are_the_include_entries_written_inline(tmp_path: Path) -> None:
    """JSON Lines rows, typed as written and with blank lines skipped, give the jobs of the same entries inline."""
    jsonl = (
        '{"animal": "owl", "seed": 7, "steps": 20, "prompt_strength": 7.5, "restore_faces": true}\n'
        "\n"
        '{"seed": 8, "animal": "big, \\"grey\\" fox"}\n'
    )
    from_file = load_manifest(
        write(tmp_path / "a", {"m.yaml": ROWS.replace("rows.csv", "rows.jsonl"), "rows.jsonl": jsonl})
    )
    inline = load_manifest(write(tmp_path / "b", {"m.yaml": INLINE_ROWS}))

    assert [j.key for j in expand(inline).jobs] == [j.key for j in expand(from_file).jobs]


def test_a_quoted_empty_csv_cell_is_empty_text_and_a_bare_one_is_unset(tmp_path: Path) -> None:
    """`""` sets empty text; an empty cell leaves the name to vars."""
    text = HEAD + 'prompt: "a {animal}{tail}"\nvars:\n  tail: " at dusk"\ninclude:\n  - {file: rows.csv}\n'
    manifest = load_manifest(write(tmp_path, {"m.yaml": text, "rows.csv": 'animal,tail\nowl,""\nfox,\n'}))

    assert ["a owl", "a fox at dusk"] == [job.request.prompt for job in expand(manifest).jobs]


def test_an_inline_entry_after_a_file_keeps_its_place_in_messages(tmp_path: Path) -> None:
    """Rows read before an inline entry do not renumber it: a problem in it names include[1] at its line."""
    text = ROWS + "  - {animal: fox, colour: red}\n"
    found = problems(write(tmp_path, {"m.yaml": text, "rows.csv": "animal\nowl\ncat\n"}))

    expected = [
        f"{tmp_path / 'm.yaml'}:7:19: include[1].colour: not used by this entry's templates nor set by the matrix "
        "(hint: its templates use: animal)"
    ]
    assert expected == found


def test_a_bad_csv_column_is_reported_once_at_its_header(tmp_path: Path) -> None:
    """A column no template uses is one problem at its header cell, however many rows set it."""
    found = problems(write(tmp_path, {"m.yaml": ROWS, "rows.csv": "animal,colour\nowl,red\ncat,blue\nfox,grey\n"}))

    expected = [
        f"{tmp_path / 'rows.csv'}:1:8: colour: not used by this entry's templates nor set by the matrix "
        "(hint: its templates use: animal)"
    ]
    assert expected == found


def test_the_sha256_is_the_manifests_own_without_files(tmp_path: Path) -> None:
    """With no files named, `source_sha256` is still the sha256 of the manifest's bytes."""
    path = write(tmp_path, {"m.yaml": HEAD + 'prompt: "a cat"\n'})

    assert hashlib.sha256(path.read_bytes()).hexdigest() == load_manifest(path).source_sha256


def test_the_sha256_covers_each_file_as_documented(tmp_path: Path) -> None:
    """With files, it is the sha256 of the manifest's sha256 line, then `<sha256>  <path>` per file, in order."""
    text = AXIS + "include:\n  - {file: ./rows.csv}\n  - {animal: owl, artist: Goya}\n"
    path = write(tmp_path, {"m.yaml": text, "artists.txt": "Monet\n", "rows.csv": "animal,artist\nfox,Dali\n"})

    own, artists, rows = (
        hashlib.sha256(p.read_bytes()).hexdigest() for p in (path, *(tmp_path / n for n in ("artists.txt", "rows.csv")))
    )

    listing = f"{own}\n{artists}  artists.txt\n{rows}  rows.csv\n"
    assert hashlib.sha256(listing.encode()).hexdigest() == load_manifest(path).source_sha256


def test_the_sha256_changes_with_a_files_content_and_only_then(tmp_path: Path) -> None:
    """Editing a values file changes `source_sha256`; rewriting the same bytes does not."""
    path = write(tmp_path, {"m.yaml": AXIS, "artists.txt": "Monet\n"})
    first = load_manifest(path).source_sha256
    (tmp_path / "artists.txt").write_text("Monet\n", encoding="utf-8")
    same = load_manifest(path).source_sha256
    (tmp_path / "artists.txt").write_text("Monet\nKlimt\n", encoding="utf-8")
    edited = load_manifest(path).source_sha256

    assert (first, True) == (same, edited != first)


def test_a_file_named_twice_is_read_and_hashed_once(tmp_path: Path) -> None:
    """Two axes from one file list it once in the sha256 definition."""
    text = HEAD + 'prompt: "{a} {b}"\nmatrix:\n  a: {values_file: words.txt}\n  b: {values_file: words.txt}\n'
    path = write(tmp_path, {"m.yaml": text, "words.txt": "x\ny\n"})
    own, file = hashlib.sha256(path.read_bytes()).hexdigest(), hashlib.sha256(b"x\ny\n").hexdigest()

    manifest = load_manifest(path)

    assert (4, hashlib.sha256(f"{own}\n{file}  words.txt\n".encode()).hexdigest()) == (
        manifest.combinations,
        manifest.source_sha256,
    )


def test_a_subfolder_is_fine_and_paths_resolve_from_the_manifests_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A path is relative to the manifest's folder, wherever the current directory is."""
    files = {"m.yaml": AXIS.replace("artists.txt", "lists/artists.txt"), "lists/artists.txt": "Monet\n"}
    write(tmp_path / "proj", files)
    monkeypatch.chdir(tmp_path)

    assert 2 == len(keys(Path("proj/m.yaml")))


def test_text_without_a_path_may_not_name_a_file() -> None:
    """`parse_manifest(text)` reads no file: naming one is a problem at its key."""
    with pytest.raises(ManifestError) as caught:
        parse_manifest(AXIS, "m.yaml")

    expected = [
        "m.yaml:7:25: matrix.artist.values_file: artists.txt: this manifest is text, not a file, so it has no folder "
        "to find files in (hint: load it from its file (load_manifest, or parse_manifest with source_path))"
    ]
    assert expected == [str(p) for p in caught.value.problems]


def test_a_link_that_leads_out_of_the_folder_is_refused(tmp_path: Path) -> None:
    """A symlink to a file outside the manifest's folder is refused; one to a file inside it is followed."""
    (tmp_path / "secret.txt").write_text("hunter2\n", encoding="utf-8")
    path = write(tmp_path / "proj", {"m.yaml": AXIS, "real.txt": "Monet\n"})
    (tmp_path / "proj" / "artists.txt").symlink_to(tmp_path / "secret.txt")
    refused = problems(path)
    (tmp_path / "proj" / "artists.txt").unlink()
    (tmp_path / "proj" / "artists.txt").symlink_to("real.txt")

    expected = [
        f"{path}:7:25: matrix.artist.values_file: {tmp_path / 'proj' / 'artists.txt'}: a link that leads out of the "
        "manifest's folder (hint: copy the file into the manifest's folder)"
    ]
    assert expected == refused
    assert 2 == len(keys(path))


def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    """A named pipe is no regular file: refused at once, not read (which would wait for a writer)."""
    path = write(tmp_path, {"m.yaml": AXIS})
    os.mkfifo(tmp_path / "artists.txt")

    assert [f"{tmp_path / 'artists.txt'}: not a regular file (hint: name a text file)"] == [
        p.split("values_file: ", 1)[1] for p in problems(path)
    ]


def test_a_file_over_the_cap_is_refused_at_its_key(tmp_path: Path) -> None:
    """A values file over 1 MiB is one problem at the key naming it, with its size and the limit."""
    path = write(tmp_path, {"m.yaml": AXIS, "artists.txt": "Monet\n" * (MAX_BYTES // 6 + 1)})

    expected = [
        f"{path}:7:25: matrix.artist.values_file: {tmp_path / 'artists.txt'}: file is 1,048,578 bytes, over the "
        "1,048,576-byte limit (hint: split it into several files)"
    ]
    assert expected == problems(path)


def test_a_bad_value_deep_in_a_text_file_is_reported_at_its_line(tmp_path: Path) -> None:
    """A value its request field refuses is located at its own line and column of the file."""
    text = HEAD + 'prompt: "a cat"\nmatrix:\n  steps: {values_file: steps.txt}\n'
    path = write(tmp_path, {"m.yaml": text, "steps.txt": "# sweep\n20\n\n  9000\n"})

    assert [f"{tmp_path / 'steps.txt'}:4:3: steps: must be at most 500, got 9000"] == problems(path)


def test_a_text_value_that_is_no_number_is_reported_at_its_line(tmp_path: Path) -> None:
    """A line a number field cannot read is located at that line, and says what it got."""
    text = HEAD + 'prompt: "a cat"\nmatrix:\n  steps: {values_file: steps.txt}\n'
    path = write(tmp_path, {"m.yaml": text, "steps.txt": "20\n\n many\n"})

    assert [f'{tmp_path / "steps.txt"}:3:2: steps: expected a whole number, got "many"'] == problems(path)


def test_the_converted_names_are_the_request_fields_that_refuse_text() -> None:
    """CSV and text values are converted for exactly the request fields whose type refuses a string."""
    refusing = set()
    for name, adapter in FIELD_TYPES.items():
        try:
            adapter.validate_python("1")
        except ValidationError as exc:
            if {e["type"] for e in exc.errors()} & {"int_type", "float_type", "bool_type"}:
                refusing.add(name)

    assert refusing == WHOLE_FIELDS | NUMBER_FIELDS | BOOL_FIELDS
