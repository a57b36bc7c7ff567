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

`rasterize_many` produces the same bytes faster:

- the drawings of a batch are tiles stacked vertically on one tall surface,
  cleared by a single ``paint``; tile ``i`` sits ``i * size`` pixels down;
- cairo composites each stroke separately (overlaps of two strokes are
  blended twice), so stroke ``k`` of every drawing in the batch goes into one
  path and one ``cairo_stroke`` call: the tiles never share a pixel or a pixel
  row, so this paints the same pixels as separate calls;
- the path is built with numpy as one ``cairo_path_data_t`` array per batch and
  handed to ``cairo_append_path`` (which makes the same ``move_to``/``line_to``
  calls inside cairo) instead of one Python call per point;
- the tall surface is A8 (one byte per pixel) instead of ARGB32, cleared with
  numpy, and read back through a numpy view. White on black is opaque, so cairo
  paints it with the same per-byte blend (``s*a + d*(255-a)``, rounded alike)
  into the A8 byte as into each ARGB32 channel: the A8 byte equals the blue
  byte the reference reads, with a quarter of the memory traffic.

Why it is exact: cairo turns every point into device space with the context's
matrix and rounds it to 1/256 pixel; its stroker and scan converter then work
in that fixed-point space and give the same pixels for a shape moved by whole
pixels (each tile has its own pixel rows, so the scan converter sees the same
edges in every row). The renderer computes each y exactly as cairo does,
rounds it to the same 1/256 grid, adds the tile offset and hands cairo a y
that lands on that grid point (float error ~1e-11 pixel cannot move it); x is
passed unchanged. A drawing whose strokes could reach outside its tile (e.g.
``padding=0`` or coordinates beyond 0-255) is drawn alone on its own
``size x size`` surface, exactly like the reference loop. The tests check this
on every simplified drawing of the sample data at sizes 28, 64, 128 and 256 and
on raw (float) drawings.

