"""Specs of shards through the real CLI against one loopback emulator (docs/cli.md, "Shards"): `run --shard I/N` in
N processes at once, then `leapbatch merge`, gives the same dataset as one unsharded run; an edited manifest keeps
every old job in its shard; a shard's folder holds that shard only; the shards' budget adds up to the manifest's.
The emulator's image counter (`stats()["images"]["made"]`) is the judge of what was created.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import trio
from cli_support import Cli

from leapbatch.emulator import EmulatorHandle
from leapbatch.folder.ledger import read_ledger
from leapbatch.jobs import Shard

MANIFEST = """\
version: 1
name: sharded
model: 26a1a203-3a46-42cb-8cfa-f4de075907d8
prompt: "a {{colour}} {{thing}}"
params: {{width: 64, height: 64, steps: 5}}
limits: {{requests_per_second: 1000, burst: 100, max_in_flight: 16}}
matrix:
  colour: [{colours}]
  thing: {{range: [1, {things}]}}
{extra}"""
FAST = ["--quiet", "--speed", "1000"]


def manifest(tmp_path: Path, *, colours: str = "red, green, blue, grey", things: int = 6, extra: str = "") -> Path:
    """Write the sharded manifest (colours x things jobs) and return its path."""
    path = tmp_path / "sharded.yaml"
    path.write_text(MANIFEST.format(colours=colours, things=things, extra=extra))
    return path


def images_made(emulator: EmulatorHandle) -> int:
    """Return how many images the emulator made (what an account would be billed for)."""
    made: int = emulator.stats()["images"]["made"]
    return made


def digests(folder: Path) -> dict[str, str]:
    """Return the sha256 of every file in `folder/images`, by name."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted((folder / "images").iterdir())}


def metadata(folder: Path) -> list[dict[str, Any]]:
    """Return the metadata rows of a folder by file name, without `inference_id` (each server job has its own)."""
    rows = [json.loads(line) for line in (folder / "metadata.jsonl").read_text().splitlines()]
    return sorted(({k: v for k, v in row.items() if k != "inference_id"} for row in rows), key=lambda r: r["file_name"])


async def test_four_shards_at_once_then_merged_are_one_unsharded_run(
    tmp_path: Path, cli: Cli, emulator_server: EmulatorHandle
) -> None:
    """Four `run --shard I/4` processes against one emulator, merged, give the job keys, the image bytes and the
    metadata of one unsharded run; each job was created once; `verify` passes on the merged folder."""
    path, env = manifest(tmp_path), Cli.env(emulator_server)
    shards = [tmp_path / f"shard-{i}" for i in range(1, 5)]

    async with trio.open_nursery() as nursery:
        for i, out in enumerate(shards, start=1):
            nursery.start_soon(_run_ok, cli, env, path, "--shard", f"{i}/4", "--out", out)
    made_by_shards = images_made(emulator_server)
    merged = await cli("merge", *shards, "--into", tmp_path / "merged", env=env)
    whole = await cli("run", path, "--out", tmp_path / "whole", *FAST, env=env)
    verified = await cli("verify", tmp_path / "merged", env=env)

    assert 0 == merged.returncode, merged.stderr.decode()
    assert 0 == whole.returncode, whole.stderr.decode()
    assert 24 == made_by_shards
    keys = [set(read_ledger(out).jobs) for out in shards]
    assert all(keys)  # none empty
    assert 24 == sum(map(len, keys)) == len(set().union(*keys))  # disjoint
    assert set(read_ledger(tmp_path / "whole").jobs) == set(read_ledger(tmp_path / "merged").jobs)
    assert digests(tmp_path / "whole") == digests(tmp_path / "merged")
    assert metadata(tmp_path / "whole") == metadata(tmp_path / "merged")
    assert 0 == verified.returncode, verified.stdout.decode() + verified.stderr.decode()
    assert b"merged 4 folders into " in merged.stderr
    assert b": 24 jobs (24 finished), 24 images; 0 jobs in more than one folder" in merged.stderr


async def test_a_merged_folder_resumes_the_whole_manifest_without_creating_again(
    tmp_path: Path, cli: Cli, emulator_server: EmulatorHandle
) -> None:
    """`run M --out MERGED` after merging every shard creates nothing; with a shard left out, it creates that
    shard's jobs only, and merge said which shard was missing."""
    path, env = manifest(tmp_path), Cli.env(emulator_server)
    for i in (1, 2):
        await _run_ok(cli, env, path, "--shard", f"{i}/3", "--out", tmp_path / f"s{i}")
    merged = await cli("merge", tmp_path / "s1", tmp_path / "s2", "--into", tmp_path / "m", env=env)
    before = images_made(emulator_server)
    resumed = await cli("run", path, "--out", tmp_path / "m", *FAST, env=env)

    assert 0 == merged.returncode, merged.stderr.decode()
    assert b"note: no folder holds shard 3/3: their jobs are not in " in merged.stderr
    assert 0 == resumed.returncode, resumed.stderr.decode()
    third = sum(Shard(3, 3).holds(key) for key in read_ledger(tmp_path / "m").jobs)
    created = images_made(emulator_server) - before
    assert created == third > 0
    assert created == 24 - len(read_ledger(tmp_path / "s1").jobs) - len(read_ledger(tmp_path / "s2").jobs)


