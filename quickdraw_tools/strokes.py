"""The stroke formats, defined once, and the pure transforms between them.

Formats (the names used everywhere in this project):

drawing
    The ndjson layout: a list of strokes, each stroke ``[xs, ys]`` (simplified
    files, ints 0-255) or ``[xs, ys, ts]`` (raw files, floats, t in ms). Any
    sequence of sequences works; numpy arrays of shape ``(2, n)``/``(3, n)`` too.
stroke-3
    ``(n, 3)`` array of rows ``(dx, dy, pen_lifted)``: offsets from the previous
    point (the first row is the offset of the first point from the origin) and
    1 on the last point of every stroke. This is the sketch-rnn ``.npz`` layout.
stroke-5
    ``(max_len + 1, 5)`` array of rows ``(dx, dy, p1, p2, p3)``: p1 = pen down
    after this point, p2 = pen lifted after this point, p3 = end of sketch. Row 0
    is the start token ``(0, 0, 1, 0, 0)``, then the sketch's ``max_len`` rows: its
    points, then padding ``(0, 0, 0, 0, 1)``, as in Ha & Eck (2018) and magenta's
    ``pad_batch`` (magenta's ``to_big_strokes`` gives the ``max_len`` rows without
    the token). A sketch's first point at the origin is the row ``(0, 0, 1, 0, 0)``
    too: only the caller knows whether row 0 is a token, so `stroke5_to_stroke3`
    is told (``start_token``).

Randomness arrives as an explicit ``numpy.random.Generator``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .errors import QuickDrawError

START_TOKEN = np.array([0, 0, 1, 0, 0], dtype=np.float32)


# --- drawings: the one validator ------------------------------------------------------

PLAIN_NUMBERS = frozenset({int, float})  # the types JSON numbers parse to (packed.py too)
# the most points one drawing may have, wherever it is read (ndjson, .bin, .npz) or written:
# the official drawings have a few hundred (raw ones, with times, a few thousand)
MAX_POINTS = 100_000


def _check_axis(axis, where: str, stroke: int) -> None:
    """Raise ValueError unless `axis` is a 1-D sequence of real numbers (bools are not)."""
    if isinstance(axis, np.ndarray):
        if axis.ndim != 1 or axis.dtype.kind not in "iuf":
            raise ValueError(
                f"{where}: stroke {stroke} is a {axis.dtype} array; coordinates must be numbers"
            )
        return
    if not isinstance(axis, list | tuple):
        raise ValueError(f"{where}: stroke {stroke} is not [xs, ys] or [xs, ys, ts]")
    if PLAIN_NUMBERS.issuperset(map(type, axis)):  # the common case, checked at C speed
        return
    for v in axis:
        if isinstance(v, bool) or not isinstance(v, int | float | np.integer | np.floating):
            raise ValueError(
                f"{where}: stroke {stroke} has {v!r} among its coordinates, which must be numbers"
            )


def _checked_strokes(drawing, where: str):
    """The strokes of `drawing` as ``(xs, ys, ts or None)``, shapes and types checked.

    Raises ValueError saying what is wrong (finiteness is checked later, vectorised).
    """
    if isinstance(drawing, dict):
        if "drawing" not in drawing:
            raise ValueError(f"{where} is a record without a 'drawing'")
        drawing = drawing["drawing"]
    if isinstance(drawing, str | bytes | dict) or not isinstance(
        drawing, list | tuple | np.ndarray
    ):
        raise ValueError(
            f"{where} is {type(drawing).__name__}, not a list of strokes [xs, ys(, ts)]"
        )
    out = []
    plain, issuperset = list, PLAIN_NUMBERS.issuperset
    for j, stroke in enumerate(drawing):
        # the common case (what JSON gives): lists of ints and floats, checked at C speed
        if type(stroke) is plain and 2 <= len(stroke) <= 3:
            xs, ys = stroke[0], stroke[1]
            ts = stroke[2] if len(stroke) == 3 else None
            if (
                type(xs) is plain
                and type(ys) is plain
                and len(xs) == len(ys)
                and issuperset(map(type, xs))
                and issuperset(map(type, ys))
                and (
                    ts is None
                    or (type(ts) is plain and len(ts) == len(xs) and issuperset(map(type, ts)))
                )
            ):
                out.append((xs, ys, ts))
                continue
        out.append(_checked_stroke(stroke, where, j))
    points = sum(len(xs) for xs, _, _ in out)
    if points > MAX_POINTS:
        raise ValueError(f"{where} has {points:,} points; a drawing has at most {MAX_POINTS:,}")
    return out


def _checked_stroke(stroke, where: str, j: int):
    """One stroke of any accepted form (tuples, numpy arrays, numpy scalars), or the reason
    it is not one."""
    if (
        isinstance(stroke, str | bytes | dict)
        or not isinstance(stroke, list | tuple | np.ndarray)
        or len(stroke) not in (2, 3)
    ):
        raise ValueError(f"{where}: stroke {j} is not [xs, ys] or [xs, ys, ts]")
    for axis in stroke:
        _check_axis(axis, where, j)
    if any(len(axis) != len(stroke[0]) for axis in stroke):
        raise ValueError(
            f"{where}: stroke {j} has xs, ys (and ts) of different lengths; "
            "they must have equal lengths"
        )
    return (stroke[0], stroke[1], stroke[2] if len(stroke) == 3 else None)


def is_raw(drawing: Sequence) -> bool:
    """A raw drawing has timestamps (three arrays per stroke), coordinates that are not
    whole numbers, or coordinates outside 0-255 (a simplified drawing has none of these)."""
    for stroke in drawing:
        if len(stroke) == 3:
            return True
        if any(isinstance(v, float) and not v.is_integer() for v in stroke[0]):
            return True
        if any(v < 0 or v > 255 for v in stroke[0]) or any(v < 0 or v > 255 for v in stroke[1]):
            return True
    return False


def drawing_problem(drawing) -> str | None:
    """Why `drawing` is not a drawing (see the module doc), or None if it is one.

    The check every reader and writer of drawings uses: a list of strokes, each
    ``[xs, ys]`` or ``[xs, ys, ts]`` of equal-length sequences of real numbers
    (lists or 1-D numpy arrays; bools and strings are not numbers). NaN and
    infinities are caught where the points are gathered (`flatten_drawings`).
    """
    try:
        _checked_strokes(drawing, "the drawing")
    except ValueError as e:
        return str(e).removeprefix("the drawing: ")
    return None


@dataclass
class FlatDrawings:
    """Drawings as flat arrays: every point of every non-empty stroke, in order.

    x, y: float64 ``(P,)``; t: float64 ``(P,)`` when every stroke has times and
    they were asked for, else None; lengths: points per stroke ``(S,)``; counts:
    strokes per drawing ``(D,)`` (0 for a drawing with no points).
    """

    x: np.ndarray
    y: np.ndarray
    t: np.ndarray | None
    lengths: np.ndarray
    counts: np.ndarray

    def strokes(self, drawing: int = 0) -> list[tuple[np.ndarray, np.ndarray, np.ndarray | None]]:
        """The strokes of one drawing as ``(xs, ys, ts or None)`` float64 arrays."""
        first = int(self.counts[:drawing].sum())
        bounds = np.concatenate([[0], np.cumsum(self.lengths)])
        out = []
        for s in range(first, first + int(self.counts[drawing])):
            a, b = bounds[s], bounds[s + 1]
            out.append((self.x[a:b], self.y[a:b], None if self.t is None else self.t[a:b]))
        return out


def _as_float(v) -> float:
    try:
        return float(v)
    except OverflowError:
        return np.inf  # reported below as not finite, with the drawing named


def flatten_drawing(drawing, times: bool = False, *, checked: bool = False) -> FlatDrawings:
    """`flatten_drawings` for one drawing; errors call it "the drawing"."""
    return _flatten([drawing], lambda i: "the drawing", times, checked)


def flatten_drawings(
    drawings: Sequence, first_index: int = 0, times: bool = False, *, checked: bool = False
) -> FlatDrawings:
    """Check drawings (or ndjson records) and gather their points into `FlatDrawings`.

    Every module that takes drawings (raster, simplify, svg, the stroke
    formats) goes through this one check; errors name the drawing by its index
    (``first_index`` is the index of ``drawings[0]`` in the caller's list) and
    the stroke. Empty strokes are dropped. ``times=True`` also gathers raw
    timestamps when every stroke has them. ``checked=True`` says the drawings
    have passed `drawing_problem` already (what the readers in `formats` yield),
    so their shapes are not checked twice; finiteness always is.
    """
    return _flatten(drawings, lambda i: f"drawing {first_index + i}", times, checked)


def _as_triples(drawing):
    """A checked drawing's strokes as ``(xs, ys, ts or None)``."""
    if isinstance(drawing, dict):
        drawing = drawing["drawing"]
    return [(s[0], s[1], s[2] if len(s) == 3 else None) for s in drawing]


def _flatten(drawings: Sequence, name, times: bool, checked: bool = False) -> FlatDrawings:
    if isinstance(drawings, str | bytes | dict) or not isinstance(
        drawings, list | tuple | np.ndarray
    ):
        try:
            drawings = list(drawings)
        except TypeError:
            raise QuickDrawError(
                f"drawings must be a sequence of drawings, got {type(drawings).__name__}"
            ) from None
    xs: list = []
    ys: list = []
    ts: list | None = [] if times else None
    lengths: list[int] = []
    counts: list[int] = []
    for i, drawing in enumerate(drawings):
        try:
            strokes = _as_triples(drawing) if checked else _checked_strokes(drawing, name(i))
        except ValueError as e:
            raise QuickDrawError(str(e)) from None
        n = 0
        for sx, sy, st in strokes:
            if len(sx):
                xs.extend(sx)
                ys.extend(sy)
                if ts is not None:
                    if st is None:
                        ts = None
                    else:
                        ts.extend(st)
                lengths.append(len(sx))
                n += 1
        counts.append(n)
    try:
        x = np.asarray(xs, dtype=np.float64)
        y = np.asarray(ys, dtype=np.float64)
    except OverflowError:  # an integer beyond float64 (a 400-digit coordinate)
        x = np.array([_as_float(v) for v in xs])
        y = np.array([_as_float(v) for v in ys])
    bad = np.flatnonzero(~(np.isfinite(x) & np.isfinite(y)))
    if len(bad):
        stroke = int(np.searchsorted(np.cumsum(lengths), bad[0], side="right"))
        drawing = int(np.searchsorted(np.cumsum(counts), stroke, side="right"))
        raise QuickDrawError(
            f"{name(drawing)}: coordinates must be finite numbers (not NaN, infinite or beyond "
            f"float64), got ({float(x[bad[0]]):g}, {float(y[bad[0]]):g})"
        )
    t = np.asarray(ts, dtype=np.float64) if ts is not None else None
    return FlatDrawings(x, y, t, np.asarray(lengths, np.int64), np.asarray(counts, np.int64))


def ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenation of ``arange(s, s + n)`` for each (s, n), without a Python loop: the rows
    of several drawings (or points of several strokes) at once."""
    starts, lengths = np.asarray(starts, dtype=np.int64), np.asarray(lengths, dtype=np.int64)
    total = int(lengths.sum())
    offsets = np.cumsum(lengths) - lengths
    return np.repeat(starts - offsets, lengths) + np.arange(total)


def _check_stroke3(strokes: np.ndarray) -> np.ndarray:
    strokes = np.asarray(strokes)
    if strokes.ndim != 2 or strokes.shape[1] != 3:
        raise QuickDrawError(f"stroke-3 must have shape (n, 3), got {strokes.shape}")
    return strokes


def drawing_to_stroke3(drawing: Sequence, dtype=np.int16, *, checked: bool = False) -> np.ndarray:
    """Drawing (list of ``[xs, ys(, ts)]``) -> stroke-3 ``(n, 3)`` of `dtype`.

    Times, if present, are dropped. Empty strokes are skipped (``checked``: see
    `flatten_drawings`). For an integer
    `dtype`, float points are rounded to the nearest integer before the offsets
    are taken (so offsets add up to the rounded points, without drift), and
    offsets that do not fit `dtype` raise `QuickDrawError` instead of wrapping.
    """
    flat = flatten_drawing(drawing, checked=checked)
    if not len(flat.x):
        return np.zeros((0, 3), dtype=dtype)
    xy = np.column_stack([flat.x, flat.y])
    lifted = np.zeros(len(xy), dtype=np.int64)
    lifted[np.cumsum(flat.lengths) - 1] = 1
    integer = np.issubdtype(np.dtype(dtype), np.integer)
    if integer:
        xy = np.round(xy)
    offsets = np.diff(xy, axis=0, prepend=np.zeros((1, 2)))
    if integer:
        low, high = np.iinfo(dtype).min, np.iinfo(dtype).max
        if offsets.min() < low or offsets.max() > high:
            raise QuickDrawError(
                f"offsets from {offsets.min():g} to {offsets.max():g} do not fit "
                f"{np.dtype(dtype)} ({low} to {high})"
            )
    out = np.column_stack([offsets, lifted])
    return out.astype(dtype)


def stroke3_to_drawing(strokes: np.ndarray) -> list[list[list]]:
    """Stroke-3 ``(n, 3)`` -> drawing ``[[xs, ys], ...]`` of absolute coordinates.

    Integer input gives ints; float input gives floats. A trailing stroke whose
    pen is never lifted is kept as the last stroke.
    """
    strokes = _check_stroke3(strokes)
    xy = np.cumsum(strokes[:, :2], axis=0)
    ends = np.flatnonzero(strokes[:, 2] > 0.5) + 1
    if len(ends) == 0 or ends[-1] != len(strokes):
        ends = np.append(ends, len(strokes))
    drawing, start = [], 0
    for end in ends:
        if end > start:
            seg = xy[start:end]
            drawing.append([seg[:, 0].tolist(), seg[:, 1].tolist()])
        start = int(end)
    return drawing


def stroke3_to_stroke5(strokes: np.ndarray, max_len: int) -> np.ndarray:
    """Stroke-3 ``(n, 3)`` -> stroke-5 ``(max_len + 1, 5)`` float32 with start token.

    Raises if ``n > max_len``.
    """
    strokes = _check_stroke3(strokes)
    n = len(strokes)
    if n > max_len:
        raise QuickDrawError(f"sketch has {n} points, more than max_len={max_len}")
    out = np.zeros((max_len + 1, 5), dtype=np.float32)
    out[0] = START_TOKEN
    out[1 : n + 1, :2] = strokes[:, :2]
    out[1 : n + 1, 3] = strokes[:, 2]
    out[1 : n + 1, 2] = 1 - strokes[:, 2]
    out[n + 1 :, 4] = 1
    return out


def stroke5_to_stroke3(big: np.ndarray, start_token: bool = True) -> np.ndarray:
    """Stroke-5 -> stroke-3, cut at the first end-of-sketch row.

    start_token: row 0 is the start token (what `stroke3_to_stroke5` and magenta's
        ``pad_batch`` put there): it is dropped, and a row 0 that is not
        ``(0, 0, 1, 0, 0)`` is refused. False: every row is the sketch's (magenta's
        ``to_big_strokes``), and nothing is dropped, also not a first point at the
        origin, whose row looks like the token.
    The pen state of each row is its argmax over (p1, p2, p3), so model outputs with
    soft pen values work too.
    """
    big = np.asarray(big)
    if big.ndim != 2 or big.shape[1] != 5:
        raise QuickDrawError(f"stroke-5 must have shape (n, 5), got {big.shape}")
    if start_token:
        if not len(big) or not np.array_equal(big[0], START_TOKEN):
            first = big[0].tolist() if len(big) else "missing"
            raise QuickDrawError(
                f"stroke-5 row 0 is {first}, not the start token (0, 0, 1, 0, 0); pass "
                "start_token=False for stroke-5 rows without one (magenta's to_big_strokes)"
            )
        big = big[1:]
    pen = np.argmax(big[:, 2:], axis=1)
    end = np.flatnonzero(pen == 2)
    n = int(end[0]) if len(end) else len(big)
    out = np.zeros((n, 3), dtype=big.dtype)
    out[:, :2] = big[:n, :2]
    out[:, 2] = pen[:n] == 1
    return out


def bounds(strokes: np.ndarray) -> tuple[float, float, float, float]:
    """(min_x, max_x, min_y, max_y) of the absolute points of a stroke-3 sketch."""
    xy = np.cumsum(_check_stroke3(strokes)[:, :2].astype(np.float64), axis=0)
    if len(xy) == 0:
        return (0.0, 0.0, 0.0, 0.0)
    return (xy[:, 0].min(), xy[:, 0].max(), xy[:, 1].min(), xy[:, 1].max())


# --- dataset-level preparation (sketch-rnn's DataLoader, as pure functions) ---


def clip_offsets(strokes: np.ndarray, limit: float = 1000) -> np.ndarray:
    """Clamp dx, dy to [-limit, limit] (removes the rare huge jumps), as float32."""
    out = _check_stroke3(strokes).astype(np.float32)
    np.clip(out[:, :2], -limit, limit, out=out[:, :2])
    return out


def filter_by_length(
    sketches: Sequence[np.ndarray], max_len: int, min_len: int = 1
) -> list[np.ndarray]:
    """Keep the sketches with ``min_len <= n <= max_len`` points."""
    return [s for s in sketches if min_len <= len(s) <= max_len]


def normalizing_scale_factor(train: Sequence[np.ndarray]) -> float:
    """Std of all (dx, dy) offsets of the *training* split (sketch-rnn's scale).

    Divide offsets by this factor so they have unit spread; the factor travels
    with a model's checkpoint so samples can be scaled back.
    """
    if len(train) == 0:
        raise QuickDrawError("cannot compute a scale factor from an empty training split")
    offsets = np.concatenate([np.asarray(s, dtype=np.float64)[:, :2].ravel() for s in train])
    scale = float(np.std(offsets))
    if not np.isfinite(scale) or scale <= 0:
        raise QuickDrawError(f"degenerate training split: offset std is {scale}")
    return scale


def normalize(strokes: np.ndarray, scale: float) -> np.ndarray:
    """Divide the offsets of a stroke-3 sketch by `scale` (returns float32)."""
    out = _check_stroke3(strokes).astype(np.float32)
    out[:, :2] /= scale
    return out


def random_scale(strokes: np.ndarray, rng: np.random.Generator, amount: float = 0.15) -> np.ndarray:
    """Scale x and y independently by factors drawn uniformly from [1 - amount, 1 + amount]."""
    out = _check_stroke3(strokes).astype(np.float32)
    fx, fy = 1.0 + amount * (2.0 * rng.random(2) - 1.0)
    out[:, 0] *= fx
    out[:, 1] *= fy
    return out


def augment_strokes(strokes: np.ndarray, rng: np.random.Generator, prob: float) -> np.ndarray:
    """sketch-rnn's stroke augmentation: merge interior points of a stroke.

    Walking the sketch, a point that is not a stroke's end, follows no pen lift
    and is past the first three points of its stroke is merged, with
    probability `prob`, into the point kept before it: that point's offset grows
    by the dropped one's, so it moves to the dropped point's position and every
    later point stays where it was. Stroke ends are never dropped.
    """
    strokes = _check_stroke3(strokes).astype(np.float32)
    if prob <= 0 or len(strokes) == 0:
        return strokes.copy()
    draws = rng.random(len(strokes))
    kept: list[np.ndarray] = []
    run = 0  # interior points since the last pen lift, counting this one
    prev_lifted = True
    for i, row in enumerate(strokes):
        lifted = row[2] > 0.5
        run = 0 if (lifted or prev_lifted) else run + 1
        if not lifted and not prev_lifted and run > 2 and draws[i] < prob:
            kept[-1][:2] += row[:2]
            continue
        kept.append(row.copy())
        prev_lifted = lifted
    return np.stack(kept)
