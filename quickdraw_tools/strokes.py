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
    is the start token ``(0, 0, 1, 0, 0)``; rows after the sketch are padding
    ``(0, 0, 0, 0, 1)``, as in Ha & Eck (2018) and magenta's ``pad_batch``.

Randomness arrives as an explicit ``numpy.random.Generator``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .errors import QuickDrawError

START_TOKEN = np.array([0, 0, 1, 0, 0], dtype=np.float32)


def coordinate_arrays(xs: Sequence, ys: Sequence) -> tuple[np.ndarray, np.ndarray]:
    """Gathered x and y coordinates of drawings as flat float64 arrays.

    Raises QuickDrawError if they are not plain numbers (strings, nested lists).
    Finiteness is the caller's to check: it knows which drawing to name.
    """
    try:
        x = np.asarray(xs, dtype=np.float64)
        y = np.asarray(ys, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise QuickDrawError(f"drawing coordinates must be numbers ({e})") from None
    if x.ndim != 1 or y.ndim != 1:
        raise QuickDrawError("drawing coordinates must be numbers, not nested lists")
    return x, y


def _check_stroke3(strokes: np.ndarray) -> np.ndarray:
    strokes = np.asarray(strokes)
    if strokes.ndim != 2 or strokes.shape[1] != 3:
        raise QuickDrawError(f"stroke-3 must have shape (n, 3), got {strokes.shape}")
    return strokes


def drawing_to_stroke3(drawing: Sequence, dtype=np.int16) -> np.ndarray:
    """Drawing (list of ``[xs, ys(, ts)]``) -> stroke-3 ``(n, 3)`` of `dtype`.

    Times, if present, are dropped. Empty strokes are skipped. For an integer
    `dtype`, float points are rounded to the nearest integer before the offsets
    are taken (so offsets add up to the rounded points, without drift), and
    offsets that do not fit `dtype` raise `QuickDrawError` instead of wrapping.
    """
    points, lifted = [], []
    for i, stroke in enumerate(drawing):
        if len(stroke) < 2 or len(stroke[0]) != len(stroke[1]):
            raise QuickDrawError(f"stroke {i} is not [xs, ys(, ts)] with equal lengths")
        xy = np.column_stack([np.asarray(stroke[0]), np.asarray(stroke[1])])
        if len(xy) == 0:
            continue
        points.append(xy)
        pen = np.zeros(len(xy), dtype=np.int64)
        pen[-1] = 1
        lifted.append(pen)
    if not points:
        return np.zeros((0, 3), dtype=dtype)
    xy = np.concatenate(points).astype(np.float64)
    if not np.isfinite(xy).all():
        raise QuickDrawError("drawing coordinates must be finite numbers (found NaN or inf)")
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
    out = np.column_stack([offsets, np.concatenate(lifted)])
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


def stroke5_to_stroke3(big: np.ndarray) -> np.ndarray:
    """Stroke-5 -> stroke-3, cut at the first end-of-sketch row.

    Accepts arrays with or without the start token (a leading ``(0, 0, 1, 0, 0)``
    row is dropped). The pen state of each row is its argmax over (p1, p2, p3),
    so model outputs with soft pen values work too.
    """
    big = np.asarray(big)
    if big.ndim != 2 or big.shape[1] != 5:
        raise QuickDrawError(f"stroke-5 must have shape (n, 5), got {big.shape}")
    if len(big) and np.array_equal(big[0], START_TOKEN):
        big = big[1:]
    pen = np.argmax(big[:, 2:], axis=1)
    end = np.flatnonzero(pen == 2)
    n = int(end[0]) if len(end) else len(big)
    out = np.zeros((n, 3), dtype=big.dtype)
    out[:, :2] = big[:n, :2]
    out[:, 2] = pen[:n] == 1
    return out


def seq_len(big: np.ndarray) -> int:
    """Number of real points in a stroke-5 array (with start token)."""
    return int(np.argmax(big[1:, 4] > 0.5)) if big[1:, 4].any() else len(big) - 1


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
