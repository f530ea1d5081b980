"""Subject images: the emulator draws what the prompt names, styled by its words, and its stats say what it drew.

Pictures are checked by decoding the PNG with Pillow: the figure is every pixel that is not the sky (the sky is a
top-to-bottom gradient, so a row's sky colour is its first pixel's), and a figure "is" the icon whose mask it
overlaps best once both are cropped to their bounding boxes.
"""

from __future__ import annotations

import hashlib
import io
from importlib import resources

import pytest
from emulator_support import MakeTarget
from PIL import Image, ImageChops

from leapbatch.cli import build_parser
from leapbatch.cli.emulator_cmd import config_from, emulated
from leapbatch.emulator import EmulatorConfig, ImageCache, render_png
from leapbatch.emulator.images import render_subject_png
from leapbatch.emulator.subjects import SUBJECTS, look, scene, subject_name

INSTANT = float("inf")
# render_png("a red fox in the snow", 7, 64, 48, 0) before subject images existed: abstract bytes never change
ABSTRACT_SHA256 = "391b3d0d1f58e0eb97763cf02d89a757016ed0a15efa215608fd139705058f85"
SIDE = 64  # figures and masks are compared at this size


def decode(png: bytes) -> Image.Image:
    """Return the PNG as an RGB image (checking it is a real PNG)."""
    with Image.open(io.BytesIO(png)) as image:
        assert "PNG" == image.format
        return image.convert("RGB")


def figure(picture: Image.Image) -> Image.Image:
    """Return the figure of a plain-style picture: 255 where a pixel differs from its row's sky, else 0."""
    width, height = picture.size
    sky = picture.crop((0, 0, 1, height)).resize((width, height), Image.Resampling.NEAREST)
    return ImageChops.difference(picture, sky).convert("L").point(lambda v: 255 * (v > 0))


def icon(name: str) -> Image.Image:
    """Return the vendored mask of `name` as 255 inside the figure, else 0."""
    data = resources.files("leapbatch.emulator").joinpath("icons", f"{name}.png").read_bytes()
    with Image.open(io.BytesIO(data)) as mask:
        return mask.convert("L").point(lambda v: 255 * (v >= 64))


def overlap(one: Image.Image, other: Image.Image) -> float:
    """Return the intersection over union of two masks, each cropped to its bounding box and scaled to SIDE."""
    a, b = (mask.crop(mask.getbbox()).resize((SIDE, SIDE)).point(lambda v: 255 * (v >= 128)) for mask in (one, other))
    union = ImageChops.lighter(a, b).histogram()[255]
    return ImageChops.darker(a, b).histogram()[255] / union


def colours(png: bytes) -> frozenset[object]:
    """Return the set of colours the picture uses."""
    return frozenset(colour for _, colour in decode(png).getcolors(maxcolors=1 << 20) or [])


# --- reading the prompt ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("a red fox in the snow", "fox"),
        ("A RED FOX", "fox"),
        ("three foxes", "fox"),
        ("a sleepy kitten", "cat"),
        ("a dog chasing a cat", "dog"),
        ("the fox-hunt", "fox"),
        ("a catalog of prices", "abstract"),
        ("scattered dogma", "abstract"),
        ("a sunset over the sea", "abstract"),
        ("", "abstract"),
    ],
)
def test_the_subject_is_the_first_whole_word_naming_one(prompt: str, expected: str) -> None:
    """Words match whole and case-folded (plurals too); the first one naming a subject wins; none: abstract."""
    assert expected == subject_name(prompt)


def test_style_and_light_words_are_read_apart_from_the_subject() -> None:
    """The first style word and the first light word are the picture's style and light."""
    picture = scene("a watercolor owl at night, neon")

    assert ("owl", "watercolor", "night") == (picture.subject, picture.style, picture.light)


