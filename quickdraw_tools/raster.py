"""Bitmaps byte-identical to Google's official `numpy_bitmap` files.

The official renderer (described by the dataset's maintainers in
googlecreativelab/quickdraw-dataset issue #19) draws a simplified drawing
(coordinates 0-255) with cairo: white strokes on a black canvas, best
antialiasing, round caps and joins, line width 16 and padding 16 in the
256-unit drawing space. The context is scaled by
``size / (256 + 2 * padding + line_width)`` and then translated by
``(2 * padding + line_width) / 2``; each drawing is shifted by
``((256, 256) - max corner) / 2``; every stroke is one path
(``move_to`` the first point, ``line_to`` every point) stroked on its own, and
the blue byte of the ARGB32 surface is the bitmap. `reference_rasterize` is that
loop, written plainly; the tests hold `rasterize_many` to it and to the
official files byte for byte.

`rasterize_many` produces the same bytes without calling cairo for drawings
that stay inside their bitmap: `stroke_raster` follows cairo 1.16's own
stroker, scan converter and compositor step for step in compiled code
(numba), one drawing after another, in threads (`workers`, default the free
cores; the compiled code runs without the GIL). It starts from the same
device coordinates cairo would compute: each point through the context's
matrix in double precision, then rounded to 1/256 pixel. A drawing that
could reach outside its bitmap (e.g. ``padding=0`` or coordinates beyond
0-255) is drawn by cairo itself, exactly like the reference loop, because
cairo clips such polygons in a way `stroke_raster` does not reproduce. The
tests hold the result to cairo on every simplified drawing of the sample data
at 28 px (a sample of them at 17, 64, 128 and 256 px and other line widths),
on generated awkward strokes and raw (float) drawings, and to the official
files. `stroke_raster` follows cairo 1.16 (the version whose output matches the
official files); with another cairo installed, only the drawings handed to
cairo would follow that version.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .errors import QuickDrawError
from .strokes import coordinate_arrays

# The official numpy_bitmap settings (all in the 256-unit drawing space but `size`).
SIZE = 28
LINE_WIDTH = 16.0
PADDING = 16.0
CANVAS = 256.0

# Cairo image surfaces are at most 32767 pixels tall.
_MAX_SURFACE_SIDE = 32767
# cairo's default tolerance, which the official renderer kept: it sets the pen's vertices.
_TOLERANCE = 0.1
# The blue byte of a native-endian ARGB32 pixel (the official code read byte 0
# on a little-endian machine); the strokes are white, so it is the grey level.
_BLUE = 0 if sys.byteorder == "little" else 3


def _cairo():
    """Import cairocffi, or say what to install."""
    try:
        import cairocffi
    except (ImportError, OSError) as e:
        raise QuickDrawError(
            f"the bitmap renderer needs cairo, which could not be loaded ({e}); "
            "install the system library with `apt-get install libcairo2` "
            "and the Python binding with `pip install cairocffi`"
        ) from e
    return cairocffi


def _check_options(size: int, line_width: float, padding: float) -> None:
    if isinstance(size, bool) or not isinstance(size, int | np.integer) or size < 1:
        raise QuickDrawError(f"size must be a positive integer, got {size!r}")
    if size > _MAX_SURFACE_SIDE:
        raise QuickDrawError(f"size must be at most {_MAX_SURFACE_SIDE}, got {size}")
    for name, value, positive in (("line_width", line_width, True), ("padding", padding, False)):
        number = isinstance(value, int | float | np.integer | np.floating)
        if isinstance(value, bool) or not number or not np.isfinite(value) or value < 0:
            ok = False
        else:
            ok = value > 0 or not positive
        if not ok:
            least = "> 0" if positive else ">= 0"
            raise QuickDrawError(f"{name} must be a finite number {least}, got {value!r}")


def _strokes(drawing, index: int) -> list:
    """The non-empty strokes of one drawing (or ndjson record), shape checked."""
    if isinstance(drawing, dict):
        drawing = drawing.get("drawing")
    try:
        strokes = [stroke for stroke in drawing if len(stroke[0])]
        if any(len(stroke[0]) != len(stroke[1]) for stroke in strokes):
            raise ValueError("xs and ys differ in length")
    except (TypeError, IndexError, KeyError, ValueError) as e:
        raise QuickDrawError(
            f"drawing {index} is not a list of strokes [xs, ys(, ts)]: {e}"
        ) from None
    return strokes


class _Layout:
    """Scale and shift shared by the reference loop and the compiled renderer."""

    def __init__(self, size: int, line_width: float, padding: float) -> None:
        self.size = int(size)  # plain Python numbers: numpy scalars would change the kernels' types
        self.line_width = float(line_width)
        total_padding = float(padding) * 2.0 + self.line_width
        self.half_padding = total_padding / 2.0
        self.scale = float(size) / float(CANVAS + total_padding)

    def context(self, surface, cairo):
        ctx = cairo.Context(surface)
        ctx.set_antialias(cairo.ANTIALIAS_BEST)
        ctx.set_line_cap(cairo.LINE_CAP_ROUND)
        ctx.set_line_join(cairo.LINE_JOIN_ROUND)
        ctx.set_line_width(self.line_width)
        ctx.scale(self.scale, self.scale)
        ctx.translate(self.half_padding, self.half_padding)
        return ctx


def reference_rasterize(
    drawings: Sequence,
    size: int = SIZE,
    line_width: float = LINE_WIDTH,
    padding: float = PADDING,
) -> np.ndarray:
    """The plain one-drawing-at-a-time cairo loop: the baseline for speed and bytes.

    A new surface per drawing and one ``line_to`` call per point, as in the
    maintainers' description. Returns uint8 ``(N, size * size)``.
    """
    _check_options(size, line_width, padding)
    cairo = _cairo()
    layout = _Layout(size, line_width, padding)
    out = np.zeros((len(drawings), size * size), dtype=np.uint8)
    for i, drawing in enumerate(drawings):
        strokes = _strokes(drawing, i)
        if not strokes:
            continue
        surface = cairo.ImageSurface(cairo.FORMAT_ARGB32, size, size)
        ctx = layout.context(surface, cairo)
        ctx.set_source_rgb(0, 0, 0)
        ctx.paint()
        arrays = [np.asarray(stroke[:2], dtype=np.float64) for stroke in strokes]
        bbox = np.hstack(arrays).max(axis=1)
        offset = ((CANVAS - bbox) / 2.0).reshape(-1, 1)
        ctx.set_source_rgb(1, 1, 1)
        for xv, yv in (a + offset for a in arrays):
            ctx.move_to(xv[0], yv[0])
            for x, y in zip(xv, yv, strict=True):
                ctx.line_to(x, y)
            ctx.stroke()
        surface.flush()
        data = np.frombuffer(surface.get_data(), dtype=np.uint8)
        out[i] = data.reshape(size, -1)[:, _BLUE : 4 * size : 4].ravel()
    return out


class _Flat:
    """Drawings as flat arrays: every point, stroke lengths, strokes per drawing.

    Empty strokes are dropped; a drawing may end up with no strokes.
    """

    def __init__(self, x: np.ndarray, y: np.ndarray, lengths: np.ndarray, counts: np.ndarray):
        self.x, self.y, self.lengths, self.counts = x, y, lengths, counts

    @classmethod
    def from_drawings(cls, drawings: Sequence, first_index: int = 0) -> _Flat:
        """`first_index`: the index of ``drawings[0]`` in the caller's list, for errors."""
        xs: list = []
        ys: list = []
        lengths: list[int] = []
        counts: list[int] = []
        for i, drawing in enumerate(drawings, first_index):
            if isinstance(drawing, dict):
                drawing = drawing.get("drawing")
            n = 0
            try:
                for stroke in drawing:
                    sx, sy = stroke[0], stroke[1]
                    m = len(sx)
                    if m != len(sy):
                        raise ValueError("xs and ys differ in length")
                    if m:
                        xs.extend(sx)
                        ys.extend(sy)
                        lengths.append(m)
                        n += 1
            except (TypeError, IndexError, KeyError, ValueError) as e:
                raise QuickDrawError(
                    f"drawing {i} is not a list of strokes [xs, ys(, ts)]: {e}"
                ) from None
            counts.append(n)
        x, y = coordinate_arrays(xs, ys)
        bad = np.flatnonzero(~(np.isfinite(x) & np.isfinite(y)))
        if len(bad):
            stroke = int(np.searchsorted(np.cumsum(lengths), bad[0], side="right"))
            drawing = first_index + int(np.searchsorted(np.cumsum(counts), stroke, side="right"))
            raise QuickDrawError(
                f"drawing {drawing}: coordinates must be finite numbers, got "
                f"({x[bad[0]]!r}, {y[bad[0]]!r})"
            )
        return cls(x, y, np.asarray(lengths, np.int64), np.asarray(counts, np.int64))


