"""The rasterizer against Google's own numpy_bitmap files and the plain cairo loop."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from conftest import MIRROR

from quickdraw_tools import raster
from quickdraw_tools.errors import QuickDrawError
from quickdraw_tools.raster import rasterize, rasterize_many, reference_rasterize

PAIRED = ("cat", "apple", "fish")


def simplified(category: str, limit: int | None = None) -> list[list]:
    path = MIRROR / "full" / "simplified" / f"{category}.ndjson"
    with open(path) as f:
        lines = f.readlines()[:limit]
    return [json.loads(line)["drawing"] for line in lines]


def sample(per_category: int, suffix: str = "simplified", categories: int = 40) -> list[list]:
    """A few drawings from each of the first `categories` mirror files."""
    out = []
    for path in sorted((MIRROR / "full" / suffix).glob("*.ndjson"))[:categories]:
        with open(path) as f:
            out += [json.loads(line)["drawing"] for line in f.readlines()[:per_category]]
    return out


@pytest.mark.parametrize("category", PAIRED)
def test_byte_identical_to_the_official_bitmaps(shared, category):
    official = np.load(MIRROR / "full" / "numpy_bitmap" / f"{category}.npy")[:25]
    drawings = simplified(category)
    assert len(drawings) == 25
    fast = rasterize_many(drawings)
    assert fast.dtype == np.uint8 and fast.shape == (25, 784)
    np.testing.assert_array_equal(fast, official)
    np.testing.assert_array_equal(reference_rasterize(drawings), official)
    for i in (0, 7, 24):
        one = rasterize(drawings[i])
        assert one.shape == (28, 28)
        np.testing.assert_array_equal(one.ravel(), official[i])


def test_all_75_pairs_in_one_batch_and_in_threads(shared):
    drawings = [d for c in PAIRED for d in simplified(c)]
    official = np.concatenate(
        [np.load(MIRROR / "full" / "numpy_bitmap" / f"{c}.npy")[:25] for c in PAIRED]
    )
    for kwargs in ({}, {"batch_size": 7}, {"batch_size": 1}, {"threads": 2, "batch_size": 10}):
        np.testing.assert_array_equal(rasterize_many(drawings, **kwargs), official)


@pytest.mark.parametrize(
    ("size", "line_width", "padding"),
    [(64, 16, 16), (128, 16, 16), (28, 8, 4), (28, 16, 0), (17, 30, 16)],
)
def test_other_sizes_and_widths_match_the_plain_loop(shared, size, line_width, padding):
    drawings = sample(per_category=3)
    fast = rasterize_many(drawings, size=size, line_width=line_width, padding=padding)
    assert fast.shape == (len(drawings), size * size)
    np.testing.assert_array_equal(
        fast, reference_rasterize(drawings, size=size, line_width=line_width, padding=padding)
    )
    assert (fast.max(axis=1) > 0).all()
    assert rasterize(drawings[0], size=size, line_width=line_width, padding=padding).shape == (
        size,
        size,
    )


def test_float_coordinates_and_drawings_outside_the_canvas(shared):
    # Raw drawings: float coordinates, far outside 0-255 (drawn alone, as the plain loop does),
    # and the same rescaled into 0-255 (float points through cairo's matrix and rounding).
    raw = sample(per_category=2, suffix="raw", categories=60)
    rescaled = []
    for d in raw:
        xs = np.concatenate([np.asarray(s[0], float) for s in d])
        ys = np.concatenate([np.asarray(s[1], float) for s in d])
        k = 255.0 / max(np.ptp(xs), np.ptp(ys), 1.0)
        rescaled.append(
            [[(np.asarray(s[0]) - xs.min()) * k, (np.asarray(s[1]) - ys.min()) * k] for s in d]
        )
    for drawings in (raw, rescaled):
        np.testing.assert_array_equal(rasterize_many(drawings), reference_rasterize(drawings))


def test_inputs_records_empty_and_bad(shared):
    drawing = simplified("cat", 1)[0]
    record = {"word": "cat", "drawing": drawing}
    np.testing.assert_array_equal(rasterize(record), rasterize(drawing))
    # numpy strokes work, times are ignored, empty strokes are skipped
    with_times = [[s[0], s[1], list(range(len(s[0])))] for s in drawing] + [[[], []]]
    np.testing.assert_array_equal(rasterize(with_times), rasterize(drawing))
    np.testing.assert_array_equal(rasterize([np.asarray(s) for s in drawing]), rasterize(drawing))
    # a single point is a dot (round caps), an empty drawing is black
    assert rasterize([[[100], [100]]]).max() > 0
    assert not rasterize([]).any() and not rasterize([[[], []]]).any()
    assert rasterize_many([]).shape == (0, 784)
    for bad in ([[[1, 2], [1]]], [[[1, 2]]], 5, [["a", "b"]], [[[float("nan")], [1.0]]]):
        with pytest.raises(QuickDrawError):
            rasterize(bad)
    for kwargs in (
        {"size": 0},
        {"size": 2.5},
        {"line_width": -1},
        {"line_width": 0},
        {"line_width": "16"},
        {"line_width": True},
        {"padding": -1},
        {"padding": None},
    ):
        with pytest.raises(QuickDrawError, match=next(iter(kwargs))):
            rasterize(drawing, **kwargs)
    with pytest.raises(QuickDrawError, match="sequence of drawings"):
        rasterize_many(None)
    with pytest.raises(QuickDrawError, match=r"drawing 2: .*finite.*inf"):
        rasterize_many([drawing, drawing, [[[1.0, float("inf")], [2.0, 3.0]]]])
    # numpy scalars are plain numbers to the renderer
    np.testing.assert_array_equal(
        rasterize(drawing, size=np.int32(28), padding=np.float32(16)), rasterize(drawing)
    )
    with pytest.raises(QuickDrawError, match="threads"):
        rasterize_many([drawing], threads=0)


def test_missing_cairo_says_what_to_install(shared, monkeypatch):
    drawing = simplified("cat", 1)[0]
    monkeypatch.setitem(sys.modules, "cairocffi", None)  # makes `import cairocffi` fail
    for render in (rasterize, lambda d: reference_rasterize([d])):
        with pytest.raises(QuickDrawError, match="apt-get install libcairo2"):
            render(drawing)


def test_empty_drawings_anywhere_any_iterable_and_error_index(shared):
    drawings = simplified("cat", 6)
    mixed = [[], drawings[0], [], [[[], []]], *drawings[1:], []]
    expected = reference_rasterize(mixed)
    assert not expected[[0, 2, 3, -1]].any() and expected[1].any()
    for kwargs in ({}, {"batch_size": 2}, {"batch_size": 1, "threads": 3}):
        np.testing.assert_array_equal(rasterize_many(mixed, **kwargs), expected)
    np.testing.assert_array_equal(rasterize_many(iter(mixed)), expected)
    # a bad drawing in a later batch (and thread) is named by its index in the input
    with pytest.raises(QuickDrawError, match="drawing 7:"):
        rasterize_many(drawings + [drawings[0], [[[1, 2], [1]]]], batch_size=2, threads=2)


def test_default_threads_are_the_free_cores(monkeypatch):
    monkeypatch.setattr(raster, "usable_cores", lambda: 4)
    for load, workers in ((0.5, 4), (1.4, 4), (3.2, 2), (9.0, 1)):
        monkeypatch.setattr(raster.os, "getloadavg", lambda load=load: (load, 0.0, 0.0))
        assert raster.default_threads() == workers
