"""How often `simplify_drawing` reproduces Google's simplified drawings, point for point.

Pairs every drawing of ``mirror/full/raw/`` with the drawing of the same ``key_id`` in
``mirror/full/simplified/`` (5,294 pairs in ../shared/quickdraw), simplifies the raw one
and prints the number of pairs, the match percentage and a breakdown of the misses.

``--rdp-oracle`` also compares `rdp` with the `rdp` package on every stroke of every raw
drawing after scaling (31,157 strokes; a few minutes, the package is pure Python) and on
the resampled strokes (the input `simplify_drawing` gives `rdp`) of 1 drawing in
``--resampled-stride``.

``--variants`` also measures the alternative readings of Google's recipe (rounding,
scaling, interpolation, last point, one-point strokes), each as one change from the
recipe that `simplify_drawing` implements, with a plain numpy reference implementation.

Usage: ``python scripts/check_simplify.py [--mirror DIR] [--rdp-oracle] [--variants]``
"""

from __future__ import annotations

import argparse
import collections
import sys
import time
from pathlib import Path

import numpy as np

from quickdraw_tools import formats
from quickdraw_tools.simplify import (
    EPSILON,
    SIZE,
    rdp,
    resample_stroke,
    scale_drawing,
    simplify_drawings,
)

ROOT = Path(__file__).resolve().parents[1]

MIRROR = ROOT.parent / "shared" / "quickdraw" / "mirror"


def load_pairs(mirror: Path) -> list[tuple[dict, dict]]:
    """(raw record, simplified record) for every key_id present in both folders."""
    raw = {}
    for path in sorted((mirror / "full" / "raw").glob("*.ndjson")):
        for record in formats.iter_ndjson(path):
            raw[record["key_id"]] = record
    pairs = []
    for path in sorted((mirror / "full" / "simplified").glob("*.ndjson")):
        for record in formats.iter_ndjson(path):
            if record.get("key_id") in raw:
                pairs.append((raw[record["key_id"]], record))
    return pairs


def miss_kind(ours: list, google: list, raw: list) -> str:
    """One line saying how a simplified drawing differs from Google's."""
    if len(ours) != len(google):
        return "different number of strokes"
    kinds = set()
    for mine, theirs, stroke in zip(ours, google, raw, strict=True):
        if mine == theirs:
            continue
        if len(stroke[0]) == 1:
            kinds.add("one-point stroke")
        elif len(mine[0]) != len(theirs[0]):
            kinds.add("a stroke keeps a different number of points")
        else:
            off = int(np.abs(np.array(mine) - np.array(theirs)).max())
            kinds.add("coordinates off by 1" if off == 1 else "RDP kept other points (off by >1)")
    return ", ".join(sorted(kinds))


# --- the numpy reference with knobs, for --variants ---------------------------------------

BEST = dict(scale="mul_then_div", interp="lerp", frac="seg", last="copy", rounding="half_even",
            one_point="twice", resample=True)  # fmt: skip

VARIANTS = [
    ("scale: (v - min) * (255 / size)", dict(scale="mul_by_ratio")),
    ("scale: (v - min) / size * 255", dict(scale="div_then_mul")),
    ("interpolate: np.interp (slope * (t - cum) + p)", dict(interp="np.interp")),
    ("interpolate: p + (q - p) * f", dict(interp="add")),
    ("f = (t - cum[j]) / (cum[j+1] - cum[j])", dict(frac="cum")),
    ("last point interpolated at t = L", dict(last="interpolate")),
    ("last point dropped", dict(last="drop")),
    ("rounding: half up (floor(v + 0.5))", dict(rounding="half_up")),
    ("rounding: truncation", dict(rounding="floor")),
    ("rounding before RDP", dict(rounding="before_rdp")),
    ("one-point stroke emitted once", dict(one_point="once")),
    ("no resampling", dict(resample=False)),
    ("straightforward: * (255 / size), np.interp", dict(scale="mul_by_ratio", interp="np.interp")),
]


def resample(p: np.ndarray, interp: str, frac: str, last: str) -> np.ndarray:
    """(n, 2) scaled stroke -> points at arc length 0, 1, 2, ... (< L), then the last point."""
    d = np.diff(p, axis=0)
    seg = np.sqrt(d[:, 0] * d[:, 0] + d[:, 1] * d[:, 1])
    cum = np.concatenate([[0.0], np.cumsum(seg)])
    if len(p) < 2 or cum[-1] == 0:
        return p[-1:]
    t = np.arange(0, cum[-1])
    if last == "interpolate":
        t = np.append(t, cum[-1])
    if interp == "np.interp":
        out = np.column_stack([np.interp(t, cum, p[:, 0]), np.interp(t, cum, p[:, 1])])
    else:
        j = np.clip(np.searchsorted(cum, t, side="right") - 1, 0, len(p) - 2)
        if last == "interpolate":  # t = L lies on the last segment of non-zero length
            j[-1] = np.searchsorted(cum, cum[-1], side="left") - 1
        f = (t - cum[j]) / (seg[j] if frac == "seg" else cum[j + 1] - cum[j])
        f = f[:, None]
        if interp == "lerp":
            out = p[j] * (1 - f) + p[j + 1] * f
        else:
            out = p[j] + (p[j + 1] - p[j]) * f
    if last == "copy":
        out = np.vstack([out, p[-1:]])
    return out


