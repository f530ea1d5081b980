"""The hostile-prompt campaign: prompt text never names a file, escapes the output folder, merges jobs or is altered.

Every prompt of `hostile_prompts.py` (traversal paths, every C0 and C1 control, bidi and zero-width characters,
YAML/JSON/shell/format/markup/SQL look-alikes, case and normalisation twins, 10,000-character prompts, ...) goes
through the real pipeline against the real emulator served on 127.0.0.1 port 0: once as direct `Job`s through
`Runner`, once through a YAML manifest and the `leapbatch run` command in a subprocess. The emulator's job table is
the ground truth for what was sent; `os.walk` over the output folder is the ground truth for what was written.
Prompts the manifest format cannot carry (whitespace only, over the length cap, characters YAML forbids raw, bytes
that are no UTF-8) must fail `leapbatch validate` with a located message instead.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trio
import yaml
from hostile_prompts import Hostile, hostile_prompts, twin_groups
from pydantic import SecretStr

from leapbatch.api.client import LeapClient, api_http, download_http
from leapbatch.api.ratelimit import AdaptiveLimiter, RequestGate
from leapbatch.api.retry import SafeRetry
from leapbatch.emulator import EmulatorConfig, EmulatorHandle
from leapbatch.folder.checkpoint import CHECKPOINT_NAME
from leapbatch.folder.images import ImageStore
from leapbatch.folder.ledger import open_folder
from leapbatch.folder.results import STAMP_NAME, write_results
from leapbatch.folder.state import LedgerState, Phase
from leapbatch.jobs import Job
from leapbatch.manifest import MAX_TEXT
from leapbatch.run.runner import Runner, RunOptions, RunSummary
from leapbatch.wire import CreateInferenceDto

MODEL = "26a1a203-3a46-42cb-8cfa-f4de075907d8"
SEED = 7  # one seed for every job: two jobs can differ by their prompt alone
SPEED = 1000.0
IMAGE_NAME = re.compile(r"[0-9a-f]{64}-\d+\.png")
TOP_LEVEL = frozenset(
    {"images", "ledger.jsonl", ".leapbatch.lock", "results.json", "metadata.jsonl", STAMP_NAME, CHECKPOINT_NAME}
)
MAX_IN_FLIGHT_CLI = 256  # the manifest cap; `run` waits Leap's real generation time before its first poll
CORPUS = hostile_prompts()

StartEmulator = Callable[..., Awaitable[EmulatorHandle]]  # the `start_emulator` fixture of tests/conftest.py


def exact(text: str) -> bytes:
    """Return the exact bytes of `text` (lone surrogates kept, so no difference can hide in an encoding error)."""
    return text.encode("utf-8", "surrogatepass")


def manifest_rejects(prompt: str) -> bool:
    """Return whether a manifest must refuse `prompt`: whitespace only (it renders empty) or over the length cap."""
    return not prompt.strip() or len(prompt) > MAX_TEXT


def build_job(prompt: str) -> Job:
    """Return the small job that sends `prompt`."""
    request = CreateInferenceDto(
        prompt=prompt, seed=SEED, width=64, height=64, steps=5, number_of_images=1, prompt_strength=7
    )
    return Job.build(MODEL, request)


def listing(folder: Path) -> list[str]:
    """Return the names in `folder`, sorted."""
    return sorted(os.listdir(folder))


def paths_under(folder: Path) -> list[Path]:
    """Return every file and folder below `folder`, as `os.walk` finds them (links not followed)."""
    return [Path(root, name) for root, dirs, files in os.walk(folder) for name in (*dirs, *files)]


def layout_problems(out: Path, keys: Iterable[str]) -> list[str]:
    """Return every way the output folder differs from `images/<key>-<n>.png` per job plus the known files."""
    root = out.resolve()
    images = out / "images"
    problems: list[str] = []
    found: list[str] = []
    for path in paths_under(out):
        if path.is_symlink() or not path.resolve().is_relative_to(root):
            problems.append(f"outside or linked: {path!r}")
        elif path.parent == out:
            if path.name not in TOP_LEVEL:
                problems.append(f"unknown top-level name: {path.name!r}")
        elif path.parent == images and IMAGE_NAME.fullmatch(path.name) and path.is_file():
            found.append(path.name.split("-")[0])
        else:
            problems.append(f"unexpected path: {path.relative_to(out)!r}")
    wanted = sorted(keys)
    if sorted(found) != wanted:
        problems.append(f"{len(found)} image files for {len(wanted)} jobs, or keys that differ")
    return problems


def stored_prompt(handle: EmulatorHandle, inference_id: str | None) -> bytes:
    """Return the exact prompt the emulator stored for one job."""
    job = handle.emulator.state.get(MODEL, str(inference_id))
    assert job is not None, inference_id
    return exact(job.request["prompt"])


def received_prompts(handle: EmulatorHandle) -> list[bytes]:
    """Return the exact prompt of every job the emulator holds, sorted."""
    table = handle.emulator.state
    jobs = table.page(MODEL, page=1, page_size=len(CORPUS) * 4)
    return sorted(exact(job.request["prompt"]) for job in jobs)


@dataclass(frozen=True)
class DirectRun:
    """What a direct run left: the jobs by corpus name, the runner's summary and the ledger."""

    jobs: dict[str, Job]
    summary: RunSummary
    state: LedgerState


