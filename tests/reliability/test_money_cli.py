"""Specs of money through the real CLI (docs/cli.md, "Budget" and "Consent"; docs/manifest.md, `pricing:`): `plan`
prices a manifest exactly at the price it names, resume-aware; a costly run asks first, and a consent covers only
the cost and the jobs it was given for; `status` shows what a folder spent. The emulator's image counter
(`stats()["images"]["made"]`: what the account was billed for) is the judge of what was created.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import trio
from cli_support import Cli

from leapbatch.emulator import EmulatorHandle
from leapbatch.folder.ledger import read_ledger
from leapbatch.wire import expected_generation_seconds

MODEL = "26a1a203-3a46-42cb-8cfa-f4de075907d8"
OTHER_MODEL = "00000000-0000-4000-8000-000000000000"
MANIFEST = """\
version: 1
name: money
model: {model}
prompt: "{prompt}"
params: {{width: 64, height: 64, steps: 5{params}}}
limits: {{requests_per_second: 1000, burst: 100, max_in_flight: 16}}
matrix:
  n: {{range: [1, {jobs}]}}
"""
FAST = ["--plain", "--speed", "1000"]
SOURCE = "Leap's pricing page (leap-docs, 2023-07), docs/leap-api-facts.md"
# preset -> (its title in the label, its price per image as shown, what 40 images cost)
PRESETS = {
    "payg": ("pay as you go", "$0.01", 0.40),
    "starter": ("Starter", "$0.0175", 0.70),
    "creator": ("Creator", "$0.0125", 0.50),
    "professional": ("Professional", "$0.009", 0.36),
}
QUESTION = "Continue? [y/N]"


def manifest(
    tmp_path: Path,
    *,
    jobs: int = 40,
    extra: str = "",
    params: str = "",
    name: str = "money.yaml",
    prompt: str = "money {n}",
) -> Path:
    """Write a manifest of `jobs` jobs (64x64, 5 steps, axis `n`), `extra` YAML at its end, and return its path."""
    path = tmp_path / name
    path.write_text(MANIFEST.format(model=MODEL, jobs=jobs, params=params, prompt=prompt) + extra)
    return path


def lines_of(done: subprocess.CompletedProcess[bytes]) -> list[str]:
    """Return the lines a finished CLI process printed on stderr."""
    return done.stderr.decode().splitlines()


def starting(lines: Sequence[str], prefix: str) -> list[str]:
    """Return the lines that start with `prefix` (leading spaces ignored)."""
    return [line.strip() for line in lines if line.strip().startswith(prefix)]


async def plan_json(cli: Cli, *args: str | os.PathLike[str]) -> dict[str, Any]:
    """Run `plan --json ARGS` and return its `cost` object."""
    done = await cli("plan", "--json", *args, env=Cli.env())
    assert 0 == done.returncode, lines_of(done)
    cost: dict[str, Any] = json.loads(done.stdout)["cost"]
    return cost


async def plan_text(cli: Cli, *args: str | os.PathLike[str]) -> list[str]:
    """Run `plan ARGS` and return the lines it printed (stdout)."""
    done = await cli("plan", *args, env=Cli.env())
    assert 0 == done.returncode, lines_of(done)
    return done.stdout.decode().splitlines()


def made(handle: EmulatorHandle) -> int:
    """Return how many images the emulator's account was billed for."""
    count: int = handle.stats()["images"]["made"]
    return count