def test_every_subject_has_a_vendored_icon_and_every_icon_a_subject() -> None:
    """SUBJECTS and the masks in icons/ name the same set."""
    folder = resources.files("leapbatch.emulator").joinpath("icons")
    masks = {entry.name.removesuffix(".png") for entry in folder.iterdir() if entry.name.endswith(".png")}

    assert set(SUBJECTS) == masks
    assert {"LICENSE", "README.md"} <= {entry.name for entry in folder.iterdir()}


# --- drawing --------------------------------------------------------------------------------------------------------


def test_a_fox_prompt_shows_a_fox() -> None:
    """The figure drawn for a fox prompt overlaps the fox icon, and far better than any other icon."""
    drawn = figure(decode(render_subject_png("a red fox in the snow", 3, 256, 256, 0)))
    scores = {name: overlap(drawn, icon(name)) for name in SUBJECTS}
    best_other = max(score for name, score in scores.items() if name != "fox")

    assert scores["fox"] > 0.9
    assert scores["fox"] - best_other > 0.1, sorted(scores.items(), key=lambda item: -item[1])[:3]


@pytest.mark.parametrize("prompt", ["a cat", "a horse", "a house", "a boat"])
def test_each_prompt_shows_its_own_subject(prompt: str) -> None:
    """Of all icons, the figure overlaps best the one the prompt names."""
    drawn = figure(decode(render_subject_png(prompt, 11, 200, 160, 2)))
    scores = {name: overlap(drawn, icon(name)) for name in SUBJECTS}

    assert subject_name(prompt) == max(scores, key=scores.__getitem__)


@pytest.mark.parametrize(("width", "height"), [(64, 64), (512, 320), (8, 8)])
def test_subject_images_are_real_pngs_of_the_size_asked(width: int, height: int) -> None:
    """The bytes decode as a PNG of exactly the requested size."""
    assert (width, height) == decode(render_subject_png("an owl", 1, width, height, 0)).size


def test_same_inputs_give_the_same_bytes() -> None:
    """Prompt, seed, index and size fix the bytes; another seed or index moves or recolours the figure."""
    first = render_subject_png("a watercolor fox at sunset", 5, 128, 96, 1)

    assert first == render_subject_png("a watercolor fox at sunset", 5, 128, 96, 1)
    assert first != render_subject_png("a watercolor fox at sunset", 6, 128, 96, 1)
    assert first != render_subject_png("a watercolor fox at sunset", 5, 128, 96, 2)


STYLED = ["", "watercolor", "ink", "oil", "neon", "noir", "at night", "at sunset", "on a sunny day", "in the fog"]


def test_style_and_light_words_choose_the_colours() -> None:
    """Under the same digest (seed and index), each style and each light gives its own sky, body and outline."""
    looks = {
        (found.sky, found.body, found.line) for found in (look(scene(f"a fox {words}"), bytes(32)) for words in STYLED)
    }

    assert len(STYLED) == len(looks)


def test_style_and_light_words_change_the_pictures_colours() -> None:
    """The same fox (seed, index) drawn in each style and light uses its own colours."""
    palettes = {colours(render_subject_png(f"a fox {words}", 4, 96, 96, 0)) for words in STYLED}

    assert len(STYLED) == len(palettes)


def test_styles_have_their_own_textures() -> None:
    """Noir is gray, neon and night are dark skies, watercolor has paper grain, pixel art is blocky."""
    noir = decode(render_subject_png("a noir fox", 1, 64, 64, 0))
    skies = {
        words: decode(render_subject_png(f"a fox {words}", 1, 64, 64, 0)).getpixel((0, 0))
        for words in ("neon", "at night", "")
    }
    plain, grainy = (len(colours(render_subject_png(f"a {words} fox", 1, 128, 128, 0))) for words in ("", "watercolor"))
    pixel = decode(render_subject_png("a pixel fox", 1, 400, 400, 0))  # 40 cells of 10x10 pixels

    assert all(len(set(noir.getpixel((x, y)))) == 1 for x in range(64) for y in range(64))  # type: ignore[arg-type]
    assert max(sum(skies["neon"]), sum(skies["at night"])) < 150 < sum(skies[""])  # type: ignore[arg-type]
    assert grainy > 3 * plain
    assert pixel.resize((40, 40), Image.Resampling.NEAREST).resize((400, 400), Image.Resampling.NEAREST) == pixel


