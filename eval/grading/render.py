"""Sketches as SVG for the grading page, every sketch rendered the same way.

Blindness depends on this: real sketches have integer coordinates and generated ones floats, so
every sketch is drawn into the same box the same way and its points rounded to the same
precision before it reaches the page. The box's scale is the simplified files' 0-255 square
(a real Quick, Draw! drawing spans it, so it fills the box as `quickdraw_tools.svg.fit` would
fit it), each sketch centred by its bounding box as the official renderer centres drawings: a
sketch smaller than a drawing is shown at its own scale, never blown up (a model's two-point
sample is two points close together, not two dots in opposite corners), and only one larger
than the square is shrunk to fit. The SVG carries no id,
no metadata, no source. In a bitmap session (a model such as DRAW draws pixels) every sketch is
a bitmap of the same size, drawn as one square per inked pixel with its ink level quantised to
1/255.
"""

from __future__ import annotations

import numpy as np
import svgwrite

from ...svg import as_strokes, fit
from .store import Sketch

BOX = 256.0  # the viewBox side
PADDING = 12.0  # empty margin inside the box
STROKE_WIDTH = 3.0
UNITS = 255.0  # the side of the square the simplified drawings span: it fills the box


def sketch_svg(sketch: Sketch) -> str:
    """A sketch of the pool -> an SVG document (string) that scales to its container."""
    if sketch.image is not None:
        return bitmap_svg(sketch.image)
    return strokes_svg(sketch.strokes)


def bitmap_svg(image: np.ndarray) -> str:
    """uint8 ``(h, w)`` ink levels -> SVG: a black square per inked pixel, opacity = ink / 255."""
    image = np.asarray(image, dtype=np.uint8)
    h, w = image.shape
    dwg = svgwrite.Drawing(size=("100%", "100%"), viewBox=f"0 0 {w} {h}", debug=False)
    group = dwg.g(fill="black", shape_rendering="crispEdges")
    for y, x in zip(*np.nonzero(image), strict=True):
        level = int(image[y, x])
        square = dwg.rect((int(x), int(y)), (1, 1))
        if level < 255:
            square["fill-opacity"] = f"{level / 255:.3f}"
        group.add(square)
    dwg.add(group)
    return dwg.tostring()


def place(strokes) -> list[np.ndarray]:
    """Each stroke's points in the box: at the scale of `UNITS` (shrunk only when the sketch is
    larger), centred by the sketch's bounding box (see the module doc)."""
    fitted = fit(strokes, BOX, BOX, PADDING)  # the sketch filling the box, centred
    if not fitted:
        return []
    xy = np.concatenate([np.column_stack([x, y]) for x, y, _ in strokes])
    extent = float(np.ptp(xy, axis=0).max())
    room = BOX - 2 * PADDING
    if extent * room / UNITS >= room:  # as large as a drawing, or larger: fitted
        return fitted
    # smaller: shrink the fitted sketch about the box's centre to its own scale
    shrink = extent / UNITS
    centre = BOX / 2
    return [(p - centre) * shrink + centre for p in fitted]


def strokes_svg(strokes: np.ndarray) -> str:
    """Stroke-3 ``(n, 3)`` -> an SVG document (string) that scales to its container."""
    dwg = svgwrite.Drawing(size=("100%", "100%"), viewBox=f"0 0 {BOX:g} {BOX:g}", debug=False)
    points = place(as_strokes(np.asarray(strokes, dtype=np.float64)))
    if points:
        group = dwg.g(
            fill="none",
            stroke="black",
            stroke_width=STROKE_WIDTH,
            stroke_linecap="round",
            stroke_linejoin="round",
        )
        for p in points:
            q = np.round(p, 1)
            if len(q) == 1:  # a dot: a zero-length line shows as a round cap
                q = np.vstack([q, q])
            group.add(dwg.polyline([(float(x), float(y)) for x, y in q]))
        dwg.add(group)
    return dwg.tostring()
