"""The grading page as a rater sees it (issue 22, item 9), in the system's Chromium: the
category's name on every screen, how many sketches there are before Start, example fakes made
from the category's real drawings, and a model's two-point sample drawn at its place and scale.
Screenshots land in the test's tmp_path (and in $GRADING_SCREENSHOTS if set)."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from grading_support import start_server, stop
from playwright.sync_api import expect, sync_playwright

from quickdraw_tools.eval.grading.render import BOX, strokes_svg
from quickdraw_tools.formats import iter_ndjson

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
TWO_DOTS = [[[120], [110]], [[130], [104]]]  # a model's sample: two points, 10 units apart


@pytest.fixture(scope="module")
def browser():
    assert Path(CHROMIUM).is_file(), "install the system Chromium: apt-get install -y chromium"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def screenshot(page, tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"page-{name}.png"
    page.screenshot(path=path, full_page=True)
    if os.environ.get("GRADING_SCREENSHOTS"):
        out = Path(os.environ["GRADING_SCREENSHOTS"])
        out.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, out / path.name)
    return path


def points(svg: str) -> np.ndarray:
    """Every polyline point of an SVG, (n, 2)."""
    found = re.findall(r'points="([^"]*)"', svg)
    return np.array([[float(v) for v in p.split(",")] for f in found for p in f.split()])


def test_a_two_point_sketch_is_drawn_at_its_place_and_scale(shared):
    two = np.array([[120, 110, 1], [10, -6, 1]], dtype=np.float64)  # stroke-3 of TWO_DOTS
    drawn = points(strokes_svg(two))
    assert len(drawn) == 4  # two dots, each a zero-length line
    gap = np.linalg.norm(drawn[0] - drawn[2])
    room = BOX - 2 * 12
    assert gap == pytest.approx(np.hypot(10, 6) * room / 255, abs=0.2)  # its own scale
    assert np.allclose((drawn[0] + drawn[2]) / 2, BOX / 2, atol=0.2)  # centred, not in corners
    # a real drawing (spanning 0-255) fills the box, as before
    cat = next(iter(iter_ndjson(shared / "mirror" / "full" / "simplified" / "cat.ndjson")))
    from quickdraw_tools.strokes import drawing_to_stroke3

    real = points(strokes_svg(drawing_to_stroke3(cat["drawing"], dtype=np.float64)))
    spans = real.max(0) - real.min(0)
    assert spans.max() == pytest.approx(room, abs=0.2)


def test_the_page_names_the_category_counts_the_sketches_and_shows_real_examples(
    browser, shared, tmp_path
):
    cats = list(iter_ndjson(shared / "mirror" / "full" / "simplified" / "cat.ndjson"))
    model = tmp_path / "model.ndjson"  # a model's samples, as `sample --out x.ndjson` writes
    samples = [{"word": "cat", "drawing": TWO_DOTS}] + [
        {"word": "cat", "drawing": c["drawing"]} for c in cats[20:23]
    ]
    model.write_text("".join(json.dumps(r) + "\n" for r in samples))
    real = shared / "mirror" / "full" / "simplified" / "cat.ndjson"
    db = tmp_path / "page.sqlite"
    args = ["--db", str(db), "--real", str(real), "--generated", str(model),
            "--per-source", "4", "--seed", "0", "--examples", "2"]  # fmt: skip
    proc, url = start_server(args)
    try:
        page = browser.new_context(viewport={"width": 760, "height": 900}).new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(url)
        # before Start: the category, the count, examples from real cats (the fakes scrambled)
        expect(page.locator("#category-start")).to_have_text("a drawing of a cat")
        expect(page.locator("#count")).to_have_text("8 sketches")
        expect(page.locator("#examples-real svg")).to_have_count(2)
        expect(page.locator("#examples-fake svg")).to_have_count(2)
        fakes = page.locator("#examples-fake svg").all()
        assert all(len(points(f.evaluate("e => e.outerHTML"))) > 10 for f in fakes)  # drawings
        screenshot(page, tmp_path, "instructions")
        page.locator("#name").fill("Ada")
        page.locator("#start-button").click()
        two_dots = None
        for k in range(8):
            expect(page.locator("#progress-text")).to_have_text(f"{k} / 8")
            expect(page.locator("#prompt")).to_have_text("Is this a drawing of a cat by a person?")
            svg = page.locator("#sketch svg").evaluate("e => e.outerHTML")
            if len(points(svg)) == 4:  # the model's two-point sample
                two_dots = points(svg)
                screenshot(page, tmp_path, "two-points")
            elif k == 0:
                screenshot(page, tmp_path, "sketch")
            expect(page.locator("#grade-fake")).to_be_enabled()
            page.keyboard.press("3")
        expect(page.locator("#done")).to_be_visible()
        expect(page.locator("#done-text")).to_have_text(
            "You graded all 8 sketches of a cat. You can close this page."
        )
        screenshot(page, tmp_path, "done")
        assert two_dots is not None, "the two-point sample was in the pool"
        assert np.linalg.norm(two_dots[0] - two_dots[2]) < 15  # close together, centred
        assert np.allclose(two_dots.mean(0), BOX / 2, atol=1)
        assert not errors, errors
    finally:
        stop(proc)