async def run_direct(handle: EmulatorHandle, out: Path, corpus: Sequence[Hostile]) -> DirectRun:
    """Run one job per hostile prompt to the end against the served emulator, as `leapbatch run` wires it."""
    jobs = {hostile.name: build_job(hostile.prompt) for hostile in corpus}
    await trio.Path(out).mkdir()
    limiter = AdaptiveLimiter(64)
    with open_folder(out) as ledger:
        async with (
            api_http(handle.base_url, SecretStr("hostile-campaign")) as http,
            download_http() as downloads,
        ):
            client = LeapClient(http, gate=RequestGate(500.0, 100), retry=SafeRetry())
            runner = Runner(
                client=client,
                downloads=downloads,
                ledger=ledger,
                store=ImageStore(out),
                limiter=limiter,
                options=RunOptions(speed=SPEED),
            )
            summary = await runner.run(list(jobs.values()))
        write_results(out, list(jobs.values()), ledger.state, name="hostile")
    return DirectRun(jobs, summary, ledger.state)


def cli_env(handle: EmulatorHandle | None = None) -> dict[str, str]:
    """Return the environment of a `leapbatch` subprocess, aimed at the served emulator if there is one."""
    drop = ("LEAPBATCH_DEBUG", "LEAPBATCH_CRASH_AT", "LEAP_BASE_URL", "LEAP_API_KEY")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env["NO_COLOR"] = "1"
    if handle is not None:
        env.update(LEAP_BASE_URL=handle.base_url, LEAP_API_KEY="hostile-campaign-key")
    return env


async def leapbatch(args: Sequence[str | Path], *, cwd: Path, env: dict[str, str]) -> tuple[int, str, str]:
    """Run `python -m leapbatch ARGS` without blocking the emulator; return the exit code, stdout and stderr."""
    command = [sys.executable, "-m", "leapbatch", *map(str, args)]
    done = await trio.run_process(command, capture_stdout=True, capture_stderr=True, check=False, cwd=cwd, env=env)
    return done.returncode, done.stdout.decode("utf-8", "replace"), done.stderr.decode("utf-8", "replace")


class _QuotingDumper(yaml.SafeDumper):
    """Write every string double-quoted, where YAML has an escape for every character.

    PyYAML's default style writes U+0085 (NEL) raw inside a single-quoted scalar, and YAML 1.1 folds that line break
    into a space on reading: PyYAML's own `safe_load` does not get the text back. Double quotes round-trip all of it.
    """


_QuotingDumper.add_representer(
    str, lambda dumper, text: dumper.represent_scalar("tag:yaml.org,2002:str", text, style='"')
)


