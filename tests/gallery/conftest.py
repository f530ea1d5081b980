"""Headless Chromium (Debian's, driven by Playwright) and gallery folders made once per session by the real CLI.

When Chromium or Playwright is missing the browser tests skip, unless `CI` is set: then they fail.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from gallery_support import CHROMIUM, CHROMIUM_ARGS, HOSTILE, ROOT, VIEWPORT, make_folder, shots_to

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page


def _missing(why: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{why}: the gallery's browser tests must run in CI (.ci/run installs chromium)")
    pytest.skip(why)


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """Return headless Debian Chromium in a fresh temporary profile (Playwright's launch)."""
    if not CHROMIUM.exists():
        _missing(f"{CHROMIUM} is missing")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("playwright is not installed")
        raise
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """Return a new page in its own context (no state shared between tests), 1400 x 900."""
    context = browser.new_context(viewport=VIEWPORT)  # type: ignore[arg-type]  # a TypedDict, given as a dict
    opened = context.new_page()
    yield opened
    context.close()


@pytest.fixture(scope="session")
def example(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Return the page of the Quick start example's gallery (12 jobs, made by `leapbatch run` and `gallery`)."""
    out = tmp_path_factory.mktemp("gallery-example") / "example"
    return make_folder(out, ROOT / "manifests" / "example.yaml")


@pytest.fixture(scope="session")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Return the page of a gallery whose prompts and name hold markup (HOSTILE)."""
    root = tmp_path_factory.mktemp("gallery-hostile")
    manifest = root / "hostile.yaml"
    manifest.write_text(HOSTILE, encoding="utf-8")
    return make_folder(root / "hostile", manifest)


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Callable[[Page, str], None]:
    """Return `shoot(page, name)`: a screenshot in the session's folder (and LEAPBATCH_SCREENSHOTS, if set)."""
    folder = tmp_path_factory.mktemp("screenshots")

    def shoot(page: Page, name: str) -> None:
        shots_to(name, page.screenshot(), folder)

    return shoot
