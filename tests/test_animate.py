"""Sketches that draw themselves: the pen's times, the animated SVG in a real browser (the
system's Chromium, driven by Playwright), the GIF, and sketch-rnn's pen from `sample`.

The browser's screenshots land in the test's tmp_path (and in $ANIMATION_SCREENSHOTS if
set, to look at them).
"""

from __future__ import annotations

import io
import os
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from conftest import MIRROR, train_checkpoint
from PIL import Image, ImageSequence

from quickdraw_tools import formats
from quickdraw_tools.animate import (
    MAX_FRAMES,
    SPEED,
    animated_gif,
    animated_svg,
    pen_times,
    step_times,
)
from quickdraw_tools.cli import main
from quickdraw_tools.errors import QuickDrawError
from quickdraw_tools.svg import as_strokes, png_grid, svg_grid

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
RAW = MIRROR / "full" / "raw" / "cat.ndjson"
SIMPLIFIED = MIRROR / "full" / "simplified" / "cat.ndjson"
NS = {"svg": "http://www.w3.org/2000/svg"}


def _raw_cat() -> dict:
    return next(formats.iter_ndjson(RAW))


def test_raw_drawings_keep_the_persons_times(shared):
    record = _raw_cat()
    strokes = as_strokes(record["drawing"])
    times = pen_times(strokes)
    first = record["drawing"][0][2][0]
    for (_, _, ts), t in zip(strokes, times, strict=True):
        np.testing.assert_allclose(t, (np.asarray(ts) - first) / 1000.0)
    assert times[0][0] == 0 and times[-1][-1] > 1.0  # seconds, as drawn


def test_other_drawings_go_at_a_constant_pen_speed(shared):
    record = next(formats.iter_ndjson(SIMPLIFIED))
    strokes = as_strokes(record["drawing"])
    times = pen_times(strokes, speed=200.0)
    xy = np.concatenate([np.column_stack([x, y]) for x, y, _ in strokes])
    scale = 256.0 / (xy.max(axis=0) - xy.min(axis=0)).max()  # its larger side: 256 units
    path = np.hypot(*np.diff(xy, axis=0).T).sum() * scale  # pen-up moves too
    dots = sum(len(x) == 1 for x, _, _ in strokes)
    np.testing.assert_allclose(times[-1][-1], path / 200.0 + dots * 0.05)
    assert pen_times(strokes)[-1][-1] == pytest.approx(path / SPEED + dots * 0.05)
    # twice the speed, half the time; a raw drawing given --speed goes at that speed too
    assert pen_times(strokes, speed=400.0)[-1][-1] == pytest.approx(times[-1][-1] / 2, rel=0.1)
    raw = as_strokes(_raw_cat()["drawing"])
    assert pen_times(raw, speed=10_000.0)[-1][-1] < pen_times(raw)[-1][-1]
    assert [len(t) for t in step_times(strokes, 0.1)] == [len(x) for x, _, _ in strokes]


@pytest.mark.parametrize("speed", [0, -1, float("nan"), float("inf"), 1e300])
def test_a_speed_that_is_not_positive_is_refused(shared, tmp_path, capsys, speed):
    with pytest.raises(QuickDrawError, match="speed"):
        animated_svg([_raw_cat()["drawing"]], 1, speed=speed)
    out = tmp_path / "o"
    args = ["svg", str(SIMPLIFIED), "--animate", "--speed", str(speed), "--out", str(out)]
    assert main(args) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--speed" in err and not out.exists()


def test_the_svg_animates_every_stroke_without_script(shared, tmp_path):
    record = _raw_cat()
    text = animated_svg([record["drawing"]], 1, path=tmp_path / "cat.svg")
    root = ET.fromstring(text)
    assert not root.findall(".//svg:script", NS) and "on" not in "".join(
        a[:2] for e in root.iter() for a in e.attrib
    )  # no script, no event handlers
    strokes = as_strokes(record["drawing"])
    times = pen_times(strokes)
    shapes = root.findall(".//svg:g/*", NS)
    assert len(shapes) == len(strokes)
    for shape, t in zip(shapes, times, strict=True):
        begins = {child.get("begin") for child in shape}
        assert begins == {f"{t[0]:.3f}s"} and shape.get("visibility") == "hidden"
        animation = shape.find("svg:animate", NS)
        if animation is None:  # a dot
            assert shape.tag.endswith("circle")
            continue
        key_times = [float(v) for v in animation.get("keyTimes").split(";")]
        values = [float(v) for v in animation.get("values").split(";")]
        assert len(key_times) == len(values) == len(t)
        assert key_times[0] == 0 and key_times[-1] == 1 and np.all(np.diff(key_times) >= 0)
        assert values[0] == 1 and values[-1] == 0 and animation.get("fill") == "freeze"


