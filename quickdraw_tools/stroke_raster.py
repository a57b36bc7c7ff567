"""cairo 1.16's stroker and scan converter, compiled, for the official bitmaps.

The official `numpy_bitmap` files were drawn with cairo (see `raster`): every
stroke a path of ``line_to`` segments with round caps and joins, stroked on
its own with the best antialiasing onto a small ARGB32 surface. This module
computes the same bytes without cairo, by following cairo's own integer and
floating-point steps for exactly that case:

1. the path (``cairo-path-fixed.c``): points in 24.8 fixed point; a repeated
   point is dropped, and a segment that continues the previous one in the
   same direction replaces it;
2. the stroker (``cairo-path-stroke-polygon.c``, ``cairo-pen.c``): faces at
   half the line width, round joins and caps fanned from the pen's vertices,
   the outline collected as clockwise / counter-clockwise contours whose
   edges form a polygon; a one-point stroke becomes a dot;
3. the scan converter (``cairo-tor-scan-converter.c``, "glitter paths"): 256
   x 15 subsamples per pixel, non-zero winding, whole pixel rows computed
   analytically when no edge starts, ends or crosses inside them, 16-bit
   coverage cells, ``(17 * area + 256) >> 9`` to an 8-bit alpha;
4. the compositor (``cairo-image-compositor.c``): white over the pixel with
   that alpha, ``d = mul(d, 255 - a) + mul(a, 255)`` with cairo's rounding.

The order of edges in the scan converter's lists decides, for some rows,
whether the row is computed analytically or by subsampling, so the lists are
kept (and merged) in the same order as cairo keeps them. Only drawings that
stay inside their surface take this path: cairo clips edges that leave it,
which is not reproduced here (`raster` hands those drawings to cairo). The
tests hold the result to cairo byte for byte on every drawing of the sample
data and to the official bitmaps.

Licence. Exactness left no room for a different algorithm: this file is a
translation of those parts of cairo into numba, function by function (the
names in backquotes are cairo's). cairo is offered under the LGPL 2.1 or the
Mozilla Public License 1.1; this file, unlike the rest of the project
(Apache-2.0), is therefore offered under the MPL 1.1, cairo's file-level
licence: "Copyright 2002 University of Southern California; 2008, 2011 Chris
Wilson, Intel Corporation; the cairo authors". The scan converter part
follows glitter-paths, whose notice follows.
"""

# glitter-paths - polygon scan converter
#
# Copyright (c) 2008  M Joonas Pihlaja
# Copyright (c) 2007  David Turner
#
# Permission is hereby granted, free of charge, to any person
# obtaining a copy of this software and associated documentation
# files (the "Software"), to deal in the Software without
# restriction, including without limitation the rights to use,
# copy, modify, merge, publish, distribute, sublicense, and/or sell
# copies of the Software, and to permit persons to whom the
# Software is furnished to do so, subject to the following
# conditions:
#
# The above copyright notice and this permission notice shall be
# included in all copies or substantial portions of the Software.
#
# THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND,
# EXPRESS OR IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES
# OF MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND
# NONINFRINGEMENT. IN NO EVENT SHALL THE AUTHORS OR COPYRIGHT
# HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER LIABILITY,
# WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING
# FROM, OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR
# OTHER DEALINGS IN THE SOFTWARE.

from __future__ import annotations

import math

import numpy as np
from numba import njit

GRID_X = 256  # subsamples per pixel across: the 24.8 fixed-point grid itself
GRID_Y = 15  # subsample rows per pixel
INT_MIN = -(2**31)
INT_MAX = 2**31 - 1
NULL = -1


# --------------------------------------------------------------------------
# Geometry shared with cairo's stroker: slopes and the pen.


@njit(cache=True, inline="always")
def _slope_compare(adx, ady, bdx, bdy):
    """cairo's `_cairo_slope_compare`: the sign of the angle from b to a."""
    lhs = ady * bdx
    rhs = bdy * adx
    if lhs < rhs:
        return -1
    if lhs > rhs:
        return 1
    a_zero = adx == 0 and ady == 0
    b_zero = bdx == 0 and bdy == 0
    if a_zero and b_zero:
        return 0
    if a_zero:
        return 1
    if b_zero:
        return -1
    # Anti-parallel: cairo 1.16 takes a as the smaller when it points right (or down).
    if (adx ^ bdx) < 0 or (ady ^ bdy) < 0:
        if adx > 0 or (adx == 0 and ady > 0):
            return -1
        return 1
    return 0


def make_pen(radius: float, tolerance: float, scale: float) -> np.ndarray:
    """The pen `_cairo_pen_init` builds for a circle of `radius` user units
    under the matrix ``scale * identity`` (plus a translation).

    Returns int64 ``(n, 6)``: each vertex's point and its clockwise and
    counter-clockwise slopes, all in 24.8 fixed point. n is 1 when the pen is
    too small to draw anything (cairo then strokes nothing).
    """
    # _cairo_matrix_transformed_circle_major_axis for a uniform scale: the radius
    # itself when the matrix "has unity scale" (|det^2 - 1| < 1/256).
    i = scale * scale
    if abs(i * i - 1.0) < 1.0 / 256.0:
        major_axis = radius
    else:
        f = 0.5 * (i + i)
        major_axis = radius * math.sqrt(f + math.hypot(0.5 * (i - i), 0.0))
    if tolerance >= 4 * major_axis:
        n = 1
    elif tolerance >= major_axis:
        n = 4
    else:
        n = math.ceil(2 * math.pi / math.acos(1 - tolerance / major_axis))
        n += n % 2
        n = max(n, 4)
    pen = np.zeros((n, 6), dtype=np.int64)
    for k in range(n):
        theta = 2 * math.pi * k / float(n)
        dx = scale * (radius * math.cos(theta))
        dy = scale * (radius * math.sin(theta))
        pen[k, 0] = round(dx * 256.0)  # _cairo_fixed_from_double: to nearest, ties to even
        pen[k, 1] = round(dy * 256.0)
    for k in range(n):
        prev, nxt = pen[k - 1], pen[(k + 1) % n]
        pen[k, 2:4] = pen[k, :2] - prev[:2]  # slope_cw: from the previous vertex
        pen[k, 4:6] = nxt[:2] - pen[k, :2]  # slope_ccw: to the next vertex
    return pen


