"""Why a grid cell is empty: each step of `why_empty`, in the words a person reads."""

from __future__ import annotations

from leapbatch.folder.state import LedgerState
from leapbatch.manifest import parse_manifest
from leapbatch.manifest.expand import expand
from leapbatch.view.absence import MAX_COMBINATIONS, UNLISTED, why_empty
from leapbatch.view.catalog import Catalog, catalog

HEAD = "version: 1\nname: t\nmodel: m1\n"


def shown(body: str) -> Catalog:
    """Return the catalog (no ledger) of a manifest made of HEAD and `body`."""
    manifest = parse_manifest(HEAD + body)
    expansion = expand(manifest)
    return catalog(
        LedgerState(),
        expansion.jobs,
        manifest,
        name="t",
        matrix_jobs=expansion.combinations - expansion.excluded,
    )


ZOO = """\
prompt: "a {style} {animal} in a {place}"
matrix:
  animal: [cat, owl]
  style: [ink, oil]
  place: [forest, city]
exclude:
  - {animal: owl, place: city}
include:
  - {animal: red panda, style: ink, place: bamboo}
"""


def test_a_cell_every_combination_of_which_is_excluded_names_the_entry() -> None:
    """owl and city: both styles are dropped by exclude entry 1."""
    assert why_empty(shown(ZOO), {"animal": "owl", "place": "city"}) == (
        "excluded by exclude entry 1 (animal: owl, place: city)"
    )


def test_one_entry_dropping_all_is_named_with_its_values_and_several_are_counted() -> None:
    """Each combination is charged to the first entry that drops it: one entry for all is named with its values
    (a list of them joined by |); several are numbered."""
    body = ZOO.replace("exclude:\n", "exclude:\n  - {animal: [owl, cat], place: city, style: oil}\n")
    assert why_empty(shown(body), {"animal": "owl", "place": "city"}) == "excluded by exclude entries 1, 2"
    assert why_empty(shown(body), {"animal": "cat", "place": "city", "style": "oil"}) == (
        "excluded by exclude entry 1 (animal: cat | owl, place: city, style: oil)"
    )


def test_a_value_only_an_include_entry_gives() -> None:
    """red panda is no axis value: only include entries set it, none with city."""
    assert why_empty(shown(ZOO), {"animal": "red panda", "place": "city"}) == (
        "only include entries set animal = red panda, and none with place = city"
    )


def test_a_value_no_job_has() -> None:
    """A label nothing sets."""
    assert why_empty(shown(ZOO), {"animal": "dog"}) == "no job has animal = dog"


def test_a_mapping_value_that_sets_another_label_is_no_combination() -> None:
    """Monet's era is 1870: no combination sets painter Monet with era 1830."""
    body = """\
prompt: "{painter} ({era})"
matrix:
  painter: [{painter: Monet, era: "1870"}, {painter: Hokusai, era: "1830"}]
"""
    assert why_empty(shown(body), {"painter": "Monet", "era": "1830"}) == (
        "no combination sets painter = Monet, era = 1830 together"
    )


def test_a_sampled_manifest_says_sampled_out() -> None:
    """With `sample`, a combination not excluded and without a job was left out by the sample."""
    body = 'prompt: "a {animal} {n}"\nmatrix:\n  animal: [cat, owl, fox]\n  n: [1, 2, 3, 4]\nsample: {count: 3}\n'
    catalog_ = shown(body)
    taken = {(e.variables["animal"], e.variables["n"]) for e in catalog_.entries}
    animal, n = next((a, str(n)) for a in ("cat", "owl", "fox") for n in range(1, 5) if (a, str(n)) not in taken)
    assert why_empty(catalog_, {"animal": animal, "n": n}) == "sampled out: sample keeps 3 of 12 combinations"


def test_two_combinations_with_one_request_leave_a_duplicate() -> None:
    """Two mapping values differing only in a name no template uses make one request: the second is a duplicate."""
    body = 'prompt: "a {animal}"\nmatrix:\n  animal: [{animal: cat, note: a}, {animal: cat, note: b}]\n'
    catalog_ = shown(body)
    assert [e.variables["note"] for e in catalog_.entries] == ["a"]
    assert why_empty(catalog_, {"note": "b"}) == "a duplicate: its request equals another job's"


def test_too_many_combinations_to_look_at_says_so() -> None:
    """Past MAX_COMBINATIONS combinations for one cell the steps stop: left out by exclude or sample."""
    side = int(MAX_COMBINATIONS**0.5) + 2
    body = f'prompt: "{{a}} {{b}} {{c}}"\nmatrix:\n  a: {{range: [0, {side}]}}\n  b: {{range: [0, {side}]}}\n'
    body += "  c: [x, y]\nexclude:\n  - {c: x}\n"
    catalog_ = shown(body)
    assert why_empty(catalog_, {"c": "x"}) == UNLISTED
    assert why_empty(catalog_, {"c": "x", "a": "0"}) == "excluded by exclude entry 1 (c: x)"


def test_without_rules_an_empty_cell_only_says_what_no_job_has() -> None:
    """A folder whose manifest is not known."""
    bare = catalog(LedgerState(), None, None, name="t")
    assert why_empty(bare, {"animal": "owl", "place": "city"}) == "no job has animal = owl, place = city"


def test_a_cell_only_partly_excluded_is_sampled_out() -> None:
    """One of the cell's combinations is excluded, the other was left out by the sample: the sample is why."""
    body = 'prompt: "{animal} {style}"\nmatrix:\n  animal: [cat, owl]\n  style: [ink, oil]\n'
    body += "exclude:\n  - {animal: owl, style: ink}\nsample: {count: 1}\n"
    catalog_ = shown(body)
    (kept,) = catalog_.entries
    asked = {"animal": "owl"} if kept.variables["animal"] == "cat" else {"style": "ink"}
    assert why_empty(catalog_, asked) == "sampled out: sample keeps 1 of 3 combinations"
