"""Sketches as SVG for the grading page, every sketch rendered the same way.

Blindness depends on this: real sketches have integer coordinates and generated ones floats, so
every sketch is fitted into the same box and its points rounded to the same precision before it
reaches the page. The SVG carries no id, no metadata, no source.
"""

from __future__ import annotations

import numpy as np
import svgwrite

from quickdraw_tools.strokes import stroke3_to_drawing

BOX = 256.0  # the viewBox side
PADDING = 12.0  # empty margin inside the box
STROKE_WIDTH = 3.0


def sketch_svg(strokes: np.ndarray) -> str:
    """Stroke-3 ``(n, 3)`` -> an SVG document (string) that scales to its container."""
    drawing = stroke3_to_drawing(np.asarray(strokes, dtype=np.float64))
    dwg = svgwrite.Drawing(size=("100%", "100%"), viewBox=f"0 0 {BOX:g} {BOX:g}", debug=False)
    points = [np.column_stack(stroke[:2]) for stroke in drawing]
    if points:
        xy = np.concatenate(points)
        lo, hi = xy.min(axis=0), xy.max(axis=0)
        side = max(float((hi - lo).max()), 1e-9)
        scale = (BOX - 2 * PADDING) / side
        offset = (BOX - (hi - lo) * scale) / 2  # centre the sketch in the box
        group = dwg.g(
            fill="none",
            stroke="black",
            stroke_width=STROKE_WIDTH,
            stroke_linecap="round",
            stroke_linejoin="round",
        )
        for p in points:
            q = np.round((p - lo) * scale + offset, 1)
            if len(q) == 1:  # a dot: a zero-length line shows as a round cap
                q = np.vstack([q, q])
            group.add(dwg.polyline([(float(x), float(y)) for x, y in q]))
        dwg.add(group)
    return dwg.tostring()