@njit(cache=True)
def _active_vertices(pen, in_dx, in_dy, out_dx, out_dy, clockwise):
    """`_cairo_pen_find_active_cw_vertices` / `..._ccw_vertices`: the pen
    vertices (start, stop) of a fan from slope `in` to slope `out`.

    cairo writes the two as mirror images: the clockwise one searches the
    vertices' clockwise slopes, the other their counter-clockwise slopes with
    the comparisons reversed (`_slope_compare` is antisymmetric).
    """
    n = pen.shape[0]
    col = 2 if clockwise else 4  # the slopes searched: cw or ccw
    other = 6 - col
    sign = 1 if clockwise else -1
    lo, hi = 0, n
    i = (lo + hi) >> 1
    while True:
        if sign * _slope_compare(pen[i, col], pen[i, col + 1], in_dx, in_dy) < 0:
            lo = i
        else:
            hi = i
        i = (lo + hi) >> 1
        if hi - lo <= 1:
            break
    if sign * _slope_compare(pen[i, col], pen[i, col + 1], in_dx, in_dy) < 0:
        i += 1
        if i == n:
            i = 0
    start = i
    if _slope_compare(pen[i, other], pen[i, other + 1], out_dx, out_dy) <= 0:
        lo = i
        hi = i + n
        i = (lo + hi) >> 1
        while True:
            j = i - n if i >= n else i
            if sign * _slope_compare(pen[j, col], pen[j, col + 1], out_dx, out_dy) > 0:
                hi = i
            else:
                lo = i
            i = (lo + hi) >> 1
            if hi - lo <= 1:
                break
        if i >= n:
            i -= n
    return start, i


# --------------------------------------------------------------------------
# The stroker. A face is an int64 array:
#   0,1 point   2,3 cw point   4,5 ccw point   6,7 dev_vector (fixed slope)

_F_POINT, _F_CW, _F_CCW, _F_DEV = 0, 2, 4, 6


@njit(cache=True, inline="always")
def _fixed(d):
    """`_cairo_fixed_from_double`: nearest 1/256, ties to even."""
    return np.int64(np.rint(d * 256.0))


@njit(cache=True, inline="always")
def _normalize(dx, dy):
    """`normalize_slope`: the unit vector (exact signs for axis-aligned ones)."""
    if dx == 0.0:
        return 0.0, (1.0 if dy > 0.0 else -1.0)
    if dy == 0.0:
        return (1.0 if dx > 0.0 else -1.0), 0.0
    mag = math.hypot(dx, dy)
    return dx / mag, dy / mag


@njit(cache=True)
def _compute_face(px, py, sdx, sdy, scale, inverse, half_width, face):
    """`compute_face` for a slope (sdx, sdy) in fixed point leaving (px, py)."""
    ux, uy = _normalize(sdx / 256.0, sdy / 256.0)
    # The inverse matrix is not the identity: back to user space, normalise
    # again, turn by 90 degrees (the determinant is positive), forward again.
    ux, uy = _normalize(inverse * ux, inverse * uy)
    ox = _fixed(scale * (-uy * half_width))
    oy = _fixed(scale * (ux * half_width))
    face[0] = px
    face[1] = py
    face[2] = px - ox
    face[3] = py - oy
    face[4] = px + ox
    face[5] = py + oy
    face[6] = sdx
    face[7] = sdy


@njit(cache=True, inline="always")
def _add_point(contour, count, x, y):
    """`_cairo_contour_add_point` (the polygon stroker never merges points)."""
    contour[count, 0] = x
    contour[count, 1] = y
    return count + 1


@njit(cache=True)
def _add_fan(pen, in_dx, in_dy, out_dx, out_dy, mx, my, clockwise, contour, count):
    """`add_fan`: pen vertices around (mx, my) from slope `in` to slope `out`."""
    n = pen.shape[0]
    if clockwise:
        start, stop = _active_vertices(pen, in_dx, in_dy, out_dx, out_dy, True)
        while start != stop:
            count = _add_point(contour, count, mx + pen[start, 0], my + pen[start, 1])
            start += 1
            if start == n:
                start = 0
    else:
        start, stop = _active_vertices(pen, in_dx, in_dy, out_dx, out_dy, False)
        while start != stop:
            count = _add_point(contour, count, mx + pen[start, 0], my + pen[start, 1])
            if start == 0:
                start = n
            start -= 1
    return count


@njit(cache=True)
def _add_cap(pen, face, reverse, contour, count):
    """`add_cap` for a round cap; `reverse` makes it `add_leading_cap`."""
    dx, dy = face[_F_DEV], face[_F_DEV + 1]
    end = _F_CW
    if reverse:
        dx, dy = -dx, -dy
        end = _F_CCW  # the reversed face's cw point
    count = _add_fan(pen, dx, dy, -dx, -dy, face[0], face[1], False, contour, count)
    return _add_point(contour, count, face[end], face[end + 1])