cairo itself (its stroker and antialiasing scan converter, inside
``cairo_stroke``) is about 90% of the remaining time on one thread, so
``threads`` (default: the free cores) renders batches in threads; cffi
releases the GIL inside cairo, so the threads run cairo in parallel.
`quickdraw convert --workers N` adds processes on top (one thread each).
"""

from __future__ import annotations

import math
import multiprocessing
import os
import sys
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .errors import QuickDrawError
from .strokes import FlatDrawings, flatten_drawings, ranges
from .workers import usable_cores

# The official numpy_bitmap settings (all in the 256-unit drawing space but `size`).
SIZE = 28
LINE_WIDTH = 16.0
PADDING = 16.0
CANVAS = 256.0

# What the command line and the datasets draw: sides from 8 pixels (smaller shows nothing
# of a sketch) to 1024 (a 1024x1024 bitmap is already 1 MB per drawing), and a line width
# and padding no larger than the 256-unit drawing space itself.
MIN_SIZE, MAX_SIZE = 8, 1024
MAX_LINE_WIDTH = MAX_PADDING = CANVAS

# Cairo image surfaces are at most 32767 pixels tall.
_MAX_SURFACE_SIDE = 32767
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


def check_size(size) -> None:
    """Refuse a picture side that is not a whole number of pixels `MIN_SIZE`-`MAX_SIZE`."""
    if isinstance(size, bool) or not isinstance(size, int | np.integer):
        raise QuickDrawError(f"size must be a whole number of pixels, got {size!r}")
    if not MIN_SIZE <= size <= MAX_SIZE:
        raise QuickDrawError(f"size must be {MIN_SIZE} to {MAX_SIZE} pixels, got {size}")


def check_settings(size, line_width, padding) -> None:
    """Refuse picture settings outside what `convert`, `QuickDraw` and `svg` draw, in one
    line that names the value: `size` an integer `MIN_SIZE`-`MAX_SIZE` pixels, `line_width`
    a number > 0 and `padding` >= 0, both at most 256 (units of the 256-unit drawing space).
    """
    check_size(size)
    for name, value, least in (("line_width", line_width, "> 0"), ("padding", padding, ">= 0")):
        number = isinstance(value, int | float | np.integer | np.floating)
        if isinstance(value, bool) or not number or not math.isfinite(value):
            raise QuickDrawError(f"{name} must be a finite number, got {value!r}")
        low_ok = value > 0 if least == "> 0" else value >= 0
        if not low_ok or value > CANVAS:
            raise QuickDrawError(
                f"{name} must be {least} and at most {CANVAS:g} (units of the 256-unit drawing"
                f" space), got {value:g}"
            )


class _Layout:
    """Scale and shift shared by the reference loop and the tiled renderer."""

    def __init__(self, size: int, line_width: float, padding: float) -> None:
        self.size = int(size)
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
        strokes = flatten_drawings([drawing], first_index=i).strokes()
        if not strokes:
            continue
        surface = cairo.ImageSurface(cairo.FORMAT_ARGB32, size, size)
        ctx = layout.context(surface, cairo)
        ctx.set_source_rgb(0, 0, 0)
        ctx.paint()
        arrays = [np.stack([x, y]) for x, y, _ in strokes]
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
    """`FlatDrawings` with the offsets the tiled renderer indexes by."""

    def __init__(self, x: np.ndarray, y: np.ndarray, lengths: np.ndarray, counts: np.ndarray):
        self.x, self.y, self.lengths, self.counts = x, y, lengths, counts
        self.first_stroke = np.cumsum(counts) - counts
        self.first_point = np.cumsum(lengths) - lengths
        ends = np.concatenate([[0], np.cumsum(lengths)])  # points before each stroke
        self.points = ends[self.first_stroke + counts] - ends[self.first_stroke]

    @classmethod
    def of(cls, flat: FlatDrawings) -> _Flat:
        return cls(flat.x, flat.y, flat.lengths, flat.counts)

    def take(self, rows: np.ndarray) -> _Flat:
        """The drawings at `rows`, in that order."""
        strokes = ranges(self.first_stroke[rows], self.counts[rows])
        points = ranges(self.first_point[strokes], self.lengths[strokes])
        return _Flat(self.x[points], self.y[points], self.lengths[strokes], self.counts[rows])

    def extremes(self) -> tuple[np.ndarray, ...]:
        """Per drawing (all must have points): min_x, max_x, min_y, max_y."""
        starts = np.cumsum(self.points) - self.points
        return (
            np.minimum.reduceat(self.x, starts),
            np.maximum.reduceat(self.x, starts),
            np.minimum.reduceat(self.y, starts),
            np.maximum.reduceat(self.y, starts),
        )


def _fits(flat: _Flat, layout: _Layout) -> np.ndarray:
    """Which drawings stay inside their own tile, with a pixel to spare."""
    s = layout.scale
    reach = layout.line_width / 2.0 * s + 1.0  # stroke half-width plus antialiasing, in pixels
    min_x, max_x, min_y, max_y = flat.extremes()
    inside = np.ones(len(max_x), dtype=bool)
    for lo, hi in ((min_x, max_x), (min_y, max_y)):
        shift = (CANVAS - hi) / 2.0 + layout.half_padding
        inside &= (lo + shift) * s - reach >= 0
        inside &= (hi + shift) * s + reach <= layout.size
    return inside


class _Canvas:
    """One tall A8 surface of `tiles` tiles and its context, reused across batches."""

    def __init__(self, layout: _Layout, tiles: int) -> None:
        cairo = _cairo()
        self.cairo = cairo
        self.lib = cairo.cairo
        self.ffi = cairo.ffi
        self.layout = layout
        self.tiles = tiles
        size = layout.size
        self.surface = cairo.ImageSurface(cairo.FORMAT_A8, size, size * tiles)
        self.ctx = layout.context(self.surface, cairo)
        self.pixels = np.frombuffer(self.surface.get_data(), dtype=np.uint8).reshape(
            size * tiles, self.surface.get_stride()
        )
        self.path = self.ffi.new("cairo_path_t *")
        matrix = self.ctx.get_matrix()
        assert matrix.as_tuple()[1:3] == (0.0, 0.0)
        self.yy, self.y0 = matrix.as_tuple()[3], matrix.as_tuple()[5]

    def render(self, flat: _Flat) -> np.ndarray:
        """Draw the drawings of `flat` (at most `tiles`, each with points).

        Returns a uint8 ``(n, size * size)`` view of the surface, valid until the next call.
        """
        n = len(flat.counts)
        assert n <= self.tiles
        size = self.layout.size
        # Centre each drawing by its max corner, then move it down to its tile.
        _, max_x, _, max_y = flat.extremes()
        owner = np.repeat(np.arange(n), flat.points)
        x = flat.x + ((CANVAS - max_x) / 2.0)[owner]
        y = flat.y + ((CANVAS - max_y) / 2.0)[owner]
        # cairo maps y to fl(fl(yy * y) + y0) and rounds that to 1/256 pixel. Do the
        # same here, add the tile's whole-pixel offset, and hand cairo a y that lands
        # exactly on that grid point: float error (~1e-11 px) cannot move it off.
        device = np.rint((self.yy * y + self.y0) * 256.0) / 256.0
        device += (np.arange(n, dtype=np.float64) * size)[owner]
        y = (device - self.y0) / self.yy

        # Stroke k of every drawing goes into round k; each stroke becomes
        # MOVE_TO p0, LINE_TO p0, LINE_TO p1, ... as (header, point) pairs.
        rank = np.arange(len(flat.lengths)) - np.repeat(flat.first_stroke, flat.counts)
        order = np.argsort(rank, kind="stable")
        pairs = flat.lengths[order] + 1
        total = int(pairs.sum())
        block = np.cumsum(pairs) - pairs
        within = np.arange(total) - np.repeat(block, pairs)
        idx = np.repeat(flat.first_point[order], pairs) + np.maximum(within - 1, 0)
        data = np.empty((total, 2, 2), dtype=np.float64)  # cairo_path_data_t is 16 bytes
        data[:, 1, 0] = x[idx]
        data[:, 1, 1] = y[idx]
        header = data.view(np.int32).reshape(total, 2, 4)[:, 0]
        header[:, 0] = self.cairo.PATH_LINE_TO
        header[:, 1] = 2  # one header + one point
        header[block, 0] = self.cairo.PATH_MOVE_TO
        rank_of_block = rank[order]
        edges = np.searchsorted(rank_of_block, np.arange(int(rank_of_block.max()) + 2))
        starts = np.append(block, total)[edges]

        lib, ptr, path = self.lib, self.ctx._pointer, self.path
        self.pixels[: n * size] = 0  # black: what the reference's black paint leaves in blue
        lib.cairo_surface_mark_dirty(self.surface._pointer)
        lib.cairo_set_source_rgb(ptr, 1.0, 1.0, 1.0)
        base = self.ffi.cast("cairo_path_data_t *", self.ffi.from_buffer(data))
        for a, b in zip(starts[:-1].tolist(), starts[1:].tolist(), strict=True):
            path.status = 0
            path.data = base + 2 * a
            path.num_data = 2 * (b - a)
            lib.cairo_append_path(ptr, path)
            lib.cairo_stroke(ptr)
        status = lib.cairo_status(ptr)
        if status:
            raise QuickDrawError(f"cairo failed to draw: status {status}")
        lib.cairo_surface_flush(self.surface._pointer)
        return self.pixels[: n * size, :size].reshape(n, size * size)


def _default_batch(size: int) -> int:
    # 256 tiles (1 MB at 64 px), at most 4 MB of pixels: enough tiles to amortise the
    # per-batch and per-stroke calls (at 64 px 256 tiles draw 8% faster than 32, at 256 px
    # 64 tiles 30% faster than 2), few enough to stay in the cache (512 tiles of 28 px
    # measured 10% slower than 256).
    return max(1, min(256, (1 << 22) // (size * size), _MAX_SURFACE_SIDE // size))


def rasterize_many(
    drawings: Sequence | FlatDrawings,
    size: int = SIZE,
    line_width: float = LINE_WIDTH,
    padding: float = PADDING,
    *,
    batch_size: int | None = None,
    threads: int | None = None,
) -> np.ndarray:
    """Render drawings like the official `numpy_bitmap` files, byte for byte.

    drawings: a sequence of drawings (lists of strokes ``[xs, ys(, ts)]`` in the
        simplified 0-255 space; ndjson records with a ``drawing`` key work too), or
        their points already gathered as `strokes.FlatDrawings`.
    size, line_width, padding: output side in pixels; stroke width and margin in
        the 256-unit drawing space. The defaults are the official ones.
    batch_size: drawings per tiled surface (default: 256, at most 4 MB of pixels).
    threads: threads rendering batches at once (cairo runs without the GIL);
        default `default_threads()`, the free cores. The bytes never depend on it.

    Returns uint8 ``(N, size * size)``, row-major bitmaps as in the official
    files (``.reshape(N, size, size)`` for images). A drawing with no points
    gives an all-black bitmap.
    """
    _check_options(size, line_width, padding)
    if batch_size is None:
        batch_size = _default_batch(size)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int | np.integer):
        raise QuickDrawError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    if batch_size < 1:
        raise QuickDrawError(f"batch_size must be >= 1, got {batch_size}")
    batch_size = min(int(batch_size), _MAX_SURFACE_SIDE // size)
    if threads is None:
        threads = default_threads()
    if isinstance(threads, bool) or not isinstance(threads, int | np.integer) or threads < 1:
        raise QuickDrawError(f"threads must be an integer >= 1, got {threads!r}")
    _cairo()  # fail early with the install hint
    layout = _Layout(size, line_width, padding)
    if isinstance(drawings, FlatDrawings):  # points gathered already (`packed.Packed.flat`)
        whole = _Flat.of(drawings)
        count = len(drawings.counts)

        def batch(start: int, stop: int) -> _Flat:
            return whole.take(np.arange(start, stop))

    else:
        if not isinstance(drawings, list | tuple):
            try:
                drawings = list(drawings)  # any iterable: the batches index into it
            except TypeError:
                raise QuickDrawError(
                    f"drawings must be a sequence of drawings, got {type(drawings).__name__}"
                ) from None
        count = len(drawings)

        def batch(start: int, stop: int) -> _Flat:
            return _Flat.of(flatten_drawings([drawings[i] for i in range(start, stop)], start))

    out = np.zeros((count, size * size), dtype=np.uint8)
    local = threading.local()  # per thread: one surface per tile count, reused

    def run(start: int) -> None:
        """Convert, check and draw ``drawings[start : start + batch_size]`` into `out`."""
        stop = min(start + batch_size, count)
        flat = batch(start, stop)
        drawn = np.flatnonzero(flat.counts)  # a drawing with no points stays black
        if len(drawn) == 0:
            return
        fits = _fits(flat.take(drawn), layout)
        # A drawing that could leave its tile is drawn alone on a size x size
        # surface, exactly as the reference loop draws it.
        groups = [(drawn[fits], batch_size)] + [
            (drawn[~fits][i : i + 1], 1) for i in range(int((~fits).sum()))
        ]
        canvases = local.__dict__.setdefault("canvases", {})
        for rows, tiles in groups:
            if len(rows):
                if tiles not in canvases:
                    canvases[tiles] = _Canvas(layout, tiles)
                out[start + rows] = canvases[tiles].render(flat.take(rows))

    # Each thread converts its own batches, so the Python work overlaps cairo's.
    starts = range(0, count, batch_size)
    threads = min(threads, len(starts))
    if threads <= 1:
        for start in starts:
            run(start)
    else:
        with ThreadPoolExecutor(threads) as pool:
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


def default_threads() -> int:
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
