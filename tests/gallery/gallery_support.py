"""What the gallery's browser tests share: Chromium as Debian ships it, folders made by the real CLI, and helpers.

Imported by name (`from gallery_support import ...`), as `tests/export/export_support.py` is. The browser is
Debian's Chromium driven by Playwright (never a browser Playwright downloads); when either is missing the tests
skip, unless the environment sets `CI`, where they fail, so CI cannot pass by skipping them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1400, "height": 900}
PREFIX = "window.LEAPBATCH_GALLERY = "

# Markup in the values a prompt shows (a name cannot hold any): each must be shown as text, and none may run.
HOSTILE = """\
version: 1
name: hostile
model: m1
prompt: "{thing} & more"
params: {width: 64, height: 64}
matrix:
  thing:
    - '<img src=x onerror="window.__pwned=1">'
    - '</script><script>window.__pwned=1</script>'
    - 'plain'
"""


def leapbatch(*args: str | os.PathLike[str]) -> None:
    """Run `python -m leapbatch ARGS` as a user does; fail with its output if it fails."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LEAP_", "LEAPBATCH_"))}
    done = subprocess.run(
        [sys.executable, "-m", "leapbatch", *map(str, args)],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
    )
    assert 0 == done.returncode, done.stdout + done.stderr


def make_folder(out: Path, manifest: Path) -> Path:
    """Run `manifest` on the local emulator into `out`, write its gallery, and return the page's path."""
    leapbatch("run", "--local", "--quiet", "--speed", "1000", "--out", out, manifest)
    leapbatch("gallery", out)
    return out / "gallery" / "index.html"


def read_data(gallery: Path) -> dict[str, Any]:
    """Return the document the gallery's data.js assigns."""
    text = (gallery / "data.js").read_text(encoding="utf-8")
    assert text.startswith(PREFIX)
    document: dict[str, Any] = json.loads(text[len(PREFIX) :].rstrip().rstrip(";"))
    return document


def write_data(gallery: Path, document: dict[str, Any]) -> None:
    """Write `document` as the gallery's data.js, atomically (as `leapbatch gallery` does)."""
    text = PREFIX + json.dumps(document, ensure_ascii=False, separators=(",", ":")).replace("<", "\\u003c") + ";\n"
    tmp = gallery / ".data.js.tmp"
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, gallery / "data.js")


def copy_gallery(source: Path, dest: Path) -> Path:
    """Copy the gallery folder `source` (page, thumbnails, data) to `dest`, its data pointing at the same images."""
    shutil.copytree(source, dest)
    document = read_data(dest)
    document["folder"] = os.path.relpath((source / document["folder"]).resolve(), dest).replace(os.sep, "/") + "/"
    write_data(dest, document)
    return dest


def synthetic(example: Path, dest: Path, jobs: int) -> Path:
    """Write a gallery of `jobs` fake jobs (three variables: 10 x 10 x jobs/100) beside the example folder, whose
    images and thumbnails they reuse, and return its page's path."""
    source = example / "gallery"
    dest.mkdir(parents=True)
    for name in ("index.html", "gallery.js", "gallery.css"):
        shutil.copy(source / name, dest / name)
    shutil.copytree(source / "thumbs", dest / "thumbs")
    real = read_data(source)
    pictures = [images[0] for images in real["jobs"]["images"] if images]
    depth = max(1, jobs // 100)
    variables: list[dict[str, Any]] = [
        {"name": "subject", "values": [f"subject {i}" for i in range(10)], "axis": 0},
        {"name": "style", "values": [f"style {i}" for i in range(10)], "axis": 1},
        {"name": "seed", "values": [str(i) for i in range(depth)], "axis": 2},
    ]
    columns: dict[str, list[Any]] = {
        "key": [f"{n:064x}" for n in range(jobs)],
        "vars": [[n % 10, (n // 10) % 10, n // 100 % depth] for n in range(jobs)],
        "prompt": [f"a {n // 10 % 10} style picture of subject {n % 10}, take {n}" for n in range(jobs)],
        "text": [None] * jobs,
        "seed": [n // 100 % depth for n in range(jobs)],
        "model": [0] * jobs,
        "body": [0] * jobs,
        "negative": [-1] * jobs,
        "status": [0] * jobs,
        "reason": [""] * jobs,
        "inference": [None] * jobs,
        "images": [[pictures[n % len(pictures)]] for n in range(jobs)],
    }
    document = {
        **{k: v for k, v in real.items() if k not in ("jobs", "variables", "rules")},
        "revision": f"synthetic{jobs}",
        "name": f"synthetic {jobs}",
        "folder": os.path.relpath(example, dest).replace(os.sep, "/") + "/",
        "variables": variables,
        "rules": {
            "axes": [
                {"names": [v["name"]], "values": [[x] for x in v["values"]], "size": len(v["values"])}
                for v in variables
            ],
            "excludes": [],
            "constants": {},
            "sample": None,
            "matrix_jobs": 100 * depth,
        },
        "jobs": columns,
    }
    write_data(dest, document)
    return dest / "index.html"


def shots_to(name: str, png: bytes, folder: Path) -> None:
    """Write a screenshot to `folder` and, when LEAPBATCH_SCREENSHOTS names a folder, there too."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.png").write_bytes(png)
    extra = os.environ.get("LEAPBATCH_SCREENSHOTS")
    if extra:
        Path(extra).mkdir(parents=True, exist_ok=True)
        (Path(extra) / f"{name}.png").write_bytes(png)