# -- plan prices ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["manifest", "--price"])
@pytest.mark.parametrize("preset", list(PRESETS))
async def test_plan_prices_40_images_exactly_at_each_preset(cli: Cli, tmp_path: Path, preset: str, how: str) -> None:
    """40 one-image jobs cost 40 x the preset's price, to the cent (no float noise), named with its source and date,
    whether the manifest's `pricing: {preset: ...}` or `--price` names it; the text says it is an estimate."""
    title, each, expected = PRESETS[preset]
    if how == "manifest":
        args: list[str | Path] = [manifest(tmp_path, extra=f"pricing: {{preset: {preset}}}\n")]
    else:
        args = [manifest(tmp_path, extra="pricing: {preset: starter}\n"), "--price", preset]  # the flag wins

    cost = await plan_json(cli, *args)
    lines = await plan_text(cli, *args)

    assert expected == cost["to_spend"]
    assert expected == cost["total"]
    assert (40, 40, None) == (cost["jobs"], cost["images"], cost["committed"])
    assert (preset, "2023-07", SOURCE) == (cost["price"]["preset"], cost["price"]["date"], cost["price"]["source"])
    amount = f"${expected:.2f}"
    label = f"{title}: {each} per image (leap-docs, 2023-07)"
    assert [f"cost: about {amount} for 40 images; an estimate at {label}"] == starting(lines, "cost:")


async def test_without_pricing_the_estimate_is_at_pay_as_you_go_and_says_so(cli: Cli, tmp_path: Path) -> None:
    """No `pricing:` and no `--price`: the pay-as-you-go price, named in the estimate."""
    cost = await plan_json(cli, manifest(tmp_path))

    assert (0.40, "payg") == (cost["to_spend"], cost["price"]["preset"])
    assert "pay as you go" in cost["price"]["label"]


@pytest.mark.parametrize("how", ["manifest", "--price"])
async def test_plan_prices_a_figure_per_image_as_the_users_own(cli: Cli, tmp_path: Path, how: str) -> None:
    """`per_image: 0.02` (or `--price 0.02`): 40 images cost $0.80, labelled as the user's figure, no preset."""
    path = manifest(tmp_path, extra="pricing: {per_image: 0.02}\n" if how == "manifest" else "")
    args: list[str | Path] = [path] if how == "manifest" else [path, "--price", "0.02"]

    cost = await plan_json(cli, *args)
    lines = await plan_text(cli, *args)

    assert 0.80 == cost["to_spend"]
    assert (None, None, 0.02) == (cost["price"]["preset"], cost["price"]["date"], cost["price"]["per_image"])
    assert ["cost: about $0.80 for 40 images; an estimate at $0.02 per image (your figure)"] == starting(lines, "cost:")


@pytest.mark.parametrize("how", ["manifest", "--price"])
async def test_plan_prices_gpu_seconds_from_the_runners_duration_model(cli: Cli, tmp_path: Path, how: str) -> None:
    """`per_gpu_second: 0.0004` (or `--price 0.0004/s`): the rate x `wire.expected_generation_seconds` of each job
    (which grows with its steps), summed over the 40 jobs."""
    steps = [5, 50, 150, 200]
    extra = f"  steps: {steps}\n" + ("pricing: {per_gpu_second: 0.0004}\n" if how == "manifest" else "")
    path = manifest(tmp_path, jobs=10, extra=extra)
    args: list[str | Path] = [path] if how == "manifest" else [path, "--price", "0.0004/s"]
    rate = Decimal("0.0004")
    expected = sum(10 * rate * Decimal(repr(expected_generation_seconds(each, 1))) for each in steps)

    cost = await plan_json(cli, *args)

    assert 40 == cost["jobs"]
    assert float(expected) == cost["to_spend"]
    assert (None, 0.0004) == (cost["price"]["per_image"], cost["price"]["per_gpu_second"])
    assert "per GPU second" in cost["price"]["label"]


async def test_number_of_images_multiplies_the_price(cli: Cli, tmp_path: Path) -> None:
    """20 jobs of 2 images each are 40 images: $0.40 at pay as you go."""
    cost = await plan_json(cli, manifest(tmp_path, jobs=20, params=", number_of_images: 2"))

    assert (20, 40, 0.40) == (cost["jobs"], cost["images"], cost["to_spend"])


async def test_included_images_left_make_the_first_images_free(cli: Cli, tmp_path: Path) -> None:
    """Creator with 15 included images left: the first 15 images (in the order a run creates them) cost nothing,
    the other 25 cost $0.0125 each ($0.3125), and the estimate names the quota."""
    path = manifest(tmp_path, extra="pricing: {preset: creator, included_images_left: 15}\n")

    cost = await plan_json(cli, path)

    assert 0.3125 == cost["to_spend"]
    by_n = cost["axes"]["n"]
    assert [0.0] * 15 + [0.0125] * 25 == [by_n[str(n)] for n in range(1, 41)]
    assert 15 == cost["price"]["included_images_left"]
    assert "15 included images left" in cost["price"]["label"]


