"""PNG text chunks: the parameters ride along, the pixels stay the downloaded ones."""

from __future__ import annotations

import io

import pytest
from export_support import png_text
from PIL import Image

from leapbatch.export.pngtext import parameters_text, tagged


def png(width: int = 8, height: int = 8) -> bytes:
    """Return a small real PNG."""
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 90)).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("text", ["a fox\nSteps: 30, Seed: 7", "un renard, été\u2014東京 🦊"])
def test_a_tagged_png_carries_its_text_and_the_same_pixels(text: str) -> None:
    """Pillow reads the text back (tEXt for Latin-1, iTXt otherwise) and decodes the same pixels."""
    original = png()
    image = Image.open(io.BytesIO(tagged(original, "parameters", text)))
    assert text == png_text(image)["parameters"]
    assert Image.open(io.BytesIO(original)).tobytes() == image.tobytes()


def test_tagging_changes_only_the_inserted_chunk() -> None:
    """The tagged bytes are the original with one chunk added after IHDR."""
    original = png()
    out = tagged(original, "parameters", "x")
    inserted = len(out) - len(original)
    assert original == out[:33] + out[33 + inserted :]


def test_a_non_png_is_refused() -> None:
    """JPEG bytes are not tagged as if they were a PNG."""
    with pytest.raises(ValueError, match="not a PNG"):
        tagged(b"\xff\xd8\xff\xe0" + bytes(40), "parameters", "x")


def test_parameters_follow_the_common_convention() -> None:
    """Prompt, a Negative prompt line, then the settings as `Key: value` pairs."""
    request = {"prompt": "a fox", "negative_prompt": "blurry", "steps": 30, "prompt_strength": 7.5, "seed": 42}
    expected = "a fox\nNegative prompt: blurry\nSteps: 30, CFG scale: 7.5, Seed: 42, Size: 512x512, Model: m1"
    assert expected == parameters_text(request, "m1", 512, 512)
