"""Sketches as SVG for the grading page, every sketch rendered the same way.

Blindness depends on this: real sketches have integer coordinates and generated ones floats, so
every sketch is fitted into the same box (`quickdraw_tools.svg.fit`, as every SVG of the project)
and its points rounded to the same precision before it reaches the page. The SVG carries no id,
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


def strokes_svg(strokes: np.ndarray) -> str:
    """Stroke-3 ``(n, 3)`` -> an SVG document (string) that scales to its container."""
    dwg = svgwrite.Drawing(size=("100%", "100%"), viewBox=f"0 0 {BOX:g} {BOX:g}", debug=False)
    points = fit(as_strokes(np.asarray(strokes, dtype=np.float64)), BOX, BOX, PADDING)
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
