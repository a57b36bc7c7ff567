"""Simplification of raw drawings exactly as Google made the `simplified` files.

The dataset README gives the recipe: align the drawing to the top-left corner,
scale it uniformly so the maximum coordinate is 255, resample every stroke at
1-pixel spacing, simplify every stroke with Ramer-Douglas-Peucker (epsilon 2.0).

`rdp` is a compiled (numba) Ramer-Douglas-Peucker whose output is identical to
the `rdp` package (v0.8, the test oracle), and `simplify_drawing` is the recipe
with the details that make it reproduce Google's files (see its docstring).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
from numba import njit
from tqdm import tqdm

from .errors import QuickDrawError, check_choice, printable
from .formats import (
    DRAWING_KINDS,
    ReadStats,
    file_kind,
    iter_ndjson,
    suffix_list,
    write_binary,
    write_ndjson,
)
from .strokes import flatten_drawing, flatten_drawings

# ---------------------------------------------------------------------------
# Ramer-Douglas-Peucker
# ---------------------------------------------------------------------------


@njit(cache=True, error_model="numpy")
def _rdp_mask(x: np.ndarray, y: np.ndarray, epsilon) -> np.ndarray:
    """Keep-mask of the `rdp` package's iterative algorithm (`rdp._rdp_iter`).

    Every floating-point operation is the one the package performs, in the same
    order and precision (x, y are float32 or float64, epsilon of the same type):

    * distance to the chord ``pldist``: ``|norm(cross(end - start, start - p))| /
      norm(end - start)``; numpy's 2-D cross is ``a0*b1 - a1*b0`` and
      ``norm(v)`` is ``sqrt(dot(v, v))``, so the numerator is ``sqrt(c*c)``
      (not ``abs(c)``: they differ when ``c*c`` under- or overflows);
    * when start == end (a closed stroke) the distance is ``norm(p - start)``;
    * the farthest point wins only if strictly farther (``d > dmax``), so ties go
      to the first index, and a segment is split only if ``dmax > epsilon``.
    """
    n = x.shape[0]
    keep = np.ones(n, dtype=np.bool_)
    if n < 3:
        return keep
    # Pending segments have disjoint interiors, so at most n - 1 are on the stack.
    starts = np.empty(n, dtype=np.int64)
    ends = np.empty(n, dtype=np.int64)
    starts[0] = 0
    ends[0] = n - 1
    top = 1
    while top > 0:
        top -= 1
        s = starts[top]
        e = ends[top]
        sx = x[s]
        sy = y[s]
        dx = x[e] - sx
        dy = y[e] - sy
        same = x[e] == sx and y[e] == sy
        chord = np.sqrt(dx * dx + dy * dy)
        dmax = 0.0  # float64 holds a float32 d exactly, so comparisons are unchanged
        index = s
        for i in range(s + 1, e):
            if not keep[i]:
                continue
            if same:
                px = x[i] - sx
                py = y[i] - sy
                d = np.sqrt(px * px + py * py)
            else:
                bx = sx - x[i]
                by = sy - y[i]
                c = dx * by - dy * bx
                d = np.abs(np.sqrt(c * c)) / chord
            if d > dmax:
                index = i
                dmax = d
        if dmax > epsilon:
            starts[top] = s
            ends[top] = index
            starts[top + 1] = index
            ends[top + 1] = e
            top += 2
        else:
            for i in range(s + 1, e):
                keep[i] = False
    return keep


def rdp_mask(points, epsilon: float) -> np.ndarray:
    """Boolean keep-mask ``(n,)`` of `rdp` for points ``(n, 2)``."""
    pts = np.asarray(points)
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise QuickDrawError(f"rdp needs points of shape (n, 2), got {pts.shape}")
    if pts.dtype.kind not in "iuf":
        raise QuickDrawError(f"rdp needs real numbers, got dtype {pts.dtype}")
    epsilon = float(epsilon)
    if not epsilon >= 0:  # also rejects NaN; the rdp package loops forever on epsilon < 0
        raise QuickDrawError(f"rdp epsilon must be >= 0, got {epsilon}")
    # float32 stays float32 as in numpy (where the Python-float epsilon is compared
    # in float32 too); integers are measured in float64 (see `rdp`), and so is
    # float16, which numpy would keep in float16.
    dtype = np.float32 if pts.dtype == np.float32 else np.float64
    x = np.ascontiguousarray(pts[:, 0], dtype=dtype)
    y = np.ascontiguousarray(pts[:, 1], dtype=dtype)
    return _rdp_mask(x, y, dtype(epsilon))


def rdp(points, epsilon: float) -> np.ndarray:
    """Ramer-Douglas-Peucker: the points ``(m, 2)`` of `points` ``(n, 2)`` that are kept.

    Output is identical to ``rdp.rdp(np.asarray(points), epsilon)`` of the `rdp`
    package (v0.8, default iterative algorithm): same points, same dtype; 0, 1 or
    2 points come back unchanged (as a copy). A negative or NaN `epsilon` is an
    error (the package never returns for epsilon < 0).

    Integer points are measured exactly (in float64, exact for |coordinates| <
    2**26). The package computes differences and cross products in the input's
    own integer type, so for small types where those wrap around (uint8, e.g.
    coordinates read from a `.bin` file, uint16, int8) its output is an artefact
    of the overflow; there the two differ, deliberately. Cast such input first.
    """
    pts = np.asarray(points)
    return pts[rdp_mask(pts, epsilon)]


# ---------------------------------------------------------------------------
# Google's recipe
# ---------------------------------------------------------------------------

EPSILON = 2.0  # RDP tolerance of the official simplified files, in 0-255 units
SIZE = 255.0  # the largest coordinate after scaling


@njit(cache=True, error_model="numpy")
def _resample(x: np.ndarray, y: np.ndarray):
    """One scaled stroke -> points every 1 unit of arc length, then its last point.

    Points at arc length t = 0, 1, 2, ... < L (``np.arange(0, L)``), each
    interpolated on its segment j as ``p[j] * (1 - f) + p[j+1] * f`` with
    ``f = (t - cum[j]) / seg[j]``; then the stroke's own last point, exactly.
    """
    n = x.shape[0]
    seg = np.empty(max(n - 1, 0))
    cum = np.empty(n)
    cum[0] = 0.0
    for j in range(n - 1):
        dx = x[j + 1] - x[j]
        dy = y[j + 1] - y[j]
        seg[j] = np.sqrt(dx * dx + dy * dy)
        cum[j + 1] = cum[j] + seg[j]
    total = cum[n - 1]
    m = int(np.ceil(total))  # len(np.arange(0, total)): every t < total
    rx = np.empty(m + 1)
    ry = np.empty(m + 1)
    j = 0
    for k in range(m):
        t = float(k)
        # the segment that holds t: the last j with cum[j] <= t (never a zero-length one)
        while j < n - 2 and cum[j + 1] <= t:
            j += 1
        f = (t - cum[j]) / seg[j]
        rx[k] = x[j] * (1.0 - f) + x[j + 1] * f
        ry[k] = y[j] * (1.0 - f) + y[j + 1] * f
    rx[m] = x[n - 1]
    ry[m] = y[n - 1]
    return rx, ry


@njit(cache=True, error_model="numpy")
def _simplify_flat(x, y, stroke_offsets, drawing_offsets, epsilon):
    """Simplify many drawings stored flat; see `simplify_drawing` for the recipe.

    x, y: float64 ``(N,)``, all points; stroke s is ``[stroke_offsets[s], stroke_offsets[s+1])``
    and drawing d is strokes ``[drawing_offsets[d], drawing_offsets[d+1])``; empty strokes
    are allowed (they come out empty), a drawing has at least one point.
    Returns int64 ``ox, oy`` and the output's stroke offsets (same stroke count).
    """
    n_strokes = stroke_offsets.shape[0] - 1
    out_offsets = np.zeros(n_strokes + 1, dtype=np.int64)
    cap = 16
    ox = np.empty(cap, dtype=np.int64)
    oy = np.empty(cap, dtype=np.int64)
    used = 0
    for d in range(drawing_offsets.shape[0] - 1):
        first = stroke_offsets[drawing_offsets[d]]
        last = stroke_offsets[drawing_offsets[d + 1]]
        mnx = x[first:last].min()
        mny = y[first:last].min()
        size = 0.0
        for i in range(first, last):
            size = max(size, x[i] - mnx, y[i] - mny)
        for s in range(drawing_offsets[d], drawing_offsets[d + 1]):
            a = stroke_offsets[s]
            b = stroke_offsets[s + 1]
            if b > a:
                if size > 0.0:
                    sx = (x[a:b] - mnx) * SIZE / size
                    sy = (y[a:b] - mny) * SIZE / size
                else:  # every point of the drawing is the same point
                    sx = x[a:b] - mnx
                    sy = y[a:b] - mny
                rx, ry = _resample(sx, sy)
                keep = _rdp_mask(rx, ry, epsilon)
                k = 0
                for i in range(keep.shape[0]):
                    k += keep[i]
                need = used + max(k, 2)
                if need > cap:
                    cap = max(2 * cap, need)
                    ox2 = np.empty(cap, dtype=np.int64)
                    oy2 = np.empty(cap, dtype=np.int64)
                    ox2[:used] = ox[:used]
                    oy2[:used] = oy[:used]
                    ox = ox2
                    oy = oy2
                for i in range(keep.shape[0]):
                    if keep[i]:
                        ox[used] = np.int64(np.rint(rx[i]))  # round half to even, as np.round
                        oy[used] = np.int64(np.rint(ry[i]))
                        used += 1
                if k == 1:  # a one-point (or zero-length) stroke comes out as two points
                    ox[used] = ox[used - 1]
                    oy[used] = oy[used - 1]
                    used += 1
            out_offsets[s + 1] = used
    return ox[:used], oy[:used], out_offsets


def scale_drawing(raw_drawing: Sequence) -> list[np.ndarray]:
    """Steps 1-2 of `simplify_drawing`: the strokes aligned to (0, 0) and scaled to 0-255.

    Returns one float64 ``(n, 2)`` array per stroke, computed exactly as the
    compiled pipeline does (``(v - min) * 255 / size``).
    """
    x, y, stroke_offsets, _ = _flatten([raw_drawing], single=True)
    low = np.array([x.min(), y.min()])
    points = np.column_stack([x, y]) - low
    size = points.max()
    if size > 0:
        points = points * SIZE / size
    return [points[a:b] for a, b in zip(stroke_offsets[:-1], stroke_offsets[1:], strict=True)]


def resample_stroke(points) -> np.ndarray:
    """Step 3 of `simplify_drawing`: ``(n, 2)`` points -> ``(m, 2)`` at 1-unit spacing.

    Points at arc length 0, 1, 2, ... (< the length), then the last point itself
    (so a one-point or zero-length stroke gives its last point only).
    """
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 2 or len(pts) == 0:
        raise QuickDrawError(f"resample_stroke needs points of shape (n >= 1, 2), got {pts.shape}")
    rx, ry = _resample(np.ascontiguousarray(pts[:, 0]), np.ascontiguousarray(pts[:, 1]))
    return np.column_stack([rx, ry])


def _flatten(drawings: Sequence, single: bool = False, checked: bool = False):
    """Drawings -> flat float64 x, y and the stroke/drawing offsets `_simplify_flat` takes."""
    if single:
        flat = flatten_drawing(drawings[0], checked=checked)
    else:
        flat = flatten_drawings(drawings, checked=checked)
    empty = np.flatnonzero(flat.counts == 0)
    if len(empty):
        raise QuickDrawError(f"{'the drawing' if single else f'drawing {empty[0]}'} has no points")
    x, y = flat.x, flat.y
    strokes_at = np.concatenate([[0], np.cumsum(flat.lengths)])
    drawings_at = np.concatenate([[0], np.cumsum(flat.counts)])
    # Scaling computes (v - min) * 255 in float64: a drawing whose extent overflows that
    # (coordinates beyond ~1e305) would come out as NaN, so refuse it here.
    first_points = strokes_at[drawings_at[:-1]]
    with np.errstate(over="ignore", invalid="ignore"):
        for v in (x, y):
            extent = np.maximum.reduceat(v, first_points) - np.minimum.reduceat(v, first_points)
            if not np.isfinite(extent * SIZE).all():
                raise QuickDrawError("drawing coordinates span too large a range to scale")
    return x, y, strokes_at, drawings_at


def _unflatten(ox, oy, out_offsets, drawing_offsets) -> list[list[list[list[int]]]]:
    xs, ys, cuts = ox.tolist(), oy.tolist(), out_offsets.tolist()
    drawings = []
    for d in range(len(drawing_offsets) - 1):
        strokes = []
        for s in range(drawing_offsets[d], drawing_offsets[d + 1]):
            a, b = cuts[s], cuts[s + 1]
            strokes.append([xs[a:b], ys[a:b]])
        drawings.append(strokes)
    return drawings


def simplify_drawings(
    drawings: Sequence, _single: bool = False, *, checked: bool = False
) -> list[list[list[list[int]]]]:
    """`simplify_drawing` on many drawings at once (one compiled call: much less overhead).

    ``checked=True``: the drawings come from the readers in `formats` (see
    `strokes.flatten_drawings`)."""
    if not len(drawings):
        return []
    x, y, stroke_offsets, drawing_offsets = _flatten(drawings, _single, checked)
    ox, oy, out_offsets = _simplify_flat(x, y, stroke_offsets, drawing_offsets, EPSILON)
    return _unflatten(ox, oy, out_offsets, drawing_offsets.tolist())


def simplify_drawing(raw_drawing: Sequence) -> list[list[list[int]]]:
    """Raw drawing ``[[xs, ys(, ts)], ...]`` -> simplified drawing ``[[xs, ys], ...]`` (ints).

    Google's recipe, with the details that reproduce the official `simplified`
    files point for point: 5,293 of the 5,294 raw/simplified pairs of
    ``../shared/quickdraw/mirror`` (99.98%). `scripts/check_simplify.py` measures
    it, and with ``--variants`` the match rate of each alternative quoted here.

    1. Align: subtract the drawing's minimum x and minimum y (float64).
    2. Scale uniformly: ``(v - min) * 255 / size``, ``size`` the larger extent:
       multiplied by 255 *then* divided; ``* (255 / size)`` gives 94.65%.
    3. Resample each stroke at 1-unit spacing *of the scaled drawing*: points at
       arc length t = 0, 1, 2, ... < L, each interpolated on its segment j as
       ``p[j] * (1 - f) + p[j+1] * f`` with ``f = (t - cum[j]) / seg[j]``
       (``seg = sqrt(dx*dx + dy*dy)``, ``cum`` their running sum), then the
       stroke's own last point, copied exactly.
       This is where a straightforward reading loses ~5%: resampled points on a
       straight piece of a stroke that runs parallel to an RDP chord are tied in
       distance, and which one RDP keeps (the first strict maximum) depends on
       the last bit of each interpolated coordinate. ``np.interp`` gives 94.79%,
       ``p[j] + (p[j+1] - p[j]) * f`` 94.82%, dividing by ``cum[j+1] - cum[j]``
       96.43%, interpolating the last point at t = L 97.15%, dropping it 10.65%.
    4. RDP (`rdp`, identical to the `rdp` package) with epsilon 2.0 on the float
       points.
    5. Round to integers half to even (``np.round``), *after* RDP: half up gives
       96.34%, truncation 0.06%, rounding before RDP 0.09%.
    6. A one-point (or zero-length) stroke comes out as its point twice,
       ``[[x, x], [y, y]]`` (emitting it once: 90.42%).

    The one remaining miss is such a tie decided by the last bit the other way.

    Strokes with no points are dropped; a drawing with no points at all, or with
    coordinates that are not finite numbers, raises `QuickDrawError`.
    """
    return simplify_drawings([raw_drawing], _single=True)[0]


def simplify_records(
    records: Iterable[Mapping],
    on_error: str = "raise",
    stats: ReadStats | None = None,
    batch_size: int = 1024,
    where: Callable[[int], str] | None = None,
    checked: bool = False,
) -> Iterator[dict]:
    """Stream raw records -> the same records with ``drawing`` simplified.

    Other fields are kept as they are. Records are simplified `batch_size` at a
    time (one compiled call per batch). A record whose drawing cannot be
    simplified (no points, not numbers, not finite) raises `QuickDrawError`
    naming it (``where(i)`` for the i-th record, counting from 0: e.g. its file
    and line; by default "record i"); with ``on_error="skip"`` it is left out
    and counted in ``stats.skipped`` (a `formats.ReadStats`). ``checked=True``:
    the records come from the readers in `formats` (shapes already checked).
    """
    check_choice("on_error mode", on_error, ["raise", "skip"])
    if batch_size < 1:
        raise QuickDrawError(f"batch_size must be >= 1, got {batch_size}")
    batch: list[Mapping] = []
    index = 0
    for record in records:
        batch.append(record)
        if len(batch) == batch_size:
            yield from _simplify_batch(batch, index, on_error, stats, where, checked)
            index += len(batch)
            batch = []
    if batch:
        yield from _simplify_batch(batch, index, on_error, stats, where, checked)


def _simplify_batch(batch, first: int, on_error: str, stats, where, checked) -> list[dict]:
    try:
        drawings = [_drawing_of(r, first + i) for i, r in enumerate(batch)]
        drawings = simplify_drawings(drawings, checked=checked)
        return [{**r, "drawing": d} for r, d in zip(batch, drawings, strict=True)]
    except QuickDrawError:
        pass  # find the bad record(s) one by one
    out = []
    for i, record in enumerate(batch, start=first):
        try:
            out.append({**record, "drawing": simplify_drawing(_drawing_of(record, i))})
        except QuickDrawError as e:
            name = where(i) if where else f"record {i}"
            if isinstance(record, Mapping) and "key_id" in record:
                name += f" (key_id {record['key_id']})"
            if on_error == "raise":
                raise QuickDrawError(f"{name}: {e}") from None
            if stats is not None:
                stats.note_skip(f"{name}: {e}")
    return out


def _drawing_of(record: Mapping, index: int):
    if not isinstance(record, Mapping) or "drawing" not in record:
        raise QuickDrawError(f"record {index} is not a mapping with a 'drawing'")
    return record["drawing"]


@dataclasses.dataclass
class SimplifyStats:
    """What `simplify_file` did."""

    written: int  # records written
    skipped: int  # malformed lines and drawings that could not be simplified, skipped


def simplify_file(
    source: str | Path, out: str | Path, on_error: str = "raise", progress: bool = True
) -> SimplifyStats:
    """Raw ``.ndjson`` file -> simplified ``.ndjson`` file (other fields kept), atomically.

    `out` may also be ``.ndjson.gz``, or an official ``.bin`` (which keeps no
    ``word`` and whole-second timestamps). Streams: memory does not grow with the
    file. With ``on_error="raise"`` a malformed line or drawing stops the run with
    an error naming it, and `out` is left as it was; with ``"skip"`` such records
    are left out and counted.
    """
    check_choice("on_error mode", on_error, ["raise", "skip"])
    source, out = Path(source), Path(out)
    kind = file_kind(out)
    if kind == "binary":
        write = write_binary
    elif kind == "ndjson":
        write = write_ndjson
    else:  # writing ndjson under another name would make a file nothing reads right
        raise QuickDrawError(f"output {out} must end in one of {suffix_list(*DRAWING_KINDS)}")
    if out.exists() and source.exists() and out.resolve() == source.resolve():
        raise QuickDrawError(f"output {out} is the input file; choose another --out")
    stats = ReadStats()
    # the skip count is reported in the result, not as a warning
    numbered = iter_ndjson(source, on_error=on_error, stats=stats, warn=False, numbered=True)
    lines: dict[int, int] = {}  # record index -> its line, for the batch being simplified

    def records() -> Iterator[Mapping]:
        for i, (line, record) in enumerate(numbered):
            lines[i] = line
            lines.pop(i - 4096, None)  # batches are 1024 records: older ones are done
            yield record

    simplified = simplify_records(
        records(),
        on_error=on_error,
        stats=stats,
        where=lambda i: f"{source}:{lines[i]}",
        checked=True,  # iter_ndjson has checked every drawing's shape
    )
    bar = tqdm(
        simplified,
        desc=f"simplify {printable(source.name)}",
        unit=" drawings",
        disable=not progress,
    )
    written = write(out, bar)
    return SimplifyStats(written=written, skipped=stats.skipped)