@njit(cache=True)
def _add_contour(contour, count, direction, edges, n_edges):
    """`_cairo_polygon_add_contour`: one edge per pair of consecutive points,
    horizontal ones dropped, each stored top to bottom with its direction.

    An edge row is ``(x1, y1, x2, y2, dir)``.
    """
    if count <= 1:
        return n_edges
    px, py = contour[0, 0], contour[0, 1]
    for k in range(count):
        qx, qy = contour[k, 0], contour[k, 1]
        if py != qy:
            e = edges[n_edges]
            if py < qy:
                e[0], e[1], e[2], e[3], e[4] = px, py, qx, qy, direction
            else:
                e[0], e[1], e[2], e[3], e[4] = qx, qy, px, py, -direction
            n_edges += 1
        px, py = qx, qy
    return n_edges


@njit(cache=True)
def _stroke_polygon(xs, ys, pen, scale, inverse, half_width, path, faces, cw, ccw, edges):
    """The polygon cairo fills for one stroked path of fixed-point points.

    The path is ``move_to(p0)`` then ``line_to`` every point (p0 again
    first), as the official renderer draws a stroke. Returns the edge count.
    """
    n_edges = 0
    n = len(xs)
    # _cairo_path_fixed_line_to: the points the stroker receives after move_to.
    path_x, path_y = path[0], path[1]
    path_x[0], path_y[0] = xs[0], ys[0]  # MOVE_TO
    path_x[1], path_y[1] = xs[0], ys[0]  # LINE_TO p0: kept, the last op was MOVE_TO
    m = 2
    for k in range(1, n):
        x, y = xs[k], ys[k]
        cx, cy = path_x[m - 1], path_y[m - 1]
        if x == cx and y == cy:
            continue  # a degenerate segment after the first: skipped
        qx, qy = path_x[m - 2], path_y[m - 2]
        if qx == cx and qy == cy:
            m -= 1  # the previous LINE_TO was degenerate: replaced
        else:
            adx, ady = cx - qx, cy - qy
            bdx, bdy = x - cx, y - cy
            if ady * bdx == bdy * adx and ((adx ^ bdx) | (ady ^ bdy)) >= 0:
                m -= 1  # same direction as the previous segment: extended
        path_x[m], path_y[m] = x, y
        m += 1

    start, current, first = faces[0], faces[1], faces[2]
    has_current = False
    has_first = False
    n_cw = 0
    n_ccw = 0
    current[_F_POINT], current[_F_POINT + 1] = path_x[0], path_y[0]
    for k in range(1, m):
        x, y = path_x[k], path_y[k]
        p1x, p1y = current[_F_POINT], current[_F_POINT + 1]
        if p1x == x and p1y == y:
            continue
        dx, dy = x - p1x, y - p1y
        _compute_face(p1x, p1y, dx, dy, scale, inverse, half_width, start)
        if has_current:
            turn = _slope_compare(current[_F_DEV], current[_F_DEV + 1], dx, dy)
            if turn != 0:
                clockwise = turn < 0
                # outer_join (round): skipped when the faces coincide
                if not (
                    current[_F_CW] == start[_F_CW]
                    and current[_F_CW + 1] == start[_F_CW + 1]
                    and current[_F_CCW] == start[_F_CCW]
                    and current[_F_CCW + 1] == start[_F_CCW + 1]
                ):
                    in_dx, in_dy = current[_F_DEV], current[_F_DEV + 1]
                    if clockwise:
                        n_cw = _add_fan(pen, in_dx, in_dy, dx, dy, p1x, p1y, True, cw, n_cw)
                        n_cw = _add_point(cw, n_cw, start[_F_CW], start[_F_CW + 1])
                    else:
                        n_ccw = _add_fan(pen, in_dx, in_dy, dx, dy, p1x, p1y, False, ccw, n_ccw)
                        n_ccw = _add_point(ccw, n_ccw, start[_F_CCW], start[_F_CCW + 1])
                # inner_join
                if clockwise:
                    n_ccw = _add_point(ccw, n_ccw, p1x, p1y)
                    n_ccw = _add_point(ccw, n_ccw, start[_F_CCW], start[_F_CCW + 1])
                else:
                    n_cw = _add_point(cw, n_cw, p1x, p1y)
                    n_cw = _add_point(cw, n_cw, start[_F_CW], start[_F_CW + 1])
        else:
            if not has_first:
                first[:] = start
                has_first = True
            has_current = True
            n_cw = _add_point(cw, n_cw, start[_F_CW], start[_F_CW + 1])
            n_ccw = _add_point(ccw, n_ccw, start[_F_CCW], start[_F_CCW + 1])
        current[:] = start
        current[_F_POINT], current[_F_POINT + 1] = x, y
        current[_F_CW] += dx
        current[_F_CW + 1] += dy
        current[_F_CCW] += dx
        current[_F_CCW + 1] += dy
        n_cw = _add_point(cw, n_cw, current[_F_CW], current[_F_CW + 1])
        n_ccw = _add_point(ccw, n_ccw, current[_F_CCW], current[_F_CCW + 1])

    # add_caps
    if not has_first and not has_current:
        # A degenerate sub-path: a dot, faced along an arbitrary slope.
        _compute_face(path_x[0], path_y[0], 256, 0, scale, inverse, half_width, start)
        n_ccw = _add_cap(pen, start, True, ccw, n_ccw)
        n_ccw = _add_cap(pen, start, False, ccw, n_ccw)
        n_ccw = _add_point(ccw, n_ccw, ccw[0, 0], ccw[0, 1])
        return _add_contour(ccw, n_ccw, -1, edges, n_edges)
    n_ccw = _add_cap(pen, current, False, ccw, n_ccw)
    n_edges = _add_contour(ccw, n_ccw, -1, edges, n_edges)
    n_ccw = _add_point(ccw, 0, first[_F_CW], first[_F_CW + 1])
    n_ccw = _add_cap(pen, first, True, ccw, n_ccw)
    n_edges = _add_contour(ccw, n_ccw, -1, edges, n_edges)
    return _add_contour(cw, n_cw, 1, edges, n_edges)


