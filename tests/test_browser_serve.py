"""The draw-a-digit page in a real browser: Debian's Chromium driven by Playwright.

A person's drawing is imitated with mouse strokes traced from real t10k digits; the page
must then show the right digit, the ten probability bars and the 28×28 preview. Skipped
only when /usr/bin/chromium is absent (CI installs it).
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mlplab.benchmarks import ServerProcess
from servehelp import png_bytes, served_run
from strokes import digit_strokes

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium")
ARGS = ["--headless", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    run = served_run(tmp_path_factory.mktemp("browser-runs"))
    with ServerProcess(run) as s:
        yield s


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    args = ARGS + (["--no-sandbox"] if os.geteuid() == 0 else [])
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=args)
        yield b
        b.close()


@pytest.fixture
def page(browser, server):
    context = browser.new_context(viewport={"width": 900, "height": 700})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error"
            and "Failed to load resource" not in m.text else None)  # 4xx the test asked for
    page.goto(server.url + "/")
    page.wait_for_function("document.querySelector('#model strong')")
    yield page
    context.close()
    assert not errors, errors


def predictions(page) -> int:
    return int(page.evaluate("Number(document.body.dataset.predictions || 0)"))


def wait_for_answer(page, before: int) -> None:
    page.wait_for_function(
        f"Number(document.body.dataset.predictions || 0) > {before} && "
        "document.body.dataset.state === 'idle'")


def draw(page, digit: np.ndarray) -> int:
    """Draw ``digit``'s strokes with the mouse on the pad; return the prediction count."""
    before = predictions(page)
    box = page.locator("#pad").bounding_box()
    for stroke in digit_strokes(digit, box["width"]):
        x0, y0 = stroke[0]
        page.mouse.move(box["x"] + x0, box["y"] + y0)
        page.mouse.down()
        for x, y in stroke[1:]:
            page.mouse.move(box["x"] + x, box["y"] + y, steps=2)
        page.mouse.up()
    wait_for_answer(page, before)
    return before


def bar_widths(page) -> list[float]:
    return page.eval_on_selector_all(
        "#bars .fill", "els => els.map(e => e.getBoundingClientRect().width)")


def preview_ink(page) -> float:
    return page.evaluate("""() => {
        const d = document.getElementById('seen').getContext('2d').getImageData(0, 0, 28, 28).data;
        let s = 0; for (let i = 0; i < d.length; i += 4) s += d[i]; return s / 255; }""")


def assert_screenshot_shows_a_page(path: Path) -> None:
    image = np.asarray(Image.open(path).convert("L"), dtype=np.float32)
    assert image.std() > 20  # not one flat colour
    assert len(np.unique(image)) > 30


def test_draw_digits_see_prediction_bars_and_preview(page, sample, tmp_path):
    model_line = page.locator("#model").inner_text()
    assert "served" in model_line and "parameters" in model_line and "test accuracy" in model_line

    # A 7 (t10k #0), one stroke.
    draw(page, sample.x_test[0])
    assert page.locator("#digit").inner_text() == str(sample.y_test[0]) == "7"
    widths = bar_widths(page)
    assert len(widths) == 10 and int(np.argmax(widths)) == 7 and widths[7] > 0
    assert preview_ink(page) > 20

    page.click("#clear")
    page.wait_for_function("document.getElementById('digit').textContent === '–'")
    assert max(bar_widths(page)) == 0 and preview_ink(page) == 0

    # A 4 (t10k #19) in two strokes; then the screenshot of the whole page.
    assert sample.y_test[19] == 4
    draw(page, sample.x_test[19])
    assert page.locator("#digit").inner_text() == "4"
    widths = bar_widths(page)
    assert int(np.argmax(widths)) == 4 and widths[4] > 0.5 * page.locator(
        "#bars .track").first.bounding_box()["width"]
    assert "%" in page.locator("#confidence").inner_text()
    shot = tmp_path / "draw-a-digit.png"
    page.screenshot(path=str(shot), full_page=True)
    assert_screenshot_shows_a_page(shot)
    print(f"screenshot: {shot}")

    # Undo takes the last stroke away and predicts again; Clear empties everything.
    before = predictions(page)
    page.click("#undo")
    wait_for_answer(page, before)
    assert page.locator("#undo").is_enabled()  # one stroke left
    page.click("#undo")
    page.wait_for_function("document.getElementById('digit').textContent === '–'")
    assert page.locator("#undo").is_disabled() and page.locator("#clear").is_disabled()


def test_upload_an_image_file(page, sample, tmp_path):
    # A photo-like upload: dark ink on light paper, 8× bigger than MNIST.
    digit = sample.x_test[23]
    assert sample.y_test[23] == 5
    path = tmp_path / "five.png"
    path.write_bytes(png_bytes(255 - np.kron(digit, np.ones((8, 8), np.uint8))))
    before = predictions(page)
    page.set_input_files("#file", str(path))
    wait_for_answer(page, before)
    assert page.locator("#digit").inner_text() == "5"
    assert preview_ink(page) > 20

    # Not an image: the server's one-line message appears, and the page keeps working.
    bad = tmp_path / "notes.png"
    bad.write_text("these are my notes")
    before = page.evaluate("Number(document.body.dataset.predictions || 0)")
    page.set_input_files("#file", str(bad))
    page.wait_for_function("document.getElementById('status').classList.contains('error')")
    assert "not an image" in page.locator("#status").inner_text()
    page.click("#clear")
    draw(page, sample.x_test[0])
    assert page.locator("#digit").inner_text() == "7"


def test_phone_width(browser, server, sample, tmp_path):
    context = browser.new_context(viewport={"width": 375, "height": 740}, has_touch=True,
                                  is_mobile=True, device_scale_factor=2)
    page = context.new_page()
    page.goto(server.url + "/")
    page.wait_for_function("document.querySelector('#model strong')")
    draw(page, sample.x_test[0])  # mouse events still reach a touch-enabled page
    assert page.locator("#digit").inner_text() == "7"
    assert page.evaluate("document.documentElement.scrollWidth") <= 375  # no sideways scroll
    pad = page.locator("#pad").bounding_box()
    assert pad["width"] > 250  # the pad uses the phone's width
    shot = tmp_path / "phone.png"
    page.screenshot(path=str(shot), full_page=True)
    assert_screenshot_shows_a_page(shot)
    with Image.open(io.BytesIO(shot.read_bytes())) as im:
        assert im.width == 750
    context.close()
