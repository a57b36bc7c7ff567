"""How exactly our sketch-rnn reproduces Magenta's own JS on .gen.json models: the figures.

    .venv/bin/python scripts/check_magenta_js.py
    .venv/bin/python scripts/check_magenta_js.py --ours runs/magenta/ours-monkey/best.pt

`@magenta/sketch` 0.2.0 in node (`scripts/magenta_js/pdfs.js`) and our `SketchRNN` are fed the
same real drawings of the mirror, point by point (the first `--drawings` of each model's
category that fit its N_max), and after every input give the next point's distribution at
temperature 1: π, μx, μy, σx, σy, ρ and the pen probabilities (123 numbers). Printed: the
largest absolute difference over every step and number, per model; for Google's six models,
and for a model trained here (`--ours`, default the monkey of `scripts/report_magenta.py`)
after `quickdraw export`: the JS's load of the export vs ours, and ours of the export vs the
checkpoint it came from (the int16 format's loss). The test (tests/test_magenta_js.py) holds
the same comparisons to 1e-4.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _magenta_js import CATEGORIES, MAGENTA, ROOT, js_missing, js_pdfs, mirror_drawings  # noqa: E402


def ours(path: Path, drawings: list[np.ndarray]) -> list[np.ndarray]:
    from quickdraw_tools.models.checkpoint import load_checkpoint
    from quickdraw_tools.models.magenta import step_distributions

    model, state, _ = load_checkpoint(path)
    return [step_distributions(model, d, state["scale_factor"]) for d in drawings]


def worst(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    return max(float(np.abs(x - y).max()) for x, y in zip(a, b, strict=True))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--drawings", type=int, default=5, help="drawings per model (default 5)")
    parser.add_argument("--ours", type=Path, default=ROOT / "runs/magenta/ours-monkey/best.pt",
                        help="a checkpoint of ours (unconditional LSTM, M = 20)")  # fmt: skip
    args = parser.parse_args()
    why = js_missing()
    if why:
        print(f"cannot run Magenta's JS: {why}", file=sys.stderr)
        return 1
    from quickdraw_tools.models.checkpoint import read_checkpoint
    from quickdraw_tools.models.magenta import export_gen_json

    rows = []
    jobs = []
    for name, category in CATEGORIES.items():
        path = MAGENTA / f"{name}.gen.json"
        n_max = read_checkpoint(path)["model_config"]["max_seq_len"]
        jobs.append((path, mirror_drawings(category, args.drawings, n_max)))
    with tempfile.TemporaryDirectory() as tmp:
        exported = Path(tmp) / "ours.gen.json"
        extra = []
        if args.ours.exists():
            export_gen_json(args.ours, exported)
            ckpt = read_checkpoint(args.ours)
            category = (ckpt["data_state"].get("categories") or ["monkey"])[0]
            n_max = ckpt["model_config"]["max_seq_len"]
            extra = [(exported, mirror_drawings(category, args.drawings, n_max))]
        else:
            print(f"note: {args.ours} not found (scripts/report_magenta.py trains it)")
        theirs = js_pdfs(jobs + extra)
        for (path, drawings), js in zip(jobs + extra, theirs, strict=True):
            steps = sum(len(d) + 1 for d in drawings)
            label = "ours, exported" if path == exported else f"Google's {path.name}"
            rows.append((label, "JS vs ours", steps, worst(ours(path, drawings), js)))
        if extra:
            path, drawings = extra[0]
            steps = sum(len(d) + 1 for d in drawings)
            gap = worst(ours(args.ours, drawings), ours(path, drawings))
            rows.append((f"ours, {args.ours.name} vs its export", "ours vs ours", steps, gap))
    print("| model | compared | steps | largest difference |")
    print("| --- | --- | ---: | ---: |")
    for label, what, steps, gap in rows:
        print(f"| {label} | {what} | {steps} | {gap:.2e} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
