"""The `kohya` export: the folder layout kohya-ss sd-scripts (and OneTrainer, SimpleTuner) train LoRAs from.

Each split is a folder holding one image folder named `<repeats>_<class>` (sd-scripts reads the repeat count and
the class token from that name), every image beside a `.txt` caption of the same stem. `dataset.toml` at the root
is an sd-scripts `--dataset_config` for the first split (the others are held out): `caption_extension = ".txt"`
(sd-scripts defaults to `.caption` without it), the subset's `image_dir` relative to the export (run the trainer
from there), its `num_repeats` and `class_tokens`, the resolution of the images, with buckets when sizes differ.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence

from leapbatch.export.formats import ExportOptions, Layout
from leapbatch.export.images import ExportImage
from leapbatch.export.staging import Staging

CONFIG_NAME = "dataset.toml"
CAPTION_EXTENSION = ".txt"


def folder_name(options: ExportOptions) -> str:
    """Return the image folder's name, `<repeats>_<class>`."""
    return f"{options.repeats}_{options.class_name or options.name}"


def _toml(text: str) -> str:
    """Return `text` as a TOML basic string (JSON's escapes are TOML's)."""
    return json.dumps(text, ensure_ascii=False)


def dataset_toml(image_dir: str, images: Sequence[ExportImage], options: ExportOptions) -> str:
    """Return the sd-scripts dataset config that trains on the images in `image_dir`."""
    sizes = Counter((image.record.width, image.record.height) for image in images)
    (width, height), _ = sizes.most_common(1)[0]
    lines = [
        "# sd-scripts --dataset_config, written by leapbatch export: run the trainer from this folder",
        "[general]",
        f"caption_extension = {_toml(CAPTION_EXTENSION)}",
        "",
        "[[datasets]]",
        f"resolution = [{width}, {height}]",
        "batch_size = 1",
        f"enable_bucket = {'true' if len(sizes) > 1 else 'false'}",
        "",
        "  [[datasets.subsets]]",
        f"  image_dir = {_toml(image_dir)}",
        f"  num_repeats = {options.repeats}",
        f"  class_tokens = {_toml(options.class_name or options.name)}",
    ]
    return "\n".join(lines) + "\n"


def write(splits: Mapping[str, Sequence[ExportImage]], staging: Staging, options: ExportOptions) -> Layout:
    """Write each split's image folder with its captions, and `dataset.toml` for the first split."""
    trained: tuple[str, Sequence[ExportImage]] | None = None
    for split, images in splits.items():
        if not images:
            continue
        image_dir = f"{split}/{folder_name(options)}"
        for image in images:
            staging.write(f"{image_dir}/{image.name}.{image.ext}", image.read())
            staging.write(f"{image_dir}/{image.name}{CAPTION_EXTENSION}", image.text.encode("utf-8"))
        trained = trained or (image_dir, images)
    if trained is not None:
        staging.write(CONFIG_NAME, dataset_toml(*trained, options).encode("utf-8"))
    return Layout()
