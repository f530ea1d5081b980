"""Nothing is opened, written or deleted through a link planted in an output folder (docs/reliability.md).

Every test plants a symbolic link (dangling or not, to a file or a folder) at a name leapbatch uses inside `OUT`,
next to a folder `outside` that stands for everything else on the disk, then runs the real CLI. Each asserts the
promise itself: exit 2, the one error line naming the link, no traceback, and `outside` byte for byte as it was
(nothing created, changed or deleted there). The output folder's own path may be a link: that is the user's choice.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import trio
from PIL import Image

from leapbatch.errors import DownloadError, DownloadFailure, UsageError
from leapbatch.folder.atomic import LINK_HINT, write_atomic
from leapbatch.folder.images import ImageStore, PartFile, sweep_parts
from leapbatch.folder.ledger import read_ledger
from leapbatch.folder.results import STAMP_NAME
from leapbatch.folder.state import Phase

if TYPE_CHECKING:
    from cli_support import Cli

ONE_JOB = """\
version: 1
name: one
model: 26a1a203-3a46-42cb-8cfa-f4de075907d8
prompt: "a fox"
params: {steps: 20, width: 64, height: 64, seed: 7}
"""
FAST = ("--speed", "1000", "--quiet")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"  # the first 16 bytes of a PNG: enough to pass the magic check
Plant = Callable[[Path, Path], Path]  # (OUT, outside) -> the link planted


def manifest(tmp_path: Path) -> Path:
    """Write a manifest of a single job and return its path."""
    path = tmp_path / "one.yaml"
    path.write_text(ONE_JOB)
    return path


def make_outside(tmp_path: Path) -> Path:
    """Return a folder outside OUT holding a file, a `.part` file and an image, as a victim would."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim.txt").write_bytes(b"precious\n")
    (outside / "half.part").write_bytes(b"someone else's download")
    (outside / "photo.png").write_bytes(b"someone else's photo")
    return outside


def snapshot(root: Path) -> dict[str, bytes | None]:
    """Return every entry under `root` (links not followed): a file's bytes, None for a folder, the target of a link."""
    found: dict[str, bytes | None] = {}
    for path in sorted(root.rglob("*")):
        name = path.relative_to(root).as_posix()
        if path.is_symlink():
            found[name] = b"-> " + os.fsencode(os.readlink(path))
        elif path.is_dir():
            found[name] = None
        else:
            found[name] = path.read_bytes()
    return found


def refused(done: subprocess.CompletedProcess[bytes], link: Path) -> list[str]:
    """Return what is wrong with a run that should have refused `link` (empty when it did just that)."""
    wrong = []
    if 2 != done.returncode:
        wrong.append(f"exit {done.returncode}, not 2")
    expected = [f"error: {link} is a symbolic link", f"hint: {LINK_HINT}"]
    if expected != done.stderr.decode().splitlines():
        wrong.append(f"stderr is {done.stderr.decode()!r}")
    if b"Traceback" in done.stderr:
        wrong.append("a traceback")
    return wrong


def lock_to_a_file(out: Path, outside: Path) -> Path:
    """Plant `.leapbatch.lock` -> a file outside."""
    (out / ".leapbatch.lock").symlink_to(outside / "victim.txt")
    return out / ".leapbatch.lock"


def lock_dangling(out: Path, outside: Path) -> Path:
    """Plant `.leapbatch.lock` -> a file outside that does not exist yet."""
    (out / ".leapbatch.lock").symlink_to(outside / "created.txt")
    return out / ".leapbatch.lock"


def ledger_to_a_file(out: Path, outside: Path) -> Path:
    """Plant `ledger.jsonl` -> a file outside."""
    (out / "ledger.jsonl").symlink_to(outside / "victim.txt")
    return out / "ledger.jsonl"


def ledger_dangling(out: Path, outside: Path) -> Path:
    """Plant `ledger.jsonl` -> a file outside that does not exist yet."""
    (out / "ledger.jsonl").symlink_to(outside / "created.txt")
    return out / "ledger.jsonl"


