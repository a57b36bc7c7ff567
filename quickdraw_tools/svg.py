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

The other way, `read_svg` turns an SVG file (one's own drawing, from any tool) back
into a drawing, parsed by svgelements after the checks an untrusted file needs, and
`import_svgs` (what `quickdraw import-svg` runs) makes simplified ndjson of such files.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import math
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from . import formats
from .atomic import atomic_write, staged_output
from .errors import QuickDrawError, check_choice, check_utf8
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
    or stroke-5 (with its start token, as `strokes.stroke3_to_stroke5` writes it). Empty
    strokes are dropped.
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
    file_stem(path)  # a name that is not UTF-8 names no output file: refused before any is made
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
    size: int | None = None,
    animate: bool = False,
    gif: bool = False,
    speed: float | None = None,
) -> list[Path]:
    """Write SVGs (and PNGs if `png`) for the sketches in `input_path`; returns the files.

    Without `grid`: one ``<name>.svg`` per sketch. With ``grid="COLSxROWS"``:
    ``<stem>_grid_000.svg``, ... holding COLS*ROWS sketches each. `size`: the side of
    each drawing's cell in pixels, 8 to 1024 (default 256 alone, 128 in a grid).
    `animate`: SVGs that draw themselves (`animate`); `gif`: the same animation as
    ``<name>.gif`` beside each SVG; `speed`: the constant pen speed of drawings without
    times (units of the 256-unit drawing space per second).
    """
    from .animate import check_speed
    from .raster import check_size

    check_choice("color_by", color_by, COLOR_BY)
    check_choice("caption", caption, CAPTIONS)
    if limit is not None and limit < 1:
        raise QuickDrawError(f"--limit must be >= 1, got {limit}")
    if size is not None:
        try:
            check_size(size)
        except QuickDrawError as e:
            raise QuickDrawError(f"--{e}") from None
    try:
        check_speed(speed)
    except QuickDrawError as e:
        raise QuickDrawError(f"--{e}") from None
    if (animate or gif) and color_by == "time":
        raise QuickDrawError("--color-by time does not animate (the animation is the time)")
    if speed is not None and not (animate or gif):
        raise QuickDrawError("--speed sets the pen speed of --animate and --gif")
    options = {"size": size, "animate": animate, "gif": gif, "speed": speed}
    layout = parse_grid(grid) if grid else None
    input_path, out_dir = Path(input_path), Path(out_dir)
    items = _read_sketches(input_path, split, limit)  # the input is checked before out_dir is made
    # every file is staged and they go into out_dir together: a bad drawing late in the
    # input leaves out_dir as it was, not half the grids of this run
    with staged_output(out_dir) as stage:
        written = _export(
            items, stage.path, input_path, layout, color_by, png, caption, progress, options
        )
        if not written:
            raise QuickDrawError(f"no drawings in {input_path}")
        stage.commit()
    return [out_dir / p.relative_to(stage.path) for p in written]


def _export(
    items, out_dir: Path, input_path: Path, layout, color_by, png, caption, progress, options
):
    """Write the SVGs (and PNGs, GIFs) of `items` into `out_dir`; returns the files."""
    from tqdm import tqdm

    from .animate import animated_gif, animated_svg

    stem = file_stem(input_path)
    written: list[Path] = []
    cell = float(options["size"] or (256 if layout is None else 128))
    speed = options["speed"]

    def emit(name: str, sketches: list, captions: list[str] | None, cols: int) -> None:
        page = {"color_by": color_by, "cell": cell}
        try:
            if options["animate"]:
                animated_svg(sketches, cols, captions, out_dir / f"{name}.svg", speed=speed, **page)
            else:
                svg_grid(sketches, cols, captions, out_dir / f"{name}.svg", **page)
            written.append(out_dir / f"{name}.svg")
            if png:
                png_grid(sketches, cols, captions, out_dir / f"{name}.png", **page)
                written.append(out_dir / f"{name}.png")
            if options["gif"]:
                animated_gif(sketches, cols, captions, out_dir / f"{name}.gif", speed=speed, **page)
                written.append(out_dir / f"{name}.gif")
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


