"""`quickdraw svg`: drawings -> SVG files (one per drawing, or grids), optionally PNG."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..splits import SPLITS


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "svg",
        help="draw sketches as SVG files (one per drawing, or grids) and optional PNGs",
        description="Write one SVG per drawing, or grids of COLSxROWS drawings per file, from\n"
        "an ndjson file (raw or simplified, optionally .gz), a binary .bin file, or a\n"
        "sketch-rnn .npz file. Each drawing is scaled to fit its cell with its aspect ratio\n"
        "kept. Files are named after the input (cat_00000.svg, or cat_grid_000.svg).",
        epilog="examples:\n"
        "  quickdraw svg ../shared/quickdraw/mirror/full/simplified/cat.ndjson --out svg"
        " --limit 10\n"
        "  quickdraw svg cat.ndjson --out svg --grid 8x4 --caption word --png\n"
        "  quickdraw svg sheep.npz --split test --grid 5x5 --color-by stroke --out svg",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("input", type=Path, metavar="INPUT", help=".ndjson[.gz], .bin or .npz file")
    p.add_argument("--out", required=True, type=Path, metavar="DIR", help="output directory")
    p.add_argument(
        "--grid",
        metavar="COLSxROWS",
        help="put COLS*ROWS drawings in each file (e.g. 8x4) instead of one file per drawing",
    )
    p.add_argument(
        "--color-by",
        default="none",
        choices=("none", "stroke", "time"),
        help="black strokes (none, default), one colour per stroke, or a ramp over drawing time",
    )
    p.add_argument(
        "--split",
        choices=SPLITS,
        help="for a sketch-rnn .npz: draw only this split (default: all, in that order)",
    )
    p.add_argument("--limit", type=int, metavar="N", help="draw at most N drawings (default: all)")
    p.add_argument(
        "--caption",
        default="none",
        choices=("none", "word", "index", "country"),
        help="text under each drawing: its category, its position in the file, or its country",
    )
    p.add_argument("--png", action="store_true", help="also write a PNG next to each SVG")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..svg import export

    written = export(
        args.input,
        args.out,
        grid=args.grid,
        color_by=args.color_by,
        split=args.split,
        limit=args.limit,
        png=args.png,
        caption=args.caption,
        progress=not args.quiet,
    )
    svgs = sum(p.suffix == ".svg" for p in written)
    pngs = len(written) - svgs
    extra = f" and {pngs} PNG" if pngs else ""
    print(f"wrote {svgs} SVG{extra} file(s) to {args.out}")
    return 0
