"""Write the reference numbers that Magenta's own JS gives, for tests/test_magenta_js.py.

    .venv/bin/python scripts/magenta_js_reference.py          # the numbers
    .venv/bin/python scripts/magenta_js_reference.py --tiny   # first (re)make the tiny model

The exactness test runs `@magenta/sketch` in node itself; these numbers are what it compares
with when the JS cannot be installed. They are @magenta/sketch's per-step outputs
(`scripts/magenta_js/pdfs.js`: π, μx, μy, σx, σy, ρ and the pen probabilities after every
input, temperature 1, to 7 significant digits) for the first 30 points of a real drawing of
the mirror, on two models: Google's sheep
(`../shared/magenta/sheep.gen.json`) and a tiny model trained here and exported
(`tests/data/monkey-tiny.gen.json`, kept in the repository; `--tiny` trains it: an
unconditional LSTM of 32 units, 200 steps on the mirror's 1,000 monkeys, about a minute).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _magenta_js import MAGENTA, ROOT, js_missing, js_pdfs, mirror_drawings, quickdraw  # noqa: E402

DATA = ROOT / "tests" / "data"
REFERENCE = DATA / "magenta_js_reference.json"
TINY = DATA / "monkey-tiny.gen.json"
POINTS = 30  # points of each drawing kept: enough steps to carry the state, a small file
TINY_FLAGS = [
    "--no-conditional", "--decoder", "lstm", "--dec-size", "32", "--max-seq-len", "200",
    "--steps", "200", "--batch-size", "50", "--lr", "0.005", "--eval-every", "200", "--quiet",
]  # fmt: skip


def make_tiny(tmp: Path) -> None:
    """Train the tiny monkey model on the mirror's monkeys and export it to `TINY`."""
    mirror = ROOT.parent / "shared" / "quickdraw" / "mirror"
    quickdraw("convert", "monkey", "--base-url", str(mirror), "--formats", "sketchrnn",
              "--split-sizes", "900,50,50", "--out", str(tmp / "data"), "--quiet")  # fmt: skip
    run = tmp / "run"
    quickdraw("train", "sketch-rnn", "--data", str(tmp / "data" / "sketchrnn" / "monkey.npz"),
              "--out", str(run), *TINY_FLAGS)  # fmt: skip
    quickdraw("export", str(run / "best.pt"), "--out", str(TINY))


def jobs() -> list[dict]:
    """What the reference holds: (model file, category, drawings) per job."""
    return [
        {"model": "sheep.gen.json", "path": MAGENTA / "sheep.gen.json", "category": "sheep"},
        {"model": "tests/data/monkey-tiny.gen.json", "path": TINY, "category": "monkey"},
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="first train and export the tiny model")
    args = parser.parse_args()
    why = js_missing()
    if why:
        print(f"cannot run Magenta's JS: {why}", file=sys.stderr)
        return 1
    if args.tiny:
        with tempfile.TemporaryDirectory() as tmp:
            make_tiny(Path(tmp))
    entries = []
    for job in jobs():
        drawings = mirror_drawings(job["category"], 1, 10**6, points=POINTS)
        (steps,) = js_pdfs([(job["path"], drawings)])
        entries.append(
            {
                "model": job["model"],
                "category": job["category"],
                "drawings": [d.tolist() for d in drawings],
                "steps": [[[float(f"{v:.7g}") for v in row] for row in s] for s in steps],
            }
        )
    value = {
        "made_by": "scripts/magenta_js_reference.py: @magenta/sketch 0.2.0 in node "
        "(scripts/magenta_js/pdfs.js), temperature 1, pixel factor 1",
        "layout": "per step: pi[20], muX[20], muY[20], sigmaX[20], sigmaY[20], corr[20], pen[3]",
        "jobs": entries,
    }
    REFERENCE.write_text(json.dumps(value, separators=(",", ":")) + "\n")
    print(f"wrote {REFERENCE} ({REFERENCE.stat().st_size:,} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
