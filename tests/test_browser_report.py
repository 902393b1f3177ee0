"""The HTML reports in a real headless Chromium: they render, every image loads, no errors."""

from __future__ import annotations

import io
import shutil

import numpy as np
import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(shutil.which("chromium") is None,
                                reason="Debian's chromium is not installed (.ci/run installs it)")
ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.mark.parametrize("page_path", ["report.html", "model_1/evaluation.html"])
def test_report_renders_with_all_images(page_path, lab_dir, browser, tmp_path):
    from PIL import Image

    page = browser.new_page(viewport={"width": 1100, "height": 900})
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto((lab_dir / page_path).as_uri())
    page.wait_for_load_state("load")
    images = page.eval_on_selector_all(
        "img", "els => els.map(e => [e.complete, e.naturalWidth, e.naturalHeight])")
    assert len(images) >= 3
    assert all(complete and w > 0 and h > 0 for complete, w, h in images), images
    assert errors == []
    assert all(u.startswith(("file:", "data:")) for u in requests), requests  # offline
    assert page.locator("h1").inner_text().strip()
    shot = page.screenshot(full_page=True)
    (tmp_path / "shot.png").write_bytes(shot)
    pixels = np.asarray(Image.open(io.BytesIO(shot)).convert("L"), dtype=float)
    assert pixels.std() > 10 and pixels.shape[0] > 900  # not blank, and it has content
    page.close()