async def test_per_model_and_per_axis_value_amounts_add_up_to_the_total(cli: Cli, tmp_path: Path) -> None:
    """Two models x 4 styles x 5: each model's amount, and each axis's values, add up to the total, in JSON and
    in the text's lines."""
    extra = f"  model: [{MODEL}, {OTHER_MODEL}]\n  style: [ink, oil, chalk, clay]\n"
    path = manifest(tmp_path, jobs=5, extra=extra, prompt="money {n} in {style}")

    cost = await plan_json(cli, path)
    lines = await plan_text(cli, path)

    assert (40, 0.40) == (cost["jobs"], cost["total"])
    assert {MODEL: 0.20, OTHER_MODEL: 0.20} == cost["models"]
    assert {"ink": 0.10, "oil": 0.10, "chalk": 0.10, "clay": 0.10} == cost["axes"]["style"]
    for name, values in cost["axes"].items():
        assert Decimal("0.40") == sum(Decimal(repr(value)) for value in values.values()), name
    assert [f"model {MODEL}: $0.20", f"model {OTHER_MODEL}: $0.20"] == starting(lines, "model ")[-2:]
    assert ["style: ink $0.10, oil $0.10, chalk $0.10, clay $0.10"] == starting(lines, "style:")


async def test_plan_of_a_resumed_folder_prices_only_the_new_jobs(
    cli: Cli, tmp_path: Path, emulator_server: EmulatorHandle
) -> None:
    """After a run capped at 10 images (exit 6, 10 made), `plan --out` prices the 30 new images only ($0.30), shows
    the 10 images / $0.10 committed and the folder's total ($0.40), and how many new jobs the caps admit."""
    path, out = manifest(tmp_path), tmp_path / "out"
    first = await cli("run", path, "--out", out, "--max-images", "10", *FAST, env=Cli.env(emulator_server))
    assert 6 == first.returncode, lines_of(first)
    assert 10 == made(emulator_server)

    cost = await plan_json(cli, path, "--out", out)
    capped = await plan_json(cli, path, "--out", out, "--max-images", "25")
    by_money = await plan_json(cli, path, "--out", out, "--max-usd", "0.30")
    lines = await plan_text(cli, path, "--out", out, "--max-images", "25")

    assert (30, 30, 0.30, 0.40) == (cost["jobs"], cost["images"], cost["to_spend"], cost["total"])
    committed = cost["committed"]
    assert (10, 0.10) == (committed["images"], committed["cost"])
    assert (10, 0) == (committed["spent"]["images"], committed["unknown"]["images"])
    assert cost["budget"] is None
    assert {"max_usd": None, "max_images": 25, "jobs_within": 15} == capped["budget"]
    assert {"max_usd": 0.30, "max_images": None, "jobs_within": 20} == by_money["budget"]
    payg = "pay as you go: $0.01 per image (leap-docs, 2023-07)"
    assert [f"cost: about $0.30 for 30 new images; an estimate at {payg}"] == starting(lines, "cost:")
    [already] = starting(lines, "already committed")
    assert already.startswith(f"already committed in {out}: $0.10 (10 images: 10 made"), already
    assert already.endswith("total $0.40"), already
    assert ["budget: at most 25 images: the run stops after 15 of 30 new jobs"] == starting(lines, "budget:")


# -- consent --------------------------------------------------------------------------------------------------------


