"""`leapbatch validate`, `plan` and `schema`: manifests without the network."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import cast

from leapbatch.cli._common import SubParsers, count, print_json, show
from leapbatch.cli.costs import add_money_options, caps_of, estimate, price_of
from leapbatch.cli.shards import add_shard_option, count_share, rate_share, shard_out
from leapbatch.errors import ManifestError, Problem, UsageError, plural
from leapbatch.folder.ledger import LEDGER_NAME, read_ledger
from leapbatch.manifest import Manifest, json_schema, load_manifest
from leapbatch.manifest import plan as plans
from leapbatch.manifest.expand import Expansion, expand, in_shard
from leapbatch.run.resume import classify, ledger_diff

VALIDATE_HELP = """\
Check manifests without running them: the YAML, every key and value, the templates, the matrix and the caps.
Prints `FILE: ok (N jobs, M images)` for each valid file on stdout and every problem of every invalid file
on stderr as `FILE:LINE:COL: field: message (hint: ...)`.

exit codes: 0 all valid, 2 any invalid"""

PLAN_HELP = """\
Show what a manifest will do, without running it: jobs and images in total and per model, how many of each
axis value, combinations excluded, duplicates collapsed and jobs sampled out, an estimate of generation time,
an estimate of the cost (total, per model and per axis value, at the manifest's `pricing:` or --price, and
whether the budget admits it), and the first few prompts. With an output folder, only what a run would create
costs: finished jobs cost nothing, and jobs in flight or with an unknown create are counted as already spent.
`--json` prints one JSON object instead (its shape is in docs/manifest.md)."""

SCHEMA_HELP = """\
Print the JSON Schema of the manifest format, for editors that complete and check YAML:

  leapbatch schema > leapbatch.schema.json

then put this line at the top of a manifest:

  # yaml-language-server: $schema=./leapbatch.schema.json"""


def register(sub: SubParsers) -> None:
    """Add `validate`, `plan` and `schema`."""
    raw = argparse.RawDescriptionHelpFormatter
    validate = sub.add_parser("validate", help="check manifests", description=VALIDATE_HELP, formatter_class=raw)
    validate.add_argument("files", nargs="+", type=Path, metavar="FILE", help="manifest files (YAML)")
    validate.set_defaults(handler=run_validate)

    plan = sub.add_parser("plan", help="show the jobs a manifest makes", description=PLAN_HELP, formatter_class=raw)
    plan.add_argument("file", type=Path, metavar="FILE", help="a manifest file (YAML)")
    plan.add_argument("--json", action="store_true", help="print one JSON object on stdout instead of text")
    plan.add_argument("--examples", type=count, default=3, metavar="N", help="how many example jobs to show (3)")
    plan.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="compare with the ledger of this output folder (default: the manifest's output.dir, if it has one)",
    )
    plan.add_argument(
        "--retry-failed", action="store_true", help="price failed jobs too, as `run --retry-failed` creates them again"
    )
    add_money_options(plan)
    add_shard_option(plan, doing="plan")
    plan.set_defaults(handler=run_plan)

    schema = sub.add_parser(
        "schema", help="print the manifest JSON Schema", description=SCHEMA_HELP, formatter_class=raw
    )
    schema.set_defaults(handler=run_schema)


def _load(path: Path) -> tuple[Manifest, Expansion]:
    manifest = load_manifest(path)
    return manifest, expand(manifest)


def run_validate(args: argparse.Namespace) -> int:
    """Validate every file; report every problem of every file at once."""
    problems: list[Problem] = []
    for path in args.files:
        try:
            _, expansion = _load(path)
        except ManifestError as exc:
            problems.extend(exc.problems)
            continue
        except UsageError as exc:  # one unreadable file does not hide the problems of the others
            problems.append(Problem(str(path), 0, 0, "", exc.message.removeprefix(f"{path}: "), exc.hint))
            continue
        jobs, images = plural(len(expansion.jobs), "job", grouped=True), plural(expansion.images, "image", grouped=True)
        show(f"{path}: ok ({jobs}, {images})")
    if problems:
        raise ManifestError(problems)
    return 0


def run_plan(args: argparse.Namespace) -> int:
    """Print the plan of one manifest, as text or JSON."""
    if args.examples < 0:
        raise UsageError("--examples must be 0 or more")
    manifest, expansion = _load(args.file)
    shard = args.shard
    expansion = in_shard(expansion, shard)
    limits = manifest.limits
    out = args.out or shard_out(manifest.output_dir, shard)
    diff = None
    state = read_ledger(out) if os.path.lexists(out / LEDGER_NAME) else None
    if state is not None:
        diff = {"folder": str(out), **ledger_diff(classify(expansion.jobs, state, retry_failed=args.retry_failed))}
    caps = caps_of(manifest, args).share(shard)
    cost = estimate(expansion, state, price_of(manifest, args), caps, retry_failed=args.retry_failed)
    summary = plans.summarize(
        expansion,
        max_in_flight=count_share(limits.max_in_flight, shard),
        requests_per_second=rate_share(limits.requests_per_second, shard),
        cost=cost,
        examples=args.examples,
    )
    if args.json:
        print_json(
            {
                "manifest": str(args.file),
                "name": manifest.name,
                "output_dir": str(out),
                **summary,
                "ledger": diff,
            }
        )
        return 0
    show(f"{args.file} ({manifest.name} -> {out}/)")
    for line in plans.render(summary, folder=None if state is None else str(out)):
        show(line)
    if diff is not None:
        show(
            f"  against {out / LEDGER_NAME}: {diff['new']:,} new, {diff['done']:,} done, "
            f"{diff['in_flight']:,} in flight, {diff['failed']:,} failed (kept unless --retry-failed), "
            f"{diff['not_in_manifest']:,} in the ledger but no longer in the manifest"
        )
        if diff["not_in_manifest"]:
            dropped = plural(cast(int, diff["not_in_manifest"]), "job", grouped=True)
            show(
                f"  {dropped} no longer in the manifest: files kept in "
                f"{out}/ until `leapbatch prune {out} --manifest {args.file}` removes them (results.json and "
                "metadata.jsonl already leave them out)"
            )
    return 0


def run_schema(args: argparse.Namespace) -> int:
    """Print the JSON Schema of the manifest format."""
    print_json(json_schema())
    return 0
