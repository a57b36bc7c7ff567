"""Stroke-3 <-> stroke-5 on every simplified drawing of the sample mirror, as Magenta defines the
formats (issue 22, item 10).

Prints how many drawings start at the origin (their first stroke-5 row is ``(0, 0, 1, 0, 0)``,
the start token's row), and that every drawing comes back point for point through stroke-5,
with the start token (`strokes.stroke3_to_stroke5`, magenta's ``pad_batch`` layout) and without
it (magenta's ``to_big_strokes`` layout), where dropping every leading ``(0, 0, 1, 0, 0)`` row
(the old rule) loses a point of each drawing that starts at the origin.

    .venv/bin/python scripts/check_stroke_formats.py [--mirror ../shared/quickdraw/mirror]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from quickdraw_tools.formats import iter_ndjson  # noqa: E402
from quickdraw_tools.strokes import (  # noqa: E402
    START_TOKEN,
    drawing_to_stroke3,
    stroke3_to_stroke5,
    stroke5_to_stroke3,
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mirror", type=Path, default=ROOT.parent / "shared/quickdraw/mirror")
    args = parser.parse_args()
    files = sorted((args.mirror / "full" / "simplified").glob("*.ndjson"))
    total = at_origin = with_token = without_token = old_rule = 0
    first = None
    for path in files:
        for line, record in enumerate(iter_ndjson(path), start=1):
            s3 = drawing_to_stroke3(record["drawing"])
            big = stroke3_to_stroke5(s3, len(s3))
            total += 1
            origin = bool(np.array_equal(big[1], START_TOKEN))
            if origin:
                at_origin += 1
                first = first or f"{path.name} line {line}"
            with_token += np.array_equal(stroke5_to_stroke3(big), s3)
            without_token += np.array_equal(stroke5_to_stroke3(big[1:], start_token=False), s3)
            # the old rule: drop row 0 of the token-less rows whenever it looks like the token
            rows = big[2:] if origin else big[1:]
            old_rule += np.array_equal(stroke5_to_stroke3(rows, start_token=False), s3)
    print(f"simplified drawings of the mirror ({len(files)} files): {total:,}")
    print(f"starting at the origin (first row (0, 0, 1, 0, 0)): {at_origin} (first: {first})")
    print(f"stroke-3 -> stroke-5 -> stroke-3 exact, with the start token: {with_token:,}/{total:,}")
    print(f"... without the start token (to_big_strokes rows): {without_token:,}/{total:,}")
    print(f"... the old rule (drop a leading (0, 0, 1, 0, 0) row): {old_rule:,}/{total:,}")
    return 0 if with_token == without_token == total else 1


if __name__ == "__main__":
    sys.exit(main())