# --------------------------------------------------------------------------
# The scan converter. Edges live in rows of an int64 table; `next`/`prev` are
# row numbers (NULL = -1), with two sentinel rows for the active list's head
# and tail, as in cairo's doubly linked lists.

_YTOP, _LEFT, _DIR, _CELL, _XQ, _XR, _DQ, _DR, _FQ, _FR, _DY, _NEXT, _PREV, _SQ, _SR = range(15)
# x is a quotient and remainder (0 <= rem < dy) in 1/256 pixel. cairo keeps the
# per-subsample-row step (DQ, DR) as C's truncated division, which the
# whole-row rendering halves; the steps themselves use the same increments
# floored (SQ, SR and FQ, FR: remainders >= 0), which give the same sums
# with one overflow test instead of two.
_FIELDS = 16  # a power of two: a row's address is a shift, not a multiply


@njit(cache=True, inline="always")
def _at(e, field):
    """Index of an edge's field in the flat table.

    Unsigned, so numba adds no negative-index test; following a NULL link would
    read far outside the table instead of failing (the tests compare every row
    with cairo, and ran with NUMBA_BOUNDSCHECK=1).
    """
    return np.uint64(e * _FIELDS + field)


@njit(cache=True, inline="always")
def _cdiv(a, b):
    """C's truncating division."""
    q = abs(a) // abs(b)
    return q if (a < 0) == (b < 0) else -q


@njit(cache=True, inline="always")
def _wrap16(v):
    """The value of an int16_t holding v."""
    return ((v + 32768) & 0xFFFF) - 32768


@njit(cache=True, inline="always")
def _round_cell(q, r, dy):
    return q + (1 if r >= (dy >> 1) else 0)  # dy >= 0: dy >> 1 == dy / 2


@njit(cache=True, inline="always")
def _advanced(E, e, q_field, r_field):
    """x one subsample row (SQ, SR) or one pixel row (FQ, FR) further: (q, r)."""
    dy = E[_at(e, _DY)]
    q = E[_at(e, _XQ)] + E[_at(e, q_field)]
    r = E[_at(e, _XR)] + E[_at(e, r_field)]
    if r >= dy:
        q += 1
        r -= dy
    return q, r


@njit(cache=True, inline="always")
def _step(E, e, q_field, r_field):
    """`step` / `full_step`: advance x by one subsample row or one pixel row."""
    dy = E[_at(e, _DY)]
    if dy == 0:
        return
    q, r = _advanced(E, e, q_field, r_field)
    E[_at(e, _XQ)] = q
    E[_at(e, _XR)] = r
    E[_at(e, _CELL)] = _round_cell(q, r, dy)


@njit(cache=True, inline="always")
def _take_run(E, run, limit, prev, owner):
    """Walk `run` while its cells are <= `limit`; returns (the rest, the last edge
    taken, whose `next` the merged list continues from)."""
    while run != NULL and E[_at(run, _CELL)] <= limit:
        prev = run
        owner = run
        run = E[_at(run, _NEXT)]
    return run, prev, owner


@njit(cache=True, inline="always")
def _attach(E, head, owner, e):
    """Continue the merged list with `e` after `owner` (NULL: `e` starts it); returns its head."""
    if owner == NULL:
        return e
    E[_at(owner, _NEXT)] = e
    return head


@njit(cache=True)
def _merge_sorted(E, head_a, head_b):
    """`merge_sorted_edges`, tie order included (it decides full-row rendering)."""
    prev = E[_at(head_a, _PREV)]
    owner = NULL  # whose `next` the merged list continues from; NULL: `head`
    if E[_at(head_a, _CELL)] <= E[_at(head_b, _CELL)]:
        head = head_a
        from_b = False
    else:
        head = head_b
        E[_at(head_b, _PREV)] = prev
        from_b = True
    while True:
        if not from_b:
            head_a, prev, owner = _take_run(E, head_a, E[_at(head_b, _CELL)], prev, owner)
            E[_at(head_b, _PREV)] = prev
            head = _attach(E, head, owner, head_b)
            if head_a == NULL:
                return head
        from_b = False
        head_b, prev, owner = _take_run(E, head_b, E[_at(head_a, _CELL)], prev, owner)
        E[_at(head_a, _PREV)] = prev
        head = _attach(E, head, owner, head_a)
        if head_b == NULL:
            return head