def to_int(p: np.ndarray, rounding: str) -> np.ndarray:
    if rounding in ("half_even", "before_rdp"):
        return np.round(p)
    if rounding == "half_up":
        return np.floor(p + 0.5)
    return np.floor(p)


def reference(drawing: list, knobs: dict) -> list:
    """`simplify_drawing` in plain numpy, with each detail switchable."""
    strokes = [np.column_stack([s[0], s[1]]).astype(np.float64) for s in drawing]
    low = np.vstack(strokes).min(axis=0)
    size = (np.vstack(strokes) - low).max()
    out = []
    for p in strokes:
        if knobs["scale"] == "mul_then_div":
            p = (p - low) * SIZE / size
        elif knobs["scale"] == "mul_by_ratio":
            p = (p - low) * (SIZE / size)
        else:
            p = (p - low) / size * SIZE
        if knobs["resample"]:
            p = resample(p, knobs["interp"], knobs["frac"], knobs["last"])
        if knobs["rounding"] == "before_rdp":
            p = np.round(p)
        p = to_int(rdp(p, EPSILON), knobs["rounding"]).astype(int)
        if len(p) == 1 and knobs["one_point"] == "twice":
            p = np.vstack([p, p])
        out.append([p[:, 0].tolist(), p[:, 1].tolist()])
    return out


def check_rdp_oracle(mirror: Path, resampled_stride: int) -> int:
    """Compare `rdp` with the `rdp` package stroke by stroke; returns the number of differences."""
    import warnings

    import rdp as rdp_package

    drawings = [
        r["drawing"]
        for path in sorted((mirror / "full" / "raw").glob("*.ndjson"))
        for r in formats.iter_ndjson(path)
    ]
    groups = {
        "scaled strokes": [s for d in drawings for s in scale_drawing(d)],
        f"resampled strokes (1 drawing in {resampled_stride})": [
            resample_stroke(s) for d in drawings[::resampled_stride] for s in scale_drawing(d)
        ],
    }
    bad = 0
    for name, strokes in groups.items():
        same = 0
        for points in strokes:
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore", DeprecationWarning)
                expected = rdp_package.rdp(points, EPSILON)
            ours = rdp(points, EPSILON)
            same += ours.dtype == expected.dtype and np.array_equal(ours, expected)
        points = sum(len(s) for s in strokes)
        print(f"rdp vs the rdp package, {name} of {len(drawings)} raw drawings: "
              f"{same}/{len(strokes)} strokes identical ({points} points)")  # fmt: skip
        bad += len(strokes) - same
    return bad


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mirror", type=Path, default=MIRROR, help="folder in the official layout")
    parser.add_argument(
        "--rdp-oracle", action="store_true", help="compare rdp with the rdp package on all strokes"
    )
    parser.add_argument(
        "--resampled-stride",
        type=int,
        default=10,
        help="with --rdp-oracle: resampled strokes of 1 drawing in N (default 10)",
    )
    parser.add_argument(
        "--variants", action="store_true", help="also measure each alternative reading"
    )
    args = parser.parse_args()

    pairs = load_pairs(args.mirror)
    if not pairs:
        print(f"no raw/simplified pairs under {args.mirror}", file=sys.stderr)
        return 1
    start = time.perf_counter()
    ours = simplify_drawings([raw["drawing"] for raw, _ in pairs])
    seconds = time.perf_counter() - start
    misses = collections.Counter()
    matched = 0
    for mine, (raw, google) in zip(ours, pairs, strict=True):
        if mine == google["drawing"]:
            matched += 1
        else:
            misses[miss_kind(mine, google["drawing"], raw["drawing"])] += 1
    print(f"pairs (raw and simplified with the same key_id): {len(pairs)}")
    print(f"identical point for point: {matched} ({100 * matched / len(pairs):.2f}%)")
    print(f"misses: {len(pairs) - matched}")
    for kind, count in misses.most_common():
        print(f"  {count:5d}  {kind}")
    print(f"(simplify_drawings took {seconds:.2f} s, incl. compilation on a cold cache)")

    if args.rdp_oracle and check_rdp_oracle(args.mirror, args.resampled_stride):
        return 1

    if args.variants:
        print("\nvariants (one change each from the recipe above; numpy reference):")
        rows = [("recipe of simplify_drawing", {})] + VARIANTS
        for name, change in rows:
            knobs = {**BEST, **change}
            ok = sum(reference(raw["drawing"], knobs) == google["drawing"] for raw, google in pairs)
            print(f"  {100 * ok / len(pairs):6.2f}%  {name}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
