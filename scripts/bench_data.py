"""Speed of the vector data path on the real sample data (../shared/quickdraw), one run.

Prints:
  * `rdp` against the `rdp` package on the real strokes after scaling (the same strokes,
    the same epsilon 2.0, outputs checked identical), and the speed-up;
  * end-to-end drawings per second for raw ndjson -> simplified ndjson (read, simplify,
    write: `quickdraw simplify` on every raw file);
  * end-to-end drawings per second for simplified ndjson -> stroke-3 sketch-rnn `.npz`
    (read, `drawing_to_stroke3`, write one `.npz` per category).

Usage: ``python scripts/bench_data.py [--oracle-stride N] [--repeat N]``
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from _machine import cpu_name

from quickdraw_tools import formats
from quickdraw_tools.simplify import (
    EPSILON,
    rdp,
    scale_drawing,
    simplify_drawings,
    simplify_file,
)
from quickdraw_tools.strokes import drawing_to_stroke3

ROOT = Path(__file__).resolve().parents[1]

MIRROR = ROOT.parent / "shared" / "quickdraw" / "mirror"


def best_of(repeat: int, fn) -> float:
    """Fastest wall time of `repeat` runs of `fn()` (seconds)."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--oracle-stride",
        type=int,
        default=10,
        help="time the rdp package on the strokes of 1 raw drawing in N (default 10; "
        "1 = all 31,157 strokes, ~2 minutes)",
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement (best kept)")
    args = parser.parse_args()
    if args.oracle_stride < 1 or args.repeat < 1:
        parser.error("--oracle-stride and --repeat must be >= 1")

    import rdp as rdp_package

    raw_files = sorted((MIRROR / "full" / "raw").glob("*.ndjson"))
    simp_files = sorted((MIRROR / "full" / "simplified").glob("*.ndjson"))
    raw = [r["drawing"] for p in raw_files for r in formats.iter_ndjson(p)]
    simplify_drawings(raw[:2])  # load (or compile) the numba kernels before timing

    when = f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
    machine = f"{cpu_name()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}"
    print(f"# bench_data  {when}  {machine}")
    print(f"# Python {platform.python_version()}, numpy {np.__version__}")

    # rdp against the rdp package on the same real strokes (scaled to 0-255).
    strokes = [s for d in raw[:: args.oracle_stride] for s in scale_drawing(d)]
    n_points = sum(len(s) for s in strokes)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", DeprecationWarning)  # numpy 2 warns on 2-D np.cross
        start = time.perf_counter()
        expected = [rdp_package.rdp(s, EPSILON) for s in strokes]
        t_package = time.perf_counter() - start
    t_ours = best_of(args.repeat, lambda: [rdp(s, EPSILON) for s in strokes])
    ours = [rdp(s, EPSILON) for s in strokes]
    same = sum(
        a.dtype == b.dtype and np.array_equal(a, b) for a, b in zip(ours, expected, strict=True)
    )
    print(
        f"\nrdp on {len(strokes)} real strokes after scaling ({n_points} points, epsilon 2.0; "
        f"1 raw drawing in {args.oracle_stride}): {same}/{len(strokes)} outputs identical"
    )
    for name, t in [("rdp package 0.8", t_package), ("quickdraw_tools rdp (numba)", t_ours)]:
        print(f"  {name:<30} {t:9.3f} s  {n_points / t:12,.0f} points/s")
    print(f"  speed-up: {t_package / t_ours:,.0f}x")

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)

        def raw_to_simplified():
            for path in raw_files:
                simplify_file(path, tmp / "simplified" / path.name, progress=False)

        t = best_of(args.repeat, raw_to_simplified)
        print(f"\nend to end ({len(raw_files)} files, best of {args.repeat}):")
        name = "raw ndjson -> simplified ndjson"
        print(f"  {name:<40} {len(raw) / t:10,.0f} drawings/s  ({len(raw)} drawings, {t:.2f} s)")

        def simplified_to_npz() -> int:
            n = 0
            for path in simp_files:
                records = formats.iter_ndjson(path)  # checks every drawing, as convert reads them
                s3 = [drawing_to_stroke3(r["drawing"], checked=True) for r in records]
                splits = {"train": s3, "valid": [], "test": []}
                formats.save_sketchrnn_npz(tmp / "npz" / f"{path.stem}.npz", splits)
                n += len(s3)
            return n

        n_simp = simplified_to_npz()
        t = best_of(args.repeat, simplified_to_npz)
        name = "simplified ndjson -> stroke-3 .npz"
        print(f"  {name:<40} {n_simp / t:10,.0f} drawings/s  ({n_simp} drawings, {t:.2f} s)")
    return 0 if same == len(strokes) else 1


if __name__ == "__main__":
    sys.exit(main())
