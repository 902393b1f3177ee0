"""The HTML reports in a real headless Chromium: they render, every image loads, no errors."""

from __future__ import annotations

import io
import shutil
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np
import pytest

CHROMIUM = "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else shutil.which("chromium")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium (/usr/bin/chromium) is not installed; "
                             "`apt-get install chromium` (.ci/run installs it)")
ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def visit(browser, path: Path) -> dict:
    """Open ``path`` in Chromium; what a reader would see: images, errors, requests, pixels."""
    from PIL import Image

    page = browser.new_page(viewport={"width": 1100, "height": 900})
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(path.as_uri())
    page.wait_for_load_state("load")
    seen = {
        "images": page.eval_on_selector_all(
            "img", "els => els.map(e => [e.complete, e.naturalWidth, e.naturalHeight])"),
        "errors": errors,
        "requests": requests,
        "h1": page.locator("h1").first.inner_text().strip() if page.locator("h1").count() else "",
        "table": page.locator("table").count() > 0 and page.locator("table").first.is_visible(),
        "links": page.eval_on_selector_all("a[href]", "els => els.map(e => e.href)"),
    }
    shot = page.screenshot(full_page=True)
    seen["pixels"] = np.asarray(Image.open(io.BytesIO(shot)).convert("L"), dtype=float)
    page.close()
    return seen


@pytest.mark.parametrize(("page_path", "n_images"), [
    ("report.html", 11), ("model_1/evaluation.html", 3), ("model_3/evaluation.html", 3)])
def test_report_renders_with_all_images(page_path, n_images, lab_dir, browser):
    seen = visit(browser, lab_dir / page_path)
    assert len(seen["images"]) == n_images
    assert all(complete and w > 0 and h > 0 for complete, w, h in seen["images"]), seen["images"]
    assert seen["errors"] == []
    assert all(u.startswith(("file:", "data:")) for u in seen["requests"]), seen["requests"]
    assert seen["h1"] and seen["table"]
    for link in seen["links"]:  # the lab report links each model's evaluation page
        assert link.startswith("file:") and Path(unquote(urlparse(link).path)).is_file(), link
    assert len(seen["links"]) == (3 if page_path == "report.html" else 0)
    pixels = seen["pixels"]
    assert pixels.std() > 10 and pixels.shape[0] > 900  # not blank, and it has content


def test_the_checks_see_broken_pages(browser, tmp_path):
    """The same checks catch a broken image, a console error and a blank page."""
    page = tmp_path / "broken.html"
    page.write_text('<!doctype html><html><body><img src="data:image/png;base64,AAAA">'
                    '<script>console.error("boom")</script></body></html>')
    seen = visit(browser, page)
    assert [w for _, w, _ in seen["images"]] == [0]
    assert "boom" in seen["errors"] and not seen["h1"] and not seen["table"]
    (tmp_path / "blank.html").write_text("<!doctype html><html><body></body></html>")
    assert visit(browser, tmp_path / "blank.html")["pixels"].std() < 1