# --- SVG files -> drawings (what `quickdraw import-svg` runs) ------------------------------
#
# svgelements parses the SVG (paths, shapes, transforms, units, <use>, CSS); this module
# refuses what an untrusted file could do to it first, and turns its shapes into strokes.

FLATTEN_TOLERANCE = 0.5  # curves become polylines no farther than this from the curve
MAX_SVG_BYTES = 50 * 2**20  # larger files are refused unread
MAX_SVG_POINTS = 1_000_000  # points after flattening, per file
MAX_SVG_ELEMENTS = 50_000  # elements, counting each <use> as the copy it makes
MAX_SVG_DEPTH = 100  # element nesting (with <use> copies); svgelements recurses on it

_SVG_NS = "http://www.w3.org/2000/svg"
_XLINK_HREF = "http://www.w3.org/1999/xlink href"  # expat's name for xlink:href
# attributes that hold numbers of the geometry, where "NaN" or "Infinity" is refused
_GEOMETRY = {"d", "points", "x", "y", "x1", "y1", "x2", "y2", "cx", "cy", "r", "rx", "ry",
             "width", "height", "transform", "viewBox"}  # fmt: skip
_NOT_FINITE = re.compile(r"(?<![a-z])(nan|inf|infinity)(?![a-z])", re.IGNORECASE)
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


def _is_number_list(text: str) -> bool:
    """Numbers apart from whitespace and commas only (what ``points`` may hold)."""
    return not re.search(r"[^\s,]", _NUMBER.sub(" ", text))


class _Refused(Exception):
    """Why the pre-parse refuses a file (turned into a `QuickDrawError` naming it)."""


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def _quote(value: str, limit: int = 40) -> str:
    """`value` quoted for a message, cut to `limit` characters."""
    return repr(value[:limit] + "...") if len(value) > limit else repr(value)


def _check_xml(data: bytes, max_points: int) -> None:
    """Parse `data` once with expat, holding nothing but its outline, and refuse what
    svgelements (which trusts its input) should never see:

    - an entity declaration: entities can expand without bound ("billion laughs") or
      name other files, so none gets as far as the parser that would expand it (a plain
      ``<!DOCTYPE svg PUBLIC ...>`` is fine: neither expat nor ElementTree fetches a DTD);
    - a reference to anything outside the file (``<image href="x.png">``,
      ``<use href="other.svg#a">``): the drawing would not be what the file holds
      (svgelements fetches none of them; ``data:`` URLs and ``#id`` are in the file);
    - "NaN" or "Infinity" in the geometry, and ``points`` that are not numbers
      (svgelements would quietly drop them);
    - nesting deeper than `MAX_SVG_DEPTH`, more than `MAX_SVG_ELEMENTS` elements, or
      path data (``d``, ``points``) of more than ``2 * max_points`` numbers, counting what
      ``<use>`` copies: svgelements makes an object of every element and segment, inlining
      every copy, so nested ``<use>`` multiplies like entities do (and a ``<use>`` inside
      what it copies never ends).
    """
    import xml.parsers.expat

    def no_entities(name: str, *_) -> None:
        raise _Refused(
            f"its DOCTYPE declares an entity ({name!r}; refused: entities can expand without "
            "bound or read other files)"
        )

    children: list[list[int]] = []  # per element, in document order
    numbers: list[int] = []  # how many numbers its path data holds
    refs: list[str | None] = []  # the #id a <use> copies
    ids: dict[str, int] = {}  # svgelements keeps the last element of an id
    open_elements: list[int] = []

    def start(name: str, attrs: dict[str, str]) -> None:
        namespace, _, local = name.rpartition(" ")
        svg_element = namespace in ("", _SVG_NS)
        if not open_elements and not (svg_element and local == "svg"):
            if local == "svg":
                raise _Refused(f"its root <svg> is in the namespace {namespace!r}, not {_SVG_NS!r}")
            raise _Refused(f"its root element is <{local}>, not <svg>")
        if len(open_elements) >= MAX_SVG_DEPTH:
            raise _Refused(f"elements are nested more than {MAX_SVG_DEPTH} deep")
        if len(children) >= MAX_SVG_ELEMENTS:
            raise _Refused(f"it has more than {MAX_SVG_ELEMENTS:,} elements")
        href = attrs.get("href", attrs.get(_XLINK_HREF))
        if href is not None and not (svg_element and local == "a"):  # a link is not drawn
            if not href.strip().startswith(("#", "data:")):
                raise _Refused(
                    f"<{local}> refers to {_quote(href)} outside the file (refused: only what "
                    "the file itself holds is read)"
                )
        for key, value in attrs.items():
            if key in _GEOMETRY and _NOT_FINITE.search(value):
                raise _Refused(f"<{local} {key}={_quote(value)}> is not a finite number")
        for declaration in attrs.get("style", "").split(";"):  # svgelements reads style too
            key, colon, value = declaration.partition(":")
            if colon and key.strip() in _GEOMETRY and _NOT_FINITE.search(value):
                raise _Refused(f"<{local} style={_quote(declaration.strip())}> is not finite")
        if "points" in attrs and not _is_number_list(attrs["points"]):
            raise _Refused(f"<{local} points={_quote(attrs['points'])}> is not a list of numbers")
        index = len(children)
        if open_elements:
            children[open_elements[-1]].append(index)
        children.append([])
        numbers.append(sum(len(_NUMBER.findall(attrs.get(k, ""))) for k in ("d", "points")))
        refs.append(href.strip()[1:] if svg_element and local == "use" and href else None)
        if "id" in attrs:
            ids[attrs["id"]] = index
        open_elements.append(index)

    parser = xml.parsers.expat.ParserCreate(namespace_separator=" ")
    parser.EntityDeclHandler = no_entities
    parser.UnparsedEntityDeclHandler = no_entities  # older expat reports NDATA ones here
    parser.StartElementHandler = start
    parser.EndElementHandler = lambda name: open_elements.pop()
    try:
        parser.Parse(data, True)
    except xml.parsers.expat.ExpatError as e:
        hint = " (a compressed .svgz? unzip it first)" if data[:2] == b"\x1f\x8b" else ""
        raise _Refused(f"not well-formed XML: {e}{hint}") from None
    except LookupError as e:  # the XML declaration names an encoding Python does not know
        raise _Refused(f"not readable XML: {e}") from None
    _count_copies(children, numbers, refs, ids, 2 * max_points)