def test_the_gif_draws_the_same_drawing_stroke_by_stroke(shared, tmp_path):
    drawing = _raw_cat()["drawing"]
    data = animated_gif([drawing], 1, path=tmp_path / "cat.gif")
    with Image.open(io.BytesIO(data)) as gif:
        frames, shown = [], 0
        for frame in ImageSequence.Iterator(gif):
            frames.append(np.asarray(frame.convert("L")))
            shown += frame.info["duration"]
        assert gif.info["loop"] == 0
    total = pen_times(as_strokes(drawing))[-1][-1]
    # a frame each 50 ms (pillow merges the frames of a pause), then the drawing held 1.5 s
    assert shown == int(np.ceil(total * 20)) * 50 + 1500 and len(frames) <= MAX_FRAMES
    ink = [int((f < 128).sum()) for f in frames]
    assert ink[0] < 20 and all(b >= a for a, b in zip(ink, ink[1:], strict=False))  # it grows
    still = np.asarray(Image.open(io.BytesIO(png_grid([drawing], 1, cell=256))).convert("L"))
    assert np.abs(frames[-1].astype(int) - still).mean() < 1.0  # ...to the finished drawing
    # a very long drawing gets fewer, longer frames, never more than MAX_FRAMES
    slow = animated_gif([drawing], 1, speed=1.0)
    long = pen_times(as_strokes(drawing), speed=1.0)[-1][-1]
    with Image.open(io.BytesIO(slow)) as gif:
        shown = sum(frame.info["duration"] for frame in ImageSequence.Iterator(gif))
        assert gif.n_frames <= MAX_FRAMES and long > 1000
        assert shown == pytest.approx(long * 1000, rel=0.01)  # the whole drawing, in fewer frames


def test_svg_command_writes_animated_svgs_and_gifs(shared, tmp_path, capsys):
    out = tmp_path / "replay"
    args = ["svg", str(RAW), "--limit", "3", "--animate", "--gif", "--quiet", "--out", str(out)]
    assert main(args) == 0
    assert "3 animated SVG, 3 GIF file(s)" in capsys.readouterr().out
    names = sorted(p.name for p in out.iterdir())
    assert names == [f"cat_0000{i}.{s}" for i in range(3) for s in ("gif", "svg")]
    assert "<animate" in (out / "cat_00000.svg").read_text()
    grid = tmp_path / "grid"
    npz_args = ["svg", str(shared / "other" / "aaron_sheep.npz"), "--split", "test", "--limit", "4"]
    assert (
        main([*npz_args, "--grid", "2x2", "--animate", "--speed", "800", "--out", str(grid)]) == 0
    )
    assert (grid / "aaron_sheep_grid_000.svg").read_text().count("<animate ") > 4
    assert (
        main(["svg", str(SIMPLIFIED), "--gif", "--color-by", "time", "--out", str(tmp_path / "x")])
        == 1
    )
    bitmaps = MIRROR / "full" / "numpy_bitmap" / "cat.npy"
    assert main(["svg", str(bitmaps), "--animate", "--out", str(tmp_path / "y")]) == 1
    assert "no strokes" in capsys.readouterr().err
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_a_one_point_drawing_animates_as_a_dot(tmp_path):
    text = animated_svg([[[[50], [60]]]], 1)
    root = ET.fromstring(text)
    (dot,) = root.findall(".//svg:g/*", NS)
    assert dot.tag.endswith("circle") and dot.find("svg:set", NS).get("to") == "visible"
    data = animated_gif([[[[50], [60]]]], 1)
    with Image.open(io.BytesIO(data)) as gif:
        last = np.asarray(list(ImageSequence.Iterator(gif))[-1].convert("L"))
    assert (last < 128).sum() > 0