def manifest_text(name: str, subjects: Sequence[str]) -> str:
    """Return a manifest whose jobs send each subject as the whole prompt."""
    document: dict[str, Any] = {
        "version": 1,
        "name": name,
        "model": MODEL,
        "prompt": "{subject}",
        "params": {"width": 64, "height": 64, "steps": 5, "seed": SEED},
        "limits": {"requests_per_second": 500, "burst": 100, "max_in_flight": MAX_IN_FLIGHT_CLI},
        "matrix": {"subject": list(subjects)},
    }
    text = yaml.dump(document, Dumper=_QuotingDumper, allow_unicode=True, sort_keys=False, width=1_000_000)
    assert subjects == yaml.safe_load(text)["matrix"]["subject"]  # the file says exactly what the test expects
    return text


def balanced_parts(items: Sequence[Hostile], most: int) -> list[Sequence[Hostile]]:
    """Return `items` cut into the fewest runs of at most `most`, of nearly equal sizes."""
    count = -(-len(items) // most)
    size = -(-len(items) // count)
    return [items[i : i + size] for i in range(0, len(items), size)]


def metadata_rows(out: Path) -> list[dict[str, Any]]:
    """Return the rows of `metadata.jsonl`, split on "\\n" only, as JSON Lines defines a line."""
    text = (out / "metadata.jsonl").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.split("\n") if line]


# --- the corpus ---------------------------------------------------------------------------------------------------


def test_corpus_is_large_unique_deterministic_and_exact() -> None:
    """The corpus holds >= 200 prompts, with unique names and texts, the same every call, all valid UTF-8."""
    names = [hostile.name for hostile in CORPUS]
    prompts = [hostile.prompt for hostile in CORPUS]
    assert len(CORPUS) >= 200
    assert len(names) == len(set(names))
    assert len(prompts) == len(set(prompts))
    assert CORPUS == hostile_prompts()
    assert [] == [hostile.name for hostile in CORPUS if exact(hostile.prompt) != hostile.prompt.encode("utf-8")]
    assert set(names) >= {name for group in twin_groups() for name in group}


def test_every_c0_and_c1_control_is_in_the_corpus() -> None:
    """Each C0 control, DEL and each C1 control appears in some prompt."""
    controls = {chr(code) for code in (*range(0x20), 0x7F, *range(0x80, 0xA0))}
    seen = {char for hostile in CORPUS for char in hostile.prompt}
    assert set() == controls - seen


def test_twins_get_distinct_job_keys() -> None:
    """Look-alike prompts (case, NFC/NFD, NFKC, invisible characters, trimming) make jobs with distinct keys."""
    by_name = {hostile.name: hostile.prompt for hostile in CORPUS}
    for group in twin_groups():
        keys = {build_job(by_name[name]).key for name in group}
        assert len(group) == len(keys), group


# --- direct jobs through the runner ---------------------------------------------------------------------------------


@pytest.mark.slow
async def test_direct_jobs_are_sent_once_byte_exact_into_key_named_files(
    start_emulator: StartEmulator, tmp_path: Path
) -> None:
    """Every hostile job finishes, is created once with its prompt byte for byte, and writes only by its key."""
    handle = await start_emulator(EmulatorConfig(speed=SPEED))
    around = listing(tmp_path.parent)
    run = await run_direct(handle, tmp_path / "out", CORPUS)
    sent = {run.jobs[hostile.name].key: exact(hostile.prompt) for hostile in CORPUS}
    received = {key: stored_prompt(handle, js.inference_id) for key, js in run.state.jobs.items()}
    assert (len(CORPUS), 0) == (run.summary.finished, run.summary.failed)
    assert {Phase.FINISHED} == {js.phase for js in run.state.jobs.values()}
    assert (len(CORPUS), len(CORPUS)) == (handle.stats()["requests"]["create"], handle.stats()["jobs"]["created"])
    assert sent == received
    assert sorted(sent.values()) == received_prompts(handle)
    assert [] == layout_problems(tmp_path / "out", sent)
    assert [] == [path for path in paths_under(tmp_path / "out") if path.name.endswith(".part")]
    assert ["out"] == listing(tmp_path)
    assert around == listing(tmp_path.parent)


async def test_twins_get_distinct_files(start_emulator: StartEmulator, tmp_path: Path) -> None:
    """Each member of a twin group has a job of its own, with its own image file."""
    handle = await start_emulator(EmulatorConfig(speed=SPEED))
    names = {name for group in twin_groups() for name in group}
    run = await run_direct(handle, tmp_path / "out", [hostile for hostile in CORPUS if hostile.name in names])
    for group in twin_groups():
        files = [tuple(image.path for image in run.state.jobs[run.jobs[name].key].images) for name in group]
        assert len(group) == len(set(files)), group
        assert all(len(paths) == 1 for paths in files), group


LINE_SEPARATORS = "\x85\u2028\u2029"  # str.splitlines() breaks lines there; json.dumps(ensure_ascii=False) keeps them


@pytest.mark.parametrize(
    "with_separators",
    [
        pytest.param(False, id="controls-bidi-traversal"),
        pytest.param(True, id="unicode-line-separators"),
    ],
)
async def test_verify_accepts_the_folder_of_a_hostile_run(
    start_emulator: StartEmulator, tmp_path: Path, with_separators: bool
) -> None:
    """`leapbatch verify` finds nothing wrong with a clean run of hostile prompts (results written as `run` does)."""
    handle = await start_emulator(EmulatorConfig(speed=SPEED))
    if with_separators:
        picked = [h for h in CORPUS if any(char in h.prompt for char in LINE_SEPARATORS)]
    else:
        picked = [h for h in CORPUS if h.category in ("c0", "bidi", "traversal", "invisible", "newlines")]
        picked = [h for h in picked if not any(char in h.prompt for char in LINE_SEPARATORS)]
    await run_direct(handle, tmp_path / "out", picked)
    code, stdout, stderr = await leapbatch(["verify", tmp_path / "out"], cwd=tmp_path, env=cli_env(handle))
    assert (0, False) == (code, "Traceback" in stderr), stdout[-2000:] + stderr[-2000:]


# --- through a manifest and the command line ------------------------------------------------------------------------


@pytest.mark.slow
async def test_manifest_prompts_reach_the_emulator_byte_exact_through_the_cli(
    start_emulator: StartEmulator, tmp_path: Path
) -> None:
    """`leapbatch run` sends every hostile subject exactly, once, and results.json and metadata.jsonl keep it."""
    handle = await start_emulator(EmulatorConfig(speed=SPEED))
    runnable = [hostile for hostile in CORPUS if not manifest_rejects(hostile.prompt)]
    parts = balanced_parts(runnable, MAX_IN_FLIGHT_CLI)  # one wave per process: the runs overlap, not queue
    around = listing(tmp_path.parent)
    outcomes: dict[int, tuple[int, str, str]] = {}

    async def run_part(index: int, part: Sequence[Hostile]) -> None:
        manifest = tmp_path / f"hostile-{index}.yaml"
        manifest.write_text(manifest_text(f"hostile-{index}", [h.prompt for h in part]), encoding="utf-8")
        args: list[str | Path] = ["run", manifest, "--out", tmp_path / f"out-{index}", "--quiet", "--speed", "1000"]
        outcomes[index] = await leapbatch(args, cwd=tmp_path, env=cli_env(handle))

    async with trio.open_nursery() as nursery:
        for index, part in enumerate(parts):
            nursery.start_soon(run_part, index, part)

    assert [(0, False)] * len(parts) == [(code, "Traceback" in err) for code, _, err in outcomes.values()], outcomes
    assert len(runnable) == handle.stats()["requests"]["create"]
    assert sorted(exact(h.prompt) for h in runnable) == received_prompts(handle)
    for index, part in enumerate(parts):
        out = tmp_path / f"out-{index}"
        expected = sorted(exact(h.prompt) for h in part)
        results = json.loads((out / "results.json").read_text(encoding="utf-8"))["jobs"]
        rows = metadata_rows(out)
        assert expected == sorted(exact(entry["request"]["prompt"]) for entry in results)
        assert expected == sorted(exact(entry["variables"]["subject"]) for entry in results)
        assert {"finished"} == {entry["state"] for entry in results}
        assert expected == sorted(exact(row["prompt"]) for row in rows)
        assert [] == [row["file_name"] for row in rows if row["prompt"] != row["var_subject"]]
        assert [] == layout_problems(out, [entry["key"] for entry in results])
    made = [name for i in range(len(parts)) for name in (f"hostile-{i}.yaml", f"out-{i}")]
    assert sorted(made) == listing(tmp_path)
    assert around == listing(tmp_path.parent)


# Raw characters YAML does not allow in a file, a surrogate escape, and bytes that are no UTF-8: each in a quoted
# axis value, where a naive loader would carry it into a prompt.
RAW_VALUES: dict[str, bytes] = {
    "raw-nul": b"\x00",
    "raw-soh": b"\x01",
    "raw-escape": b"\x1b",
    "raw-del": b"\x7f",
    "raw-c1-80": "\x80".encode(),
    "raw-c1-9f": "\x9f".encode(),
    "raw-noncharacter-fffe": "\ufffe".encode(),
    "raw-noncharacter-ffff": "\uffff".encode(),
    "escaped-lone-surrogate": b"\\ud800",
    "escaped-low-surrogate": b"\\udfff",
    "invalid-utf8-ff": b"\xff",
    "overlong-utf8-dot": b"\xc0\xae",
    "utf8-encoded-surrogate": b"\xed\xa0\x80",
}


def raw_manifest(value: bytes) -> bytes:
    """Return a manifest whose one axis value holds `value` between `fox` and `den`, double-quoted."""
    head = f'version: 1\nname: raw\nmodel: {MODEL}\nprompt: "{{subject}}"\nmatrix:\n  subject:\n    - "fox'
    return head.encode() + value + b'den"\n'


async def test_manifest_refuses_what_it_cannot_carry_with_located_errors(
    start_emulator: StartEmulator, tmp_path: Path
) -> None:
    """Whitespace-only, over-long, raw-control, surrogate and non-UTF-8 values fail `validate` at file:line:col."""
    handle = await start_emulator(EmulatorConfig(speed=SPEED))
    files: list[Path] = []
    for hostile in CORPUS:
        if manifest_rejects(hostile.prompt):
            path = tmp_path / f"{len(files):03d}.yaml"
            path.write_text(manifest_text("rejected", [hostile.prompt]), encoding="utf-8")
            files.append(path)
    for value in RAW_VALUES.values():
        path = tmp_path / f"{len(files):03d}.yaml"
        path.write_bytes(raw_manifest(value))
        files.append(path)
    code, stdout, stderr = await leapbatch(["validate", *files], cwd=tmp_path, env=cli_env(handle))
    located = {
        path: re.search(rf"^error: {re.escape(str(path))}:[1-9][0-9]*:[1-9][0-9]*: ", stderr, re.MULTILINE)
        for path in files
    }
    assert (2, False, "") == (code, "Traceback" in stderr, stdout), stderr[-2000:]
    assert [] == [path.name for path, match in located.items() if match is None]
    assert 0 == handle.stats()["requests"]["create"]


# C0 and C1 controls (a newline aside) and the bidi embeddings, overrides and isolates: what rewrites a terminal.
TERMINAL_CONTROLS = frozenset(
    chr(code) for code in (*range(0x20), 0x7F, *range(0x80, 0xA0), *range(0x202A, 0x202F), *range(0x2066, 0x206A))
) - {"\n"}


async def test_plan_writes_no_terminal_control_characters(tmp_path: Path) -> None:
    """`leapbatch plan` shows hostile prompts without writing control or bidi-override characters to the terminal."""
    by_name = {hostile.name: hostile.prompt for hostile in CORPUS}
    subjects = [by_name[name] for name in ("c0/escape-sequence", "bidi/rlo-extension-spoof", "c1/u009b")]
    manifest = tmp_path / "plan.yaml"
    manifest.write_text(manifest_text("plan", subjects), encoding="utf-8")
    code, stdout, stderr = await leapbatch(["plan", manifest], cwd=tmp_path, env=cli_env())
    assert (0, "") == (code, stderr)
    assert set() == TERMINAL_CONTROLS & set(stdout)