def test_a_prompt_naming_no_subject_gets_the_abstract_picture() -> None:
    """With no subject named, subject mode draws exactly the abstract picture."""
    assert render_png("a catalog of prices", 2, 96, 64, 0) == render_subject_png("a catalog of prices", 2, 96, 64, 0)


def test_abstract_bytes_are_unchanged() -> None:
    """The abstract renderer draws what it drew before subject images existed."""
    assert ABSTRACT_SHA256 == hashlib.sha256(render_png("a red fox in the snow", 7, 64, 48, 0)).hexdigest()


# --- the mode switch ------------------------------------------------------------------------------------------------


async def test_the_cache_renders_and_keys_by_mode() -> None:
    """`ImageCache.png` draws in the mode asked (abstract by default) and keeps each mode's bytes apart."""
    cache = ImageCache(capacity=8)

    abstract = await cache.png("a red fox", 1, 64, 64, 0)
    subject = await cache.png("a red fox", 1, 64, 64, 0, mode="subject")
    big = await cache.png("a red fox", 1, 600, 600, 0, mode="subject")

    assert (render_png("a red fox", 1, 64, 64, 0), render_subject_png("a red fox", 1, 64, 64, 0)) == (abstract, subject)
    assert render_subject_png("a red fox", 1, 600, 600, 0) == big
    assert (abstract, 3) == (await cache.png("a red fox", 1, 64, 64, 0, mode="abstract"), len(cache))


def test_the_config_refuses_an_unknown_mode() -> None:
    """`images` must be subject or abstract."""
    with pytest.raises(ValueError, match="images must be one of subject, abstract"):
        EmulatorConfig(images="photo")  # type: ignore[arg-type]


def test_the_cli_shows_subjects_unless_told_otherwise() -> None:
    """`leapbatch emulator` and `run --local` default to subject images; `--images abstract` switches back."""
    parse = build_parser().parse_args
    local = emulated(token=None, speed=1.0, fail_rate=0.0, seed=0, faults="none", fault=[], fault_delay=2.0)

    assert ("abstract", "subject", "subject") == (
        EmulatorConfig().images,
        config_from(parse(["emulator"])).images,
        local.images,
    )
    assert "abstract" == config_from(parse(["emulator", "--images", "abstract"])).images


# --- the stats ------------------------------------------------------------------------------------------------------


async def test_the_stats_say_which_subject_each_job_showed(make_target: MakeTarget) -> None:
    """In subject mode the stats count images per subject and name each job's subject by inference id."""
    target = await make_target(EmulatorConfig(speed=INSTANT, images="subject"))
    fox = await target.create(prompt="a red fox in the snow", width=64, height=64, numberOfImages=2)
    plain = await target.create(prompt="a catalog of prices", width=64, height=64)
    served = []
    for job in (fox, plain):
        for image in (await target.get(job["id"])).json()["images"]:
            served.append(decode((await target.images.get(image["uri"])).content))

    assert 3 == len(served)
    assert {
        "images": {"abstract": 1, "fox": 2},
        "jobs": {fox["id"]: "fox", plain["id"]: "abstract"},
    } == (await target.stats())["subjects"]


async def test_abstract_mode_keeps_the_stats_shape(make_target: MakeTarget) -> None:
    """The abstract emulator's stats have no subjects group, even after serving images."""
    target = await make_target(EmulatorConfig(speed=INSTANT))
    job = await target.create(width=64, height=64)
    uri = (await target.get(job["id"])).json()["images"][0]["uri"]
    png = (await target.images.get(uri)).content

    assert (render_png("a red fox", job["seed"], 64, 64, 0), False) == (png, "subjects" in await target.stats())
