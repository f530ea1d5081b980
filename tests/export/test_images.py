"""The images an export holds: listed in ledger order, each with a sidecar of one fixed shape."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from export_support import IMAGES

from leapbatch.export.images import export_images
from leapbatch.folder.ledger import read_ledger


def shape(value: Any) -> Any:
    """Return the keys of a JSON value, recursively (values replaced by nothing)."""
    return {key: shape(inner) for key, inner in value.items()} if isinstance(value, dict) else None


def test_every_sidecar_has_the_same_shape(finished: Path) -> None:
    """All 14 sidecars have the same keys, nested; prompt_strength is a float in each (readers infer types)."""
    state = read_ledger(finished)
    sidecars = [image.sidecar() for image in export_images(finished, state, dict.fromkeys(state.jobs))]
    assert IMAGES == len(sidecars)
    assert 1 == len({repr(shape(sidecar)) for sidecar in sidecars})
    assert {float} == {type(sidecar["request"]["prompt_strength"]) for sidecar in sidecars}
    assert {"animal", "style"} == set(sidecars[0]["variables"])


def test_without_a_manifest_caption_the_text_is_the_prompt(finished: Path) -> None:
    """A caption of None means the prompt, for every image."""
    state = read_ledger(finished)
    images = export_images(finished, state, dict.fromkeys(state.jobs))
    assert all(image.text == image.request["prompt"] for image in images)
