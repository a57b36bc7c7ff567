"""Simplification: RDP identical to the `rdp` package, Google's recipe on the real pairs, CLI."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import rdp as rdp_package  # the test oracle: pure Python, slow
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from quickdraw_tools import formats
from quickdraw_tools.cli import main
from quickdraw_tools.errors import QuickDrawError
from quickdraw_tools.simplify import (
    EPSILON,
    rdp,
    resample_stroke,
    scale_drawing,
    simplify_drawing,
    simplify_drawings,
    simplify_records,
)

# The oracle costs ~70 us per point (all 31,157 scaled strokes: ~90 s), so the test
# covers every stroke of 1 drawing in DRAWING_STRIDE (~7 s); the resampled strokes of 1
# in RESAMPLED_STRIDE. `scripts/check_simplify.py --rdp-oracle` checks every stroke.
DRAWING_STRIDE = 20
RESAMPLED_STRIDE = 200


def oracle(points: np.ndarray, epsilon: float) -> np.ndarray:
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", DeprecationWarning)  # numpy 2 warns on 2-D np.cross
        return rdp_package.rdp(points, epsilon)


@pytest.fixture(scope="session")
def raw_drawings(shared) -> list[list]:
    paths = sorted((shared / "mirror" / "full" / "raw").glob("*.ndjson"))
    drawings = [r["drawing"] for p in paths for r in formats.iter_ndjson(p)]
    assert len(drawings) == 6419
    return drawings


@pytest.fixture(scope="session")
def oracle_sample(raw_drawings):
    """Scaled strokes (and resampled ones) of a fixed real sample with the oracle's output."""
    scaled = [s for d in raw_drawings[::DRAWING_STRIDE] for s in scale_drawing(d)]
    resampled = [
        resample_stroke(s) for d in raw_drawings[::RESAMPLED_STRIDE] for s in scale_drawing(d)
    ]
    return [(s, oracle(s, EPSILON)) for s in scaled], [(s, oracle(s, EPSILON)) for s in resampled]


def assert_same(ours: np.ndarray, expected: np.ndarray) -> None:
    assert ours.dtype == expected.dtype
    assert ours.shape == expected.shape
    np.testing.assert_array_equal(ours, expected)


def test_rdp_identical_to_package_on_real_scaled_strokes(oracle_sample):
    scaled, resampled = oracle_sample
    # every stroke of 321 drawings (1,531 strokes, 62,763 points), and the resampled
    # strokes (what simplify_drawing feeds to rdp) of 33 drawings (149, 34,101 points)
    assert (len(scaled), sum(len(s) for s, _ in scaled)) == (1531, 62763)
    assert (len(resampled), sum(len(s) for s, _ in resampled)) == (149, 34101)
    for points, expected in scaled + resampled:
        assert_same(rdp(points, EPSILON), expected)


def test_rdp_identical_at_other_epsilons_on_real_strokes(oracle_sample):
    scaled, _ = oracle_sample
    for points, _ in scaled[:50]:
        for epsilon in (0.0, 7.0):
            assert_same(rdp(points, epsilon), oracle(points, epsilon))


# Small integer grids make duplicates, collinear points and exact distance ties common.
grid_points = arrays(
    np.int64,
    st.tuples(st.integers(0, 12), st.just(2)),
    elements=st.integers(-4, 4),
)
float_points = arrays(
    np.float64,
    st.tuples(st.integers(0, 12), st.just(2)),
    elements=st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False),
)
epsilons = st.sampled_from([0.0, 0.5, 1.0, 2.0, 3.5]) | st.floats(0, 10, allow_nan=False)


@settings(max_examples=300, deadline=None)
@given(grid_points | float_points, epsilons)
@example(np.zeros((0, 2)), 2.0)
@example(np.array([[1.0, 1.0]]), 2.0)
@example(np.array([[1.0, 1.0], [1.0, 1.0]]), 0.0)
@example(np.array([[0, 0], [3, 3], [0, 0]]), 1.0)  # closed: start == end
@example(np.array([[0, 0], [1, 5], [2, 0], [3, 5], [4, 0]]), 2.0)  # two equally far points
@example(np.array([[0, 0], [1, 1], [2, 2], [3, 3]]), 0.0)  # collinear
def test_rdp_identical_to_package_on_random_points(points, epsilon):
    assert_same(rdp(points, epsilon), oracle(points, epsilon))


@settings(max_examples=100, deadline=None)
@given(
    float_points.map(lambda p: p.astype(np.float32))
    | grid_points.map(lambda p: p.astype(np.float32)),
    epsilons,
)
def test_rdp_keeps_float32_like_the_package(points, epsilon):
    assert_same(rdp(points, epsilon), oracle(points, epsilon))


@settings(max_examples=60, deadline=None)
@given(grid_points, st.sampled_from([np.int16, np.int32]), epsilons)
def test_rdp_identical_for_other_integer_types(points, dtype, epsilon):
    points = points.astype(dtype)
    assert_same(rdp(points, epsilon), oracle(points, epsilon))