async def test_confirm_cost_below_the_estimate_refuses_before_any_create(
    cli: Cli, tmp_path: Path, emulator_server: EmulatorHandle
) -> None:
    """`--confirm-cost 0.39` for a $0.40 plan: exit 2, one `error:` line and a hint naming the figure to confirm,
    and the server made no image; `--confirm-cost 0.40` (the plan's figure) runs every job."""
    path, out = manifest(tmp_path), tmp_path / "out"
    env = Cli.env(emulator_server)

    refused = await cli("run", path, "--out", out, "--confirm-cost", "0.39", *FAST, env=env)

    lines = lines_of(refused)
    assert 2 == refused.returncode, lines
    [error] = starting(lines, "error:")
    assert "the plan costs about $0.40, more than the $0.39 confirmed" in error, error
    assert "nothing was created" in error, error
    [hint] = starting(lines, "hint:")
    assert hint.endswith("then confirm its figure: --confirm-cost 0.40"), hint
    assert "Traceback" not in refused.stderr.decode()
    assert 0 == made(emulator_server)
    ran = await cli("run", path, "--out", out, "--confirm-cost", "0.40", *FAST, env=env)
    assert 0 == ran.returncode, lines_of(ran)
    assert 40 == made(emulator_server)


async def test_the_figure_plan_shows_is_the_one_confirm_cost_takes(
    cli: Cli, tmp_path: Path, emulator_server: EmulatorHandle
) -> None:
    """A total past the shown digits ($0.31245 for one image): `plan` shows $0.3125 (half up), the refusal of
    `--confirm-cost 0.3124` names that figure in its line and its hint, and `--confirm-cost 0.3125` runs."""
    path, out = manifest(tmp_path, jobs=1), tmp_path / "out"
    env = Cli.env(emulator_server)

    lines = await plan_text(cli, path, "--price", "0.31245")
    refused = await cli("run", path, "--out", out, "--price", "0.31245", "--confirm-cost", "0.3124", *FAST, env=env)

    assert starting(lines, "cost:")[0].startswith("cost: about $0.3125 for 1 image"), lines
    assert 2 == refused.returncode, lines_of(refused)
    [error] = starting(lines_of(refused), "error:")
    assert "the plan costs about $0.3125, more than the $0.3124 confirmed" in error, error
    [hint] = starting(lines_of(refused), "hint:")
    assert hint.endswith("then confirm its figure: --confirm-cost 0.3125"), hint
    assert 0 == made(emulator_server)
    ran = await cli("run", path, "--out", out, "--price", "0.31245", "--confirm-cost", "0.3125", *FAST, env=env)
    assert (0, 1) == (ran.returncode, made(emulator_server)), lines_of(ran)


async def test_confirm_cost_binds_the_folders_total_not_only_what_is_left(
    cli: Cli, tmp_path: Path, emulator_server: EmulatorHandle
) -> None:
    """A folder that committed $0.10 of a $0.40 plan: `--confirm-cost 0.35` covers the $0.30 left but not the total
    (exit 2, nothing more made); `--confirm-cost 0.50`, above the total, runs the 30 jobs left."""
    path, out = manifest(tmp_path), tmp_path / "out"
    env = Cli.env(emulator_server)
    first = await cli("run", path, "--out", out, "--max-images", "10", *FAST, env=env)
    assert (6, 10) == (first.returncode, made(emulator_server)), lines_of(first)

    refused = await cli("run", path, "--out", out, "--confirm-cost", "0.35", *FAST, env=env)

    assert 2 == refused.returncode, lines_of(refused)
    assert 10 == made(emulator_server)
    ran = await cli("run", path, "--out", out, "--confirm-cost", "0.50", *FAST, env=env)
    assert (0, 40) == (ran.returncode, made(emulator_server)), lines_of(ran)