def _count_copies(children, numbers, refs, ids, max_numbers: int) -> None:
    """Refuse a document that svgelements would expand (inlining every <use>) to more than
    `MAX_SVG_ELEMENTS` elements, `max_numbers` numbers of path data or `MAX_SVG_DEPTH`
    levels, or forever."""
    done: dict[int, tuple[int, int, int]] = {}  # element -> (elements, numbers, levels)
    busy: set[int] = set()

    def expand(i: int, level: int) -> tuple[int, int, int]:
        if i in done:
            return done[i]
        if i in busy:
            raise _Refused("a <use> copies an element that contains it (it would never end)")
        if level > MAX_SVG_DEPTH:
            raise _Refused(f"<use> copies nest more than {MAX_SVG_DEPTH} deep")
        busy.add(i)
        parts = children[i] + ([ids[refs[i]]] if refs[i] in ids else [])
        count, total, levels = 1, numbers[i], 0
        for j in parts:
            n, m, depth = expand(j, level + 1)
            count, total, levels = count + n, total + m, max(levels, depth)
            if count > MAX_SVG_ELEMENTS:
                raise _Refused(f"it makes more than {MAX_SVG_ELEMENTS:,} elements (with <use>)")
            if level + levels > MAX_SVG_DEPTH:
                raise _Refused(f"<use> copies nest more than {MAX_SVG_DEPTH} deep")
        if total > max_numbers:
            raise _Refused(
                f"its path data (with <use> copies) holds more than {max_numbers:,} numbers, "
                f"twice the limit of {max_numbers // 2:,} points"
            )
        busy.discard(i)
        done[i] = (count, total, levels + 1)
        return done[i]

    if children:
        expand(0, 0)


def _read_bytes(path: Path, max_bytes: int) -> bytes:
    if not path.is_file():
        raise QuickDrawError(f"SVG file not found: {path}")
    if path.stat().st_size > max_bytes:
        raise QuickDrawError(f"{path}: larger than {max_bytes:,} bytes (refused unread)")
    with open(path, "rb") as f:
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise QuickDrawError(f"{path}: larger than {max_bytes:,} bytes")
    return data


