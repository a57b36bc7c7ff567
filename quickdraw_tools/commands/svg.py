"""`quickdraw svg`: drawings -> SVG files (one per drawing, or grids), optionally PNG, or
SVGs and GIFs that draw themselves (`animate`); bitmaps (numpy_bitmap ``.npy``, MNIST IDX
images) -> PNG files (one per image, or grids).

Strokes go through `quickdraw_tools.svg.export`. Bitmaps are pixels, not strokes, so an SVG
of them would only wrap a PNG: they are written as PNG, ink black on white, each image
scaled to ``--size`` pixels (nearest neighbour, by a whole factor when the size is a
multiple of the image's side, so the pixels stay the data's; default 4x), with the
same file names, grid layout and captions as the strokes, all or nothing
(`atomic.staged_output`).
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import QuickDrawError
from ..splits import SPLITS

if TYPE_CHECKING:
    import numpy as np

MNIST_FILE = re.compile(r"(?P<stem>.+)-idx(?P<dims>\d)-ubyte(\.gz)?$")  # train-images-idx3-ubyte
PIXEL_SCALE = 4  # by default a bitmap pixel becomes 4×4 PNG pixels (28 -> 112)
GAP = 8  # pixels between cells of a bitmap grid


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "svg",
        help="draw sketches as SVG files (one per drawing, or grids) and optional PNGs; "
        "bitmaps as PNGs",
        description="Write one SVG per drawing, or grids of COLSxROWS drawings per file, from\n"
        "an ndjson file (raw or simplified, optionally .gz), a binary .bin file, or a\n"
        "sketch-rnn .npz file. Each drawing is scaled to fit its cell with its aspect ratio\n"
        "kept. Files are named after the input: cat_00000.svg, ... (drawing 0 of cat.ndjson),\n"
        "cat_test_00000.svg, ... (drawing 0 of the test split of cat.npz), or cat_grid_000.svg,\n"
        "... with --grid.\n"
        "--animate writes SVGs that draw themselves, stroke by stroke, in any browser (no\n"
        "script): raw drawings at the pace the person drew them (their points' times), the\n"
        "others at a constant pen speed (--speed); --gif writes the same animation as GIF.\n\n"
        "Bitmaps (a numpy_bitmap .npy, or an MNIST images file such as\n"
        "train-images-idx3-ubyte[.gz], labels and categories.txt read from beside it) are\n"
        "pixels, not strokes: they are written as PNG only (--png is implied; --color-by\n"
        "does not apply), ink black on white, each pixel 4x4, one file per image\n"
        "(cat_00000.png) or COLSxROWS per grid (cat_grid_000.png). --caption word is the\n"
        "category (the file's name, or an MNIST label's line of categories.txt), index the\n"
        "row.",
        epilog="examples:\n"
        "  quickdraw svg ../shared/quickdraw/mirror/full/simplified/cat.ndjson --out svg"
        " --limit 10\n"
        "  quickdraw svg cat.ndjson --out svg --grid 8x4 --caption word --png\n"
        "  quickdraw svg sheep.npz --split test --grid 5x5 --color-by stroke --out svg\n"
        "  quickdraw svg data/bitmap/cat.npy --grid 8x8 --limit 64 --out pictures\n"
        "  quickdraw svg ../shared/quickdraw/mirror/full/raw/cat.ndjson --limit 3 --animate --gif"
        " --out replay\n"
        "  quickdraw svg data/mnist/t10k-images-idx3-ubyte --grid 10x10 --caption word --out mnist",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "input", type=Path, metavar="INPUT",
        help=".ndjson[.gz], .bin or .npz drawings; .npy or MNIST *-idx3-ubyte[.gz] bitmaps",
    )  # fmt: skip
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
        help="text under each drawing: its category (word), its position in the file (index), "
        "its country, or none (the default)",
    )
    p.add_argument(
        "--png", action="store_true", help="also write a PNG next to each SVG (bitmaps: always PNG)"
    )
    p.add_argument(
        "--size",
        type=int,
        metavar="PIXELS",
        help="side of each drawing's cell in the SVG and PNG, 8 to 1024 (default 256 alone, 128"
        " in a grid; bitmaps: 4 PNG pixels per bitmap pixel)",
    )
    p.add_argument(
        "--animate",
        action="store_true",
        help="SVGs that draw each stroke in order, at the drawing's own pace (raw) or --speed",
    )
    p.add_argument("--gif", action="store_true", help="also write the animation as a GIF")
    p.add_argument(
        "--speed",
        type=float,
        metavar="UNITS",
        help="pen speed of --animate/--gif for drawings without times (and raw ones, when"
        " given): units of the 256-unit drawing space per second, > 0 (default 400)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..formats import file_kind
    from ..svg import export

    if file_kind(args.input) == "bitmap" or MNIST_FILE.match(args.input.name):
        if args.animate or args.gif or args.speed is not None:
            raise QuickDrawError(f"{args.input.name} holds bitmaps: no strokes to animate")
        written = export_bitmaps(
            args.input,
            args.out,
            grid=args.grid,
            color_by=args.color_by,
            split=args.split,
            limit=args.limit,
            caption=args.caption,
            size=args.size,
        )
        print(f"wrote {len(written)} PNG file(s) of bitmaps to {args.out}")
        return 0

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
        size=args.size,
        animate=args.animate,
        gif=args.gif,
        speed=args.speed,
    )
    names = {"SVG": "animated SVG" if args.animate else "SVG", "PNG": "PNG", "GIF": "GIF"}
    counts = [(sum(p.suffix == f".{k.lower()}" for p in written), names[k]) for k in names]
    print(f"wrote {', '.join(f'{n} {kind}' for n, kind in counts if n)} file(s) to {args.out}")
    return 0


# --- bitmaps -> PNG ------------------------------------------------------------------------


def read_bitmap_images(path: Path) -> tuple[str, np.ndarray, list[str] | None]:
    """(name stem, uint8 (N, H, W) images with ink = 255, category of each or None).

    A numpy_bitmap ``.npy`` is one category (its file name); an MNIST images file takes its
    labels from the ``*-labels-idx1-ubyte[.gz]`` beside it and their names from the
    ``categories.txt`` beside it, when they are there.
    """
    import numpy as np

    from .. import manifest
    from ..formats import bitmap_side, file_stem, load_bitmaps
    from ..mnist import CATEGORIES_FILE, read_idx

    if not path.is_file():
        raise QuickDrawError(f"input file not found: {path}")
    found = MNIST_FILE.match(path.name)
    if found is None:
        stem = file_stem(path)
        images = load_bitmaps(path, mmap=True)
        side = bitmap_side(images.shape[1])
        images = images.reshape(-1, side, side)
        return stem, images, None
    if found.group("dims") != "3":
        raise QuickDrawError(f"{path} holds labels; draw its images file (*-images-idx3-ubyte)")
    manifest.verify(path)  # one run's set, when convert wrote it
    images = read_idx(path)
    if images.dtype != np.uint8 or images.ndim != 3:
        raise QuickDrawError(
            f"{path}: MNIST images are uint8 (N, rows, cols), got {images.dtype} {images.shape}"
        )
    stem = found.group("stem")
    words = None
    labels_path = path.with_name(path.name.replace("images-idx3", "labels-idx1"))
    names_path = path.with_name(CATEGORIES_FILE)
    if labels_path != path and labels_path.is_file() and names_path.is_file():
        manifest.verify(labels_path)
        manifest.verify(names_path)
        labels = read_idx(labels_path)
        names = names_path.read_text(encoding="utf-8").splitlines()
        if labels.shape != (len(images),) or (len(labels) and labels.max() >= len(names)):
            raise QuickDrawError(
                f"{labels_path} does not label {path} ({labels.shape} labels, {len(names)} "
                f"categories in {names_path}, {len(images)} images)"
            )
        words = [names[int(i)] for i in labels]
    return stem, images, words


def _bitmap_cells(images, captions: list[str] | None, cols: int, side: int | None = None):
    """One PNG (PIL image) of `images` in `cols` columns, each `side` pixels (default
    `PIXEL_SCALE` per bitmap pixel), ink black on white, captioned."""
    import numpy as np
    from PIL import Image, ImageDraw

    rows = -(-len(images) // cols)
    height, width = images.shape[1] * PIXEL_SCALE, images.shape[2] * PIXEL_SCALE
    if side is not None:
        height = width = side
    band = 16 if captions is not None else 0
    sheet = Image.new("L", (cols * (width + GAP) + GAP, rows * (height + band + GAP) + GAP), 255)
    draw = ImageDraw.Draw(sheet)
    for i, image in enumerate(images):
        r, c = divmod(i, cols)
        x, y = GAP + c * (width + GAP), GAP + r * (height + band + GAP)
        ink = Image.fromarray(255 - np.asarray(image, dtype=np.uint8), mode="L")
        sheet.paste(ink.resize((width, height), Image.Resampling.NEAREST), (x, y))
        draw.rectangle([x - 1, y - 1, x + width, y + height], outline=200)  # the cell's edge
        if captions is not None:
            text = str(captions[i])
            left, _, right, _ = draw.textbbox((0, 0), text)
            draw.text((x + (width - (right - left)) / 2, y + height + 2), text, fill=60)
    return sheet


def export_bitmaps(
    input_path: str | Path,
    out_dir: str | Path,
    *,
    grid: str | None = None,
    color_by: str = "none",
    split: str | None = None,
    limit: int | None = None,
    caption: str = "none",
    size: int | None = None,
) -> list[Path]:
    """Write PNGs of the bitmaps in `input_path` into `out_dir`, all or nothing; returns them.
    `size`: each image's side in pixels, 8 to 1024 (default 4 per bitmap pixel).

    Without `grid`: ``<stem>_00000.png`` per image; with ``grid="COLSxROWS"``:
    ``<stem>_grid_000.png``, ... holding COLS*ROWS images each.
    """
    from ..atomic import staged_output
    from ..errors import check_choice
    from ..svg import CAPTIONS, parse_grid

    input_path, out_dir = Path(input_path), Path(out_dir)
    check_choice("caption", caption, CAPTIONS)
    if color_by != "none":
        raise QuickDrawError(f"--color-by colours strokes; {input_path.name} holds bitmaps")
    if split is not None:
        raise QuickDrawError(f"--split applies to sketch-rnn .npz files, not {input_path.name}")
    if caption == "country":
        raise QuickDrawError(f"--caption country needs drawings; {input_path.name} has bitmaps")
    if limit is not None and limit < 1:
        raise QuickDrawError(f"--limit must be >= 1, got {limit}")
    if size is not None:
        from ..raster import check_size

        try:
            check_size(size)
        except QuickDrawError as e:
            raise QuickDrawError(f"--{e}") from None
    cols, rows = parse_grid(grid) if grid else (1, 1)
    stem, images, words = read_bitmap_images(input_path)
    count = len(images) if limit is None else min(limit, len(images))
    if count == 0:
        raise QuickDrawError(f"no bitmaps in {input_path}")
    per_page = cols * rows
    written: list[Path] = []
    with staged_output(out_dir) as stage:
        for page, start in enumerate(range(0, count, per_page)):
            index = range(start, min(start + per_page, count))
            if caption == "none":
                captions = None
            elif caption == "index":
                captions = [f"#{i}" for i in index]
            else:
                captions = [words[i] if words is not None else stem for i in index]
            name = f"{stem}_grid_{page:03d}.png" if grid else f"{stem}_{start:05d}.png"
            sheet = _bitmap_cells(images[index.start : index.stop], captions, cols, size)
            sheet.save(stage.file(name), format="PNG")
            written.append(out_dir / name)
        stage.commit()
    return written