@njit(cache=True, inline="always")
def _sort_pair(E, lst):
    """The first step of `sort_edges`: the list's first two edges in order.

    Returns (head of those two, the rest of the list).
    """
    other = E[_at(lst, _NEXT)]
    if other == NULL:
        return lst, NULL
    remaining = E[_at(other, _NEXT)]
    if E[_at(lst, _CELL)] <= E[_at(other, _CELL)]:
        E[_at(other, _NEXT)] = NULL
        return lst, remaining
    E[_at(other, _PREV)] = E[_at(lst, _PREV)]
    E[_at(other, _NEXT)] = lst
    E[_at(lst, _PREV)] = other
    E[_at(lst, _NEXT)] = NULL
    return other, remaining


@njit(cache=True)
def _sort_edges(E, lst, base):
    """`sort_edges(list, UINT_MAX)`: cairo's bottom-up merge sort of a list.

    cairo recurses: ``sort(list, level)`` sorts a pair, then for i < level
    merges in ``sort(rest, i)``. The same calls and merges, in the same order,
    run here on an explicit stack, kept in columns 0-2 of the 64 rows of `E`
    from `base` (numba's cache cannot hold recursive code).
    """
    # stack columns (the first three fields of rows past the tail sentinel):
    # 0 the frame's level, 1 its merges done, 2 its sorted head
    E[_at(base, 2)], remaining = _sort_pair(E, lst)
    E[_at(base, 0)] = INT_MAX
    E[_at(base, 1)] = 0
    top = 0
    while True:
        if E[_at(base + top, 1)] < E[_at(base + top, 0)] and remaining != NULL:
            level = E[_at(base + top, 1)]
            top += 1
            E[_at(base + top, 2)], remaining = _sort_pair(E, remaining)
            E[_at(base + top, 0)] = level
            E[_at(base + top, 1)] = 0
        elif top == 0:
            return E[_at(base, 2)]
        else:
            top -= 1
            E[_at(base + top, 2)] = _merge_sorted(
                E, E[_at(base + top, 2)], E[_at(base + top + 1, 2)]
            )
            E[_at(base + top, 1)] += 1


@njit(cache=True, inline="always")
def _unlink(E, e):
    E[_at(E[_at(e, _PREV)], _NEXT)] = E[_at(e, _NEXT)]
    E[_at(E[_at(e, _NEXT)], _PREV)] = E[_at(e, _PREV)]


@njit(cache=True, inline="always")
def _dec(E, e, h):
    """`dec`: the edge's remaining height less h; True if it ended (it is unlinked)."""
    E[_at(e, _LEFT)] -= h
    if E[_at(e, _LEFT)] == 0:
        _unlink(E, e)
        return True
    return False


@njit(cache=True, inline="always")
def _cell_index(x, size):
    """Dense cell index: 0 gathers every cell left of the clip, size + 1 every one right."""
    return min(max(x + 1, 0), size + 1)


@njit(cache=True, inline="always")
def _add_subspan(cells, size, x1, x2):
    """`cell_list_add_subspan`: coverage of [x1, x2) on one subsample row."""
    if x1 == x2:
        return
    i1, f1 = x1 >> 8, x1 & 255
    i2, f2 = x2 >> 8, x2 & 255
    if i1 != i2:
        c1, c2 = _cell_index(i1, size), _cell_index(i2, size)
        cells[1, c1] += 2 * f1
        cells[0, c1] += 1
        cells[1, c2] -= 2 * f2
        cells[0, c2] -= 1
    else:
        cells[1, _cell_index(i1, size)] += 2 * (f1 - f2)


@njit(cache=True, inline="always")
def _half_step_back(E, e, q, r):
    """x moved back from a subsample row's centre to the row's top edge."""
    dy = E[_at(e, _DY)]
    q -= _cdiv(E[_at(e, _DQ)], 2)
    r -= _cdiv(E[_at(e, _DR)], 2)
    if r < 0:
        q -= 1
        r += dy
    elif r >= dy:
        q += 1
        r -= dy
    return q, r


@njit(cache=True)
def _render_edge(E, e, sign, cells, size):
    """`cell_list_render_edge`: exact coverage of an edge over a whole pixel row."""
    q1, r1 = E[_at(e, _XQ)], E[_at(e, _XR)]
    _step(E, e, _FQ, _FR)
    q2, r2 = E[_at(e, _XQ)], E[_at(e, _XR)]
    dy = E[_at(e, _DY)]
    if dy != 0:
        q1, r1 = _half_step_back(E, e, q1, r1)
        q2, r2 = _half_step_back(E, e, q2, r2)
    i1, f1 = q1 >> 8, q1 & 255
    i2, f2 = q2 >> 8, q2 & 255
    if i1 == i2:
        c = _cell_index(i1, size)
        cells[0, c] += sign * GRID_Y
        cells[1, c] += sign * (f1 + f2) * GRID_Y
        return
    if i2 < i1:  # orient left to right
        i1, i2 = i2, i1
        f1, f2 = f2, f1
        q1, q2 = q2, q1
        r1, r2 = r2, r1
    dx = (q2 - q1) * dy + (r2 - r1)
    tmp = ((i1 + 1) * GRID_X * dy - (q1 * dy + r1)) * GRID_Y
    yq = _cdiv(tmp, dx)
    yr = tmp - yq * dx
    c = _cell_index(i1, size)
    cells[1, c] += sign * yq * (GRID_X + f1)
    cells[0, c] += sign * yq
    y_last = yq
    if i1 + 1 < i2:
        full = GRID_Y * GRID_X * dy
        fq = _cdiv(full, dx)
        fr = full - fq * dx
        i1 += 1
        while True:
            yq += fq
            yr += fr
            if yr >= dx:
                yq += 1
                yr -= dx
            c = _cell_index(i1, size)
            cells[1, c] += sign * (yq - y_last) * GRID_X
            cells[0, c] += sign * (yq - y_last)
            y_last = yq
            i1 += 1
            if i1 == i2:
                break
    c = _cell_index(i2, size)
    cells[1, c] += sign * (GRID_Y - y_last) * f2
    cells[0, c] += sign * (GRID_Y - y_last)