def _paints(color) -> bool:
    """Whether svgelements' colour puts ink on white paper (not none, transparent or white)."""
    return (
        color is not None and color.value is not None and color.alpha > 0 and color.rgb != 0xFFFFFF
    )


def _is_ink(shape) -> bool:
    """A shape is read when what it paints shows on white: a stroke or a fill of a colour
    other than white (the white background `svg_grid` writes is not a stroke)."""
    values = shape.values
    if values.get("visibility") in ("hidden", "collapse"):
        return False
    try:
        if float(values.get("opacity", 1)) <= 0:
            return False
    except ValueError:
        pass  # "50%" and the like: visible
    stroked = _paints(shape.stroke) and (shape.stroke_width is None or shape.stroke_width > 0)
    return stroked or _paints(shape.fill)


def _matrix(m) -> np.ndarray:
    """svgelements' Matrix -> the (2, 3) array ``[[a, c, e], [b, d, f]]`` (x' = a x + c y + e)."""
    return np.array([[m.a, m.c, m.e], [m.b, m.d, m.f]], dtype=np.float64)


class _Flattener:
    """Segments -> polylines within `tolerance` of the curves, counting points against a limit.

    Curves are flattened in the shape's own coordinates, where svgelements' arcs are plain
    rotated ellipses, then the points are mapped by the shape's affine `transform`; a map
    stretches distances by at most its largest singular value, so the tolerance used before
    it is ``tolerance / that``.
    """

    def __init__(self, where: Path, tolerance: float, max_points: int):
        self.where, self.tolerance, self.max_points = where, tolerance, max_points
        self.points = 0

    def _add(self, n: int) -> None:
        self.points += n
        if self.points > self.max_points:
            raise QuickDrawError(
                f"{self.where}: more than {self.max_points:,} points once its curves are "
                "flattened (refused)"
            )

    def _count(self, n: float) -> int:
        """`n` rounded up (at least 1), added to the points before they are made."""
        if not math.isfinite(n):
            raise QuickDrawError(f"{self.where}: {_NOT_FINITE_MESSAGE}")
        n = max(1, math.ceil(n))
        self._add(n)
        return n

    def shape(self, shape, transform: np.ndarray) -> list[np.ndarray]:
        """One ``(n, 2)`` array per subpath of `shape`, in the coordinates `transform` maps to."""
        import svgelements as se

        if not np.isfinite(transform).all():
            raise QuickDrawError(f"{self.where}: a transform is not finite")
        (a, c, _), (b, d, _) = transform.tolist()
        square, det = a * a + b * b + c * c + d * d, a * d - b * c
        if det == 0:  # a transform that flattens the shape: SVG draws nothing
            return []
        # the largest singular value of [[a, c], [b, d]], in closed form (an SVD is slow)
        stretch = math.sqrt((square + math.sqrt(max(square * square - 4 * det * det, 0))) / 2)
        tol = self.tolerance / stretch if stretch > 0 else math.inf
        subpaths: list[list] = []
        current: list = []  # [x, y] points of the subpath being read

        def finish() -> None:
            nonlocal current
            if len(current) >= 2:  # a lone moveto draws nothing
                subpaths.append(current)
            current = []

        for seg in shape.segments(transformed=False):
            if isinstance(seg, se.Move):
                finish()
                continue
            if not current:
                self._add(1)
                current.append([seg.start.x, seg.start.y])
            if isinstance(seg, se.Close):  # back to the subpath's start, if not there yet
                end = [seg.end.x, seg.end.y]
                if len(current) < 2 or current[-1] != end:
                    self._add(1)
                    current.append(end)
                finish()  # what follows a close starts a new subpath
            elif isinstance(seg, se.Line):
                self._add(1)
                current.append([seg.end.x, seg.end.y])
            elif isinstance(seg, se.QuadraticBezier | se.CubicBezier):
                current += self._bezier(seg, tol).tolist()
            elif isinstance(seg, se.Arc):
                current += self._arc(seg, tol).tolist()
            else:  # every segment svgelements makes is one of the above
                raise QuickDrawError(f"{self.where}: unknown path segment {type(seg).__name__}")
        finish()
        out = []
        for points in subpaths:
            with np.errstate(over="ignore", invalid="ignore"):
                mapped = np.array(points, dtype=np.float64) @ transform[:, :2].T + transform[:, 2]
            if not np.isfinite(mapped).all():
                raise QuickDrawError(f"{self.where}: {_NOT_FINITE_MESSAGE}")
            out.append(mapped)
        return out

    def _bezier(self, seg, tol: float) -> np.ndarray:
        """Points at t = 1/n, ..., 1: n from the second differences of the control points.

        A chord over a t-interval of length h is within h^2/8 max|B''| of the curve (Wang's
        bound); |B''| <= 6 max(|P0 - 2P1 + P2|, |P1 - 2P2 + P3|) for a cubic and
        2 |P0 - 2P1 + P2| for a quadratic, so n >= sqrt(0.75 M / tol) and sqrt(M / (4 tol)).
        """
        import svgelements as se

        if isinstance(seg, se.CubicBezier):
            p = np.array([[q.x, q.y] for q in (seg.start, seg.control1, seg.control2, seg.end)])
            with np.errstate(over="ignore", invalid="ignore"):
                m = np.hypot(*(p[:-2] - 2 * p[1:-1] + p[2:]).T).max()
                n = self._count(math.sqrt(0.75 * m / tol) if m > 0 else 1)
            t = np.arange(1, n + 1, dtype=np.float64)[:, None] / n
            s = 1.0 - t
            return s**3 * p[0] + 3 * s * s * t * p[1] + 3 * s * t * t * p[2] + t**3 * p[3]
        p = np.array([[q.x, q.y] for q in (seg.start, seg.control, seg.end)])
        with np.errstate(over="ignore", invalid="ignore"):
            m = float(np.hypot(*(p[0] - 2 * p[1] + p[2])))
            n = self._count(math.sqrt(m / (4 * tol)) if m > 0 else 1)
        t = np.arange(1, n + 1, dtype=np.float64)[:, None] / n
        s = 1.0 - t
        return s * s * p[0] + 2 * s * t * p[1] + t * t * p[2]

    def _arc(self, seg, tol: float) -> np.ndarray:
        """Points at equal steps of the ellipse's parameter: |P''| <= max(rx, ry) on an
        ellipse, so n >= |sweep| sqrt(max(rx, ry) / (8 tol)) keeps every chord within tol."""
        if seg.start == seg.end and not seg.sweep:
            return np.array([[seg.end.x, seg.end.y]], dtype=np.float64)
        radius = max(abs(seg.rx), abs(seg.ry))
        steps = abs(seg.sweep) * math.sqrt(radius / (8 * tol)) if radius > 0 else 1
        n = self._count(steps)
        return np.asarray(seg.npoint(np.arange(1, n + 1, dtype=np.float64) / n), np.float64)