async def test_an_edited_manifest_keeps_every_old_job_in_its_shard(
    tmp_path: Path, cli: Cli, emulator_server: EmulatorHandle
) -> None:
    """Shard 1/2 run, the manifest edited (a colour added, things 1..9), shard 1/2 run again into the same folder:
    every old job is done (nothing created twice), only the new jobs of shard 1 are created, and `plan --shard`
    said so beforehand."""
    env = Cli.env(emulator_server)
    out = tmp_path / "s1"
    await _run_ok(cli, env, manifest(tmp_path), "--shard", "1/2", "--out", out)
    old = set(read_ledger(out).jobs)
    edited = manifest(tmp_path, colours="red, green, blue, grey, white", things=9)
    planned = await cli("plan", edited, "--shard", "1/2", "--out", out, "--json", env=env)
    before = images_made(emulator_server)
    await _run_ok(cli, env, edited, "--shard", "1/2", "--out", out)

    new = set(read_ledger(out).jobs) - old
    plan = json.loads(planned.stdout)
    assert {"index": 1, "count": 2, "manifest_jobs": 45} == plan["shard"]
    assert (len(new), len(old)) == (plan["ledger"]["new"], plan["ledger"]["done"])
    assert len(new) == images_made(emulator_server) - before > 0
    assert all(Shard(1, 2).holds(key) for key in old | new)


async def test_a_shards_folder_refuses_another_shard_and_the_whole_manifest(
    tmp_path: Path, cli: Cli, emulator_server: EmulatorHandle
) -> None:
    """A folder made by shard 1/2 refuses `--shard 2/2` and a run without --shard (exit 2, nothing created); the
    default folder of a shard is output.dir-shard-I-of-N."""
    path, env = manifest(tmp_path, extra="output: {dir: out/sharded}\n"), Cli.env(emulator_server)
    await _run_ok(cli, env, path, "--shard", "1/2", cwd=tmp_path)
    folder = tmp_path / "out" / "sharded-shard-1-of-2"
    before = images_made(emulator_server)
    other = await cli("run", path, "--shard", "2/2", "--out", folder, *FAST, env=env)
    whole = await cli("run", path, "--out", folder, *FAST, env=env)

    assert (folder / "ledger.jsonl").exists()
    assert (2, 2) == (other.returncode, whole.returncode)
    assert b"holds shard 1/2; this run is shard 2/2\nhint: pass --shard 1/2 to continue it" in other.stderr
    assert b"holds shard 1/2; this run is the whole manifest\nhint: pass --shard 1/2" in whole.stderr
    assert before == images_made(emulator_server)


async def test_the_shards_budget_adds_up_to_the_manifests(
    tmp_path: Path, cli: Cli, emulator_server: EmulatorHandle
) -> None:
    """`budget.max_images: 10` with 4 shards run at once: the shards create 10 images in all, not 40; each stops
    at its share with exit 6; `plan --shard` prices the shard's slice."""
    path = manifest(tmp_path, extra="budget: {max_images: 10}\n")
    env = Cli.env(emulator_server)
    codes: list[int] = []

    async def shard(i: int) -> None:
        done = await cli("run", path, "--shard", f"{i}/4", "--out", tmp_path / f"s{i}", *FAST, env=env)
        codes.append(done.returncode)

    planned = await cli("plan", path, "--shard", "2/4", "--out", tmp_path / "s2", "--json", env=env)
    async with trio.open_nursery() as nursery:
        for i in range(1, 5):
            nursery.start_soon(shard, i)

    plan = json.loads(planned.stdout)
    assert 10 == images_made(emulator_server)
    assert [6, 6, 6, 6] == codes
    assert [3, 3, 2, 2] == [len(read_ledger(tmp_path / f"s{i}").jobs) for i in range(1, 5)]
    assert round(plan["jobs"] * 0.01, 4) == plan["cost"]["to_spend"]
    assert {"max_usd": None, "max_images": 3, "jobs_within": 3} == plan["cost"]["budget"]


async def _run_ok(cli: Cli, env: dict[str, str], *args: str | Path, cwd: Path | None = None) -> None:
    done = await cli("run", *args, *FAST, env=env, cwd=cwd)
    assert 0 == done.returncode, done.stderr.decode()