def images_to_a_folder(out: Path, outside: Path) -> Path:
    """Plant `images` -> the folder outside (which holds a `.part` file)."""
    (out / "images").symlink_to(outside, target_is_directory=True)
    return out / "images"


def images_dangling(out: Path, outside: Path) -> Path:
    """Plant `images` -> a folder outside that does not exist yet."""
    (out / "images").symlink_to(outside / "made", target_is_directory=True)
    return out / "images"


def images_to_a_folder_inside(out: Path, outside: Path) -> Path:
    """Plant `images` -> a folder inside OUT: refused all the same (entries of OUT are never links)."""
    (out / "elsewhere").mkdir()
    (out / "images").symlink_to(out / "elsewhere", target_is_directory=True)
    return out / "images"


def results_to_a_file(out: Path, outside: Path) -> Path:
    """Plant `results.json` -> a file outside."""
    (out / "results.json").symlink_to(outside / "victim.txt")
    return out / "results.json"


def results_dangling(out: Path, outside: Path) -> Path:
    """Plant `results.json` -> a file outside that does not exist yet."""
    (out / "results.json").symlink_to(outside / "created.txt")
    return out / "results.json"


def metadata_to_a_file(out: Path, outside: Path) -> Path:
    """Plant `metadata.jsonl` -> a file outside."""
    (out / "metadata.jsonl").symlink_to(outside / "victim.txt")
    return out / "metadata.jsonl"


@pytest.mark.parametrize(
    "plant",
    [
        lock_to_a_file,
        lock_dangling,
        ledger_to_a_file,
        ledger_dangling,
        images_to_a_folder,
        images_dangling,
        images_to_a_folder_inside,
        results_to_a_file,
        results_dangling,
        metadata_to_a_file,
    ],
)
async def test_a_link_in_a_fresh_folder_is_refused_before_anything(cli: Cli, tmp_path: Path, plant: Plant) -> None:
    """A link at any name a run uses: exit 2 naming it, nothing written or deleted outside, nothing recorded."""
    outside, out = make_outside(tmp_path), tmp_path / "out"
    out.mkdir()
    link = plant(out, outside)
    before = snapshot(outside)

    done = await cli("run", "--local", manifest(tmp_path), "--out", out, *FAST, env=cli.env())

    assert [] == refused(done, link)
    assert before == snapshot(outside)
    assert link == out / "ledger.jsonl" or "ledger.jsonl" not in os.listdir(out)  # nothing recorded


async def finished_folder(cli: Cli, tmp_path: Path) -> tuple[Path, str]:
    """Run the one-job manifest into `tmp_path/out` and return the folder and the job's key."""
    out = tmp_path / "out"
    done = await cli("run", "--local", manifest(tmp_path), "--out", out, *FAST, env=cli.env())
    assert 0 == done.returncode, done.stderr.decode()
    [job] = read_ledger(out).jobs.values()
    assert Phase.FINISHED == job.phase
    return out, job.key


async def test_a_dangling_torn_file_link_is_refused_and_the_ledger_kept(cli: Cli, tmp_path: Path) -> None:
    """A torn tail to set aside where `ledger.jsonl.torn-1` is a dangling link: exit 2, nothing created, ledger kept."""
    outside = make_outside(tmp_path)
    out, _ = await finished_folder(cli, tmp_path)
    ledger = out / "ledger.jsonl"
    torn = ledger.read_bytes() + b'{"v":1,"type":"attacker chose this'
    ledger.write_bytes(torn)
    (out / "ledger.jsonl.torn-1").symlink_to(outside / "created.txt")
    before = snapshot(outside)

    done = await cli("run", "--local", manifest(tmp_path), "--out", out, *FAST, env=cli.env())

    assert [] == refused(done, out / "ledger.jsonl.torn-1")
    assert (before, torn) == (snapshot(outside), ledger.read_bytes())


