"""The compiled re-implementation of cairo's stroker and scan converter, against cairo."""

from __future__ import annotations

import json

import cairocffi as cairo
import numpy as np
import pytest
from conftest import MIRROR

from quickdraw_tools import raster, stroke_raster
from quickdraw_tools.raster import rasterize_many, reference_rasterize


def all_simplified() -> list[list]:
    out = []
    for path in sorted((MIRROR / "full" / "simplified").glob("*.ndjson")):
        with open(path) as f:
            out += [json.loads(line)["drawing"] for line in f]
    return out


def test_every_sample_drawing_matches_cairo(shared):
    drawings = all_simplified()
    assert len(drawings) > 6000
    np.testing.assert_array_equal(rasterize_many(drawings), reference_rasterize(drawings))
    # larger bitmaps have more pen vertices and more whole-row spans
    some = drawings[::20]
    for size in (64, 256):
        np.testing.assert_array_equal(
            rasterize_many(some, size=size), reference_rasterize(some, size=size)
        )


def awkward_drawings(rng: np.random.Generator, n: int) -> list[list]:
    """Strokes that exercise the stroker's corner cases inside the canvas.

    Repeated points, straight runs (merged by cairo's path), reversals (anti-
    parallel segments), dots, near-horizontal zigzags and long random walks.
    """
    drawings = []
    for _ in range(n):
        strokes = []
        for _ in range(rng.integers(1, 5)):
            kind = rng.integers(0, 5)
            m = int(rng.integers(1, 30))
            if kind == 0:  # a dot, possibly repeated
                x, y = rng.integers(0, 256, 2)
                xs, ys = [int(x)] * m, [int(y)] * m
            elif kind == 1:  # points on one line, with back-tracking
                t = np.cumsum(rng.integers(-3, 8, m))
                x0, y0 = rng.integers(60, 200, 2)
                dx, dy = rng.integers(-3, 4, 2)
                xs, ys = list(x0 + dx * t), list(y0 + dy * t)
            elif kind == 2:  # near-horizontal zigzag
                xs = list(np.sort(rng.integers(0, 256, m)))
                ys = list(128 + rng.integers(-2, 3, m))
            elif kind == 3:  # a random walk with repeats
                xs = list(np.cumsum(rng.integers(-20, 21, m)) + 128)
                ys = list(np.cumsum(rng.integers(-20, 21, m)) + 128)
            else:  # anywhere
                xs, ys = list(rng.integers(0, 256, m)), list(rng.integers(0, 256, m))
            xs = [int(v) for v in np.clip(xs, 0, 255)]
            ys = [int(v) for v in np.clip(ys, 0, 255)]
            strokes.append([xs, ys])
        drawings.append(strokes)
    return drawings


def test_the_installed_cairo_is_the_one_reproduced():
    # stroke_raster follows cairo 1.16, whose bitmaps are the official ones; the
    # comparisons below are only meaningful against that version.
    assert cairo.cairo_version_string().startswith("1.16."), cairo.cairo_version_string()


@pytest.mark.parametrize(
    ("size", "line_width", "padding", "count"),
    [
        (28, 16.0, 16.0, 400),
        (28, 3.0, 16.0, 400),  # a 6-vertex pen
        (28, 2.0, 16.0, 200),  # a 4-vertex pen
        (40, 40.0, 16.0, 400),
        (100, 1.0, 16.0, 400),
        (304, 16.0, 16.1, 40),  # scale within 0.1% of 1: cairo sizes the pen by the radius
    ],
)
def test_awkward_strokes_match_cairo(size, line_width, padding, count):
    drawings = awkward_drawings(np.random.default_rng(size + int(line_width)), count)
    options = {"size": size, "line_width": line_width, "padding": padding}
    np.testing.assert_array_equal(
        rasterize_many(drawings, **options), reference_rasterize(drawings, **options)
    )


def test_a_pen_too_small_to_draw_draws_nothing_like_cairo():
    drawing = [[[10, 200], [30, 90]]]
    assert stroke_raster.make_pen(0.01, 0.1, 28 / 304).shape[0] == 1
    tiny = rasterize_many([drawing], line_width=0.02)
    np.testing.assert_array_equal(tiny, reference_rasterize([drawing], line_width=0.02))
    assert not tiny.any()


def fill_with_cairo(points: np.ndarray, size: int) -> np.ndarray:
    surface = cairo.ImageSurface(cairo.FORMAT_A8, size, size)
    ctx = cairo.Context(surface)
    ctx.set_antialias(cairo.ANTIALIAS_BEST)
    ctx.move_to(*(points[0] / 256.0))
    for p in points[1:]:
        ctx.line_to(*(p / 256.0))
    ctx.close_path()
    ctx.fill()
    surface.flush()
    return np.frombuffer(surface.get_data(), np.uint8).reshape(size, -1)[:, :size].copy()


def fill_with_scan(points: np.ndarray, size: int) -> np.ndarray:
    """The scan converter alone, on the closed polygon's edges (as cairo's filler makes them)."""
    edges = []
    for p, q in zip(points, np.roll(points, -1, axis=0), strict=True):
        if p[1] != q[1]:
            edges.append([*p, *q, 1] if p[1] < q[1] else [*q, *p, -1])
    edges = np.array(edges, np.int64).reshape(-1, 5)
    canvas = np.zeros((size, size), np.uint8)
    table = np.zeros((len(edges) + 2 + 64) * 16, np.int64)
    stroke_raster._scan(
        edges, len(edges), size, table, np.empty(size, np.int64),
        np.full(15, -1, np.int64), np.zeros((2, size + 2), np.int64), canvas,
    )  # fmt: skip
    return canvas


def test_scan_converter_fills_polygons_like_cairo():
    # Random (often self-intersecting) polygons in fixed point: non-zero winding,
    # whole-row and subsampled rows, edges ending mid-row, the clip to the extents.
    rng = np.random.default_rng(7)
    size = 28
    for _ in range(400):
        points = rng.integers(256, (size - 1) * 256, size=(int(rng.integers(3, 9)), 2))
        np.testing.assert_array_equal(fill_with_scan(points, size), fill_with_cairo(points, size))


def test_device_coordinates_are_cairos():
    layout = raster._Layout(28, 16.0, 16.0)
    surface = cairo.ImageSurface(cairo.FORMAT_A8, 28, 28)
    ctx = layout.context(surface, cairo)
    xx, yx, xy, yy, x0, y0 = ctx.get_matrix().as_tuple()
    assert (xx, yy, yx, xy) == (layout.scale, layout.scale, 0.0, 0.0)
    assert x0 == y0 == layout.half_padding * layout.scale
    rng = np.random.default_rng(3)
    values = np.concatenate([np.arange(256.0), rng.uniform(-50, 300, 2000)])
    for offset in (0.0, 0.5, 3.0, 127.5):
        fixed = stroke_raster.device_fixed(values, offset, layout.scale, x0)
        # cairo's own transform of the same user point (x moved as the renderer moves it)
        device = np.array([ctx.user_to_device(v + offset, 0.0)[0] for v in values])
        np.testing.assert_array_equal(fixed, np.rint(device * 256))
