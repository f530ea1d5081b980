"""The manifest's `caption:` template: the dataset's text per job, rendered like the prompt, never sent."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from leapbatch.cli import main
from leapbatch.errors import ManifestError
from leapbatch.manifest import parse_manifest
from leapbatch.manifest.expand import expand

BASE = """\
version: 1
name: cap
model: m1
prompt: "a photo of a {animal}"
vars: {trigger: ohwx}
matrix:
  animal: [fox, owl]
"""


def test_the_caption_renders_from_axes_and_vars() -> None:
    """`caption: "{trigger} {animal}"` gives each job its own caption; without one the text is the prompt."""
    with_caption = expand(parse_manifest(BASE + 'caption: "{trigger} {animal}"\n')).jobs
    without = expand(parse_manifest(BASE.replace("vars: {trigger: ohwx}\n", ""))).jobs
    assert (["ohwx fox", "ohwx owl"], ["a photo of a fox", "a photo of a owl"]) == (
        [job.text for job in with_caption],
        [job.text for job in without],
    )


def test_the_caption_is_no_part_of_the_key() -> None:
    """Adding or editing a caption changes no job key and no request."""
    one = expand(parse_manifest(BASE + 'caption: "{trigger} {animal}"\n')).jobs
    two = expand(parse_manifest(BASE + 'caption: "{animal} by {trigger}"\n')).jobs
    assert [(j.key, j.request) for j in one] == [(j.key, j.request) for j in two]


def test_an_unknown_caption_name_is_located_with_a_did_you_mean() -> None:
    """`{animl}` in the caption is reported at its line with the close name."""
    with pytest.raises(ManifestError) as caught:
        parse_manifest(BASE + 'caption: "{trigger} {animl}"\n', "m.yaml")
    expected = "m.yaml:8:10: caption: unknown template variable {animl} (known: animal, trigger)"
    assert [expected + " (hint: did you mean 'animal'?)"] == [str(p) for p in caught.value.problems]


def test_an_include_entry_fills_the_caption_too() -> None:
    """An include entry without a caption name is refused; one that sets it renders it."""
    text = BASE + 'caption: "{trigger} {label}"\nmatrix:\n  animal: [{animal: fox, label: a fox}]\n'
    text = text.replace("matrix:\n  animal: [fox, owl]\n", "", 1)
    assert ["ohwx a fox"] == [job.text for job in expand(parse_manifest(text)).jobs]
    with pytest.raises(ManifestError, match=r"no value for \{label\}"):
        parse_manifest(text + "include:\n  - {animal: cat}\n")


def test_a_var_used_only_by_the_caption_is_used() -> None:
    """A trigger word kept in vars for the caption alone is not called unused."""
    assert parse_manifest(BASE + 'caption: "{trigger}"\n').variables == {"trigger": "ohwx"}


def test_an_axis_only_the_caption_uses_still_repeats_jobs() -> None:
    """An axis the prompt does not use would make equal requests: refused even if the caption uses it."""
    text = BASE.replace("  animal: [fox, owl]\n", "  animal: [fox, owl]\n  light: [dawn, dusk]\n")
    with pytest.raises(ManifestError, match="would only repeat the same jobs"):
        parse_manifest(text + 'caption: "{trigger} {light}"\n')


def test_an_edited_caption_rewrites_the_metadata_without_a_request(tmp_path: Path) -> None:
    """Run, edit the caption, run again: metadata.jsonl's text follows the manifest; no job is created again."""
    manifest = tmp_path / "cap.yaml"
    out = tmp_path / "out"
    body = BASE.replace("model: m1", "model: 26a1a203-3a46-42cb-8cfa-f4de075907d8")
    body = body.replace('"a photo of a {animal}"', '"a photo of a {animal}"\nparams: {width: 64, height: 64}')
    run = ["run", "--local", "--quiet", "--speed", "1000", "--out", str(out), str(manifest)]
    manifest.write_text(body + 'caption: "{trigger} {animal}"\n', encoding="utf-8")
    assert 0 == main(run)
    ledger = (out / "ledger.jsonl").read_text().count('"type":"intent"')
    manifest.write_text(body + 'caption: "{animal}, {trigger} style"\n', encoding="utf-8")

    assert 0 == main(run)

    texts = [json.loads(line)["text"] for line in (out / "metadata.jsonl").read_text().splitlines()]
    assert ["fox, ohwx style", "owl, ohwx style"] == texts
    assert ledger == (out / "ledger.jsonl").read_text().count('"type":"intent"')
    assert 0 == main(["verify", str(out)])
