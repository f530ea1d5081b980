"""The gallery page in real headless Chromium, opened from file://: grid pivots, empty cells that say why, filters,
full screen, compare, URL state, live refresh, hostile prompts shown as text, and nothing fetched from anywhere."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from gallery_support import copy_gallery, read_data, synthetic, write_data

from leapbatch.cli._dataset import folder_catalog
from leapbatch.folder.ledger import read_ledger
from leapbatch.folder.results import REQUEST_NAMES
from leapbatch.manifest import parse_manifest
from leapbatch.manifest.expand import expand
from leapbatch.view.absence import why_empty

if TYPE_CHECKING:
    from playwright.sync_api import Browser, ConsoleMessage, Page, Request

Shoot = Callable[["Page", str], None]
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Watch:
    """What a page asked for and said while a test used it."""

    requests: list[str] = field(default_factory=list)
    console: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def watch(page: Page) -> Watch:
    """Record every request, console message and uncaught error of `page`."""
    seen = Watch()

    def on_console(message: ConsoleMessage) -> None:
        seen.console.append(f"{message.type}: {message.text}")

    def on_request(request: Request) -> None:
        seen.requests.append(request.url)

    page.on("request", on_request)
    page.on("console", on_console)
    page.on("pageerror", lambda error: seen.errors.append(str(error)))
    return seen


def visit(page: Page, index: Path, hash: str = "") -> None:
    """Open the gallery at `index` (with `hash`) and wait until its script has drawn the page."""
    again = page.url.split("#")[0] == index.as_uri()
    page.goto(index.as_uri() + hash)
    if again:  # only the hash changed: no new document yet, so load one (as a person pasting a link does)
        page.reload()
    page.wait_for_selector("html[data-ready]")


def until(page: Page, expression: str, seconds: float = 10) -> None:
    """Wait until `expression` is true in the page, asking from outside it (the page's CSP forbids the eval that
    Playwright's in-page polling of wait_for_function uses)."""
    deadline = time.monotonic() + seconds
    while not page.evaluate(expression):
        assert time.monotonic() < deadline, f"still false after {seconds} s: {expression}"
        page.wait_for_timeout(50)


def cells(page: Page) -> list[dict[str, Any]]:
    """Return the grid's cells in the DOM: their axis labels, image count and what an empty one says."""
    found: list[dict[str, Any]] = page.eval_on_selector_all(
        ".cell",
        """cells => cells.map(c => ({x: c.dataset.x, y: c.dataset.y, x2: c.dataset.x2, y2: c.dataset.y2,
            count: Number(c.dataset.count), why: c.querySelector('.why')?.textContent ?? null}))""",
    )
    return found


def cell(page: Page, **labels: str) -> dict[str, Any]:
    """Return the one cell with these axis labels."""
    matching = [c for c in cells(page) if all(c[axis] == label for axis, label in labels.items())]
    assert 1 == len(matching), labels
    return matching[0]


def texts(page: Page, selector: str) -> list[str]:
    """Return the text of each element matching `selector`."""
    return [str(t) for t in page.eval_on_selector_all(selector, "es => es.map(e => e.textContent)")]


def facet_counts(page: Page, name: str) -> dict[str, int]:
    """Return the filter view's counts of variable `name`, by value."""
    pairs = page.eval_on_selector_all(
        f'.facet[data-facet="{name}"]',
        "bs => bs.map(b => [b.dataset.value, Number(b.querySelector('.count').textContent)])",
    )
    return {str(k): int(v) for k, v in pairs}


@pytest.fixture
def watched(page: Page) -> Iterator[Watch]:
    """Return the page's record; when the test ends, no request left for a non-file URL and no error was said."""
    seen = watch(page)
    yield seen
    assert [] == [url for url in seen.requests if not url.startswith("file://")]
    assert [] == seen.errors
    assert [] == [line for line in seen.console if line.startswith("error")]


def test_the_grid_shows_each_pair_of_values_and_pivots_on_any_axes(
    page: Page, example: Path, watched: Watch, screenshots: Shoot
) -> None:
    """X animal, Y style by default; swapping moves every cell; place on X with style fixed shows its slice."""
    visit(page, example)
    assert ["cat", "fox", "owl", "red panda"] == texts(page, ".xlabel")
    assert ["watercolor", "ink"] == texts(page, ".rowhead")
    assert 8 == len(cells(page))
    expected = {("cat", "watercolor"): 2, ("cat", "ink"): 3, ("fox", "watercolor"): 2, ("fox", "ink"): 2}
    expected |= {("owl", "watercolor"): 1, ("owl", "ink"): 1, ("red panda", "watercolor"): 1, ("red panda", "ink"): 0}
    assert expected == {(c["x"], c["y"]): c["count"] for c in cells(page)}
    screenshots(page, "grid-animal-style")

    page.click("#swap")
    assert ["watercolor", "ink"] == texts(page, ".xlabel")
    assert ["cat", "fox", "owl", "red panda"] == texts(page, ".rowhead")
    assert expected == {(c["y"], c["x"]): c["count"] for c in cells(page)}

    page.select_option("#axis-x", "place")
    page.select_option("#axis-y", "animal")
    page.select_option('select[data-fix="style"]', "ink")
    assert ["forest", "city", "bamboo forest", "library"] == texts(page, ".xlabel")
    counts = {(c["x"], c["y"]): c["count"] for c in cells(page)}
    assert 6 == sum(counts.values())
    assert 1 == counts[("library", "cat")]
    assert 0 == counts[("city", "owl")]
    assert "6 images" in (page.text_content(".summary") or "")
    screenshots(page, "grid-place-animal-ink")


def test_every_empty_cell_says_why_as_leapbatch_does(
    page: Page, example: Path, watched: Watch, screenshots: Shoot
) -> None:
    """owl in the city names the exclude entry; every empty cell of a 4-axis pivot says what `why_empty` says."""
    out = example.parent.parent
    shown = folder_catalog(out, read_ledger(out))
    visit(page, example, "#v=grid&x=place&y=animal&x2=style")
    assert "excluded by exclude entry 1 (animal: owl, place: city)" == why_empty(
        shown, {"animal": "owl", "place": "city"}
    )
    owl = cell(page, x="city", y="owl", x2="ink")
    assert (0, "excluded by exclude entry 1 (animal: owl, place: city)") == (owl["count"], owl["why"])
    names = [v.name for v in shown.variables]
    empty = [c for c in cells(page) if c["count"] == 0]
    assert 20 == len(empty)
    for c in empty:
        asked = {"place": c["x"], "animal": c["y"], "style": c["x2"]}
        ordered = {name: asked[name] for name in names if name in asked}
        assert why_empty(shown, ordered) == c["why"], c
    screenshots(page, "grid-empty-cells-say-why")


def test_a_cell_whose_job_has_no_images_yet_says_its_status_and_reason(
    page: Page, example: Path, tmp_path: Path
) -> None:
    """A failed job's cell shows its status and the reason from the data, not an absence reason."""
    gallery = copy_gallery(example.parent, tmp_path / "gallery")
    synthetic_doc = read_data(gallery)
    jobs = synthetic_doc["jobs"]
    first = jobs["vars"].index([0, 0, 0, -1])  # cat, watercolor, forest
    jobs["images"][first] = []
    jobs["status"][first] = synthetic_doc["statuses"].index("failed")
    jobs["reason"][first] = "failed at download: the image host said 404"
    write_data(gallery, synthetic_doc)
    visit(page, gallery / "index.html", "#v=grid&x=animal&y=place&t.style=watercolor")
    failed = cell(page, x="cat", y="forest")
    assert (0, "failed: failed at download: the image host said 404") == (failed["count"], failed["why"])


def test_facets_count_values_and_search_finds_prompts(
    page: Page, example: Path, watched: Watch, screenshots: Shoot
) -> None:
    """Each value's count is of the jobs the other filters keep; a click filters; words search the prompts."""
    visit(page, example, "#v=filter")
    assert {"cat": 5, "fox": 4, "owl": 2, "red panda": 1} == facet_counts(page, "animal")
    assert {"forest": 6, "city": 4, "bamboo forest": 1, "library": 1} == facet_counts(page, "place")
    assert 12 == page.locator(".tile").count()
    page.click('.facet[data-facet="animal"][data-value="cat"]')
    assert 5 == page.locator(".tile").count()
    assert {"watercolor": 2, "ink": 3} == facet_counts(page, "style")
    assert {"cat": 5, "fox": 4, "owl": 2, "red panda": 1} == facet_counts(page, "animal")
    screenshots(page, "filter-cat")
    page.click('.facet[data-facet="animal"][data-value="cat"]')
    page.fill("#search", "ink fox")
    until(page, "document.querySelectorAll('.tile').length === 2")
    assert all("ink" in t and "fox" in t for t in texts(page, ".tile .caption"))
    page.fill("#search", "LIBRARY")
    until(page, "document.querySelectorAll('.tile').length === 1")
    assert "1 job · 1 image" == page.text_content("#result-count")
    screenshots(page, "filter-search")


def test_full_screen_shows_the_original_and_moves_with_the_arrow_keys(
    page: Page, example: Path, watched: Watch, screenshots: Shoot
) -> None:
    """A click opens the full image (the folder's file, not the thumbnail); → and ← move in grid order; Esc closes."""
    document = read_data(example.parent)
    path_of = {
        key: images[0][1] for key, images in zip(document["jobs"]["key"], document["jobs"]["images"], strict=True)
    }
    visit(page, example)
    first = page.get_attribute(".cell .thumb", "data-id") or ""
    second = page.eval_on_selector_all(".cell .thumb", "ts => ts[1].dataset.id")
    page.click(".cell .thumb .open")
    until(page, "document.getElementById('full').complete && document.getElementById('full').naturalWidth > 0")
    assert (page.get_attribute("#full", "src") or "").endswith(path_of[first.split(":")[0]])
    assert 512 == page.eval_on_selector("#full", "i => i.naturalWidth")
    assert first.split(":")[0] == page.text_content("#info-key")
    screenshots(page, "full-screen")
    page.keyboard.press("ArrowRight")
    assert (page.get_attribute("#full", "src") or "").endswith(path_of[second.split(":")[0]])
    assert f"img={second.replace(':', '%3A')}" in page.url
    page.keyboard.press("ArrowLeft")
    assert (page.get_attribute("#full", "src") or "").endswith(path_of[first.split(":")[0]])
    page.keyboard.press("Escape")
    assert page.is_hidden("#viewer")
    assert "img=" not in page.url


def test_the_include_entry_reruns_the_job(page: Page, example: Path, watched: Watch) -> None:
    """The full screen's include entry, appended to the manifest, is the same job (its key), no new one."""
    document = read_data(example.parent)
    keys = document["jobs"]["key"]
    manifest_path = ROOT / "manifests" / "example.yaml"
    text = manifest_path.read_text(encoding="utf-8")
    for key in (keys[0], keys[-1]):  # a matrix job, and the include entry that sets seed 42
        visit(page, example, f"#v=grid&img={key}%3A0")
        entry = page.text_content("#include-entry") or ""
        j = keys.index(key)
        names = [v["name"] for v in document["variables"]]
        labels = {
            names[k]: document["variables"][k]["values"][i] for k, i in enumerate(document["jobs"]["vars"][j]) if i >= 0
        }
        typed = {n: json.loads(label) if n in REQUEST_NAMES else label for n, label in labels.items()}
        assert json.dumps({**typed, "seed": document["jobs"]["seed"][j]}, ensure_ascii=False) == entry
        again = expand(parse_manifest(text.rstrip("\n") + f"\n  - {entry}\n", source_path=manifest_path))
        assert keys == [job.key for job in again.jobs]
        assert 1 == again.duplicates - expand(parse_manifest(text, source_path=manifest_path)).duplicates
    page.click("#copy-entry")
    page.wait_for_selector("#copy-result p")
    if page.locator("#include-fallback").count() == 0:
        assert "copied" == page.text_content("#copy-result")
    page.evaluate("Object.defineProperty(navigator, 'clipboard', {value: undefined})")
    page.click("#copy-entry")  # no clipboard: the entry is shown, selected, to copy by hand
    assert entry == page.input_value("#include-fallback")


def test_compare_shows_two_to_four_picks_side_by_side_or_one_by_one(
    page: Page, example: Path, watched: Watch, screenshots: Shoot
) -> None:
    """Picks from the grid (and `c` in full screen) compare side by side; 1-4 and space flick between them."""
    visit(page, example)
    assert page.is_disabled("#compare-button")
    ids = page.eval_on_selector_all(".cell .thumb", "ts => ts.map(t => t.dataset.id)")
    for n in (0, 2):
        page.hover(f'.thumb[data-id="{ids[n]}"]')
        page.click(f'.thumb[data-id="{ids[n]}"] .pick')
    page.click(f'.thumb[data-id="{ids[4]}"] .open')
    page.keyboard.press("c")
    page.keyboard.press("Escape")
    assert "Compare (3)" == page.text_content("#compare-button")
    page.click("#compare-button")
    shown = page.eval_on_selector_all("#compare img", "is => is.map(i => i.dataset.id)")
    assert [ids[0], ids[2], ids[4]] == shown
    until(page, "[...document.querySelectorAll('#compare img')].every(i => i.complete && i.naturalWidth)")
    screenshots(page, "compare-side-by-side")
    page.keyboard.press("2")
    assert [ids[2]] == page.eval_on_selector_all("#compare img", "is => is.map(i => i.dataset.id)")
    page.keyboard.press(" ")
    assert [ids[4]] == page.eval_on_selector_all("#compare img", "is => is.map(i => i.dataset.id)")
    screenshots(page, "compare-flick")
    page.keyboard.press("Escape")
    assert 0 == page.locator("#compare").count()
    assert 8 == len(cells(page))


def test_the_view_lives_in_the_url(page: Page, browser: Browser, example: Path, watched: Watch) -> None:
    """Axes, a fixed value, picks and the full-screen image set by hand come back from the URL in a new page."""
    visit(page, example)
    page.select_option("#axis-x", "place")
    page.select_option("#axis-x2", "style")
    page.select_option('select[data-fix="seed"]', "42")
    page.click(".cell .thumb .pick")
    page.click(".cell .thumb .open")
    url = page.url
    before = (cells(page), page.text_content("#info-key"))
    other = browser.new_page(viewport={"width": 1400, "height": 900})
    try:
        other.goto(url)
        other.wait_for_selector("html[data-ready]")
        assert "place" == other.input_value("#axis-x")
        assert "style" == other.input_value("#axis-x2")
        assert "42" == other.input_value('select[data-fix="seed"]')
        assert before == (cells(other), other.text_content("#info-key"))
        assert other.is_visible("#viewer")
        assert "Compare (1)" == other.text_content("#compare-button")
        assert url == other.url
    finally:
        other.close()


def test_a_new_data_js_is_picked_up_live_keeping_the_view(page: Page, example: Path, tmp_path: Path) -> None:
    """A data.js rewritten with a new revision (as `run --gallery` does) shows within seconds, axes kept."""
    gallery = copy_gallery(example.parent, tmp_path / "gallery")
    document = read_data(gallery)
    visit(page, gallery / "index.html", "#v=grid&x=place&y=animal")
    assert 0 == cell(page, x="library", y="fox")["count"]
    jobs = document["jobs"]
    fox = jobs["vars"].index([1, 0, 0, -1])
    jobs["vars"][fox] = [1, 0, 3, -1]  # the fox in the forest moves to the library
    document["revision"] = "0123456789abcdef"
    document["name"] = "example, later"
    write_data(gallery, document)
    page.wait_for_selector('html[data-revision="0123456789abcdef"]', timeout=10_000)
    assert "example, later" == page.text_content("h1")
    assert "place" == page.input_value("#axis-x")
    assert 1 == cell(page, x="library", y="fox")["count"]
    assert page.locator("script[src^='data.js?r=']").count() <= 1


def test_markup_in_prompts_and_names_is_shown_as_text_and_never_runs(
    page: Page, hostile: Path, screenshots: Shoot
) -> None:
    """`<img onerror>` and `</script>` in prompts are text in every view; nothing runs, nothing was even tried."""
    seen = watch(page)
    visit(page, hostile, "#v=filter")
    captions = texts(page, ".tile .caption")
    assert '<img src=x onerror="window.__pwned=1">' in captions
    assert "</script><script>window.__pwned=1</script>" in captions
    assert "hostile" == page.text_content("h1")
    screenshots(page, "hostile-filter")
    page.fill("#search", "onerror")
    until(page, "document.querySelectorAll('.tile').length === 1")
    page.click(".tile .open")
    assert '<img src=x onerror="window.__pwned=1"> & more' == page.text_content("#info-prompt")
    page.keyboard.press("Escape")
    visit(page, hostile, "#v=grid&x=thing")
    assert 3 == len(cells(page))
    screenshots(page, "hostile-grid")
    assert page.evaluate("window.__pwned") is None
    assert 0 == page.locator("img[src='x'], #content script, b").count()
    assert [] == seen.errors
    assert [] == [line for line in seen.console if "Content Security Policy" in line or line.startswith("error")]
    assert [] == [url for url in seen.requests if not url.startswith("file://")]


def test_a_large_set_keeps_only_visible_rows_in_the_dom(
    page: Page, example: Path, tmp_path: Path, screenshots: Shoot
) -> None:
    """20,000 jobs: a grid of 200 rows and a list of 20,000 tiles put only the rows near the viewport in the DOM."""
    index = synthetic(example.parent.parent, tmp_path / "big", 20_000)
    started = time.monotonic()
    visit(page, index, "#v=grid&x=subject&y=seed")
    assert time.monotonic() - started < 10
    rows = page.locator(".row").count()
    assert 0 < rows < 30
    assert "cells · 20,000 jobs · 20,000 images" in (page.text_content(".summary") or "")
    page.eval_on_selector("#main", "m => { m.scrollTop = m.scrollHeight / 2; }")
    until(page, "[...document.querySelectorAll('.rowhead')].some(h => h.textContent === '100')")
    assert page.locator(".row").count() < 30
    screenshots(page, "large-grid-scrolled")
    visit(page, index, "#v=filter")
    assert 0 < page.locator(".tile").count() < 300
    assert "20,000 jobs · 20,000 images" == page.text_content("#result-count")
    screenshots(page, "large-filter")
