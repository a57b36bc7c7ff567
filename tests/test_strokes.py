"""Stroke formats: round-trips (hypothesis), sketch-rnn conventions, augmentations."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quickdraw_tools import formats
from quickdraw_tools import strokes as S
from quickdraw_tools.errors import QuickDrawError

coord = st.integers(min_value=0, max_value=255)
stroke_st = st.integers(min_value=1, max_value=12).flatmap(
    lambda n: st.tuples(*[st.lists(coord, min_size=n, max_size=n)] * 2)
)
drawing_st = st.lists(stroke_st.map(lambda s: [list(s[0]), list(s[1])]), min_size=1, max_size=6)


@given(drawing_st)
def test_drawing_stroke3_roundtrip(drawing):
    s3 = S.drawing_to_stroke3(drawing)
    assert s3.dtype == np.int16 and s3.shape == (sum(len(s[0]) for s in drawing), 3)
    assert S.stroke3_to_drawing(s3) == drawing


@given(drawing_st, st.integers(min_value=0, max_value=5))
def test_stroke3_stroke5_roundtrip(drawing, extra):
    s3 = S.drawing_to_stroke3(drawing)
    big = S.stroke3_to_stroke5(s3, max_len=len(s3) + extra)
    assert big.shape == (len(s3) + extra + 1, 5)
    assert np.array_equal(big[0], S.START_TOKEN)
    assert np.all(big[1:].sum(axis=1)[len(s3) :] >= 1)  # padding rows are end-of-sketch
    np.testing.assert_array_equal(S.stroke5_to_stroke3(big), s3)


def test_stroke5_layout_matches_sketch_rnn():
    s3 = np.array([[5, 6, 0], [1, 1, 1], [2, -3, 1]])
    big = S.stroke3_to_stroke5(s3, max_len=4)
    expected = [
        [0, 0, 1, 0, 0],  # start token S0
        [5, 6, 1, 0, 0],
        [1, 1, 0, 1, 0],
        [2, -3, 0, 1, 0],
        [0, 0, 0, 0, 1],  # padding
    ]
    np.testing.assert_array_equal(big, expected)


def test_first_offset_is_from_origin_and_pen_lifts_at_stroke_ends():
    drawing = [[[10, 20], [30, 40]], [[5], [7]]]
    np.testing.assert_array_equal(
        S.drawing_to_stroke3(drawing), [[10, 30, 0], [10, 10, 1], [-15, -33, 1]]
    )


def test_too_long_and_bad_shapes_raise():
    with pytest.raises(QuickDrawError, match="max_len=1"):
        S.stroke3_to_stroke5(np.zeros((2, 3)), max_len=1)
    with pytest.raises(QuickDrawError, match=r"\(n, 3\)"):
        S.stroke3_to_drawing(np.zeros((4, 2)))
    with pytest.raises(QuickDrawError, match="stroke 0"):
        S.drawing_to_stroke3([[[1, 2], [3]]])


def test_raw_drawing_times_are_dropped():
    raw = [[[1.5, 2.5], [3.0, 4.0], [0, 17]]]
    np.testing.assert_allclose(
        S.drawing_to_stroke3(raw, dtype=np.float32), [[1.5, 3.0, 0], [1.0, 1.0, 1]]
    )


def test_float_points_to_integer_stroke3_are_rounded_without_drift(shared):
    raw = next(iter(formats.iter_ndjson(shared / "mirror" / "full" / "raw" / "cat.ndjson")))
    s3 = S.drawing_to_stroke3(raw["drawing"])  # int16; raw points are floats
    points = np.concatenate([np.column_stack(stroke[:2]) for stroke in raw["drawing"]])
    np.testing.assert_array_equal(np.cumsum(s3[:, :2], axis=0), np.round(points))


def test_offsets_that_do_not_fit_raise_instead_of_wrapping():
    with pytest.raises(QuickDrawError, match="do not fit int16"):
        S.drawing_to_stroke3([[[0, 40_000], [0, 0]]])
    assert S.drawing_to_stroke3([[[0, 40_000], [0, 0]]], dtype=np.int32)[1, 0] == 40_000
    with pytest.raises(QuickDrawError, match="finite"):
        S.drawing_to_stroke3([[[0, float("nan")], [0, 0]]])


def _real_stroke3(shared, n=200):
    path = shared / "training" / "cake.ndjson"
    with open(path) as f:
        lines = [line for _, line in zip(range(n), f, strict=False)]
    return [S.drawing_to_stroke3(json.loads(line)["drawing"]) for line in lines]


def test_scale_factor_is_std_of_training_offsets(shared):
    train = _real_stroke3(shared)
    offsets = np.concatenate([s[:, :2].ravel() for s in train]).astype(np.float64)
    scale = S.normalizing_scale_factor(train)
    assert scale == pytest.approx(offsets.std())
    normed = np.concatenate([S.normalize(s, scale)[:, :2].ravel() for s in train])
    assert normed.std() == pytest.approx(1.0, rel=1e-5)
    with pytest.raises(QuickDrawError):
        S.normalizing_scale_factor([])


def test_filter_by_length(shared):
    sketches = _real_stroke3(shared)
    kept = S.filter_by_length(sketches, max_len=60, min_len=10)
    assert kept and all(10 <= len(s) <= 60 for s in kept)
    assert len(kept) == sum(10 <= len(s) <= 60 for s in sketches)


def test_random_scale_uses_the_generator(shared):
    s = _real_stroke3(shared, 1)[0]
    a = S.random_scale(s, np.random.default_rng(3))
    b = S.random_scale(s, np.random.default_rng(3))
    np.testing.assert_array_equal(a, b)
    ratio = a[:, :2].sum(axis=0) / s[:, :2].sum(axis=0)
    assert np.all((ratio >= 0.85 - 1e-6) & (ratio <= 1.15 + 1e-6))
    np.testing.assert_array_equal(a[:, 2], s[:, 2])


@settings(deadline=None)
@given(drawing_st, st.floats(min_value=0, max_value=1), st.integers(0, 2**32 - 1))
def test_augment_strokes_keeps_stroke_ends_and_positions(drawing, prob, seed):
    s3 = S.drawing_to_stroke3(drawing).astype(np.float32)
    out = S.augment_strokes(s3, np.random.default_rng(seed), prob)
    # every stroke survives with its end point in place
    assert out[:, 2].sum() == s3[:, 2].sum()
    ends_in = np.cumsum(s3[:, :2], axis=0)[s3[:, 2] == 1]
    ends_out = np.cumsum(out[:, :2], axis=0)[out[:, 2] == 1]
    np.testing.assert_allclose(ends_out, ends_in, atol=1e-4)
    # kept points sit where some input point was
    pos_in = {tuple(p) for p in np.round(np.cumsum(s3[:, :2], axis=0), 3)}
    assert all(tuple(p) in pos_in for p in np.round(np.cumsum(out[:, :2], axis=0), 3))
    if prob == 0:
        np.testing.assert_array_equal(out, s3)


def test_augment_strokes_drops_points_on_real_data(shared):
    s = _real_stroke3(shared, 50)
    total_in = sum(len(x) for x in s)
    rng = np.random.default_rng(0)
    total_out = sum(len(S.augment_strokes(x, rng, 0.5)) for x in s)
    assert total_out < total_in