_NOT_FINITE_MESSAGE = "a coordinate is not a finite number (NaN, infinity, or beyond float64)"


def read_svg(
    path: str | os.PathLike,
    *,
    tolerance: float = FLATTEN_TOLERANCE,
    max_points: int = MAX_SVG_POINTS,
    max_bytes: int = MAX_SVG_BYTES,
) -> list[list[list[float]]]:
    """The strokes of an SVG file: a drawing ``[[xs, ys], ...]`` of floats, one stroke per
    subpath of every inked shape, in document order, y pointing down.

    Read: ``path`` (absolute and relative commands, implicit lineto, H/V, several
    subpaths, curves and arcs), ``line``, ``polyline``, ``polygon``, ``rect``, ``circle``,
    ``ellipse``, ``<use>`` copies, ``transform`` on any element, nested ``<svg>``. A
    closed subpath (``Z``, polygon, rect, circle) ends at its first point again. Curves
    and arcs become polylines within `tolerance` units of the curve. Shapes whose stroke
    and fill are none, white or transparent are not ink (a white background is not a
    stroke); nor are text, images, hidden and ``<defs>`` content.

    Coordinates are the root ``<svg>``'s user units: every transform inside it is
    applied, but the root's ``viewBox``, ``width``/``height`` and its own ``transform``,
    which only place the picture on a page, are not. So a file written by `sketch_to_svg`
    reads back in the coordinates of its cell.

    The file is untrusted: larger than `max_bytes`, an entity declaration, a
    reference outside the file, NaN or infinite numbers, malformed XML or path data,
    runaway ``<use>`` copies, more than `max_points` points, or nothing to draw: each is
    a one-line `QuickDrawError` naming the file.
    """
    path = Path(path)
    return _parse_svg(_read_bytes(path, max_bytes), path, tolerance, max_points)