def test_sample_animates_sketch_rnns_pen(shared, tmp_path, capsys):
    tiny = dict(max_seq_len=120, enc_size=8, dec_size=8, z_size=4, num_mixture=2)
    sheep = [shared / "other" / "aaron_sheep.npz"]
    ckpt = train_checkpoint(
        tmp_path / "run", "sketch-rnn", tiny, sheep, steps=1, max_per_category=100
    )
    out = tmp_path / "pen.gif"
    assert main(["sample", str(ckpt), "--n", "4", "--seed", "0", "--out", str(out)]) == 0
    assert (
        main(["sample", str(ckpt), "--n", "4", "--seed", "0", "--out", str(tmp_path / "s.ndjson")])
        == 0
    )
    sketches = [r["drawing"] for r in formats.iter_ndjson(tmp_path / "s.ndjson")]
    steps = max(sum(len(s[0]) for s in d) for d in sketches)
    with Image.open(out) as gif:
        assert gif.size == (256, 295)  # 2x2 cells of 128, a caption band (19.2) under each
        # a frame per 3 of the pen's steps of 20 ms (pillow merges frames where the pen moves
        # up), then the finished grid for 1.5 s
        shown = [frame.info["duration"] for frame in ImageSequence.Iterator(gif)]
        assert sum(shown) == int(np.ceil((steps - 1) / 3)) * 60 + 1500
        assert set(shown[:-1]) <= {60 * k for k in range(1, 100)}


# --- in a real browser -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).is_file(), "install the system Chromium: apt-get install -y chromium"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def _ink(page, tmp_path: Path, name: str) -> np.ndarray:
    """A screenshot of the page as a mask of its ink (dark pixels)."""
    path = tmp_path / f"animation-{name}.png"
    page.screenshot(path=path)
    if os.environ.get("ANIMATION_SCREENSHOTS"):
        out = Path(os.environ["ANIMATION_SCREENSHOTS"])
        out.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, out / path.name)
    return np.asarray(Image.open(path).convert("L")) < 128


def test_the_animated_svg_draws_itself_in_chromium(shared, tmp_path, browser):
    drawing = _raw_cat()["drawing"]
    animated_svg([drawing], 1, path=tmp_path / "cat.svg")
    svg_grid([drawing], 1, path=tmp_path / "still.svg", cell=256)  # the same, not animated
    page = browser.new_context(viewport={"width": 256, "height": 256}).new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto((tmp_path / "still.svg").as_uri())
    final = _ink(page, tmp_path, "still")

    # the person's pace: the SMIL clock is held at chosen times (the file has no script; the
    # test drives the document's own animation clock)
    page.goto((tmp_path / "cat.svg").as_uri())
    total = pen_times(as_strokes(drawing))[-1][-1]
    gif = animated_gif([drawing], 1, frame_seconds=total / 4)
    with Image.open(io.BytesIO(gif)) as frames:
        cairo_frames = [np.asarray(f.convert("L")) < 128 for f in ImageSequence.Iterator(frames)]
    inks = []
    for k, share in enumerate((0.0, 0.25, 0.5, 0.75, 1.0)):
        hold = (
            "t => { const s = document.documentElement; s.pauseAnimations(); s.setCurrentTime(t); }"
        )
        page.evaluate(hold, total * share + (0.001 if share == 1.0 else 0.0))
        page.wait_for_timeout(50)
        ink = _ink(page, tmp_path, f"{int(share * 100):03d}")
        inks.append(ink)
        if 0 < share < 1:  # the same strokes drawn as far as the GIF's frame of that moment
            both = (ink & cairo_frames[k]).sum() / max((ink | cairo_frames[k]).sum(), 1)
            assert both > 0.6, (share, both)
    counts = [int(i.sum()) for i in inks]
    assert counts[0] == 0 and counts == sorted(counts) and counts[2] < counts[4]
    assert (inks[-1] & final).sum() / (inks[-1] | final).sum() > 0.95  # the finished drawing

    # played in real time, as a browser shows it: a fast pen, start and end
    fast = tmp_path / "fast.svg"
    animated_svg([next(formats.iter_ndjson(SIMPLIFIED))["drawing"]], 1, path=fast, speed=1500)
    page.goto(fast.as_uri())
    start = _ink(page, tmp_path, "start")
    page.wait_for_timeout(4000)
    end = _ink(page, tmp_path, "end")
    assert start.sum() < end.sum() / 2 and end.sum() > 500
    assert not errors
