"""Check the rasterizer against Google's numpy_bitmap files and time it against the plain loop.

Prints, from one run:
- how many of the 75 official bitmaps (first 25 rows of cat, apple, fish) are
  reproduced byte for byte, and the mean absolute pixel difference; the same for
  what `quickdraw convert --formats bitmap,png` writes at its default settings (each
  row matched to its official row through the rows sidecar's source line, the PNG
  images decoded), and at --size 64 --line-width 8 --padding 0 against the plain
  cairo loop at those settings;
- the speed of `rasterize_many` (the batched cairo path: one tall surface of
  tiles reused across batches, one path per stroke rank, threads) against the
  straightforward loop (`reference_rasterize`: a new cairo surface per drawing,
  one `line_to` per point) on the same drawings, with the outputs compared byte
  for byte: on one thread and with --threads threads (default: every usable
  core), both from the same interleaved rounds;
- with --instructions, the same comparison as instruction counts under
  valgrind's callgrind (load-independent, on 4 drawings per category).

Timings are the best of --rounds interleaved rounds (other work on the machine
only ever adds time), as wall-clock and as process CPU time; the load average
before and after is printed, since on a busy machine the threaded figure says
more about the other jobs than about the renderer.

    .venv/bin/python scripts/check_bitmaps.py [--rounds 5] [--threads N] [--instructions]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import io
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from _machine import cpu_name

from quickdraw_tools.raster import rasterize_many, reference_rasterize
from quickdraw_tools.workers import usable_cores

ROOT = Path(__file__).resolve().parents[1]
MIRROR = ROOT.parent / "shared" / "quickdraw" / "mirror" / "full"
PAIRED = ("cat", "apple", "fish")


def read_drawings(path: Path, limit: int | None = None) -> list:
    with open(path) as f:
        return [json.loads(line)["drawing"] for line in f.readlines()[:limit]]


def timed(fn, *args, **kwargs):
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - wall, time.process_time() - cpu


def all_simplified(per_category: int | None = None) -> list:
    drawings = []
    for path in sorted((MIRROR / "simplified").glob("*.ndjson")):
        drawings += read_drawings(path, per_category)
    return drawings


COUNTED = {
    "nothing": lambda drawings: None,
    "reference loop": reference_rasterize,
    "rasterize_many": lambda drawings: rasterize_many(drawings, threads=1),
}


def count_one(what: str) -> None:
    """Run under callgrind: warm both renderers up, then render with `what` only."""
    drawings = all_simplified(per_category=4)
    reference_rasterize(drawings[:20])
    rasterize_many(drawings[:20], threads=1)
    COUNTED[what](drawings)


def instructions() -> dict[str, int]:
    """Instructions executed by each of COUNTED, from valgrind --tool=callgrind."""
    command = [sys.executable, __file__, "--count-one"]
    counts = {}
    for what in COUNTED:
        run = subprocess.run(
            ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *command, what],
            capture_output=True,
            text=True,
            check=True,
        )
        counts[what] = int(re.search(r"Collected : (\d+)", run.stderr).group(1))
    return counts


def convert_check(official: np.ndarray) -> None:
    """`quickdraw convert`'s bitmaps and PNG images against the official rows (default
    settings) and against the plain loop (other settings), row by row via the sidecars."""
    import tempfile

    from PIL import Image

    from quickdraw_tools.cli import main as quickdraw
    from quickdraw_tools.rows import read_rows

    with tempfile.TemporaryDirectory(prefix="check-bitmaps-") as tmp:
        for settings in ([], ["--size", "64", "--line-width", "8", "--padding", "0"]):
            out = Path(tmp) / f"out{len(settings)}"
            args = ["convert", *PAIRED, "--base-url", str(MIRROR.parent), "--quiet"]
            args += ["--formats", "bitmap,png", "--split-sizes", "all", "--out", str(out)]
            with contextlib.redirect_stdout(io.StringIO()):  # its summary table
                assert quickdraw([*args, *settings]) == 0, "convert failed"
            same = same_png = total = 0
            for k, category in enumerate(PAIRED):
                rows = np.load(out / "bitmap" / f"{category}.npy")
                sidecar = read_rows(out / "bitmap" / f"{category}.rows.csv")
                pngs = read_rows(out / "png" / f"{category}.rows.csv")
                drawings = read_drawings(MIRROR / "simplified" / f"{category}.ndjson")
                for row, meta, image in zip(rows, sidecar, pngs, strict=True):
                    if settings:
                        drawing = drawings[meta["line"] - 1]
                        expected = reference_rasterize([drawing], 64, 8.0, 0.0)[0]
                    else:
                        expected = official[25 * k + meta["line"] - 1]
                    pixels = np.asarray(Image.open(out / "png" / image["file"])).ravel()
                    same += bool((row == expected).all())
                    same_png += bool((pixels == expected).all())
                    total += 1
            what = (
                "default settings vs the official rows"
                if not settings
                else ("--size 64 --line-width 8 --padding 0 vs the plain loop")
            )
            print(f"convert, {what}: .npy {same}/{total}, PNG {same_png}/{total} byte-identical")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds")
    parser.add_argument(
        "--threads",
        type=int,
        default=usable_cores(),
        help="threads for the threaded timing (default: the usable cores, %(default)s here)",
    )
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="also count instructions with valgrind (needs valgrind; about 2 minutes)",
    )
    parser.add_argument("--count-one", choices=COUNTED, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.count_one:
        count_one(args.count_one)
        return

    import cairocffi

    print(f"date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC")
    print(
        f"machine: {cpu_name()}, {os.cpu_count()} logical CPUs ({usable_cores()} usable), "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    print(f"cairo {cairocffi.cairo_version_string()}, cairocffi {cairocffi.version}")

    # --- byte-identical check on the 75 official pairs ---
    drawings = [d for c in PAIRED for d in read_drawings(MIRROR / "simplified" / f"{c}.ndjson")]
    official = np.concatenate([np.load(MIRROR / "numpy_bitmap" / f"{c}.npy")[:25] for c in PAIRED])
    ours = rasterize_many(drawings)
    same = int((ours == official).all(axis=1).sum())
    mad = float(np.abs(ours.astype(np.int16) - official.astype(np.int16)).mean())
    ref_same = int((reference_rasterize(drawings) == official).all(axis=1).sum())
    print(
        f"\nofficial pairs: {same}/{len(official)} byte-identical, mean absolute difference {mad:g}"
    )
    print(f"(the plain reference loop: {ref_same}/{len(official)} byte-identical)")
    convert_check(official)

    # --- speed on every simplified drawing of the mirror (230 categories) ---
    timing = all_simplified()
    points = sum(len(s[0]) for d in timing for s in d)
    print(f"\nspeed: {len(timing)} drawings, {points / len(timing):.0f} points each on average")
    best = {}
    cores = {}
    outputs = {}
    threaded = f"rasterize_many, {args.threads} threads"
    variants = {
        "reference loop": lambda: reference_rasterize(timing),
        "rasterize_many, 1 thread": lambda: rasterize_many(timing, threads=1),
        threaded: lambda: rasterize_many(timing, threads=args.threads),
    }
    load_before = os.getloadavg()[0]
    for _ in range(args.rounds):
        for name, fn in variants.items():
            out, wall, cpu = timed(fn)
            outputs[name] = out
            old = best.get(name, (np.inf, np.inf))
            best[name] = (min(old[0], wall), min(old[1], cpu))
            if wall == best[name][0]:
                cores[name] = cpu / wall  # cores the process actually got in its best round
    base_wall, base_cpu = best["reference loop"]
    identical = all(np.array_equal(o, outputs["reference loop"]) for o in outputs.values())
    print(f"{'':34s} {'us/drawing':>10s} {'wall ratio':>10s} {'cpu ratio':>10s} {'cores got':>10s}")
    for name, (wall, cpu) in best.items():
        per = wall / len(timing) * 1e6
        print(
            f"{name:34s} {per:10.1f} {base_wall / wall:10.2f} {base_cpu / cpu:10.2f} "
            f"{cores[name]:10.2f}"
        )
    print(f"outputs byte-identical to the reference loop: {identical}")
    print(f"load average during the timing: {load_before:.1f} -> {os.getloadavg()[0]:.1f}")
    for name, label in (("rasterize_many, 1 thread", "1 thread"), (threaded, threaded[16:])):
        print(f"speed ratio, batched cairo over the loop, {label} (wall): "
              f"{base_wall / best[name][0]:.2f}x")  # fmt: skip
    print(
        f"(cores got = process CPU time / wall time in the best round: the {args.threads} "
        f"threads ran on {cores[threaded]:.2f} cores on average; below {args.threads} the "
        "machine, not the renderer, limited the threaded figure)"
    )
    if args.instructions:
        counts = instructions()
        ref = counts["reference loop"] - counts["nothing"]
        fast = counts["rasterize_many"] - counts["nothing"]
        print(
            f"\ninstructions (callgrind, {len(all_simplified(4))} drawings, start-up subtracted): "
            f"reference loop {ref / 1e6:.0f} M, rasterize_many {fast / 1e6:.0f} M: "
            f"{ref / fast:.2f}x fewer on one thread"
        )


if __name__ == "__main__":
    main()
