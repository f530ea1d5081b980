"""`leapbatch export OUT --format F [--to DEST]`: the dataset as trainers load it, written whole or not at all.

The command reads the folder (it holds the folder's lock while it reads, so it never exports a run's half-written
state), takes the dataset's jobs and captions from the manifest the last run recorded (every finished job, with
its prompt for a caption, when that manifest cannot be read back), and hands the rest to `leapbatch.export`. An
export sends nothing and spends nothing.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from leapbatch.cli._common import SubParsers, beside, count, print_json, say
from leapbatch.cli._dataset import RunManifest, last_run_manifest
from leapbatch.cli.ledger_cmds import no_run_working, output_folder
from leapbatch.cli.progress import counting
from leapbatch.errors import EXIT_OK, UsageError, plural
from leapbatch.export.build import FORMATS, export_dataset
from leapbatch.export.captions import captioner
from leapbatch.export.card import CardFacts
from leapbatch.export.formats import DEFAULT_SHARD_BYTES, ExportOptions
from leapbatch.export.images import export_images
from leapbatch.export.split import DEFAULT_SPLIT, parse_split
from leapbatch.folder.ledger import read_ledger
from leapbatch.folder.state import LedgerState, Phase
from leapbatch.folder.verify import dataset_keys

_UNITS = {"": 1, "b": 1, "k": 1 << 10, "kb": 1 << 10, "m": 1 << 20, "mb": 1 << 20, "g": 1 << 30, "gb": 1 << 30}
_CLASS = re.compile(r"[^/\\\x00-\x1f\x7f]{1,64}\Z")


def size(text: str) -> int:
    """Parse a size option (`500MB`, `2G`, `1048576`): bytes, at least 1."""
    found = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]*)\s*", text)
    if found is None or found[2].lower() not in _UNITS or float(found[1]) * _UNITS[found[2].lower()] < 1:
        raise argparse.ArgumentTypeError(f"expected a size such as 500MB or 2GB, got {text!r}")
    return int(float(found[1]) * _UNITS[found[2].lower()])


def split_spec(text: str) -> str:
    """Check a --split option (argparse type); return it as given."""
    try:
        parse_split(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def class_token(text: str) -> str:
    """Check a --class option: up to 64 characters, no slash or control character (it names a folder)."""
    if not _CLASS.match(text) or text.strip() != text or text in (".", ".."):
        raise argparse.ArgumentTypeError(f"expected a short token without slashes, got {text!r}")
    return text


def register(sub: SubParsers) -> None:
    """Add `export`."""
    export = sub.add_parser(
        "export",
        help="write the dataset for trainers: imagefolder, kohya, webdataset or parquet (sends nothing)",
        description="Export an output folder's finished images for training, with their captions and metadata: "
        "`imagefolder` (Hugging Face datasets, a folder per split with metadata.jsonl), `kohya` (sd-scripts "
        "<repeats>_<class> folders with .txt captions and dataset.toml), `webdataset` (tar shards of key.png, "
        "key.txt, key.json), `parquet` (shards with an image column datasets reads as Image). Every export has a "
        "dataset card (README.md) and SHA256SUMS, which `leapbatch verify DEST` checks. Exported PNGs carry "
        "their generation parameters in a `parameters` text chunk; the folder's originals are only read. The same "
        "folder always exports the same bytes; an earlier export at DEST is replaced whole, anything else there "
        "is refused.",
        epilog="exit codes: 0 exported, 1 an image is missing or differs from the ledger (repair with "
        "`leapbatch verify OUT --repair`), 2 usage, 3 a run is working on the folder, 130 interrupted "
        "(nothing is left at DEST)",
    )
    export.add_argument("out", metavar="OUT", help="the output folder of a run")
    export.add_argument("--format", choices=sorted(FORMATS), default="imagefolder", help="default: imagefolder")
    export.add_argument("--to", metavar="DEST", help="the export's folder (default: OUT-<format> beside OUT)")
    export.add_argument(
        "--caption",
        metavar="TEMPLATE",
        help="caption template instead of the manifest's: {name} of any variable, {caption}, {prompt}, {seed}, ...",
    )
    export.add_argument(
        "--split",
        metavar="SPEC",
        type=split_spec,
        default="train=1",
        help="splits by job, seeded, e.g. train=0.9,test=0.1 (default: train=1)",
    )
    export.add_argument("--stratify", metavar="NAME", help="split each value of this variable in the same shares")
    export.add_argument("--seed", type=count, default=0, help="the split's seed (default 0)")
    export.add_argument("--license", default="other", help="the card's license id, e.g. cc-by-4.0 (default: other)")
    export.add_argument("--repeats", type=count, default=1, help="kohya: the folder's repeat count (default 1)")
    export.add_argument(
        "--class", dest="class_name", type=class_token, help="kohya: the class token (default: the dataset name)"
    )
    export.add_argument(
        "--shard-size",
        type=size,
        default=DEFAULT_SHARD_BYTES,
        help="webdataset, parquet: image bytes per shard, at most (default 500MB)",
    )
    export.add_argument("--json", action="store_true", help="print one JSON object (shape: docs/cli.md)")
    export.set_defaults(handler=handle_export)


def _dataset(out: Path, state: LedgerState, found: RunManifest) -> dict[str, str | None]:
    """Return the dataset's keys with their captions: the manifest's, else every job `results.json` lists."""
    if found.captions is not None:
        return found.captions
    say(f"note: {found.dataset.why}: exporting the folder's finished jobs, each captioned with its prompt")
    return dict.fromkeys(dataset_keys(out, state, None))


def _facts(args: argparse.Namespace, name: str, state: LedgerState, found: RunManifest) -> CardFacts:
    manifest = found.manifest
    text = None
    if manifest is not None and manifest.source_path is not None:
        try:
            text = manifest.source_path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            text = None
    command = f"leapbatch export OUT --format {args.format} --split {args.split}"  # the same bytes from any path
    command += f" --seed {args.seed}" if args.seed else ""
    command += f" --stratify {args.stratify}" if args.stratify else ""
    return CardFacts(
        name=name,
        format=args.format,
        license=args.license,
        command=command,
        manifest_path=None if manifest is None else found.dataset.path,
        manifest_sha256=None if manifest is None else manifest.source_sha256,
        manifest_text=text,
        spend=state.spend.to_json(),
        currency="USD" if manifest is None else manifest.price.currency,
        split_text=args.split,
        seed=args.seed,
        caption=args.caption,
    )


def handle_export(args: argparse.Namespace) -> int:
    """Export a folder."""
    out = output_folder(args.out)
    dest = Path(args.to) if args.to else beside(out, f"-{args.format}", what="export")
    if dest.resolve() == out.resolve() or out.resolve() in dest.resolve().parents:
        raise UsageError(f"--to {dest} is inside the output folder {out}", hint="export beside it, not into it")
    with no_run_working(out, doing="export"):
        state = read_ledger(out)
        found = last_run_manifest(state)
        captions = _dataset(out, state, found)
        images = export_images(out, state, captions, captioner(args.caption) if args.caption else None)
    if not images:
        finished = sum(1 for js in state.jobs.values() if js.phase is Phase.FINISHED)
        raise UsageError(
            f"{out} has no finished images of its dataset to export ({plural(finished, 'finished job')} in all)",
            hint=f"run its manifest first; `leapbatch status {out}` shows where it stands",
        )
    name = found.manifest.name if found.manifest is not None else out.name
    options = ExportOptions(name, args.shard_size, max(1, args.repeats), args.class_name)
    parts = parse_split(args.split) if args.split != "train=1" else DEFAULT_SPLIT
    with counting("exporting", len(images), quiet=args.json) as tick:
        summary = export_dataset(
            images if tick is None else [image.ticking(tick) for image in images],
            dest,
            args.format,
            options,
            _facts(args, name, state, found),
            parts=parts,
            seed=args.seed,
            stratify=args.stratify,
        )
    if args.json:
        splits = {split: {"jobs": jobs, "images": n} for split, (jobs, n) in summary.splits.items()}
        print_json({"version": 1, "format": args.format, "to": str(dest), "splits": splits, "files": summary.files})
        return EXIT_OK
    shown = ", ".join(f"{split} {plural(n, 'image')}" for split, (_, n) in summary.splits.items())
    say(f"exported {plural(len(images), 'image')} as {args.format} to {dest} ({shown}; {summary.files:,} files)")
    say(f"next: leapbatch verify {dest}")
    return EXIT_OK
