"""Render the emulator's images: real, deterministic PNGs, kept in a small LRU cache.

Two modes (`EmulatorConfig.images`). **abstract**: a two-colour gradient (one of eight directions) with four
rectangles or ellipses on top; colours, direction and shapes come from `sha256(prompt, seed, index)`. **subject**:
the subject the prompt names (`subjects.scene`) drawn from its vendored mask (icons/) over a sky, in the colours
and texture its style and light words give (`subjects.look`), moved and sized by the same digest; a prompt naming
no subject gets the abstract picture, byte for byte. Either way the same inputs give the same bytes.

Both draw in palette mode: one byte per pixel makes PNG encoding about three times faster than RGB (a 1024x1024
image takes ~10 ms here), which matters because encoding blocks whichever thread runs it. A subject picture is
composed as palette indices in an "L" image: the sky's index is `level * GRAIN + noise` (so paper grain costs no
extra pass over RGB), the figure's body, outline, glow and hatching have indices of their own. `ImageCache.png`
renders big images in a worker thread and keeps the last few hundred results, keyed by mode too.
"""

from __future__ import annotations

import functools
import hashlib
import io
from collections import OrderedDict
from collections.abc import Callable
from importlib import resources

import trio
from PIL import Image, ImageChops, ImageDraw

from leapbatch.emulator.config import ImageMode
from leapbatch.emulator.subjects import RGB, Look, look, scene

GRADIENT_LEVELS = 240  # palette entries 0..239 hold the gradient, 240.. the shapes
SHAPES = 4
THREAD_THRESHOLD = 256 * 256  # pixels above which rendering moves off the event loop

# (prompt, seed, width, height, index), plus the mode for subject images (abstract keys keep their first shape)
ImageKey = tuple[str, int, int, int, int] | tuple[str, int, int, int, int, ImageMode]

SKY_LEVELS = 56  # sky indices 0..223: level * GRAIN + noise
GRAIN = 4
BODY = SKY_LEVELS * GRAIN  # 224..227 (+ noise)
LINE = BODY + GRAIN  # 228..231 (+ noise)
GLOW = LINE + GRAIN
HATCH = GLOW + 1


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


@functools.cache
def _mask(subject: str) -> Image.Image:
    """Return the vendored mask of `subject` (0 outside, 128 body, 192-255 outline)."""
    data = resources.files("leapbatch.emulator").joinpath("icons", f"{subject}.png").read_bytes()
    with Image.open(io.BytesIO(data)) as mask:
        return mask.convert("L")


@functools.cache
def _noise() -> Image.Image:
    """Return a fixed 256x256 tile of grain, values 0..GRAIN-1 (the same on every machine)."""
    tile = Image.frombytes("L", (256, 256), hashlib.shake_256(b"leapbatch emulator grain").digest(256 * 256))
    return tile.point([value % GRAIN for value in range(256)])


