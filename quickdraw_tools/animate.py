"""Sketches that draw themselves: animated SVG (no script) and animated GIF.

Each stroke is drawn in order, as the pen went:

- a raw drawing (every point has its time, in ms) at the pace the person drew it:
  the pen reaches each point at its own time, pauses between strokes included;
- anything else (simplified drawings, sketch-rnn ``.npz`` and samples) at a constant
  pen speed, `speed` units per second of the 256-unit drawing space (the sketch scaled
  so its larger side is 256, as simplified drawings are), the pen-up moves between
  strokes at the same speed (`pen_times`);
- sketch-rnn's pen, step by step (`step_times`, for ``quickdraw sample --out x.gif``).

The SVG animates each stroke with SMIL, which every browser plays without script:
a stroke is a ``<path>`` with ``pathLength="1"``, revealed by an ``<animate>`` of its
``stroke-dashoffset`` from 1 to 0 whose ``keyTimes`` are the times of its points and
whose ``values`` are the share of the stroke drawn by each, so the pen keeps its pace
inside a stroke too; a ``<set>`` makes it visible when it starts. A stroke without
length (one point) is a dot that appears at its time. Everything stays drawn at the
end (``fill="freeze"``).

The GIF has one frame every ``1 / fps`` seconds (or every few sketch-rnn steps), at
most `MAX_FRAMES` (longer animations get fewer, longer frames), each drawn by cairo,
black on white, and holds the finished drawing for `HOLD` seconds before it loops.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .atomic import atomic_write
from .errors import QuickDrawError
from .svg import STROKE_PALETTE, Strokes, _Layout, _pt, as_strokes, fit

SPEED = 400.0  # default pen speed: units of the 256-unit drawing space per second
DOT = 0.05  # seconds a one-point stroke takes at a constant speed
FPS = 20  # GIF frames per second
MAX_FRAMES = 400  # at most this many GIF frames, whatever the animation's length
HOLD = 1.5  # seconds the finished drawing stays before the GIF starts again


def check_speed(speed: float | None) -> None:
    """Refuse a pen speed that is not a finite number > 0 (None: the default)."""
    if speed is None:
        return
    ok = isinstance(speed, int | float | np.integer | np.floating) and not isinstance(speed, bool)
    if not ok or not math.isfinite(speed) or speed <= 0 or speed > 1e6:
        raise QuickDrawError(
            f"speed must be a number > 0 and at most 1e6 (units per second of the 256-unit"
            f" drawing space), got {speed!r}"
        )


def pen_times(strokes: Strokes, speed: float | None = None) -> list[np.ndarray]:
    """Seconds at which the pen reaches each point of each stroke, the first at 0.

    The drawing's own times (ms) when every stroke has them and `speed` is None; else a
    constant pen speed (`speed`, default `SPEED`), pen-up moves included.
    """
    check_speed(speed)
    if not strokes:
        return []
    if speed is None and all(ts is not None for _, _, ts in strokes):
        clock = np.concatenate([np.asarray(ts, np.float64) for _, _, ts in strokes])
        clock = np.maximum.accumulate(clock - clock[0]) / 1000.0  # never backwards
        return _split(clock, strokes)
    speed = SPEED if speed is None else float(speed)
    xy = np.concatenate([np.column_stack([x, y]) for x, y, _ in strokes])
    span = float((xy.max(axis=0) - xy.min(axis=0)).max())
    scale = 256.0 / span if span > 0 else 1.0
    steps = np.zeros(len(xy))
    steps[1:] = np.hypot(*np.diff(xy, axis=0).T) * scale / speed
    starts = np.cumsum([0] + [len(x) for x, _, _ in strokes])[:-1]
    dots = [s for s, (x, _, _) in zip(starts, strokes, strict=True) if len(x) == 1]
    steps[dots] += DOT  # a dot takes a moment too
    return _split(np.cumsum(steps), strokes)


def step_times(strokes: Strokes, seconds_per_step: float) -> list[np.ndarray]:
    """Times of sketch-rnn's pen: point k (counting every stroke's points in order, each a
    stroke-3 row) is reached at ``k * seconds_per_step``."""
    if not strokes:
        return []
    count = sum(len(x) for x, _, _ in strokes)
    return _split(np.arange(count, dtype=np.float64) * seconds_per_step, strokes)


def _split(clock: np.ndarray, strokes: Strokes) -> list[np.ndarray]:
    bounds = np.cumsum([0] + [len(x) for x, _, _ in strokes])
    return [clock[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def _cells(sketches, cols, captions, cell, margin, stroke_width, times):
    """Lay out a grid: the `_Layout`, and per sketch its origin, its strokes in cell
    coordinates and their times (`times(strokes)`)."""
    sketches = list(sketches)
    if captions is not None and len(captions) != len(sketches):
        raise QuickDrawError(f"{len(captions)} captions for {len(sketches)} sketches")
    layout = _Layout(len(sketches), cols, cell, captions is not None, 12.0)
    if margin is None:
        margin = cell / 16.0 + stroke_width
    out = []
    for i, sketch in enumerate(sketches):
        strokes = as_strokes(sketch)
        out.append((*layout.origin(i), fit(strokes, cell, cell, margin), times(strokes)))
    return layout, out


def _color(k: int, color_by: str) -> str:
    if color_by == "none":
        return "#000000"
    if color_by == "stroke":
        return STROKE_PALETTE[k % len(STROKE_PALETTE)]
    raise QuickDrawError(f"an animation colours by none or stroke, not {color_by!r}")


def animated_svg(
    sketches: Sequence,
    cols: int,
    captions: Sequence[str] | None = None,
    path: str | os.PathLike | None = None,
    *,
    cell: float = 256.0,
    margin: float | None = None,
    stroke_width: float = 2.0,
    color_by: str = "none",
    speed: float | None = None,
) -> str:
    """Sketches as an SVG grid (as `svg.svg_grid` lays it out) in which every sketch draws
    itself (module doc); all start together. Written to `path` (atomically) if given;
    returns the SVG text."""
    import svgwrite

    check_speed(speed)
    layout, cells = _cells(
        sketches, cols, captions, cell, margin, stroke_width, lambda s: pen_times(s, speed)
    )
    dwg = svgwrite.Drawing(
        size=(f"{layout.width:g}", f"{layout.height:g}"),
        viewBox=f"0 0 {layout.width:g} {layout.height:g}",
        profile="full",
        debug=False,
    )
    dwg.add(dwg.rect(insert=(0, 0), size=(layout.width, layout.height), fill="white"))
    for i, (x0, y0, strokes, times) in enumerate(cells):
        group = dwg.g(
            fill="none",
            stroke_width=stroke_width,
            stroke_linecap="round",
            stroke_linejoin="round",
            transform=f"translate({x0:g},{y0:g})",
        )
        for k, (xy, t) in enumerate(zip(strokes, times, strict=True)):
            group.add(_animated_stroke(dwg, xy, t, _color(k, color_by), stroke_width))
        if captions is not None:
            group.add(
                dwg.text(
                    str(captions[i]),
                    insert=(cell / 2.0, cell + layout.band * 0.7),
                    text_anchor="middle",
                    font_size=12,
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


def _seconds(t: float) -> str:
    return f"{t:.3f}s"


def _animated_stroke(dwg, xy: np.ndarray, t: np.ndarray, color: str, width: float):
    """One stroke that appears at its first time and is drawn as its points' times say."""
    start, end = float(t[0]), float(t[-1])
    lengths = np.hypot(*np.diff(xy, axis=0).T) if len(xy) > 1 else np.zeros(0)
    total = float(lengths.sum())
    if total <= 1e-9:  # a dot: no length to reveal
        shape = dwg.circle(center=_pt(xy[0]), r=width / 2.0, fill=color, stroke="none")
        shape["visibility"] = "hidden"
        shape.add(dwg.set(attributeName="visibility", to="visible", begin=_seconds(start)))
        return shape
    d = "M" + " L".join(f"{x:g},{y:g}" for x, y in (_pt(p) for p in xy))
    shape = dwg.path(d=d, stroke=color)
    shape["pathLength"] = 1
    shape["stroke-dasharray"] = "1 2"  # one dash as long as the stroke, then a gap
    shape["stroke-dashoffset"] = 1  # the dash wholly before the stroke's start: nothing drawn
    shape["visibility"] = "hidden"  # nor its round cap, until the stroke begins
    shape.add(dwg.set(attributeName="visibility", to="visible", begin=_seconds(start)))
    drawn = np.concatenate([[0.0], np.cumsum(lengths)]) / total
    duration = max(end - start, 1e-3)
    if end - start > 1e-3:
        key_times = (t - start) / (end - start)
    else:  # all its points at one time (a flick): drawn at once, over a millisecond
        key_times = drawn
    key_times = np.clip(key_times, 0.0, 1.0)
    key_times[0], key_times[-1] = 0.0, 1.0
    shape.add(
        dwg.animate(
            attributeName="stroke-dashoffset",
            values=";".join(f"{1 - v:.4f}" for v in drawn),
            keyTimes=";".join(f"{v:.4f}" for v in key_times),
            begin=_seconds(start),
            dur=_seconds(duration),
            fill="freeze",
            calcMode="linear",
        )
    )
    return shape