def _render(flat: _Flat, layout: _Layout, out: np.ndarray) -> np.ndarray:
    """Draw `flat`'s drawings into the black rows `out` with `stroke_raster`.

    Returns which drawings it drew (those with no points count as drawn);
    the others could reach outside their bitmap and are left for cairo.
    """
    from . import stroke_raster

    pen = stroke_raster.make_pen(layout.line_width / 2.0, _TOLERANCE, layout.scale)
    return stroke_raster.render(
        flat.x, flat.y, flat.lengths, flat.counts, pen, layout.scale, 1.0 / layout.scale,
        layout.line_width / 2.0, layout.half_padding, layout.size, out,
    )  # fmt: skip


def rasterize_many(
    drawings: Sequence,
    size: int = SIZE,
    line_width: float = LINE_WIDTH,
    padding: float = PADDING,
    *,
    batch_size: int = 256,
    workers: int | None = None,
) -> np.ndarray:
    """Render drawings like the official `numpy_bitmap` files, byte for byte.

    drawings: a sequence of drawings (lists of strokes ``[xs, ys(, ts)]`` in the
        simplified 0-255 space; ndjson records with a ``drawing`` key work too).
    size, line_width, padding: output side in pixels; stroke width and margin in
        the 256-unit drawing space. The defaults are the official ones.
    batch_size: drawings per unit of work handed to a thread.
    workers: threads rendering batches at once (the compiled renderer and
        cairo both run without the GIL); default `default_workers()`, the
        free cores. The bytes never depend on it.

    Returns uint8 ``(N, size * size)``, row-major bitmaps as in the official
    files (``.reshape(N, size, size)`` for images). A drawing with no points
    gives an all-black bitmap.
    """
    _check_options(size, line_width, padding)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int | np.integer):
        raise QuickDrawError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    if batch_size < 1:
        raise QuickDrawError(f"batch_size must be >= 1, got {batch_size}")
    if workers is None:
        workers = default_workers()
    if isinstance(workers, bool) or not isinstance(workers, int | np.integer) or workers < 1:
        raise QuickDrawError(f"workers must be an integer >= 1, got {workers!r}")
    layout = _Layout(size, line_width, padding)
    if not isinstance(drawings, list | tuple):
        try:
            drawings = list(drawings)  # any iterable: the batches index into it
        except TypeError:
            raise QuickDrawError(
                f"drawings must be a sequence of drawings, got {type(drawings).__name__}"
            ) from None
    out = np.zeros((len(drawings), size * size), dtype=np.uint8)

    def run(start: int) -> None:
        """Convert, check and draw ``drawings[start : start + batch_size]`` into `out`."""
        stop = min(start + batch_size, len(drawings))
        flat = _Flat.from_drawings([drawings[i] for i in range(start, stop)], start)
        drawn = _render(flat, layout, out[start:stop])
        for i in np.flatnonzero(~drawn):  # may reach outside its bitmap: cairo draws it
            out[start + i] = reference_rasterize([drawings[start + i]], size, line_width, padding)

    starts = range(0, len(drawings), batch_size)
    workers = min(workers, len(starts))
    if workers <= 1:
        for start in starts:
            run(start)
    else:
        with ThreadPoolExecutor(workers) as pool:
            try:
                list(pool.map(run, starts))
            except BaseException:
                pool.shutdown(cancel_futures=True)  # a bad drawing: stop the other batches
                raise
    return out


def rasterize(
    drawing,
    size: int = SIZE,
    line_width: float = LINE_WIDTH,
    padding: float = PADDING,
) -> np.ndarray:
    """One drawing -> uint8 ``(size, size)`` bitmap, as in the official files."""
    return rasterize_many([drawing], size, line_width, padding)[0].reshape(size, size)


def usable_cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def default_workers() -> int:
    """Threads `rasterize_many` uses when not told: the free cores, 1 to 8.

    Free means usable cores minus the 1-minute load average of the machine,
    counting this process's own running thread as free (so an idle 4-core
    machine gives 4, one already busy with 3 other jobs gives 1). Inside a
    worker process (e.g. `quickdraw convert --workers`) it is 1: the pool
    already spreads the work over the cores.
    """
    if multiprocessing.parent_process() is not None:
        return 1
    cores = usable_cores()
    try:
        others = max(0.0, os.getloadavg()[0] - 1.0)
    except OSError:  # no load average on this platform
        others = 0.0
    return max(1, min(8, cores - int(others + 0.5)))
