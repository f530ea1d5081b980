"""`export --format kohya`: the layout sd-scripts reads, checked against its documented rules.

sd-scripts (kohya-ss, `library/train_util.py` and `docs/config_README-en.md`): a DreamBooth-style image folder is
named `<repeats>_<class tokens>` (`int(name.split("_")[0])` repeats, the rest joined by `_` the class); a caption
is the file with the image's stem and the caption extension, which defaults to `.caption` unless the config sets
`caption_extension`; images end in .png, .jpg, .jpeg, .webp or .bmp; `--dataset_config` TOML has `[general]`,
`[[datasets]]` with `resolution`, and `[[datasets.subsets]]` with `image_dir`, `num_repeats`, `class_tokens`.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

from export_support import IMAGES

from leapbatch.cli import main

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".webp", ".bmp"}


def export(finished: Path, dest: Path, *args: str) -> int:
    """Export `finished` to `dest` as kohya with `args`; return the exit code."""
    return main(["export", str(finished), "--format", "kohya", "--to", str(dest), *args])


def captions(finished: Path) -> dict[str, str]:
    """Return the folder's captions by image stem (`<key>_<index>`)."""
    rows = [json.loads(line) for line in (finished / "metadata.jsonl").read_text().splitlines()]
    return {f"{row['key']}_{row['index']}": row["text"] for row in rows}


def test_the_image_folder_is_named_repeats_and_class(finished: Path, tmp_path: Path) -> None:
    """One folder `10_ohwx` under train/: sd-scripts reads 10 repeats and the class `ohwx` from it."""
    assert 0 == export(finished, tmp_path / "out", "--repeats", "10", "--class", "ohwx")
    (folder,) = (tmp_path / "out" / "train").iterdir()
    tokens = folder.name.split("_")
    assert (10, "ohwx") == (int(tokens[0]), "_".join(tokens[1:]))


def test_every_image_has_a_txt_caption_of_the_same_stem(finished: Path, tmp_path: Path) -> None:
    """Each image (of an extension sd-scripts reads) has `<stem>.txt` holding its caption, and nothing else is there."""
    assert 0 == export(finished, tmp_path / "out")
    (folder,) = (tmp_path / "out" / "train").iterdir()
    images = [p for p in folder.iterdir() if p.suffix in IMAGE_EXTENSIONS]
    texts = {p.stem: p.read_text(encoding="utf-8") for p in folder.glob("*.txt")}
    assert IMAGES == len(images) == len(texts)
    assert captions(finished) == texts
    assert {".png", ".txt"} == {p.suffix for p in folder.iterdir()}


def test_dataset_toml_is_a_config_sd_scripts_reads(finished: Path, tmp_path: Path) -> None:
    """dataset.toml sets caption_extension .txt, the resolution, and one subset at the train folder."""
    assert 0 == export(finished, tmp_path / "out", "--repeats", "4", "--split", "train=0.8,test=0.2")
    config = tomllib.loads((tmp_path / "out" / "dataset.toml").read_text(encoding="utf-8"))
    (dataset,) = config["datasets"]
    (subset,) = dataset["subsets"]

    assert ".txt" == config["general"]["caption_extension"]
    assert [64, 64] == dataset["resolution"]
    assert {"image_dir": "train/4_critters", "num_repeats": 4, "class_tokens": "critters"} == subset
    assert (tmp_path / "out" / subset["image_dir"]).is_dir()


def test_a_class_token_that_would_leave_the_folder_is_refused(finished: Path, tmp_path: Path) -> None:
    """`--class ../x` is a usage error (exit 2): it names a folder."""
    assert 2 == export(finished, tmp_path / "out", "--class", "../x")
    assert not (tmp_path / "out").exists()