def duration(times: Sequence[Sequence[np.ndarray]]) -> float:
    """Seconds until the last point of the slowest sketch is drawn."""
    return max((float(t[-1]) for strokes in times for t in strokes), default=0.0)


def animated_gif(
    sketches: Sequence,
    cols: int,
    captions: Sequence[str] | None = None,
    path: str | os.PathLike | None = None,
    *,
    cell: float = 256.0,
    margin: float | None = None,
    stroke_width: float = 2.0,
    color_by: str = "none",
    speed: float | None = None,
    seconds_per_step: float | None = None,
    frame_seconds: float | None = None,
) -> bytes:
    """The same animation as `animated_svg`, as an animated GIF (pillow), frames drawn by
    cairo. With `seconds_per_step`, the pen moves one sketch-rnn step per that many
    seconds (`step_times`) instead of `pen_times`. `frame_seconds`: the time between
    frames (default ``1 / FPS``; more when the animation would pass `MAX_FRAMES`).
    Returns the GIF bytes, also written to `path` (atomically) if given."""
    from PIL import Image

    from .raster import _cairo

    check_speed(speed)
    if seconds_per_step is not None:

        def times(strokes):
            return step_times(strokes, seconds_per_step)
    else:

        def times(strokes):
            return pen_times(strokes, speed)

    layout, cells = _cells(sketches, cols, captions, cell, margin, stroke_width, times)
    total = duration([t for *_, t in cells])
    step = 1.0 / FPS if frame_seconds is None else float(frame_seconds)
    if not (math.isfinite(step) and step > 0):
        raise QuickDrawError(f"the time between frames must be > 0, got {frame_seconds!r}")
    step = max(step, total / (MAX_FRAMES - 1))
    frames_at = np.append(np.arange(0.0, total, step), total)
    cairo = _cairo()
    width, height = math.ceil(layout.width), math.ceil(layout.height)
    frames = []
    for now in frames_at:
        surface = cairo.ImageSurface(cairo.FORMAT_RGB24, width, height)
        ctx = cairo.Context(surface)
        ctx.set_source_rgb(1, 1, 1)
        ctx.paint()
        ctx.set_line_width(stroke_width)
        ctx.set_line_cap(cairo.LINE_CAP_ROUND)
        ctx.set_line_join(cairo.LINE_JOIN_ROUND)
        for x0, y0, strokes, stroke_times in cells:
            for k, (xy, t) in enumerate(zip(strokes, stroke_times, strict=True)):
                part = _drawn_by(xy, t, now)
                if part is None:
                    continue
                r, g, b = (int(_color(k, color_by)[i : i + 2], 16) / 255 for i in (1, 3, 5))
                ctx.set_source_rgb(r, g, b)
                ctx.move_to(x0 + part[0, 0], y0 + part[0, 1])
                for x, y in part:
                    ctx.line_to(x0 + x, y0 + y)
                ctx.stroke()
        if captions is not None:
            _captions(ctx, cells, captions, cell, layout)
        surface.flush()
        pixels = np.frombuffer(surface.get_data(), np.uint8).reshape(height, -1, 4)
        frames.append(Image.fromarray(pixels[:, :width, 2::-1].copy(), "RGB").convert("L"))
    durations = [round(step * 1000)] * (len(frames) - 1) + [round(HOLD * 1000)]
    buffer = io.BytesIO()
    frames[0].save(
        buffer, format="GIF", save_all=True, append_images=frames[1:], duration=durations,
        loop=0, optimize=False,
    )  # fmt: skip
    data = buffer.getvalue()
    if path is not None:
        with atomic_write(Path(path), "wb") as f:
            f.write(data)
    return data


def _captions(ctx, cells, captions, cell, layout) -> None:
    ctx.set_source_rgb(0.2, 0.2, 0.2)
    ctx.select_font_face("sans-serif")
    ctx.set_font_size(12.0)
    for (x0, y0, *_), text in zip(cells, captions, strict=True):
        advance = ctx.text_extents(str(text))[4]
        ctx.move_to(x0 + (cell - advance) / 2.0, y0 + cell + layout.band * 0.7)
        ctx.show_text(str(text))


def _drawn_by(xy: np.ndarray, t: np.ndarray, now: float) -> np.ndarray | None:
    """The part of a stroke drawn by time `now`: its points up to then and the pen's place
    between two points; None before it starts."""
    if now < t[0]:
        return None
    k = int(np.searchsorted(t, now, side="right"))  # points reached
    if k >= len(xy):
        return xy
    a, b = t[k - 1], t[k]
    share = (now - a) / (b - a) if b > a else 1.0
    pen = xy[k - 1] + (xy[k] - xy[k - 1]) * share
    return np.vstack([xy[:k], pen])