@njit(cache=True, inline="always")
def _mul8(a, b):
    """cairo's `mul8_8`: a * b / 255, rounded its way."""
    t = a * b + 0x7F
    return ((t >> 8) + t) >> 8


@njit(cache=True)
def _blit(cells, canvas, y0, y1, x0, x1, lo, hi):
    """`blit_a8` + `_fill_xrgb32_lerp_opaque_spans` (the A8 twin has the same
    arithmetic): white over rows y0..y1-1.

    Columns x0..x1-1 are the clip box; cells of columns left of it still add
    their height. Only cells lo..hi-1 (cell of column x: x + 1) can be
    non-zero; they are cleared for the next row.
    """
    cover = 0
    for c in range(lo, x0 + 1):  # the columns left of the clip box
        cover += _wrap16(cells[0, c])
    cover = _wrap16(_wrap16(cover) * (GRID_X * 2))
    for x in range(max(x0, lo - 1), x1):
        if x + 1 >= hi and cover == 0:
            break  # no cells left and nothing covered: the rest of the row is clear
        cover = _wrap16(cover + _wrap16(cells[0, x + 1]) * (GRID_X * 2))
        area = _wrap16(cover - _wrap16(cells[1, x + 1]))
        a = ((area + (area << 4) + 256) >> 9) & 255
        if a == 0:
            continue
        for y in range(y0, y1):
            if a == 255:
                canvas[y, x] = 255
            else:
                canvas[y, x] = (_mul8(np.int64(canvas[y, x]), 255 - a) + _mul8(a, 255)) & 255
    for c in range(lo, hi):
        cells[0, c] = 0
        cells[1, c] = 0


