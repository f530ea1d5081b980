"""Measure how long the emulator takes to render one image, per mode and size, side by side in one run.

For each size (64x64, 512x512, 1024x1024) and each image mode (`abstract`, `subject`), renders ROUNDS images with
different seeds (so no cache helps: `render_png` and `render_subject_png` are called directly) and prints the min,
median and max milliseconds per image, then the ratio of the medians. The subject prompts cycle through the style
and light words (plain, watercolor, ink, oil, pixel, neon, noir, night), since texture is the costly part.

    python benchmarks/emulator_images.py [--rounds 40]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from leapbatch.emulator.images import render_png, render_subject_png

SIZES = ((64, 64), (512, 512), (1024, 1024))
PROMPTS = (
    "a red fox in the snow",
    "a watercolor owl",
    "an ink sketch of a cat",
    "an oil painting of a horse",
    "a pixel art rocket",
    "a neon wolf",
    "a noir dog",
    "a house at night",
)
Renderer = Callable[[str, int, int, int, int], bytes]


def timings(render: Renderer, width: int, height: int, rounds: int) -> list[float]:
    """Return the milliseconds each of `rounds` renders took."""
    spent = []
    for seed in range(rounds):
        started = time.perf_counter()
        render(PROMPTS[seed % len(PROMPTS)], seed, width, height, 0)
        spent.append((time.perf_counter() - started) * 1000)
    return spent


def main() -> None:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=40, help="images per mode and size (default: %(default)s)")
    rounds = parser.parse_args().rounds
    render_subject_png(PROMPTS[0], 0, 64, 64, 0)  # load the masks and caches once, outside the timings
    print(f"{'size':>10}  {'mode':>8}  {'min ms':>7}  {'median':>7}  {'max ms':>7}")
    for width, height in SIZES:
        medians = {}
        for mode, render in (("abstract", render_png), ("subject", render_subject_png)):
            spent = timings(render, width, height, rounds)
            medians[mode] = statistics.median(spent)
            print(f"{width}x{height:<5}  {mode:>8}  {min(spent):7.2f}  {medians[mode]:7.2f}  {max(spent):7.2f}")
        print(f"{'':>10}  subject / abstract (medians): {medians['subject'] / medians['abstract']:.2f}x")


if __name__ == "__main__":
    main()
