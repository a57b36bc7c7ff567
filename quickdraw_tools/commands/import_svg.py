"""`quickdraw import-svg`: one's own SVG drawings -> simplified ndjson training data."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .common import add_on_error_argument


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "import-svg",
        help="turn SVG drawings into simplified ndjson drawings of one category",
        description="Read SVG files (a folder: its *.svg files, sorted by name), one drawing per\n"
        "file: every inked path, line, polyline, polygon, rect, circle and ellipse, one\n"
        "stroke per subpath, curves flattened to within 0.5 units of the 0-255 drawing,\n"
        "every transform inside the root <svg> applied (its viewBox and size only place\n"
        "it on a page). Each drawing then goes through Google's recipe (align, scale to\n"
        "0-255, resample, RDP) and is written as an ndjson record that `quickdraw convert`,\n"
        '`quickdraw svg` and the datasets read: word, countrycode "", timestamp of this\n'
        "run, and a key_id from the file's SHA-256, so importing the same file again gives\n"
        "the same id. Files are untrusted: an entity declaration, a reference outside the\n"
        "file, NaN, more than 50 MB or 1,000,000 points is refused in one line naming it.",
        epilog="examples:\n"
        "  quickdraw import-svg my-cats/ --word cat --out my-cat.ndjson\n"
        "  quickdraw import-svg a.svg b.svg --word 'hot dog' --out hot-dog.ndjson"
        " --raw-out hot-dog.raw.ndjson\n"
        "  quickdraw import-svg drawings/ --word cat --out cat.ndjson --on-error skip\n"
        "  quickdraw convert cat.ndjson --formats sketchrnn,bitmap --out data",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "inputs",
        nargs="+",
        type=Path,
        metavar="FILE_OR_DIR",
        help="SVG files, or folders whose *.svg files are read (sorted by name)",
    )
    p.add_argument("--word", required=True, help="the category of the drawings (their 'word')")
    p.add_argument(
        "--out",
        required=True,
        type=Path,
        metavar="FILE.ndjson",
        help="simplified drawings to write (.ndjson, .ndjson.gz or .jsonl), atomically",
    )
    p.add_argument(
        "--raw-out",
        type=Path,
        metavar="FILE.ndjson",
        help="also write the strokes before simplification (float coordinates, no times)",
    )
    add_on_error_argument(p, "a bad SVG file")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..svg import import_svgs

    result = import_svgs(
        args.inputs,
        args.word,
        args.out,
        raw_out=args.raw_out,
        on_error=args.on_error,
        progress=not args.quiet,
    )
    raw = f" (unsimplified: {args.raw_out})" if args.raw_out else ""
    skipped = ""
    if result.skipped:
        skipped = f"; skipped {result.skipped} bad file(s), first: {result.errors[0]}"
    print(
        f"wrote {result.written} drawing(s) of {args.word!r} from {result.files} SVG file(s)"
        f" to {args.out}{raw}{skipped}"
    )
    note = word_note(args.word)
    if note:
        print(f"note: {note}", file=sys.stderr)
    return 0


def word_note(word: str) -> str:
    """What to say about a --word that is not spelled as a Quick, Draw! category ("" when it
    is): your own drawings may be of anything, but a misspelt category trains apart."""
    from ..categories import check_category
    from ..errors import QuickDrawError

    try:
        official = check_category(word)
    except QuickDrawError as e:
        hint = str(e).split("; ", 1)[-1]
        return f"{word!r} is not one of the Quick, Draw! categories ({hint}); written as given"
    if official != word:
        return f"the Quick, Draw! category is spelt {official!r}; written as {word!r}, as given"
    return ""
