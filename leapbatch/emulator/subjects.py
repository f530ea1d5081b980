"""Read a prompt the way the emulator's subject images need: which subject it names, in which style and light.

Pure functions of the prompt's words (and, for `look`, of a digest of the prompt, seed and index). A word is a run
of letters, compared case-folded and whole: "catalog" names no cat, "cats" and "foxes" do (a trailing "s" or "es"
is dropped when the word itself is not in the vocabulary). The subject is the first word naming one of `SUBJECTS`
(its name or a synonym), so "a cat chasing a dog" shows a cat; a prompt naming none has no subject (None: the
emulator draws its abstract picture instead). The style is the first word of `STYLES`, the light the first of
`LIGHTS`; each changes colours and texture of the drawn picture (`look`), never the subject.
"""

from __future__ import annotations

import colorsys
import hashlib
import re
from dataclasses import dataclass, replace
from typing import Final

RGB = tuple[int, int, int]

# subject -> the other words that name it; every subject has a mask in icons/ (scripts/vendor_icons.py)
SUBJECTS: Final[dict[str, tuple[str, ...]]] = {
    "cat": ("kitten", "kitty"),
    "dog": ("puppy", "hound"),
    "fox": (),
    "owl": (),
    "fish": ("goldfish",),
    "bird": ("sparrow", "songbird"),
    "horse": ("pony", "stallion", "mare"),
    "rabbit": ("bunny", "hare"),
    "bear": ("grizzly",),
    "wolf": ("wolves",),
    "deer": ("stag", "fawn", "reindeer"),
    "pig": ("piglet", "hog"),
    "cow": ("cattle",),
    "duck": ("duckling",),
    "turtle": ("tortoise",),
    "butterfly": ("butterflies",),
    "elephant": (),
    "lion": ("lioness",),
    "penguin": (),
    "whale": (),
    "frog": ("toad",),
    "tree": ("oak", "pine"),
    "flower": ("tulip", "rose", "blossom", "daisy"),
    "mushroom": ("toadstool",),
    "cactus": ("cacti",),
    "mountain": ("peak",),
    "house": ("home", "cottage", "cabin"),
    "castle": ("palace", "fortress"),
    "car": ("automobile",),
    "bicycle": ("bike",),
    "boat": ("sailboat", "yacht"),
    "airplane": ("plane", "aeroplane", "aircraft", "jet"),
    "rocket": (),
    "cup": ("mug", "coffee", "tea", "teacup"),
    "apple": (),
    "moon": ("crescent",),
    "sun": (),
    "umbrella": (),
    "guitar": (),
}
ABSTRACT: Final = "abstract"  # what the stats call a picture with no subject

STYLES: Final[dict[str, tuple[str, ...]]] = {
    "watercolor": ("watercolor", "watercolour", "aquarelle", "pastel"),
    "ink": ("ink", "sketch", "pencil", "charcoal", "drawing", "lineart"),
    "oil": ("oil", "painting", "impasto"),
    "pixel": ("pixel", "pixelated", "pixelart"),
    "neon": ("neon", "cyberpunk", "synthwave", "glowing"),
    "noir": ("noir", "monochrome", "grayscale", "greyscale"),
}
LIGHTS: Final[dict[str, tuple[str, ...]]] = {
    "night": ("night", "midnight", "moonlight", "moonlit", "nocturnal", "dark"),
    "sunset": ("sunset", "sunrise", "dusk", "dawn", "golden"),
    "day": ("day", "daylight", "sunny", "noon"),
    "fog": ("fog", "foggy", "mist", "misty", "haze", "hazy"),
}


def _lookup(table: dict[str, tuple[str, ...]], *, with_names: bool) -> dict[str, str]:
    """Return word -> key for every word of `table` (keys included when `with_names`)."""
    words = {word: key for key, synonyms in table.items() for word in synonyms}
    return {**words, **({key: key for key in table} if with_names else {})}


_SUBJECT_WORDS: Final = _lookup(SUBJECTS, with_names=True)
_STYLE_WORDS: Final = _lookup(STYLES, with_names=False)
_LIGHT_WORDS: Final = _lookup(LIGHTS, with_names=False)
_WORD: Final = re.compile(r"[^\W\d_]+")


def words(prompt: str) -> list[str]:
    """Return the prompt's words, case-folded (runs of letters: digits, marks and punctuation split them)."""
    return _WORD.findall(prompt.casefold())


def _first(vocabulary: dict[str, str], prompt_words: list[str]) -> str | None:
    """Return the key of the first word in `vocabulary` (trying it without a plural "s" or "es" too), or None."""
    for word in prompt_words:
        for form in (word, word[:-2] if word.endswith("es") else "", word[:-1] if word.endswith("s") else ""):
            if form in vocabulary:
                return vocabulary[form]
    return None


@dataclass(frozen=True, slots=True)
class Scene:
    """What a prompt asks to see: a subject (None: none named), a style and a light (None: plain)."""

    subject: str | None
    style: str | None = None
    light: str | None = None