async def test_above_confirm_above_a_run_needs_consent_and_a_resume_of_the_same_plan_asks_nothing(
    cli: Cli, tmp_path: Path, emulator_server: EmulatorHandle
) -> None:
    """`confirm_above: 0.05` and a $0.40 plan, stdin no terminal: no flag refuses (exit 2, no image made); `--yes`
    runs and records its consent (the total and the jobs); a resume of the same plan runs with no flag; the plan
    grown to 50 jobs refuses, with no flag and with the `--confirm-cost` that fitted the 40, nothing more made."""
    extra = "budget: {confirm_above: 0.05}\n"
    path, out = manifest(tmp_path, extra=extra), tmp_path / "out"
    env = Cli.env(emulator_server)

    refused = await cli("run", path, "--out", out, *FAST, env=env)

    lines = lines_of(refused)
    assert 2 == refused.returncode, lines
    [error] = starting(lines, "error:")
    assert "this run creates 40 images, about $0.40 at pay as you go" in error, error
    assert "over budget.confirm_above ($0.05)" in error, error
    [hint] = starting(lines, "hint:")
    assert hint.startswith("hint: pass --yes, or --confirm-cost 0.40 to bind it"), hint
    assert QUESTION not in refused.stderr.decode()
    assert (0, 0) == (made(emulator_server), emulator_server.stats()["jobs"]["created"])
    capped = await cli("run", path, "--out", out, "--yes", "--max-images", "10", *FAST, env=env)
    assert (6, 10) == (capped.returncode, made(emulator_server)), lines_of(capped)
    consent = read_ledger(out).consent
    assert consent is not None
    assert (0.40, 40, 40) == (consent.total, consent.jobs, consent.images)
    grown = manifest(tmp_path, jobs=50, extra=extra, name="grown.yaml")
    for flags in ([], ["--confirm-cost", "0.40"]):
        again = await cli("run", grown, "--out", out, *flags, *FAST, env=env)
        assert 2 == again.returncode, (flags, lines_of(again))
        assert 1 == len(starting(lines_of(again), "error:")), lines_of(again)
    assert 10 == made(emulator_server)
    resumed = await cli("run", path, "--out", out, *FAST, env=env)
    assert 0 == resumed.returncode, lines_of(resumed)
    assert QUESTION not in resumed.stderr.decode()
    assert 40 == made(emulator_server)


async def test_a_consent_covers_only_the_jobs_it_was_given_for(
    cli: Cli, tmp_path: Path, emulator_server: EmulatorHandle
) -> None:
    """A consent of `--confirm-cost 1.00` for 40 jobs: the plan grown to 50 jobs ($0.50, within the $1.00) still
    refuses with no flag (its job set grew), nothing more made; the same 40 jobs resume with no flag."""
    extra = "budget: {confirm_above: 0.05}\n"
    path, out = manifest(tmp_path, extra=extra), tmp_path / "out"
    env = Cli.env(emulator_server)
    first = await cli("run", path, "--out", out, "--confirm-cost", "1.00", "--max-images", "10", *FAST, env=env)
    assert (6, 10) == (first.returncode, made(emulator_server)), lines_of(first)

    grown = await cli("run", manifest(tmp_path, jobs=50, extra=extra, name="grown.yaml"), "--out", out, *FAST, env=env)

    assert 2 == grown.returncode, lines_of(grown)
    [error] = starting(lines_of(grown), "error:")
    assert "grew past what was confirmed" in error, error
    assert 10 == made(emulator_server)
    resumed = await cli("run", path, "--out", out, *FAST, env=env)
    assert (0, 40) == (resumed.returncode, made(emulator_server)), lines_of(resumed)


def on_terminal(args: Sequence[str | os.PathLike[str]], env: dict[str, str], answer: bytes) -> tuple[int, str]:
    """Run the CLI with stdin and stderr on a pseudo-terminal, type `answer` once it asks `Continue? [y/N]`, and
    return its exit code and what the terminal showed (blocking: run it in a thread)."""
    controller, terminal = os.openpty()
    with os.fdopen(controller, "rb", buffering=0) as screen:
        process = subprocess.Popen(
            [sys.executable, "-m", "leapbatch", *map(str, args)],
            stdin=terminal,
            stdout=subprocess.DEVNULL,
            stderr=terminal,
            env=env,
        )
        os.close(terminal)
        shown, asked, deadline = b"", False, time.monotonic() + 60
        while time.monotonic() < deadline:
            ready, _, _ = select.select([screen], [], [], 1.0)
            if not ready:
                continue
            try:
                chunk = os.read(controller, 4096)
            except OSError:  # EIO: the last holder of the terminal closed it
                break
            if not chunk:
                break
            shown += chunk
            if not asked and QUESTION.encode() in shown:
                os.write(controller, answer)
                asked = True
        else:
            process.kill()
        return process.wait(timeout=60), shown.decode(errors="replace")