async def test_an_earlier_torn_file_is_kept_and_the_next_name_used(cli: Cli, tmp_path: Path) -> None:
    """A regular `ledger.jsonl.torn-1` from an earlier crash stays as it was; the new tail goes to `torn-2`."""
    out, _ = await finished_folder(cli, tmp_path)
    ledger = out / "ledger.jsonl"
    whole = ledger.read_bytes()
    ledger.write_bytes(whole + b'{"v":1,"ty')
    (out / "ledger.jsonl.torn-1").write_bytes(b"an earlier tail")

    done = await cli("run", "--local", manifest(tmp_path), "--out", out, *FAST, env=cli.env())

    assert 0 == done.returncode, done.stderr.decode()
    assert (b"an earlier tail", b'{"v":1,"ty') == (
        (out / "ledger.jsonl.torn-1").read_bytes(),
        (out / "ledger.jsonl.torn-2").read_bytes(),
    )
    assert ledger.read_bytes().startswith(whole)


@pytest.mark.parametrize("target", ["victim.txt", "created.txt"])
async def test_a_part_link_is_refused_and_no_part_is_deleted(cli: Cli, tmp_path: Path, target: str) -> None:
    """`images/<key>-0.part` -> outside (or dangling): exit 2, the link, its target and a real `.part` all kept."""
    outside = make_outside(tmp_path)
    out, key = await finished_folder(cli, tmp_path)
    link = out / "images" / f"{key}-0.part"
    link.symlink_to(outside / target)
    (out / "images" / f"{key}-1.part").write_bytes(b"a crash's leftover")
    before, inside = snapshot(outside), snapshot(out / "images")

    done = await cli("run", "--local", manifest(tmp_path), "--out", out, *FAST, env=cli.env())

    assert [] == refused(done, link)
    assert (before, inside) == (snapshot(outside), snapshot(out / "images"))


async def test_an_image_replaced_by_a_link_is_refused_by_run_and_verify(cli: Cli, tmp_path: Path) -> None:
    """A finished image swapped for a link outside: `run` and `verify` exit 2 naming it; the target is never read."""
    outside = make_outside(tmp_path)
    out, key = await finished_folder(cli, tmp_path)
    image = out / "images" / f"{key}-0.png"
    image.unlink()
    image.symlink_to(outside / "photo.png")
    before = snapshot(outside)

    ran = await cli("run", "--local", manifest(tmp_path), "--out", out, *FAST, env=cli.env())
    verified = await cli("verify", out, env=cli.env())

    assert ([], []) == (refused(ran, image), refused(verified, image))
    assert before == snapshot(outside)


@pytest.mark.parametrize("name", ["metadata.jsonl", "results.json", "images"])
async def test_verify_reads_no_derived_file_through_a_link(cli: Cli, tmp_path: Path, name: str) -> None:
    """A finished folder's metadata.jsonl, results.json or images swapped for a link outside: `verify` exits 2
    naming it and reads nothing through it (it used to read or list the target)."""
    outside = make_outside(tmp_path)
    out, _ = await finished_folder(cli, tmp_path)
    planted = out / name
    target = tmp_path / f"moved-{name}"
    planted.rename(target)
    planted.symlink_to(target)
    before = snapshot(outside)

    verified = await cli("verify", out, env=cli.env())

    assert [] == refused(verified, planted)
    assert before == snapshot(outside)


@pytest.mark.parametrize("command", [("status",), ("verify",), ("verify", "--repair"), ("delete", "--yes")])
async def test_a_ledger_linked_to_another_folders_ledger_is_refused(
    cli: Cli, tmp_path: Path, command: tuple[str, ...]
) -> None:
    """`ledger.jsonl` -> a real ledger elsewhere: status, verify, repair and delete exit 2 and leave it as it was."""
    source, _ = await finished_folder(cli, tmp_path)
    out = tmp_path / "copy"
    out.mkdir()
    (out / "ledger.jsonl").symlink_to(source / "ledger.jsonl")
    before = snapshot(source)

    done = await cli(*command, out, env=cli.env())

    assert [] == refused(done, out / "ledger.jsonl")
    assert before == snapshot(source)


