"""Re-vendor the emulator's subject icons: rasterize a few Fluent Emoji (High Contrast) SVGs into 8-bit masks.

The emulator draws the subject a prompt names (`leapbatch.emulator.subjects`) from the small grayscale PNGs in
`leapbatch/emulator/icons/`; they are committed, so the emulator needs no SVG renderer. This script is the one-off
that made them, kept so the set can be re-made or grown. It needs what the emulator does not: CairoSVG (install it
in a throwaway venv) and the icon set as npm ships it:

    cd /tmp && npm pack @iconify-json/fluent-emoji-high-contrast@1.2.6 && tar xzf iconify-json-fluent-emoji-*.tgz
    python -m venv /tmp/vendor && /tmp/vendor/bin/pip install cairosvg pillow
    /tmp/vendor/bin/python scripts/vendor_icons.py /tmp/package/icons.json

Each mask is SIZE x SIZE, one byte per pixel, three levels: 0 outside the figure, 128 its body (the area the
outline encloses, found by flood-filling the outside), 128 + alpha / 2 its outline (so 192 and up is ink). It also
rewrites `icons/README.md`, the index of which source glyph each subject came from. The subject names must match
`SUBJECTS` in subjects.py (a test checks both ways).
"""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import cairosvg  # type: ignore[import-not-found]  # only when re-vendoring, never at runtime
from PIL import Image, ImageChops, ImageDraw

SIZE = 128
PACKAGE = "@iconify-json/fluent-emoji-high-contrast@1.2.6"
OUT = Path(__file__).parents[1] / "leapbatch" / "emulator" / "icons"

# subject name -> the Fluent Emoji glyph drawn for it
SOURCES = {
    "cat": "cat",
    "dog": "dog",
    "fox": "fox",
    "owl": "owl",
    "fish": "fish",
    "bird": "bird",
    "horse": "horse",
    "rabbit": "rabbit",
    "bear": "bear",
    "wolf": "wolf",
    "deer": "deer",
    "pig": "pig",
    "cow": "cow",
    "duck": "duck",
    "turtle": "turtle",
    "butterfly": "butterfly",
    "elephant": "elephant",
    "lion": "lion",
    "penguin": "penguin",
    "whale": "whale",
    "frog": "frog",
    "tree": "deciduous-tree",
    "flower": "tulip",
    "mushroom": "mushroom",
    "cactus": "cactus",
    "mountain": "snow-capped-mountain",
    "house": "house",
    "castle": "castle",
    "car": "automobile",
    "bicycle": "bicycle",
    "boat": "sailboat",
    "airplane": "airplane",
    "rocket": "rocket",
    "cup": "hot-beverage",
    "apple": "red-apple",
    "moon": "crescent-moon",
    "sun": "sun",
    "umbrella": "umbrella",
    "guitar": "guitar",
}


def rasterize(icon: dict[str, object], default_size: int) -> Image.Image:
    """Return the glyph's alpha channel at SIZE x SIZE."""
    width, height = icon.get("width", default_size), icon.get("height", default_size)
    svg = (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{SIZE}" height="{SIZE}"'
        f' color="#000">{icon["body"]}</svg>'
    )
    return Image.open(io.BytesIO(cairosvg.svg2png(bytestring=svg.encode()))).getchannel("A")


def mask(alpha: Image.Image) -> Image.Image:
    """Return the three-level mask of a glyph: 0 outside, 128 body, 128 + alpha / 2 outline."""
    ink = alpha.point(lambda v: 255 if v > 127 else 0)
    padded = Image.new("L", (SIZE + 2, SIZE + 2), 0)
    padded.paste(ink, (1, 1))
    ImageDraw.floodfill(padded, (0, 0), 100, thresh=0)
    region = padded.crop((1, 1, SIZE + 1, SIZE + 1))  # 100 outside, 0 body, 255 outline
    body = region.point(lambda v: 128 if v == 0 else 0)
    outline = Image.composite(alpha.point(lambda v: 128 + v // 2), Image.new("L", alpha.size, 0), ink)
    return ImageChops.lighter(body, outline)


def index(sources: dict[str, str]) -> str:
    """Return the README that lists each subject's source glyph."""
    rows = "\n".join(f"| `{name}` | `{glyph}` |" for name, glyph in sorted(sources.items()))
    return (
        "# The emulator's subject icons\n\n"
        f"Masks ({SIZE}x{SIZE} grayscale PNG: 0 outside, 128 body, 192-255 outline) rasterized by\n"
        "`scripts/vendor_icons.py` from Microsoft's Fluent Emoji, High Contrast style (MIT: see `LICENSE`), as\n"
        f"npm ships them in `{PACKAGE}` (`icons.json`). Which subject words pick each one: `SUBJECTS` in\n"
        "`leapbatch/emulator/subjects.py`; how they are drawn: docs/emulator.md.\n\n"
        "| subject | Fluent Emoji glyph |\n|---|---|\n"
        f"{rows}\n"
    )


def main() -> None:
    """Write every subject's mask and the index."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("icons_json", type=Path, help=f"icons.json of {PACKAGE}")
    parser.add_argument("--out", type=Path, default=OUT, help="where the masks go (default: %(default)s)")
    args = parser.parse_args()
    data = json.loads(args.icons_json.read_text())
    args.out.mkdir(parents=True, exist_ok=True)
    for name, glyph in SOURCES.items():
        mask(rasterize(data["icons"][glyph], data.get("width", 32))).save(args.out / f"{name}.png", optimize=True)
    (args.out / "README.md").write_text(index(SOURCES))


if __name__ == "__main__":
    main()
