"""Render the emulator's images: real, deterministic PNGs, kept in a small LRU cache.

An image is a two-colour gradient (one of eight directions) with four rectangles or ellipses on top; colours,
direction and shapes come from `sha256(prompt, seed, index)`, so the same inputs give the same bytes and a
different prompt, seed or index gives a visibly different picture. It is drawn in palette mode: one byte per pixel
makes PNG encoding about three times faster than RGB (a 1024x1024 image takes ~10 ms here), which matters because
encoding blocks whichever thread runs it. `ImageCache.png` therefore renders big images in a worker thread and
keeps the last few hundred results.
"""

from __future__ import annotations

import functools
import hashlib
import io
from collections import OrderedDict

import trio
from PIL import Image, ImageDraw

GRADIENT_LEVELS = 240  # palette entries 0..239 hold the gradient, 240.. the shapes
SHAPES = 4
THREAD_THRESHOLD = 256 * 256  # pixels above which rendering moves off the event loop

ImageKey = tuple[str, int, int, int, int]  # (prompt, seed, width, height, index)


@functools.cache
def _gradients() -> tuple[Image.Image, ...]:
    """Return the eight 256x256 gradient masks (linear and radial, four turns each), levels 0..239."""
    levels = [value * GRADIENT_LEVELS // 256 for value in range(256)]
    bases = (Image.linear_gradient("L").point(levels), Image.radial_gradient("L").point(levels))
    turns = (None, Image.Transpose.ROTATE_90, Image.Transpose.ROTATE_180, Image.Transpose.ROTATE_270)
    return tuple(base if turn is None else base.transpose(turn) for base in bases for turn in turns)


def _blend(start: bytes, end: bytes, step: int) -> list[int]:
    return [a + (b - a) * step // (GRADIENT_LEVELS - 1) for a, b in zip(start, end, strict=True)]


def render_png(prompt: str, seed: int, width: int, height: int, index: int) -> bytes:
    """Return the PNG bytes of image `index` of a job (same inputs, same bytes)."""
    digest = hashlib.sha256(f"{prompt}\x00{seed}\x00{index}".encode()).digest()
    gradients = _gradients()
    # NEAREST keeps one byte per pixel and is ~6x faster than BILINEAR; bands of a few pixels do not show.
    mask = gradients[digest[6] % len(gradients)].resize((width, height), Image.Resampling.NEAREST)
    picture = mask.convert("P")  # L -> P keeps each pixel's value as its palette index
    palette: list[int] = []
    for step in range(GRADIENT_LEVELS):
        palette += _blend(digest[0:3], digest[3:6], step)
    draw = ImageDraw.Draw(picture)
    for number in range(SHAPES):
        b = digest[8 + 6 * number : 14 + 6 * number]
        palette += [b[4], b[5], b[0] ^ b[3]]
        left, top = b[0] * width // 256, b[1] * height // 256
        box = (left, top, left + b[2] * width // 512 + 4, top + b[3] * height // 512 + 4)
        if b[4] & 1:
            draw.ellipse(box, fill=GRADIENT_LEVELS + number)
        else:
            draw.rectangle(box, fill=GRADIENT_LEVELS + number)
    picture.putpalette(palette)
    out = io.BytesIO()
    picture.save(out, format="PNG", compress_level=1)
    return out.getvalue()


class ImageCache:
    """The last `capacity` rendered PNGs, keyed by (prompt, seed, width, height, index)."""

    def __init__(self, capacity: int = 256) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[ImageKey, bytes] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: ImageKey) -> bytes | None:
        """Return the cached bytes for `key` (marking them recently used), or None."""
        data = self._entries.get(key)
        if data is not None:
            self._entries.move_to_end(key)
        return data

    def put(self, key: ImageKey, data: bytes) -> None:
        """Keep `data` for `key`, dropping the least recently used entries beyond capacity."""
        self._entries[key] = data
        self._entries.move_to_end(key)
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)

    async def png(self, prompt: str, seed: int, width: int, height: int, index: int) -> bytes:
        """Return the image's PNG bytes, rendering them (in a thread when big) on a cache miss."""
        key = (prompt, seed, width, height, index)
        data = self.get(key)
        if data is None:
            # Two concurrent misses for one key both render: harmless, and rarer than the bookkeeping is worth.
            if width * height > THREAD_THRESHOLD:
                data = await trio.to_thread.run_sync(render_png, *key)
            else:
                data = render_png(*key)
            self.put(key, data)
        return data
