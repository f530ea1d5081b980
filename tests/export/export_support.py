"""What the export tests share: a finished folder's manifest and its counts (the fixture is in conftest.py)."""

from __future__ import annotations

from PIL import Image, PngImagePlugin

MANIFEST = """\
version: 1
name: critters
model: 26a1a203-3a46-42cb-8cfa-f4de075907d8
prompt: "a photo of a {animal}, {style} style"
caption: "{trigger} {animal}, {style}"
vars: {trigger: ohwx}
params: {width: 64, height: 64, steps: 10}
matrix:
  animal: [fox, owl, cat, "dog.with.dots"]
  style: [oil, ink, pixel]
include:
  - {animal: hare, style: ink, number_of_images: 2}
"""
JOBS = 13
IMAGES = 14


def png_text(image: Image.Image) -> dict[str, str]:
    """Return the text chunks of a PNG Pillow opened (its `text`, which only a PNG image has)."""
    assert isinstance(image, PngImagePlugin.PngImageFile)
    return dict(image.text)