@functools.cache
def _sky_levels() -> Image.Image:
    """Return the 256x256 top-to-bottom sky, as the index of each level's first grain entry."""
    return Image.linear_gradient("L").point([value * SKY_LEVELS // 256 * GRAIN for value in range(256)])


def _shade(colour: RGB, grain: int, step: int) -> list[int]:
    """Return `colour` as palette bytes, brightened or darkened by grain step `step` of GRAIN."""
    delta = grain * (2 * step - GRAIN + 1) // (2 * GRAIN)
    return [max(0, min(255, channel + delta)) for channel in colour]


def _palette(style: Look) -> list[int]:
    """Return the palette of a subject picture: sky levels x grain, body, outline, glow, hatching."""
    top, bottom = style.sky
    palette: list[int] = []
    for level in range(SKY_LEVELS):
        colour = tuple(a + (b - a) * level // (SKY_LEVELS - 1) for a, b in zip(top, bottom, strict=True))
        for step in range(GRAIN):
            palette += _shade((colour[0], colour[1], colour[2]), style.grain, step)
    for colour in (style.body, style.line):
        for step in range(GRAIN):
            palette += _shade(colour, style.grain, step)
    palette += [*(style.glow or style.line), *_shade(style.sky[1], 60, 0)]
    return palette


def _figure(canvas: Image.Image, subject: str, style: Look) -> None:
    """Paste the subject's figure (and its glow) onto `canvas`, an "L" image of palette indices."""
    width, height = canvas.size
    side = max(4, int(min(width, height) * style.size))
    left = (width - side) // 2 + int(style.offset[0] * width)
    top = (height - side) // 2 + int(style.offset[1] * height)
    mask = _mask(subject).resize((side, side), Image.Resampling.BILINEAR)
    if style.glow is not None:
        halo = side * 9 // 8
        shape = _mask(subject).resize((halo, halo), Image.Resampling.BILINEAR).point(lambda v: 255 * (v >= 64), "1")
        canvas.paste(GLOW, (left - (halo - side) // 2, top - (halo - side) // 2), shape)
    layer = mask.point([0] * 64 + [BODY] * 128 + [LINE] * 64)
    if style.grain:
        layer = ImageChops.add(layer, _noise().resize((side, side), Image.Resampling.NEAREST))
    canvas.paste(layer, (left, top), mask.point(lambda v: 255 * (v >= 64), "1"))


def _hatch(canvas: Image.Image) -> None:
    """Draw diagonal hatching over `canvas` (before the figure, so only the paper shows it)."""
    width, height = canvas.size
    draw = ImageDraw.Draw(canvas)
    gap = max(4, min(width, height) // 24)
    for start in range(-height, width, gap):
        draw.line((start, height, start + height, 0), fill=HATCH, width=max(1, gap // 8))


def render_subject_png(prompt: str, seed: int, width: int, height: int, index: int) -> bytes:
    """Return the PNG bytes of image `index` showing the prompt's subject (abstract when it names none)."""
    picture = scene(prompt)
    if picture.subject is None:
        return render_png(prompt, seed, width, height, index)
    style = look(picture, hashlib.sha256(f"{prompt}\x00{seed}\x00{index}".encode()).digest())
    drawn = (width, height)
    if style.pixels and min(width, height) > style.pixels:
        drawn = (
            max(1, width * style.pixels // min(width, height)),
            max(1, height * style.pixels // min(width, height)),
        )
    # NEAREST keeps one byte per pixel (as in `render_png`); the sky's bands are 1/56 of its height.
    canvas = _sky_levels().resize(drawn, Image.Resampling.NEAREST)
    if style.grain:
        canvas = ImageChops.add(canvas, _noise().resize(drawn, Image.Resampling.NEAREST))
    if style.hatch:
        _hatch(canvas)
    _figure(canvas, picture.subject, style)
    if drawn != (width, height):
        canvas = canvas.resize((width, height), Image.Resampling.NEAREST)
    image = canvas.convert("P")  # L -> P keeps each pixel's value as its palette index
    image.putpalette(_palette(style))
    out = io.BytesIO()
    image.save(out, format="PNG", compress_level=1)
    return out.getvalue()


RENDERERS: dict[ImageMode, Callable[[str, int, int, int, int], bytes]] = {
    "subject": render_subject_png,
    "abstract": render_png,
}


class ImageCache:
    """The last `capacity` rendered PNGs, keyed by (prompt, seed, width, height, index) and mode."""

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

    async def png(
        self, prompt: str, seed: int, width: int, height: int, index: int, *, mode: ImageMode = "abstract"
    ) -> bytes:
        """Return the image's PNG bytes in `mode`, rendering them (in a thread when big) on a cache miss."""
        key: ImageKey = (prompt, seed, width, height, index)
        if mode != "abstract":
            key = (*key, mode)
        data = self.get(key)
        if data is None:
            render = RENDERERS[mode]
            # Two concurrent misses for one key both render: harmless, and rarer than the bookkeeping is worth.
            if width * height > THREAD_THRESHOLD:
                data = await trio.to_thread.run_sync(render, prompt, seed, width, height, index)
            else:
                data = render(prompt, seed, width, height, index)
            self.put(key, data)
        return data