def _parse_svg(data: bytes, path: Path, tolerance: float, max_points: int):
    if not tolerance > 0:
        raise QuickDrawError(f"tolerance must be positive, got {tolerance}")
    return _flatten_svg(_load_svg(data, path, max_points), path, tolerance, max_points)


@contextlib.contextmanager
def _svgelements_errors(path: Path) -> Iterator[None]:
    """svgelements on input it does not expect: say so in one line."""
    try:
        yield
    except QuickDrawError:
        raise
    except Exception as e:
        why = _one_line(e) or "malformed path data or attribute"
        raise QuickDrawError(f"{path}: not an SVG drawing svgelements can read ({why})") from None


def _load_svg(data: bytes, path: Path, max_points: int) -> tuple[list, np.ndarray]:
    """The checked, parsed document's ink shapes, and the matrix from its viewport back to
    user units (what `_flatten_svg` needs, at any tolerance)."""
    import svgelements as se

    try:
        _check_xml(data, max_points)
    except _Refused as e:
        raise QuickDrawError(f"{path}: {_one_line(e)}") from None
    with _svgelements_errors(path):
        # reify=False: shapes keep their own coordinates and the matrix to the viewport
        root = se.SVG.parse(io.BytesIO(data), reify=False, on_error="raise")
        shapes = [e for e in root.elements() if isinstance(e, se.Shape) and _is_ink(e)]
        # undo what the root adds on the way to the viewport: its transform, then viewBox
        try:
            page = se.Matrix(f"{root.values.get('transform', '')} {root.viewbox_transform}")
            to_user = np.vstack([_matrix(~page), [0.0, 0.0, 1.0]])
        except ZeroDivisionError:
            raise QuickDrawError(
                f"{path}: nothing to draw (the root <svg> has a zero width, height or viewBox, "
                "or a transform that flattens it)"
            ) from None
    return shapes, to_user


def _flatten_svg(loaded: tuple[list, np.ndarray], path: Path, tolerance: float, max_points: int):
    """`_load_svg`'s shapes as strokes ``[[xs, ys], ...]`` in user units, curves flattened
    within `tolerance`."""
    shapes, to_user = loaded
    flattener = _Flattener(path, tolerance, max_points)
    strokes = []
    with _svgelements_errors(path):
        for shape in shapes:
            transform = to_user @ np.vstack([_matrix(shape.transform), [0.0, 0.0, 1.0]])
            strokes += flattener.shape(shape, transform[:2])
    if not strokes:
        raise QuickDrawError(f"{path}: nothing to draw (no path, line or shape with ink)")
    return [[xy[:, 0].tolist(), xy[:, 1].tolist()] for xy in strokes]


@dataclasses.dataclass
class ImportResult:
    """What `import_svgs` did: files read, drawings written, bad files skipped."""

    files: int  # SVG files looked at
    written: int  # drawings written (one per file read)
    skipped: int = 0  # files left out by on_error="skip"
    errors: list[str] = dataclasses.field(default_factory=list)  # the first few, one line each


def svg_files(inputs: Iterable[str | os.PathLike]) -> list[Path]:
    """Files and folders -> the SVG files to read: a folder gives its ``*.svg`` files sorted
    by name, a file itself (whatever its suffix); each file once, in the order given."""
    files: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            found = sorted(p for p in item.iterdir() if p.suffix.lower() == ".svg" and p.is_file())
            if not found:
                raise QuickDrawError(f"no .svg files in {item}")
            files += found
        elif item.is_file():
            files.append(item)
        else:
            raise QuickDrawError(f"no such SVG file or folder: {item}")
    seen: set[Path] = set()
    unique = []
    for p in files:
        if p.resolve() not in seen:
            seen.add(p.resolve())
            unique.append(p)
    return unique


