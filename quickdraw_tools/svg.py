"""SVG (svgwrite) and PNG (cairo) pictures of drawings: one per file, or grids.

Everything here takes *sketches* in any of the project's formats (see
`strokes`): a drawing (list of strokes ``[xs, ys(, ts)]``, raw or simplified),
an ndjson record with a ``drawing`` key, a stroke-3 ``(n, 3)`` array or a
stroke-5 ``(n, 5)`` array (e.g. model samples). Each sketch is scaled uniformly
(aspect ratio kept) and centred in its cell, so every coordinate lies inside
the viewBox. The y axis points down, as in the Quick, Draw! data.

Colours (``color_by``): ``none`` black strokes; ``stroke`` one colour per
stroke; ``time`` a colour ramp from the first point to the last (by the raw
timestamps when the drawing has them, else by point order).
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from . import formats
from .atomic import atomic_write, staged_output
from .errors import QuickDrawError, check_choice
from .formats import file_kind, file_stem
from .strokes import flatten_drawing, stroke3_to_drawing, stroke5_to_stroke3

COLOR_BY = ("none", "stroke", "time")

# Tableau-10: distinct, readable on white.
STROKE_PALETTE = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
)  # fmt: skip
# Anchors of matplotlib's viridis (dark blue -> yellow), interpolated linearly.
TIME_RAMP = ("#440154", "#3b528b", "#21918c", "#5ec962", "#fde725")

Strokes = list[tuple[np.ndarray, np.ndarray, np.ndarray | None]]  # (xs, ys, ts or None)


def as_strokes(sketch) -> Strokes:
    """Any sketch format -> list of ``(xs, ys, ts | None)`` float arrays, absolute coordinates.

    Lists (and records) are drawings; 2-D arrays with 3 or 5 columns are stroke-3
    or stroke-5. Empty strokes are dropped.
    """
    if isinstance(sketch, np.ndarray) and sketch.ndim == 2 and sketch.dtype != object:
        if sketch.shape[1] == 5:
            sketch = stroke5_to_stroke3(sketch)
        if sketch.shape[1] != 3:
            raise QuickDrawError(
                f"an array sketch must be stroke-3 (n, 3) or stroke-5 (n, 5), got {sketch.shape}"
            )
        sketch = stroke3_to_drawing(sketch.astype(np.float64))
    try:
        return flatten_drawing(sketch, times=True).strokes()
    except QuickDrawError as e:
        raise QuickDrawError(f"not a drawing, stroke-3 or stroke-5 sketch: {e}") from None


def fit(strokes: Strokes, width: float, height: float, margin: float) -> list[np.ndarray]:
    """Scale uniformly and centre into ``[margin, width - margin] x [margin, height - margin]``.

    Returns one ``(n, 2)`` array of cell coordinates per stroke.
    """
    if not strokes:
        return []
    xy = np.concatenate([np.column_stack([x, y]) for x, y, _ in strokes])
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    with np.errstate(over="ignore"):
        extent = hi - lo
    if not np.isfinite(extent).all():
        raise QuickDrawError("sketch coordinates span too large a range to draw")
    room = np.array([width - 2 * margin, height - 2 * margin], dtype=np.float64)
    if room.min() <= 0:
        raise QuickDrawError(f"margin {margin} leaves no room in a {width}x{height} cell")
    big = extent.max()
    scale = float((room / np.maximum(extent, 1e-12)).min()) if big > 0 else 1.0
    offset = margin + (room - extent * scale) / 2.0 - lo * scale
    return [np.column_stack([x, y]) * scale + offset for x, y, _ in strokes]


def _hex_to_rgb(color: str) -> tuple[float, float, float]:
    r, g, b = (int(color[i : i + 2], 16) / 255.0 for i in (1, 3, 5))
    return r, g, b


def _ramp(t: float) -> str:
    """Colour at `t` in [0, 1] along TIME_RAMP."""
    t = min(max(t, 0.0), 1.0) * (len(TIME_RAMP) - 1)
    i = min(int(t), len(TIME_RAMP) - 2)
    a, b = np.array(_hex_to_rgb(TIME_RAMP[i])), np.array(_hex_to_rgb(TIME_RAMP[i + 1]))
    r, g, bl = (a + (b - a) * (t - i)) * 255.0
    return f"#{round(r):02x}{round(g):02x}{round(bl):02x}"


def _progress(strokes: Strokes) -> list[np.ndarray]:
    """Per point, how far through the drawing it is, in [0, 1] (time if known, else order)."""
    clock: list[np.ndarray]
    if all(ts is not None for _, _, ts in strokes):
        clock = [ts for _, _, ts in strokes if ts is not None]
    else:
        sizes = np.cumsum([0] + [len(x) for x, _, _ in strokes])
        clock = [
            np.arange(a, b, dtype=np.float64) for a, b in zip(sizes[:-1], sizes[1:], strict=True)
        ]
    lo = min(c.min() for c in clock)
    span = max(c.max() for c in clock) - lo
    return [(c - lo) / span if span > 0 else np.zeros_like(c) for c in clock]


def _pieces(strokes: Strokes, cells: list[np.ndarray], color_by: str):
    """What to draw: (points (n, 2), colour) pieces; a 1-point piece is a dot."""
    if color_by == "none":
        return [(xy, "#000000") for xy in cells]
    if color_by == "stroke":
        return [(xy, STROKE_PALETTE[k % len(STROKE_PALETTE)]) for k, xy in enumerate(cells)]
    pieces = []
    for xy, progress in zip(cells, _progress(strokes), strict=True):
        if len(xy) == 1:
            pieces.append((xy, _ramp(float(progress[0]))))
        for i in range(len(xy) - 1):
            pieces.append((xy[i : i + 2], _ramp(float(progress[i : i + 2].mean()))))
    return pieces


class _Layout:
    """Cells of a grid: `cols` wide, rows as needed, an optional caption band under each."""

    def __init__(self, n: int, cols: int, cell: float, captions: bool, font_size: float):
        if cols < 1:
            raise QuickDrawError(f"a grid needs at least one column, got {cols}")
        if cell <= 0:
            raise QuickDrawError(f"cell size must be positive, got {cell}")
        self.cols = min(cols, max(n, 1))
        self.rows = max(1, math.ceil(n / cols))
        self.cell = float(cell)
        self.band = font_size * 1.6 if captions else 0.0
        self.font_size = font_size
        self.width = self.cols * self.cell
        self.height = self.rows * (self.cell + self.band)

    def origin(self, i: int) -> tuple[float, float]:
        return (i % self.cols) * self.cell, (i // self.cols) * (self.cell + self.band)


def _grid(sketches, cols, captions, cell, margin, stroke_width, color_by, font_size):
    """Check a grid's arguments and lay it out, for `svg_grid` and `png_grid` alike.

    Returns the `_Layout` and, per sketch, ``(x0, y0, pieces)``: its cell's origin and
    the `_pieces` to draw, in cell coordinates.
    """
    check_choice("color_by", color_by, COLOR_BY)
    sketches = list(sketches)
    if captions is not None and len(captions) != len(sketches):
        raise QuickDrawError(f"{len(captions)} captions for {len(sketches)} sketches")
    layout = _Layout(len(sketches), cols, cell, captions is not None, font_size)
    if margin is None:
        margin = cell / 16.0 + stroke_width
    cells = []
    for i, sketch in enumerate(sketches):
        strokes = as_strokes(sketch)
        pieces = _pieces(strokes, fit(strokes, cell, cell, margin), color_by)
        cells.append((*layout.origin(i), pieces))
    return layout, cells


def svg_grid(
    sketches: Sequence,
    cols: int,
    captions: Sequence[str] | None = None,
    path: str | os.PathLike | None = None,
    *,
    cell: float = 128.0,
    margin: float | None = None,
    stroke_width: float = 2.0,
    color_by: str = "none",
    font_size: float = 12.0,
) -> str:
    """Sketches as an SVG grid, `cols` cells wide, each ``cell`` x ``cell`` user units.

    captions: one short text per sketch, written under its cell (or None).
    path: where to write the SVG (atomically); the SVG text is returned either way.
    margin: space kept free inside each cell (default: ``cell / 16 + stroke_width``).
    """
    import svgwrite

    layout, cells = _grid(sketches, cols, captions, cell, margin, stroke_width, color_by, font_size)
    dwg = svgwrite.Drawing(
        size=(f"{layout.width:g}", f"{layout.height:g}"),
        viewBox=f"0 0 {layout.width:g} {layout.height:g}",
        profile="full",
        debug=False,  # svgwrite's per-attribute validation is slow; our values are numbers
    )
    dwg.add(dwg.rect(insert=(0, 0), size=(layout.width, layout.height), fill="white"))
    for i, (x0, y0, pieces) in enumerate(cells):
        group = dwg.g(
            fill="none",
            stroke_width=stroke_width,
            stroke_linecap="round",
            stroke_linejoin="round",
            transform=f"translate({x0:g},{y0:g})",
        )
        for xy, color in pieces:
            if len(xy) == 1:
                group.add(dwg.circle(center=_pt(xy[0]), r=stroke_width / 2.0, fill=color))
            else:
                group.add(dwg.polyline([_pt(p) for p in xy], stroke=color))
        if captions is not None:
            group.add(
                dwg.text(
                    str(captions[i]),
                    insert=(cell / 2.0, cell + layout.band * 0.7),
                    text_anchor="middle",
                    font_size=font_size,
                    font_family="sans-serif",
                    fill="#333333",
                    stroke="none",
                )
            )
        dwg.add(group)
    text = dwg.tostring()
    if path is not None:
        with atomic_write(path, "w", encoding="utf-8") as f:
            f.write('<?xml version="1.0" encoding="utf-8" ?>\n' + text + "\n")
    return text


def _pt(p: np.ndarray) -> tuple[float, float]:
    return (round(float(p[0]), 2), round(float(p[1]), 2))


def sketch_to_svg(
    sketch,
    path: str | os.PathLike | None = None,
    *,
    size: float = 256.0,
    caption: str | None = None,
    **options,
) -> str:
    """One sketch as a ``size`` x ``size`` SVG (plus a caption band if `caption`)."""
    captions = None if caption is None else [caption]
    return svg_grid([sketch], 1, captions, path, cell=size, **options)


def png_grid(
    sketches: Sequence,
    cols: int,
    captions: Sequence[str] | None = None,
    path: str | os.PathLike | None = None,
    *,
    cell: float = 128.0,
    margin: float | None = None,
    stroke_width: float = 2.0,
    color_by: str = "none",
    font_size: float = 12.0,
) -> bytes:
    """The `svg_grid` picture rendered with cairo: PNG bytes, also written to `path` if given."""
    from .raster import _cairo

    cairo = _cairo()
    layout, cells = _grid(sketches, cols, captions, cell, margin, stroke_width, color_by, font_size)
    width, height = math.ceil(layout.width), math.ceil(layout.height)
    surface = cairo.ImageSurface(cairo.FORMAT_RGB24, width, height)
    ctx = cairo.Context(surface)
    ctx.set_source_rgb(1, 1, 1)
    ctx.paint()
    ctx.set_line_width(stroke_width)
    ctx.set_line_cap(cairo.LINE_CAP_ROUND)
    ctx.set_line_join(cairo.LINE_JOIN_ROUND)
    ctx.select_font_face("sans-serif")
    ctx.set_font_size(font_size)
    for i, (x0, y0, pieces) in enumerate(cells):
        for xy, color in pieces:
            ctx.set_source_rgb(*_hex_to_rgb(color))
            if len(xy) == 1:
                ctx.arc(x0 + xy[0, 0], y0 + xy[0, 1], stroke_width / 2.0, 0, 2 * math.pi)
                ctx.fill()
                continue
            ctx.move_to(x0 + xy[0, 0], y0 + xy[0, 1])
            for x, y in xy[1:]:
                ctx.line_to(x0 + x, y0 + y)
            ctx.stroke()
        if captions is not None:
            text = str(captions[i])
            ctx.set_source_rgb(0.2, 0.2, 0.2)
            x_advance = ctx.text_extents(text)[4]
            ctx.move_to(x0 + (cell - x_advance) / 2.0, y0 + cell + layout.band * 0.7)
            ctx.show_text(text)
    buf = io.BytesIO()
    surface.write_to_png(buf)
    data = buf.getvalue()
    if path is not None:
        with atomic_write(Path(path), "wb") as f:
            f.write(data)
    return data


# --- files -> pictures (what `quickdraw svg` runs) ---------------------------------------

CAPTIONS = ("none", "word", "index", "country")


def parse_grid(text: str) -> tuple[int, int]:
    """``"COLSxROWS"`` (e.g. ``"8x4"``) -> (cols, rows)."""
    parts = text.lower().split("x")
    try:
        cols, rows = (int(p) for p in parts)
    except ValueError:
        raise QuickDrawError(f"grid must look like COLSxROWS (e.g. 8x4), got {text!r}") from None
    if cols < 1 or rows < 1:
        raise QuickDrawError(f"grid needs at least 1x1, got {text!r}")
    return cols, rows


def _read_sketches(path: Path, split: str | None, limit: int | None):
    """Check the input, then return an iterator of (name, sketch, captions by kind)."""
    if not path.is_file():
        raise QuickDrawError(f"input file not found: {path}")
    if file_kind(path) != "sketchrnn" and split is not None:
        raise QuickDrawError(f"--split applies to sketch-rnn .npz files, not {path.name}")
    return _iter_sketches(path, split, limit)


def _iter_sketches(path: Path, split: str | None, limit: int | None):

    stem = file_stem(path)
    count = 0
    if file_kind(path) == "sketchrnn":
        data = formats.load_sketchrnn_npz(path)
        splits = [check_choice("split", split, list(data))] if split else list(data)
        for s in splits:
            for i, strokes in enumerate(data[s]):
                if limit is not None and count >= limit:
                    return
                count += 1
                caption = {"word": stem, "index": f"{s} #{i}", "country": ""}
                yield f"{stem}_{s}_{i:05d}", strokes, caption
        return
    for i, record in enumerate(formats.iter_drawings(path)):
        if limit is not None and count >= limit:
            return
        count += 1
        caption = {
            "word": str(record.get("word", stem)),
            "index": f"#{i}",
            "country": str(record.get("countrycode", "")),
        }
        yield f"{stem}_{i:05d}", record["drawing"], caption


def export(
    input_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    grid: str | None = None,
    color_by: str = "none",
    split: str | None = None,
    limit: int | None = None,
    png: bool = False,
    caption: str = "none",
    progress: bool = True,
) -> list[Path]:
    """Write SVGs (and PNGs if `png`) for the sketches in `input_path`; returns the files.

    Without `grid`: one ``<name>.svg`` per sketch. With ``grid="COLSxROWS"``:
    ``<stem>_grid_000.svg``, ... holding COLS*ROWS sketches each.
    """

    check_choice("color_by", color_by, COLOR_BY)
    check_choice("caption", caption, CAPTIONS)
    if limit is not None and limit < 1:
        raise QuickDrawError(f"--limit must be >= 1, got {limit}")
    layout = parse_grid(grid) if grid else None
    input_path, out_dir = Path(input_path), Path(out_dir)
    items = _read_sketches(input_path, split, limit)  # the input is checked before out_dir is made
    # every file is staged and they go into out_dir together: a bad drawing late in the
    # input leaves out_dir as it was, not half the grids of this run
    with staged_output(out_dir) as stage:
        written = _export(items, stage.path, input_path, layout, color_by, png, caption, progress)
        if not written:
            raise QuickDrawError(f"no drawings in {input_path}")
        stage.commit()
    return [out_dir / p.relative_to(stage.path) for p in written]


def _export(items, out_dir: Path, input_path: Path, layout, color_by, png, caption, progress):
    """Write the SVGs (and PNGs) of `items` into `out_dir`; returns the files."""
    from tqdm import tqdm

    stem = file_stem(input_path)
    written: list[Path] = []
    cell = 256.0 if layout is None else 128.0

    def emit(name: str, sketches: list, captions: list[str] | None, cols: int) -> None:
        try:
            svg_grid(
                sketches, cols, captions, out_dir / f"{name}.svg", color_by=color_by, cell=cell
            )
            written.append(out_dir / f"{name}.svg")
            if png:
                png_grid(
                    sketches, cols, captions, out_dir / f"{name}.png", color_by=color_by, cell=cell
                )
                written.append(out_dir / f"{name}.png")
        except QuickDrawError as e:  # say which drawing (or page of a grid) it was
            raise QuickDrawError(f"{input_path}: {name}: {e}") from None

    pages = 0
    page: list = []
    page_captions: list[str] = []
    # disable=None: a bar only on a terminal
    bar = tqdm(items, desc="svg", unit=" sketches", disable=None if progress else True)
    for name, sketch, captions in bar:
        text = None if caption == "none" else captions[caption]
        if layout is None:
            emit(name, [sketch], None if text is None else [text], 1)
            continue
        page.append(sketch)
        page_captions.append(text or "")
        if len(page) == layout[0] * layout[1]:
            emit(
                f"{stem}_grid_{pages:03d}", page, None if text is None else page_captions, layout[0]
            )
            pages += 1
            page, page_captions = [], []
    if page and layout is not None:
        emit(
            f"{stem}_grid_{pages:03d}",
            page,
            None if caption == "none" else page_captions,
            layout[0],
        )
    return written