async def test_the_output_folder_itself_may_be_a_link(cli: Cli, tmp_path: Path) -> None:
    """`--out` naming a link to a folder (outputs -> /data) is the user's choice: the run writes into the target."""
    (tmp_path / "data").mkdir()
    (tmp_path / "outputs").symlink_to(tmp_path / "data", target_is_directory=True)

    done = await cli("run", "--local", manifest(tmp_path), "--out", tmp_path / "outputs", *FAST, env=cli.env())

    assert 0 == done.returncode, done.stderr.decode()
    assert {".leapbatch.lock", "images", "ledger.jsonl", "metadata.jsonl", "results.json", STAMP_NAME} == set(
        os.listdir(tmp_path / "data")
    )


@pytest.mark.parametrize("name", [".leapbatch.lock", "ledger.jsonl"])
async def test_a_fifo_in_place_of_a_folder_file_is_refused_without_hanging(cli: Cli, tmp_path: Path, name: str) -> None:
    """A FIFO at the lock's or the ledger's name would block an open forever: exit 2 at once, naming it."""
    out = tmp_path / "out"
    out.mkdir()
    os.mkfifo(out / name)

    with trio.fail_after(60):
        done = await cli("run", "--local", manifest(tmp_path), "--out", out, *FAST, env=cli.env())

    assert 2 == done.returncode
    assert [f"error: {out / name} is not a regular file"] == done.stderr.decode().splitlines()[:1]
    assert b"Traceback" not in done.stderr


async def test_images_that_is_a_file_is_refused_before_anything(cli: Cli, tmp_path: Path) -> None:
    """`images` that is a regular file: exit 2 naming it, before the ledger is cut or any job is created."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "images").write_bytes(b"not a folder")
    (out / "ledger.jsonl").write_bytes(b'{"v":1,"ty')  # a torn tail that a writer would set aside

    done = await cli("run", "--local", manifest(tmp_path), "--out", out, *FAST, env=cli.env())

    assert 2 == done.returncode
    assert [f"error: {out / 'images'} is not a folder"] == done.stderr.decode().splitlines()[:1]
    assert (b'{"v":1,"ty', []) == ((out / "ledger.jsonl").read_bytes(), list(out.glob("*.torn-*")))


def test_a_fifo_ledger_is_refused_by_a_reader_without_blocking(tmp_path: Path) -> None:
    """`read_ledger` (status, plan) on a FIFO opens it without blocking and refuses it as not a regular file."""
    os.mkfifo(tmp_path / "ledger.jsonl")
    script = "import sys; from pathlib import Path; from leapbatch.folder.ledger import read_ledger; "
    script += "read_ledger(Path(sys.argv[1]))"

    done = subprocess.run([sys.executable, "-c", script, tmp_path], capture_output=True, timeout=60, check=False)

    assert b"ledger.jsonl is not a regular file" in done.stderr


def test_a_part_file_never_creates_its_folder_through_a_link(tmp_path: Path) -> None:
    """A `.part` whose `images` became a link after its path was checked: UsageError, nothing created outside."""
    outside = make_outside(tmp_path)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "images").symlink_to(outside, target_is_directory=True)
    part = PartFile(tmp_path / "out" / "images" / "x.part", where="image 0", uri="http://127.0.0.1/0.png")
    before = snapshot(outside)

    with pytest.raises(UsageError, match=r"images is a symbolic link"):
        part.write(PNG_SIGNATURE)

    assert before == snapshot(outside)


def test_a_part_swapped_for_a_link_is_not_what_gets_verified(tmp_path: Path) -> None:
    """A `.part` swapped for a link to a good image after the download: the bytes written are decoded, so it fails."""
    outside = make_outside(tmp_path)
    Image.new("RGB", (64, 64)).save(outside / "good.png")
    store, key = ImageStore(tmp_path / "out"), "e" * 64
    part = store.part(key, 0, where="image 0", uri="http://127.0.0.1/0.png")
    part.accept("image/png")
    part.write(PNG_SIGNATURE + b"\0" * 64)
    part.path.unlink()
    part.path.symlink_to(outside / "good.png")
    before = snapshot(outside)

    with pytest.raises(DownloadError) as caught:
        store.settle(part, key, 0, (64, 64))

    assert (DownloadFailure.UNDECODABLE, before) == (caught.value.failure, snapshot(outside))
    assert [f"{key}-0.part"] == os.listdir(store.images)


def test_sweep_parts_refuses_an_images_link_and_deletes_nothing(tmp_path: Path) -> None:
    """`sweep_parts` on an `images` link to a folder of `.part` files: UsageError naming it, every file kept."""
    outside = make_outside(tmp_path)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "images").symlink_to(outside, target_is_directory=True)
    before = snapshot(outside)

    with pytest.raises(UsageError, match="is a symbolic link") as caught:
        sweep_parts(tmp_path / "out")

    assert (2, before) == (caught.value.exit_code, snapshot(outside))


def test_sweep_parts_checks_every_name_before_deleting_any(tmp_path: Path) -> None:
    """A link anywhere in `images`, sorted after real `.part` files, is refused before any of them is removed."""
    images = tmp_path / "images"
    images.mkdir()
    (images / "a.part").write_bytes(b"a crash's leftover")
    (images / "z.png").symlink_to(make_outside(tmp_path) / "photo.png")
    before = snapshot(images)

    with pytest.raises(UsageError, match=r"z\.png is a symbolic link"):
        sweep_parts(tmp_path)

    assert before == snapshot(images)


def test_discarding_a_job_refuses_a_link_among_its_files(tmp_path: Path) -> None:
    """`discard_job` meets a link among the job's files: UsageError, and none of its files is removed."""
    store = ImageStore(tmp_path)
    store.images.mkdir()
    key = "a" * 64
    (store.images / f"{key}-0.png").write_bytes(b"an image")
    (store.images / f"{key}-1.png").symlink_to(make_outside(tmp_path) / "photo.png")
    before = snapshot(store.images)

    with pytest.raises(UsageError, match=r"-1\.png is a symbolic link"):
        store.discard_job(key)

    assert before == snapshot(store.images)


