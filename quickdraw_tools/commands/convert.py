"""`quickdraw convert`: categories -> sketch-rnn .npz, bitmaps, MNIST, Parquet and PNG files."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import QuickDrawError
from .common import add_cache_arguments, add_on_error_argument, check_seed, check_workers

SOURCE_FORMATS = ("simplified", "raw", "binary")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "convert",
        help="convert categories to sketch-rnn .npz, bitmaps, MNIST, Parquet and PNG files",
        description="Read each category's drawings once (downloaded, from a mirror, or from\n"
        "local files), drop duplicates, split them into train/valid/test (70,000/2,500/2,500,\n"
        "or the same proportions for smaller sets; --split-sizes all keeps every drawing; the\n"
        "same for a given --seed on every run), and write every requested format from that\n"
        "one split, in bounded memory whatever the category's size. Raw drawings are simplified\n"
        "with Google's recipe first. Every file is written to a temporary file and renamed\n"
        "into place when complete; a summary table of counts ends the run.",
        epilog="examples:\n"
        "  quickdraw convert cat 'power outlet' --out data\n"
        "  quickdraw convert cat --base-url ../shared/quickdraw/mirror --formats sketchrnn,bitmap"
        " --out data\n"
        "  quickdraw convert ../shared/quickdraw/training/cake.ndjson --out data --workers 2\n"
        "  quickdraw convert cat dog --formats png --size 128 --out data\n"
        "outputs: DIR/sketchrnn/<category>.npz, DIR/bitmap/<category>.npy (+ .splits.json),"
        " DIR/mnist/*-idx*-ubyte, DIR/parquet/<split>/<category>.parquet,"
        " DIR/png/<split>/<category>/<key_id>.png, DIR/manifest.json; beside each, <name>.rows.csv"
        " gives every row's key_id, countrycode, recognized, timestamp and source line",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "categories",
        nargs="+",
        metavar="CATEGORY",
        help="official category name (quote names with spaces), or a local .ndjson, .ndjson.gz,"
        " .jsonl or .bin file: its records' word when they name one (as `sample --out x.ndjson` "
        "and import-svg write it), else its name without the suffix",
    )
    p.add_argument("--out", required=True, type=Path, metavar="DIR", help="output directory")
    p.add_argument(
        "--formats",
        default="sketchrnn",
        help="comma-separated: sketchrnn, bitmap, mnist, parquet, png (default: sketchrnn)",
    )
    p.add_argument(
        "--input-dir",
        type=Path,
        metavar="DIR",
        help="read local files instead of downloading: DIR/<category>.ndjson (.ndjson.gz, .bin),"
        " or DIR in the official layout (DIR/full/simplified/<category>.ndjson)",
    )
    p.add_argument(
        "--source-format",
        choices=SOURCE_FORMATS,
        default="simplified",
        help="which official files to read (default: simplified; raw ones are simplified here)",
    )
    add_cache_arguments(p)
    p.add_argument(
        "--max-per-category",
        type=int,
        metavar="N",
        help="use at most the first N drawings of each category (before the split; default: all)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="processes working in parallel (default 1); the files are byte-identical",
    )
    p.add_argument("--seed", type=int, default=0, help="split seed (default 0)")
    p.add_argument(
        "--split-sizes",
        default="official",
        metavar="SIZES",
        help="drawings per split: 'official' (the default: 70,000/2,500/2,500 as the sketch-rnn"
        " files, or those proportions for smaller sets), 'all' (every drawing, as the"
        " numpy_bitmap files: valid and test 1/30 each), or TRAIN,VALID,TEST",
    )
    p.add_argument(
        "--size",
        type=int,
        default=28,
        metavar="PIXELS",
        help="side of the bitmap, mnist and png images, 8 to 1024 pixels (default 28: with the"
        " default line width and padding, the official numpy_bitmap bytes)",
    )
    p.add_argument(
        "--line-width",
        type=float,
        default=16.0,
        metavar="UNITS",
        help="stroke width in the 256-unit drawing space, > 0 and at most 256 (default 16, the"
        " official); it scales with --size",
    )
    p.add_argument(
        "--padding",
        type=float,
        default=16.0,
        metavar="UNITS",
        help="margin around the drawing in the 256-unit drawing space, 0 to 256 (default 16,"
        " the official)",
    )
    p.add_argument(
        "--invert",
        action="store_true",
        help="png: black ink on white (default: grey ink on black, as the official bitmaps)",
    )
    p.add_argument("--gzip", action="store_true", help="gzip the MNIST files")
    add_on_error_argument(p, "a malformed line or a drawing with no points")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def resolve_sources(args: argparse.Namespace) -> list:
    """CATEGORY arguments -> `Source`s: local files, an input folder, or downloads."""
    from .. import categories, download
    from ..convert import Source, file_category, not_a_source
    from ..formats import DRAWING_KINDS, file_kind

    sources = []
    for name in args.categories:
        path = Path(name)
        if file_kind(path) in DRAWING_KINDS:
            if not path.is_file():
                raise QuickDrawError(f"no such file: {name}")
            sources.append(Source(category=file_category(path), path=path))
            continue
        if path.is_file() or (file_kind(path) and not categories.is_category(name)):
            raise QuickDrawError(not_a_source(path))
        category = categories.check_category(name)
        local = download.fetch(
            category,
            args.source_format,
            source=args.input_dir,
            cache_dir=args.cache,
            base_url=args.base_url,
            progress=not args.quiet,
        )
        # the official file of --source-format: trusted (raw: simplify all; else check all)
        kind = "raw" if args.source_format == "raw" else "simplified"
        sources.append(Source(category=category, path=Path(local), kind=kind))
    return sources


def run(args: argparse.Namespace) -> int:
    from ..convert import Picture, check_formats, convert, summary_table
    from ..splits import parse_split_sizes

    wanted = [f.strip() for f in args.formats.split(",") if f.strip()]
    picture = Picture(args.size, args.line_width, args.padding, args.invert)
    check_formats(wanted, picture)  # before any download
    sizes = parse_split_sizes(args.split_sizes)
    check_workers(args.workers)
    check_seed(args.seed)
    results = convert(
        resolve_sources(args),
        args.out,
        wanted,
        seed=args.seed,
        max_per_category=args.max_per_category,
        workers=args.workers,
        size=args.size,
        on_error=args.on_error,
        progress=not args.quiet,
        gzip_mnist=args.gzip,
        sizes=sizes,
        line_width=args.line_width,
        padding=args.padding,
        invert=args.invert,
    )
    print(summary_table(results))
    for r in results:
        if r.skipped:
            print(f"{r.category}: skipped {r.skipped}; first: {r.skip_reasons[0]}")
    print(f"wrote {', '.join(wanted)} to {args.out}")
    return 0