def scene(prompt: str) -> Scene:
    """Return the subject, style and light the prompt's words name."""
    found = words(prompt)
    return Scene(_first(_SUBJECT_WORDS, found), _first(_STYLE_WORDS, found), _first(_LIGHT_WORDS, found))


def subject_name(prompt: str) -> str:
    """Return the subject the prompt shows, as the stats name it (`ABSTRACT` when it names none)."""
    return scene(prompt).subject or ABSTRACT


@dataclass(frozen=True, slots=True)
class Look:
    """The colours and texture of one picture: sky (top, bottom), the figure's body and outline, and effects."""

    sky: tuple[RGB, RGB]
    body: RGB
    line: RGB
    glow: RGB | None = None  # neon: a halo of this colour behind the figure
    grain: int = 0  # paper noise: how far (0-255) a pixel's brightness may move
    hatch: bool = False  # ink: diagonal hatching on the paper
    pixels: int = 0  # pixel art: draw the shorter side this many pixels long, then scale up without smoothing
    size: float = 0.65  # the figure's side, as a fraction of the picture's shorter side
    offset: tuple[float, float] = (0.0, 0.0)  # the figure's centre, off the picture's, as fractions of its sides


def _hsv(hue: float, saturation: float, value: float) -> RGB:
    red, green, blue = colorsys.hsv_to_rgb(hue % 1.0, saturation, value)
    return round(red * 255), round(green * 255), round(blue * 255)


def _scale(colour: RGB, factor: float) -> RGB:
    red, green, blue = (min(255, round(channel * factor)) for channel in colour)
    return red, green, blue


def _mix(colour: RGB, other: RGB, weight: float) -> RGB:
    red, green, blue = (round(a + (b - a) * weight) for a, b in zip(colour, other, strict=True))
    return red, green, blue


def _gray(colour: RGB) -> RGB:
    luma = round(0.299 * colour[0] + 0.587 * colour[1] + 0.114 * colour[2])
    return luma, luma, luma


def _styled(style: str | None, hue: float) -> Look:
    """Return the look a style gives a picture whose colours start from `hue`."""
    if style == "watercolor":
        return Look(
            (_hsv(hue, 0.18, 0.99), _hsv(hue + 0.1, 0.3, 0.93)),
            _hsv(hue + 0.5, 0.35, 0.97),
            _hsv(hue + 0.5, 0.55, 0.6),
            grain=22,
        )
    if style == "ink":
        return Look(((246, 241, 228), (230, 222, 203)), (250, 248, 241), (24, 22, 30), hatch=True)
    if style == "oil":
        return Look(
            (_hsv(hue, 0.75, 0.7), _hsv(hue + 0.08, 0.85, 0.45)),
            _hsv(hue + 0.5, 0.85, 0.92),
            _hsv(hue + 0.5, 0.9, 0.25),
            grain=34,
        )
    if style == "neon":
        return Look(((12, 6, 32), (44, 0, 66)), (24, 12, 48), _hsv(hue, 0.9, 1.0), glow=_hsv(hue, 0.85, 0.55))
    if style == "noir":
        return Look(((38, 38, 38), (96, 96, 96)), (206, 206, 206), (10, 10, 10))
    look = Look(
        (_hsv(hue, 0.35, 0.96), _hsv(hue + 0.08, 0.5, 0.8)), _hsv(hue + 0.5, 0.55, 0.9), _hsv(hue + 0.5, 0.75, 0.28)
    )
    return replace(look, pixels=40) if style == "pixel" else look


def _lit(look: Look, light: str | None) -> Look:
    """Return the look under a light: a sky of its own, the figure dimmed or hazed to match."""
    if light == "night":
        return replace(look, sky=((8, 12, 40), (30, 42, 92)), body=_scale(look.body, 0.6))
    if light == "sunset":
        return replace(look, sky=((255, 146, 64), (118, 48, 120)), body=_mix(look.body, (255, 170, 90), 0.3))
    if light == "day":
        return replace(look, sky=((112, 186, 255), (226, 242, 255)))
    if light == "fog":
        haze = (196, 200, 206)
        return replace(
            look, sky=(haze, (166, 172, 180)), body=_mix(look.body, haze, 0.5), line=_mix(look.line, haze, 0.4)
        )
    return look


def look(picture: Scene, digest: bytes) -> Look:
    """Return the picture's colours, texture and placement: style and light first, then `digest` varies them.

    The hue comes from the subject (every fox of a gallery shares one), moved a little by `digest`, the hash of
    the prompt, seed and index that also moves and sizes the figure.
    """
    hue = hashlib.sha256((picture.subject or ABSTRACT).encode()).digest()[0] / 256 + (digest[0] - 128) / 2048
    result = _lit(_styled(picture.style, hue), picture.light)
    if picture.style == "noir":
        result = replace(
            result, sky=(_gray(result.sky[0]), _gray(result.sky[1])), body=_gray(result.body), line=_gray(result.line)
        )
    size = 0.58 + 0.16 * digest[1] / 255
    room = (1.0 - size) / 2 - 0.04  # the figure keeps clear of the edges
    offset = (room * (digest[2] / 127.5 - 1), room * (digest[3] / 127.5 - 1))
    return replace(result, size=size, offset=offset)