@njit(cache=True)
def _scan(edges, n_edges, size, E, buckets, sub_buckets, cells, canvas):
    """`glitter_scan_converter_render` of one polygon onto `canvas` (size x size).

    The clip box is what cairo's compositor gives the converter: the surface
    cut to the polygon's extents rounded out to whole pixels. Its rows hold
    every edge; its columns matter, as a whole-row edge can reach a pixel
    past the last vertex.
    """
    head, tail = n_edges, n_edges + 1
    if n_edges == 0:
        return
    lo_x = INT_MAX
    hi_x = INT_MIN
    for k in range(n_edges):
        lo_x = min(lo_x, edges[k, 0], edges[k, 2])
        hi_x = max(hi_x, edges[k, 0], edges[k, 2])
    clip_lo = min(max(lo_x >> 8, 0), size)
    clip_hi = min(max((hi_x + 255) >> 8, 0), size)
    # the cells a subsampled row can touch: those of the polygon's columns
    reset_lo = _cell_index((lo_x >> 8) - 1, size)
    reset_hi = _cell_index((hi_x >> 8) + 1, size) + 1
    ymax = size * GRID_Y
    for i in range(size):
        buckets[i] = NULL
    # polygon_add_edge
    for k in range(n_edges):
        x1, y1, x2, y2, direction = edges[k, 0], edges[k, 1], edges[k, 2], edges[k, 3], edges[k, 4]
        ytop = max((GRID_Y * y1 + 128) >> 8, 0)
        ybot = min((GRID_Y * y2 + 128) >> 8, ymax)
        if ybot <= ytop:
            continue
        E[_at(k, _YTOP)] = ytop
        E[_at(k, _LEFT)] = ybot - ytop
        E[_at(k, _DIR)] = direction
        if x1 == x2:
            E[_at(k, _CELL)] = x1
            E[_at(k, _XQ)] = x1
            E[_at(k, _XR)] = E[_at(k, _DQ)] = E[_at(k, _DR)] = E[_at(k, _FQ)] = E[_at(k, _FR)] = 0
            E[_at(k, _SQ)] = E[_at(k, _SR)] = 0
            E[_at(k, _DY)] = 0
        else:
            ex = (x2 - x1) * GRID_X
            ey = (y2 - y1) * GRID_Y * 512
            E[_at(k, _DQ)] = _cdiv(ex * 512, ey)
            E[_at(k, _DR)] = ex * 512 - E[_at(k, _DQ)] * ey
            E[_at(k, _SQ)], E[_at(k, _SR)] = divmod(ex * 512, ey)
            tmp = ((2 * ytop + 1) << 8) - y1 * GRID_Y * 2
            tmp *= ex
            q = _cdiv(tmp, ey)
            r = tmp - q * ey
            q += x1
            if r < 0:
                q -= 1
                r += ey
            elif r >= ey:
                q += 1
                r -= ey
            E[_at(k, _XQ)] = q
            E[_at(k, _XR)] = r
            if E[_at(k, _LEFT)] >= GRID_Y:
                tmp = ex * (2 * GRID_Y << 8)
                E[_at(k, _FQ)], E[_at(k, _FR)] = divmod(tmp, ey)
            else:
                E[_at(k, _FQ)] = E[_at(k, _FR)] = 0
            E[_at(k, _CELL)] = _round_cell(q, r, ey)
            E[_at(k, _DY)] = ey
        row = ytop // GRID_Y
        E[_at(k, _NEXT)] = buckets[row]
        buckets[row] = k

    # active_list_reset
    E[_at(head, _LEFT)] = INT_MAX
    E[_at(head, _DY)] = 0
    E[_at(head, _CELL)] = INT_MIN
    E[_at(head, _PREV)] = NULL
    E[_at(head, _NEXT)] = tail
    E[_at(tail, _PREV)] = head
    E[_at(tail, _NEXT)] = NULL
    E[_at(tail, _CELL)] = INT_MAX
    E[_at(tail, _LEFT)] = INT_MAX
    E[_at(tail, _DY)] = 0
    min_height = 0
    is_vertical = 1

    i = 0
    while i < size:
        j = i + 1
        full = False
        # polygon_fill_buckets: this row's new edges by subsample row
        e = buckets[i]
        y = i * GRID_Y
        max_sub = 0
        while e != NULL:
            nxt = E[_at(e, _NEXT)]
            sub = E[_at(e, _YTOP)] - y
            if sub_buckets[sub] != NULL:
                E[_at(sub_buckets[sub], _PREV)] = e
            E[_at(e, _NEXT)] = sub_buckets[sub]
            E[_at(e, _PREV)] = NULL
            sub_buckets[sub] = e
            min_height = min(min_height, E[_at(e, _LEFT)])
            if E[_at(e, _DY)] != 0:
                is_vertical = 0
            max_sub = max(max_sub, sub)
            e = nxt
        if max_sub == 0:
            if sub_buckets[0] != NULL:
                sorted_new = _sort_edges(E, sub_buckets[0], n_edges + 2)
                E[_at(head, _NEXT)] = _merge_sorted(E, E[_at(head, _NEXT)], sorted_new)
                sub_buckets[0] = NULL
            if E[_at(head, _NEXT)] == tail:
                min_height = INT_MAX
                is_vertical = 1
                while j < size and buckets[j] == NULL:
                    j += 1
                i = j
                continue
            # can_do_full_row
            if min_height <= 0:
                min_height = INT_MAX
                is_vertical = 1
                e = E[_at(head, _NEXT)]
                while e != NULL:
                    min_height = min(min_height, E[_at(e, _LEFT)])
                    if E[_at(e, _DY)] != 0:
                        is_vertical = 0
                    e = E[_at(e, _NEXT)]
            if min_height >= GRID_Y:
                full = True
                prev_x = INT_MIN
                e = E[_at(head, _NEXT)]
                while e != tail:
                    dy = E[_at(e, _DY)]
                    if dy != 0:  # where a full step would put it
                        q, r = _advanced(E, e, _FQ, _FR)
                        cell = _round_cell(q, r, dy)
                    else:
                        cell = E[_at(e, _CELL)]
                    if cell < prev_x:
                        full = False
                        break
                    prev_x = cell
                    e = E[_at(e, _NEXT)]

        if full:
            # full_row
            left = E[_at(head, _NEXT)]
            while left != tail:
                if _dec(E, left, GRID_Y):
                    min_height = -1
                winding = E[_at(left, _DIR)]
                right = E[_at(left, _NEXT)]
                while True:
                    if _dec(E, right, GRID_Y):
                        min_height = -1
                    winding += E[_at(right, _DIR)]
                    if winding == 0 and E[_at(E[_at(right, _NEXT)], _CELL)] != E[_at(right, _CELL)]:
                        break
                    _step(E, right, _FQ, _FR)
                    right = E[_at(right, _NEXT)]
                _render_edge(E, left, 1, cells, size)
                _render_edge(E, right, -1, cells, size)
                left = E[_at(right, _NEXT)]
            if is_vertical:
                while j < size and buckets[j] == NULL and min_height >= 2 * GRID_Y:
                    min_height -= GRID_Y
                    j += 1
                if j != i + 1:
                    count = (j - (i + 1)) * GRID_Y
                    e = E[_at(head, _NEXT)]
                    while e != tail:
                        if _dec(E, e, count):
                            min_height = -1
                        e = E[_at(e, _NEXT)]
        else:
            for sub in range(GRID_Y):
                if sub_buckets[sub] != NULL:
                    sorted_new = _sort_edges(E, sub_buckets[sub], n_edges + 2)
                    E[_at(head, _NEXT)] = _merge_sorted(E, E[_at(head, _NEXT)], sorted_new)
                    sub_buckets[sub] = NULL
                # sub_row
                e = E[_at(head, _NEXT)]
                xstart = INT_MIN
                prev_x = INT_MIN
                winding = 0
                while e != tail:
                    nxt = E[_at(e, _NEXT)]
                    xend = E[_at(e, _CELL)]
                    E[_at(e, _LEFT)] -= 1
                    if E[_at(e, _LEFT)] != 0:
                        _step(E, e, _SQ, _SR)
                        if E[_at(e, _CELL)] < prev_x:
                            pos = E[_at(e, _PREV)]
                            E[_at(pos, _NEXT)] = nxt
                            E[_at(nxt, _PREV)] = pos
                            while True:
                                pos = E[_at(pos, _PREV)]
                                if not E[_at(e, _CELL)] < E[_at(pos, _CELL)]:
                                    break
                            E[_at(E[_at(pos, _NEXT)], _PREV)] = e
                            E[_at(e, _NEXT)] = E[_at(pos, _NEXT)]
                            E[_at(e, _PREV)] = pos
                            E[_at(pos, _NEXT)] = e
                        else:
                            prev_x = E[_at(e, _CELL)]
                        min_height = -1
                    else:
                        E[_at(E[_at(e, _PREV)], _NEXT)] = nxt
                        E[_at(nxt, _PREV)] = E[_at(e, _PREV)]
                    winding += E[_at(e, _DIR)]
                    if winding == 0:
                        if E[_at(nxt, _CELL)] != xend:
                            _add_subspan(cells, size, xstart, xend)
                            xstart = INT_MIN
                    elif xstart == INT_MIN:
                        xstart = xend
                    e = nxt

        if full:  # a whole-row edge is extrapolated half a subsample row: any cell
            _blit(cells, canvas, i, j, clip_lo, clip_hi, 0, size + 2)
        else:
            _blit(cells, canvas, i, j, clip_lo, clip_hi, reset_lo, reset_hi)
        min_height -= GRID_Y
        i = j


