"""Image rendering and its cache, without a server."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from leapbatch.emulator import ImageCache, render_png


@pytest.mark.parametrize(("width", "height"), [(8, 8), (64, 128), (1024, 1024), (2048, 512)])
def test_renders_a_png_of_the_requested_size(width: int, height: int) -> None:
    """The bytes decode as a PNG of exactly the requested width and height."""
    picture = Image.open(io.BytesIO(render_png("a red fox", 1, width, height, 0)))

    assert ("PNG", (width, height)) == (picture.format, picture.size)


def test_same_inputs_give_the_same_bytes() -> None:
    """Rendering is a pure function of (prompt, seed, width, height, index)."""
    assert render_png("a red fox", 1, 64, 64, 0) == render_png("a red fox", 1, 64, 64, 0)


@pytest.mark.parametrize(
    "other", [("a red fox", 2, 64, 64, 0), ("a blue fox", 1, 64, 64, 0), ("a red fox", 1, 64, 64, 1)]
)
def test_another_seed_prompt_or_index_gives_another_picture(other: tuple[str, int, int, int, int]) -> None:
    """Changing the seed, the prompt or the index changes the pixels, not just the bytes."""
    first = Image.open(io.BytesIO(render_png("a red fox", 1, 64, 64, 0))).convert("RGB")
    second = Image.open(io.BytesIO(render_png(*other))).convert("RGB")

    assert first.tobytes() != second.tobytes()


def test_pictures_are_not_flat() -> None:
    """An image holds a gradient and shapes: many colours, not one."""
    picture = Image.open(io.BytesIO(render_png("a red fox", 1, 256, 256, 0))).convert("RGB")

    assert len(picture.getcolors(maxcolors=256 * 256) or []) > 20


def test_cache_keeps_the_most_recently_used() -> None:
    """Beyond its capacity the cache drops the least recently used entry."""
    cache = ImageCache(capacity=2)
    a, b, c = ("a", 1, 8, 8, 0), ("b", 1, 8, 8, 0), ("c", 1, 8, 8, 0)
    cache.put(a, b"A")
    cache.put(b, b"B")
    cache.get(a)  # a is now more recent than b
    cache.put(c, b"C")

    assert (b"A", None, b"C", 2) == (cache.get(a), cache.get(b), cache.get(c), len(cache))


async def test_cache_renders_on_a_miss_and_serves_the_same_bytes_after() -> None:
    """`png` renders once (big images in a thread) and then answers from the cache."""
    cache = ImageCache(capacity=4)

    small = await cache.png("a red fox", 1, 64, 64, 0)
    big = await cache.png("a red fox", 1, 512, 512, 0)

    assert (small, big) == (render_png("a red fox", 1, 64, 64, 0), render_png("a red fox", 1, 512, 512, 0))
    assert big is await cache.png("a red fox", 1, 512, 512, 0)
