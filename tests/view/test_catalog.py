"""The catalog: what the gallery and the sheet show of a folder, from the manifest's jobs and the ledger."""

from __future__ import annotations

from leapbatch.folder.records import FailedRecord, FailStage, FinishedRecord, ImageRecord, IntentRecord, Record
from leapbatch.folder.state import LedgerState, fold
from leapbatch.jobs import Job
from leapbatch.manifest import Manifest, parse_manifest
from leapbatch.manifest.expand import expand
from leapbatch.view.catalog import LISTED_VALUES, Catalog, Status, catalog, status_of

EXAMPLE = """\
version: 1
name: zoo
model: m1
prompt: "a {style} {animal} in a {place}"
caption: "ohwx {animal}"
matrix:
  animal: [cat, fox, owl]
  style: [ink, oil]
  place: [{place: forest, light: dawn}, {place: city}]
exclude:
  - {animal: owl, place: city}
include:
  - {animal: red panda, style: ink, place: bamboo}
"""


def manifest_of(text: str) -> tuple[Manifest, list[Job]]:
    """Return a manifest parsed from text and its jobs."""
    manifest = parse_manifest(text)
    return manifest, expand(manifest).jobs


def intent(job: Job) -> IntentRecord:
    """Return the intent record a run writes before it creates `job`."""
    request = job.request.to_wire()
    return IntentRecord(
        t=1.0, key=job.key, model=job.model_id, fingerprint=job.fingerprint, request=request, variables=job.variables
    )


def finished(job: Job, sha: str = "ab" * 32) -> FinishedRecord:
    """Return the record of `job` finished with one 64x48 image."""
    image = ImageRecord(index=0, uri="u", path=f"images/{job.key}_0.png", sha256=sha, bytes=10, width=64, height=48)
    return FinishedRecord(t=2.0, key=job.key, inference_id="inf-" + job.key[:6], images=[image])


def zoo(records: list[Record] | None = None) -> Catalog:
    """Return the catalog of the zoo manifest over a ledger of `records`."""
    manifest, jobs = manifest_of(EXAMPLE)
    return catalog(fold(records or []), jobs, manifest, name=manifest.name, matrix_jobs=10)


def test_variables_are_the_axes_in_file_order_then_names_only_jobs_set() -> None:
    """Axis names first (a mapping axis's names together, `light` riding along), values in axis order, then the
    values only include entries give."""
    found = {v.name: (v.values, v.axis) for v in zoo().variables}
    assert found == {
        "animal": (("cat", "fox", "owl", "red panda"), 0),
        "style": (("ink", "oil"), 1),
        "place": (("forest", "city", "bamboo"), 2),
        "light": (("dawn",), 2),
    }


def test_entries_follow_the_manifests_order_with_their_caption_and_request() -> None:
    """One entry per job, in order; its text is the caption; its request is the body as sent."""
    _manifest, jobs = manifest_of(EXAMPLE)
    entries = zoo().entries
    assert [e.key for e in entries] == [j.key for j in jobs]
    first = entries[0]
    assert (first.text, first.prompt, first.variables) == (
        "ohwx cat",
        "a ink cat in a forest",
        {"animal": "cat", "style": "ink", "place": "forest", "light": "dawn"},
    )
    assert first.request == jobs[0].request.to_wire()
    assert first.seed == jobs[0].request.seed


def test_each_status_says_why_there_are_no_images() -> None:
    """Pending, creating, failed (with stage and reason) and done: only a done entry has pictures."""
    _, jobs = manifest_of(EXAMPLE)
    failed = FailedRecord(t=3.0, key=jobs[2].key, stage=FailStage.GENERATE, reason="the job ended failed")
    records: list[Record] = [intent(jobs[0]), finished(jobs[0]), intent(jobs[1]), intent(jobs[2]), failed]
    entries = zoo(records).entries
    assert [(e.status, e.reason) for e in entries[:4]] == [
        (Status.DONE, ""),
        (Status.CREATING, "a create was sent; the server has not confirmed it yet (the next run settles it)"),
        (Status.FAILED, "failed at generate: the job ended failed"),
        (Status.PENDING, "not submitted yet: the next run creates it"),
    ]
    assert [len(e.pictures) for e in entries[:4]] == [1, 0, 0, 0]
    picture = entries[0].pictures[0]
    assert (picture.path, picture.width, picture.height) == (f"images/{jobs[0].key}_0.png", 64, 48)
    assert entries[0].inference_id == "inf-" + jobs[0].key[:6]


def test_status_of_no_record_is_pending() -> None:
    """A job the ledger has never seen is pending."""
    assert status_of(None)[0] is Status.PENDING


def test_without_a_manifest_every_ledger_job_is_listed_and_there_are_no_rules() -> None:
    """No manifest: the ledger's jobs, their variables as recorded, no rules to explain an empty cell."""
    _, jobs = manifest_of(EXAMPLE)
    state = fold([intent(jobs[0]), finished(jobs[0]), intent(jobs[3])])
    shown = catalog(state, None, None, name="zoo", unknown_why="the manifest moved")
    assert ([e.key for e in shown.entries], shown.rules, shown.unknown_why) == (
        [jobs[0].key, jobs[3].key],
        None,
        "the manifest moved",
    )
    assert shown.entries[0].text == shown.entries[0].prompt  # no caption known: the prompt


def test_rules_hold_the_axes_excludes_and_sample_as_labels() -> None:
    """The matrix as labels (a mapping value that does not set a name holds None), the exclude entries, the sample."""
    rules = zoo().rules
    assert rules is not None
    assert [(a.names, a.values) for a in rules.axes] == [
        (("animal",), (("cat",), ("fox",), ("owl",))),
        (("style",), (("ink",), ("oil",))),
        (("place", "light"), (("forest", "dawn"), ("city", None))),
    ]
    assert rules.excludes == ({"animal": ("owl",), "place": ("city",)},)
    assert (rules.sample, rules.matrix_jobs) == (None, 10)


def test_a_long_axis_lists_only_the_values_jobs_have_in_numeric_order() -> None:
    """A seed range past LISTED_VALUES is not listed: its variable holds the values the sampled jobs have."""
    text = f"""\
version: 1
name: seeds
model: m1
prompt: "a fox"
matrix:
  seed: {{range: [0, {LISTED_VALUES * 5}]}}
sample: {{count: 20, seed: 3}}
"""
    manifest, jobs = manifest_of(text)
    shown = catalog(LedgerState(), jobs, manifest, name="seeds")
    seeds = shown.variables[0].values
    assert len(seeds) == 20
    assert [int(s) for s in seeds] == sorted(int(job.variables["seed"]) for job in jobs)
    assert shown.rules is not None
    assert shown.rules.axes[0].values == ()