@njit(cache=True, inline="always")
def _to_fixed(v, offset, scale, shift):
    """A user coordinate, moved by `offset`, to cairo's device space in 24.8 fixed point.

    cairo maps it with the context's matrix, ``scale * v + shift`` (the zero
    off-diagonal terms add nothing), in double precision, and rounds to the
    nearest 1/256, ties to even (`_cairo_fixed_from_double`).
    """
    return np.int64(np.rint((scale * (v + offset) + shift) * 256.0))


@njit(cache=True)
def device_fixed(values, offset, scale, shift):
    """`_to_fixed` of every value (for tests and callers that want the coordinates)."""
    out = np.empty(len(values), dtype=np.int64)
    for i in range(len(values)):
        out[i] = _to_fixed(values[i], offset, scale, shift)
    return out


@njit(cache=True, nogil=True)
def render(x, y, lengths, counts, pen, scale, inverse, half_width, half_padding, size, out):
    """Draw drawings white on the black rows of `out` (uint8 ``(N, size * size)``).

    x, y: every point in user space (the 0-255 drawing space), float64,
    strokes one after the other; lengths: points per stroke; counts: strokes
    per drawing. Each drawing is centred by its max corner, as the official
    renderer does. pen: `make_pen`'s table; scale, inverse: the context
    matrix's scale and its inverse; half_width: half the line width, and
    half_padding: the matrix's translation, both in user units.

    Returns, per drawing, whether it was drawn: False for a drawing that could
    reach outside its bitmap (stroke half-width plus a pixel for the
    antialiasing), which cairo clips in ways not reproduced here; its row of
    `out` is left black for the caller to fill.
    """
    n = len(counts)
    drawn = np.ones(n, dtype=np.bool_)
    if n == 0 or len(lengths) == 0:
        return drawn
    longest = lengths.max()
    most = 0  # points in the largest drawing
    stroke = 0
    for d in range(n):
        total = 0
        for k in range(stroke, stroke + counts[d]):
            total += lengths[k]
        most = max(most, total)
        stroke += counts[d]
    cap = (longest + 4) * (pen.shape[0] + 6) + 2 * pen.shape[0] + 8
    cw = np.empty((cap, 2), dtype=np.int64)
    ccw = np.empty((cap, 2), dtype=np.int64)
    edges = np.empty((3 * cap, 5), dtype=np.int64)
    table = np.empty((3 * cap + 2 + 64) * _FIELDS, dtype=np.int64)  # + sort stack
    buckets = np.empty(size, dtype=np.int64)
    sub_buckets = np.full(GRID_Y, NULL, dtype=np.int64)
    path = np.empty((2, longest + 1), dtype=np.int64)
    faces = np.empty((3, 8), dtype=np.int64)
    cells = np.zeros((2, size + 2), dtype=np.int64)  # per column: covered height, uncovered area
    fx = np.empty(most, dtype=np.int64)
    fy = np.empty(most, dtype=np.int64)
    shift = half_padding * scale
    reach = half_width * scale + 1.0  # pixels a stroke may cover beyond its points
    stroke = 0
    point = 0
    for d in range(n):
        first_stroke, first_point = stroke, point
        for k in range(stroke, stroke + counts[d]):
            point += lengths[k]
        stroke += counts[d]
        if point == first_point or pen.shape[0] <= 1:
            continue  # no points, or a pen too small to draw (cairo draws nothing)
        lo_x = hi_x = x[first_point]
        lo_y = hi_y = y[first_point]
        for i in range(first_point, point):
            lo_x, hi_x = min(lo_x, x[i]), max(hi_x, x[i])
            lo_y, hi_y = min(lo_y, y[i]), max(hi_y, y[i])
        off_x = (256.0 - hi_x) / 2.0
        off_y = (256.0 - hi_y) / 2.0
        if not (
            (lo_x + off_x + half_padding) * scale - reach >= 0
            and (hi_x + off_x + half_padding) * scale + reach <= size
            and (lo_y + off_y + half_padding) * scale - reach >= 0
            and (hi_y + off_y + half_padding) * scale + reach <= size
        ):
            drawn[d] = False
            continue
        for i in range(point - first_point):
            fx[i] = _to_fixed(x[first_point + i], off_x, scale, shift)
            fy[i] = _to_fixed(y[first_point + i], off_y, scale, shift)
        canvas = out[d].reshape((size, size))
        a = 0
        for k in range(first_stroke, stroke):
            b = a + lengths[k]
            n_edges = _stroke_polygon(
                fx[a:b], fy[a:b], pen, scale, inverse, half_width, path, faces, cw, ccw, edges
            )
            _scan(edges, n_edges, size, table, buckets, sub_buckets, cells, canvas)
            a = b
    return drawn