def svg_key_id(data: bytes) -> str:
    """A stable ``key_id`` for an imported file: its SHA-256 as a decimal uint64 (the first
    8 bytes), so importing the same file again gives the same id (and the same split)."""
    return str(int.from_bytes(hashlib.sha256(data).digest()[:8], "big"))


def import_svgs(
    inputs: Iterable[str | os.PathLike],
    word: str,
    out: str | os.PathLike,
    *,
    raw_out: str | os.PathLike | None = None,
    on_error: str = "raise",
    progress: bool = True,
) -> ImportResult:
    """SVG files (or folders of them) -> simplified ndjson drawings of `word` in `out`.

    Each file's strokes (`read_svg`; curves within 0.5 units of the drawing scaled to 0-255,
    finer than `read_svg`'s default for a drawing smaller than that) go through Google's
    recipe (`simplify.simplify_drawing`) into a record like the official ones: ``word``,
    ``countrycode`` "" (unknown), ``timestamp`` of this run (``"YYYY-MM-DD HH:MM:SS.ffffff
    UTC"``), ``key_id`` (`svg_key_id` of the file's bytes) and ``drawing``; no
    ``recognized``, as no game judged it (readers take a missing one as unknown).
    `raw_out` also gets the unsimplified strokes (floats, no times). A bad file raises
    naming it, or with ``on_error="skip"`` is left out and counted. Each output is written
    atomically, and only if a drawing was read.
    """
    from tqdm import tqdm

    from .simplify import SIZE, simplify_drawing

    check_choice("on_error mode", on_error, ["raise", "skip"])
    if not isinstance(word, str) or not word.strip():
        raise QuickDrawError(f"--word must name the drawings' category, got {word!r}")
    check_utf8(word, "--word", "give the category as UTF-8 text")
    targets = [Path(out)] + ([Path(raw_out)] if raw_out is not None else [])
    for target in targets:
        if file_kind(target) != "ndjson":
            raise QuickDrawError(
                f"output {target} must be ndjson; valid suffixes: {formats.suffix_list('ndjson')}"
            )
    if len(targets) == 2 and targets[0].resolve() == targets[1].resolve():
        raise QuickDrawError(f"--out and --raw-out are the same file: {out}")
    files = svg_files(inputs)
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f UTC")
    result = ImportResult(files=len(files), written=0)
    simplified, raw = [], []
    for path in tqdm(files, desc="import-svg", unit=" files", disable=None if progress else True):
        try:
            data = _read_bytes(path, MAX_SVG_BYTES)
            loaded = _load_svg(data, path, MAX_SVG_POINTS)  # parsed once, flattened once or twice
            strokes = _flatten_svg(loaded, path, FLATTEN_TOLERANCE, MAX_SVG_POINTS)
            xy = np.concatenate([np.column_stack(s) for s in strokes])
            extent = float((xy.max(axis=0) - xy.min(axis=0)).max())
            if 0 < extent < SIZE:
                # the recipe scales the drawing up to 0-255: flatten its curves within 0.5
                # of that drawing, not of a smaller one (a drawing in mm, say)
                tolerance = FLATTEN_TOLERANCE * extent / SIZE
                strokes = _flatten_svg(loaded, path, tolerance, MAX_SVG_POINTS)
            drawing = simplify_drawing(strokes)
        except QuickDrawError as e:
            message = str(e) if str(path) in str(e) else f"{path}: {e}"
            if on_error == "raise":
                raise QuickDrawError(message + " (--on-error skip leaves it out)") from None
            result.skipped += 1
            if len(result.errors) < 10:
                result.errors.append(message)
            continue
        meta = {"word": word, "countrycode": "", "timestamp": stamp, "key_id": svg_key_id(data)}
        simplified.append({**meta, "drawing": drawing})
        if raw_out is not None:
            raw.append({**meta, "drawing": strokes})
    if not simplified:
        first = f"; first: {result.errors[0]}" if result.errors else ""
        raise QuickDrawError(f"no drawing could be read from {len(files)} SVG file(s){first}")
    result.written = formats.write_ndjson(targets[0], simplified)
    if raw_out is not None:
        formats.write_ndjson(targets[1], raw)
    return result