@pytest.mark.parametrize(("answer", "code", "images"), [(b"n\n", 2, 0), (b"y\n", 0, 40)])
async def test_on_a_terminal_a_costly_run_asks_and_only_yes_runs_it(
    tmp_path: Path, emulator_server: EmulatorHandle, answer: bytes, code: int, images: int
) -> None:
    """stdin and stderr on a terminal, above `confirm_above`: the run asks `This run creates 40 images, about $0.40
    at <price>. Continue? [y/N]`; `n` ends it with exit 2 and no image made, `y` runs every job."""
    path = manifest(tmp_path, extra="budget: {confirm_above: 0.05}\n")
    args: list[str | os.PathLike[str]] = ["run", path, "--out", tmp_path / "out", *FAST]

    returncode, shown = await trio.to_thread.run_sync(on_terminal, args, Cli.env(emulator_server), answer)

    assert code == returncode, shown
    assert "This run creates 40 images, about $0.40 at pay as you go: $0.01 per image" in shown, shown
    assert QUESTION in shown
    assert images == made(emulator_server)


async def test_a_local_run_asks_nothing_and_says_the_emulator_bills_nothing(cli: Cli, tmp_path: Path) -> None:
    """`run --local` above `confirm_above`, with no flag and no terminal: it runs (exit 0), with a cost line that
    says the emulator bills nothing, and records no consent."""
    out = tmp_path / "out"
    path = manifest(tmp_path, extra="budget: {confirm_above: 0.05}\n")

    done = await cli("run", "--local", path, "--out", out, *FAST, env=Cli.env())

    lines = lines_of(done)
    assert 0 == done.returncode, lines
    [cost] = starting(lines, "cost:")
    assert cost.startswith("cost: about $0.40 for 40 images; an estimate at pay as you go"), cost
    assert cost.endswith("(the emulator bills nothing)"), cost
    assert QUESTION not in done.stderr.decode()
    assert read_ledger(out).consent is None


# -- status ---------------------------------------------------------------------------------------------------------


async def test_status_shows_spent_committed_and_what_the_last_runs_caps_leave(
    cli: Cli, tmp_path: Path, emulator_server: EmulatorHandle
) -> None:
    """After a run capped at $0.25 and 20 images (20 made): `status --json`'s `spend` has 20 images / $0.20 spent
    and committed, none unknown, $0.05 and 0 images remaining; `status` says the same in two lines."""
    path, out = manifest(tmp_path), tmp_path / "out"
    caps = ["--max-usd", "0.25", "--max-images", "20"]
    run = await cli("run", path, "--out", out, *caps, *FAST, env=Cli.env(emulator_server))
    assert (6, 20) == (run.returncode, made(emulator_server)), lines_of(run)

    as_json = await cli("status", out, "--json", env=Cli.env())
    as_text = await cli("status", out, env=Cli.env())

    assert (0, 0) == (as_json.returncode, as_text.returncode), lines_of(as_json) + lines_of(as_text)
    spend = json.loads(as_json.stdout)["spend"]
    assert (20, 0.20) == (spend["images"], spend["cost"])
    assert {"images": 20, "cost": 0.20} == spend["spent"]
    assert {"images": 0, "cost": 0.0} == spend["unknown"]
    assert {"max_usd": 0.25, "max_images": 20, "remaining_usd": 0.05, "remaining_images": 0} == spend["budget"]
    assert "payg" == spend["price"]["preset"]
    lines = as_text.stdout.decode().splitlines()
    [spent] = starting(lines, "spend:")
    assert spent.startswith("spend: $0.20 spent (20 images made), $0.20 committed (with 0 images"), spent
    assert ["budget: $0.05 of $0.25 and 0 of 20 images remaining (the last run's caps)"] == starting(lines, "budget:")