def test_an_image_name_that_is_a_link_inside_the_folder_is_refused(tmp_path: Path) -> None:
    """The final name of an image is checked before the rename: a link there, even to a file inside, is refused."""
    store = ImageStore(tmp_path)
    store.images.mkdir()
    key = "b" * 64
    (tmp_path / "inside.png").write_bytes(b"x")
    (store.images / f"{key}-0.png").symlink_to(tmp_path / "inside.png")

    with pytest.raises(UsageError, match=r"-0\.png is a symbolic link"):
        store.image_path(key, 0)


@pytest.mark.parametrize("target", ["victim.txt", "created.txt"])
def test_atomic_replace_refuses_a_link_at_the_final_name(tmp_path: Path, target: str) -> None:
    """`write_atomic` onto a link (to a file or dangling): UsageError, the target untouched, no temp file left."""
    outside = make_outside(tmp_path)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "results.json").symlink_to(outside / target)
    before = snapshot(outside)

    with pytest.raises(UsageError, match=r"results\.json is a symbolic link"):
        write_atomic(tmp_path / "out" / "results.json", b"{}")

    assert (before, ["results.json"]) == (snapshot(outside), os.listdir(tmp_path / "out"))


def test_atomic_replace_never_follows_a_link_at_the_temp_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A link planted at the (guessed) temp name is never written through: the write fails, the target is kept."""
    outside = make_outside(tmp_path)
    (tmp_path / "out").mkdir()
    monkeypatch.setattr("leapbatch.folder.atomic.secrets.token_hex", lambda _: "guessed")
    (tmp_path / "out" / ".results.json.guessed.tmp").symlink_to(outside / "created.txt")
    before = snapshot(outside)

    with pytest.raises(FileExistsError):
        write_atomic(tmp_path / "out" / "results.json", b"{}")

    assert before == snapshot(outside)
    assert not (tmp_path / "out" / "results.json").exists()
