"""Rewrite checkpoints written by an older quickdraw-tools in the current format.

Format 1 checkpoints (before 2026-12-01) kept numpy's RNG state as a numpy
array; they still load (with exactly those numpy types allowed), and this
rewrites them with the state as a tensor, so they load with nothing but
tensors and plain values. The file is replaced atomically; `--out` writes a
copy instead.

    .venv/bin/python scripts/upgrade_checkpoint.py runs/cat/best.pt runs/cat/last.pt
    .venv/bin/python scripts/upgrade_checkpoint.py old.pt --out new.pt
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from quickdraw_tools.errors import QuickDrawError
from quickdraw_tools.models.checkpoint import (
    CHECKPOINT_FORMAT,
    read_checkpoint,
    save_checkpoint,
    upgrade,
)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("checkpoints", nargs="+", type=Path, metavar="CHECKPOINT")
    parser.add_argument("--out", type=Path, help="write the upgraded copy here (one checkpoint)")
    args = parser.parse_args(argv)
    if args.out and len(args.checkpoints) != 1:
        parser.error("--out takes one CHECKPOINT")
    try:
        for path in args.checkpoints:
            ckpt = read_checkpoint(path)
            before = ckpt["format_version"]
            target = args.out or path
            if before == CHECKPOINT_FORMAT and target == path:
                print(f"{path}: already format {CHECKPOINT_FORMAT}")
                continue
            save_checkpoint(target, upgrade(ckpt))
            print(f"{path}: format {before} -> {CHECKPOINT_FORMAT}, written to {target}")
    except QuickDrawError as e:
        print(f"upgrade_checkpoint: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