def test_rdp_small_inputs_and_list_input():
    for n in range(3):
        pts = np.arange(2 * n, dtype=np.float64).reshape(n, 2)
        out = rdp(pts, 2.0)
        assert_same(out, pts)
        assert out is not pts
    assert_same(rdp([[0, 0], [1, 0.1], [2, 0]], 1.0), np.array([[0.0, 0.0], [2.0, 0.0]]))


def test_rdp_rejects_bad_input():
    with pytest.raises(QuickDrawError, match="epsilon"):
        rdp(np.zeros((3, 2)), -1.0)  # the package never returns on a negative epsilon
    with pytest.raises(QuickDrawError, match="epsilon"):
        rdp(np.zeros((3, 2)), float("nan"))
    with pytest.raises(QuickDrawError, match=r"shape \(n, 2\)"):
        rdp(np.zeros((3, 3)), 1.0)
    with pytest.raises(QuickDrawError, match="real numbers"):
        rdp(np.array([["a", "b"]]), 1.0)


# --- Google's recipe ---------------------------------------------------------------------


@pytest.fixture(scope="session")
def pairs(shared):
    raw = {}
    for path in sorted((shared / "mirror" / "full" / "raw").glob("*.ndjson")):
        for record in formats.iter_ndjson(path):
            raw[record["key_id"]] = record
    out = []
    for path in sorted((shared / "mirror" / "full" / "simplified").glob("*.ndjson")):
        for record in formats.iter_ndjson(path):
            if record["key_id"] in raw:
                out.append((raw[record["key_id"]]["drawing"], record["drawing"]))
    assert len(out) == 5294
    return out


def test_matches_google_on_the_real_pairs(pairs):
    ours = simplify_drawings([raw for raw, _ in pairs])
    matched = sum(mine == google for mine, (_, google) in zip(ours, pairs, strict=True))
    assert matched / len(pairs) >= 0.95
    assert matched >= 5293  # the figure in docs/simplification.md: 99.98%


def test_one_drawing_equals_the_batch_and_the_steps(pairs):
    for raw, _ in pairs[::97]:
        simplified = simplify_drawing(raw)
        assert simplified == simplify_drawings([raw])[0]
        steps = []
        for stroke in scale_drawing(raw):
            kept = np.round(rdp(resample_stroke(stroke), EPSILON)).astype(int)
            kept = np.vstack([kept, kept]) if len(kept) == 1 else kept
            steps.append([kept[:, 0].tolist(), kept[:, 1].tolist()])
        assert simplified == steps


def test_one_point_and_zero_length_strokes_come_out_as_two_points():
    drawing = [[[10.0, 50.0], [10.0, 90.0]], [[30.5], [40.2]], [[20.0, 20.0], [20.0, 20.0]]]
    assert simplify_drawing(drawing) == [
        [[0, 128], [0, 255]],
        [[65, 65], [96, 96]],
        [[32, 32], [32, 32]],
    ]
    assert simplify_drawing([[[7.0], [9.0], [0.0]]]) == [[[0, 0], [0, 0]]]


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.integers(1, 30).flatmap(
            lambda n: st.tuples(*[st.lists(st.floats(-500, 2000), min_size=n, max_size=n)] * 2)
        ),
        min_size=1,
        max_size=5,
    )
)
def test_simplified_drawings_are_valid(drawing):
    out = simplify_drawing([list(s) for s in drawing])
    assert len(out) == len(drawing)
    coords = [v for s in out for axis in s for v in axis]
    assert all(type(v) is int and 0 <= v <= 255 for v in coords)
    assert all(len(s[0]) == len(s[1]) >= 2 for s in out)


def test_bad_drawings_raise_clear_errors():
    with pytest.raises(QuickDrawError, match="no points"):
        simplify_drawing([])
    with pytest.raises(QuickDrawError, match="finite"):
        simplify_drawing([[[0.0, float("nan")], [1.0, 2.0]]])
    with pytest.raises(QuickDrawError, match="too large a range"):
        simplify_drawing([[[-1e308, 1e308], [1.0, 2.0]]])
    # each drawing is scaled on its own, so far-apart drawings in one batch are fine
    far = simplify_drawings([[[[1e306, 1e306 + 1e300], [0, 1]]], [[[-1e306], [0]]]])
    assert far == [[[[0, 255], [0, 0]]], [[[0, 0], [0, 0]]]]
    with pytest.raises(QuickDrawError, match="equal lengths"):
        simplify_drawing([[[0.0, 1.0], [1.0]]])
    with pytest.raises(QuickDrawError, match="numbers"):
        simplify_drawing([[["a", "b"], [1.0, 2.0]]])
    with pytest.raises(QuickDrawError, match="stroke 1 is not"):
        simplify_drawing([[[1.0], [2.0]], 5])
    with pytest.raises(QuickDrawError, match="not a list of strokes"):
        simplify_drawing("drawing")


def test_records_keep_fields_and_skip_or_name_bad_ones():
    good = {"word": "cat", "key_id": "1", "drawing": [[[0.0, 10.0], [0.0, 5.0], [0, 1]]]}
    bad = {"word": "cat", "key_id": "2", "drawing": []}
    out = list(simplify_records([good, bad, good], on_error="skip", batch_size=2))
    assert out == [{**good, "drawing": [[[0, 255], [0, 128]]]}] * 2
    stats = formats.ReadStats()
    list(simplify_records([good, bad], on_error="skip", stats=stats))
    assert stats.skipped == 1 and "key_id 2" in stats.errors[0]
    with pytest.raises(QuickDrawError, match=r"record 1 \(key_id 2\): the drawing has no points"):
        list(simplify_records([good, bad]))


# --- CLI ---------------------------------------------------------------------------------


def test_cli_simplify_reproduces_the_official_file(shared, tmp_path, capsys):
    raw = shared / "mirror" / "full" / "raw" / "cat.ndjson"
    out = tmp_path / "cat.ndjson"
    assert main(["simplify", str(raw), "--out", str(out), "--quiet"]) == 0
    assert "wrote 25 simplified drawings" in capsys.readouterr().out
    ours = list(formats.iter_ndjson(out))
    official = list(formats.iter_ndjson(shared / "mirror" / "full" / "simplified" / "cat.ndjson"))
    assert len(ours) == len(list(formats.iter_ndjson(raw)))
    by_key = {r["key_id"]: r for r in ours}
    shared_keys = [r for r in official if r["key_id"] in by_key]
    assert len(shared_keys) == 25
    for record in shared_keys:
        assert by_key[record["key_id"]] == record  # every field, and the drawing


def test_cli_simplify_malformed_line(shared, tmp_path, capsys):
    lines = (shared / "mirror" / "full" / "raw" / "cat.ndjson").read_text().splitlines()[:3]
    source = tmp_path / "in.ndjson"
    source.write_text("\n".join([lines[0], '{"drawing": [[[1, 2], [3]]]}', lines[1], "{oops"]))
    out = tmp_path / "out.ndjson"
    out.write_text("previous\n")

    assert main(["simplify", str(source), "--out", str(out), "--quiet"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("quickdraw simplify: error:") and "in.ndjson:2" in err
    assert "\n" not in err and "Traceback" not in err
    assert out.read_text() == "previous\n"  # nothing half-written

    args = ["simplify", str(source), "--out", str(out), "--on-error", "skip", "--quiet"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "wrote 2 simplified drawings" in printed and "skipped 2 malformed" in printed
    written = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["key_id"] for r in written] == [json.loads(x)["key_id"] for x in lines[:2]]


def test_cli_simplify_refuses_to_overwrite_its_input(tmp_path, capsys):
    source = tmp_path / "in.ndjson"
    source.write_text('{"drawing": [[[1.0, 2.0], [3.0, 4.0]]]}\n')
    assert main(["simplify", str(source), "--out", str(source), "--quiet"]) == 1
    assert "is the input file" in capsys.readouterr().err


def test_cli_simplify_to_binary_and_refuses_other_suffixes(shared, tmp_path, capsys):
    raw = shared / "mirror" / "full" / "raw" / "The Eiffel Tower.ndjson"
    out = tmp_path / "tower.bin"
    assert main(["simplify", str(raw), "--out", str(out), "--quiet"]) == 0
    expected = [simplify_drawing(r["drawing"]) for r in formats.iter_ndjson(raw)]
    assert [r["drawing"] for r in formats.iter_binary(out)] == expected
    assert main(["simplify", str(raw), "--out", str(tmp_path / "tower.json"), "--quiet"]) == 1
    assert "must end in one of '.ndjson', '.ndjson.gz', '.jsonl', '.bin'" in capsys.readouterr().err
    assert not (tmp_path / "tower.json").exists()


def test_simplify_errors_name_the_file_and_line(tmp_path, capsys):
    """They named "record 2", counted from 0, and no file."""
    raw = tmp_path / "raw.ndjson"
    good = '{"key_id": "1", "drawing": [[[0.5, 10.0], [0.0, 5.0], [0, 1]]]}'
    raw.write_text(f"{good}\n\n{good}\n" + '{"key_id": "7", "drawing": [[[], [], []]]}\n')
    assert main(["simplify", str(raw), "--out", str(tmp_path / "s.ndjson"), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert f"{raw}:4 (key_id 7): the drawing has no points" in err and err.count("\n") == 1
    skip = ["simplify", str(raw), "--out", str(tmp_path / "s.ndjson"), "--quiet"]
    assert main([*skip, "--on-error", "skip"]) == 0
    assert "skipped 1" in capsys.readouterr().out
