"""Google's six sketch-rnn models on the mirror's drawings, beside models trained here.

    nice .venv/bin/python scripts/report_magenta.py                 # table + picture, ~25 min
    .venv/bin/python scripts/report_magenta.py --work runs/magenta  # reuses what is there

Prints the table of docs/magenta.md and writes docs/img/magenta-sheep-samples.svg.

- Data. Each category's drawings of `../shared/quickdraw/mirror/`, prepared two ways:
  *raw, RDP 2*: the raw drawings as the official sketch-rnn files were made, which is what
  Google's models were trained on (each stroke simplified by RDP with epsilon 2.0 in the raw
  drawing's own pixel coordinates, rounded to integers; no rescaling), all in the test split;
  *simplified*: the mirror's simplified drawings (Google's recipe: scaled to 0-255, resampled,
  RDP 2), converted by `quickdraw convert` (monkey 850/50/100, the others 0/0/25).
- Ours. An unconditional LSTM sketch-rnn trained here on the simplified monkeys' training split
  (850 drawings; no other category has enough drawings in the mirror), for `--seconds` of
  training on the development machine, and one on The Sheep Market's sheep
  (`aaron_sheep.npz`, 7,400) for the picture and the grading walk-through.
- Figures. `evaluate`'s L_R (the paper's eq. 9 over N_max) and magenta's own evaluation figure
  (`sketch_rnn.magenta_eval_loss`), each model with its own N_max and scale factor.
"""

from __future__ import annotations

import argparse
import math
import shutil
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _magenta_js import CATEGORIES, MAGENTA, ROOT, quickdraw  # noqa: E402

from quickdraw_tools.eval.likelihood import evaluate_checkpoint  # noqa: E402
from quickdraw_tools.formats import iter_drawings, save_sketchrnn_npz  # noqa: E402
from quickdraw_tools.models.sketch_rnn import MAGENTA_EVAL  # noqa: E402
from quickdraw_tools.simplify import rdp  # noqa: E402
from quickdraw_tools.strokes import drawing_to_stroke3  # noqa: E402

MIRROR = ROOT.parent / "shared" / "quickdraw" / "mirror"
AARON_SHEEP = ROOT.parent / "shared" / "quickdraw" / "other" / "aaron_sheep.npz"
PICTURE = ROOT / "docs" / "img" / "magenta-sheep-samples.svg"
OURS = ["--no-conditional", "--decoder", "lstm", "--dec-size", "256", "--batch-size", "50",
        "--steps", "100000", "--eval-every", "100", "--quiet"]  # fmt: skip


def official_strokes(raw_drawing: list) -> np.ndarray:
    """A raw drawing as the official sketch-rnn files hold it: each stroke simplified by RDP
    (epsilon 2.0) in its own pixel coordinates, points rounded, as stroke-3 int16."""
    strokes = []
    for stroke in raw_drawing:
        points = rdp(np.column_stack([stroke[0], stroke[1]]).astype(np.float64), 2.0)
        strokes.append([points[:, 0].tolist(), points[:, 1].tolist()])
    return drawing_to_stroke3(strokes)


def prepare(work: Path) -> dict[str, dict[str, Path]]:
    """category -> {"raw, RDP 2": npz, "simplified": npz}, written once under `work`."""
    out = {}
    for name, category in CATEGORIES.items():
        raw = work / "raw-rdp" / f"{category}.npz"
        if not raw.exists():
            drawings = [official_strokes(r["drawing"]) for r in
                        iter_drawings(MIRROR / "full" / "raw" / f"{category}.ndjson")]  # fmt: skip
            raw.parent.mkdir(parents=True, exist_ok=True)
            save_sketchrnn_npz(raw, {"train": [], "valid": [], "test": drawings})
        simplified = work / "simplified" / name
        if not simplified.exists():
            sizes = "850,50,100" if name == "monkey" else "0,0,25"
            quickdraw("convert", category, "--base-url", MIRROR, "--formats", "sketchrnn",
                      "--split-sizes", sizes, "--out", simplified, "--quiet")  # fmt: skip
        out[name] = {"raw, RDP 2": raw, "simplified": simplified / "sketchrnn" / f"{category}.npz"}
    return out


def train_ours(work: Path, seconds: float) -> dict[str, Path]:
    """The two models trained here (monkey, sheep): best.pt of each, trained once."""
    monkeys = work / "simplified" / "monkey" / "sketchrnn" / "monkey.npz"
    sheep = work / "sheep" / "sheep.npz"  # The Sheep Market's, named so the model says "sheep"
    if not sheep.exists():
        sheep.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(AARON_SHEEP, sheep)
    runs = {  # N_max: Google's monkey's (so both see the same test drawings); sheep: 250
        "monkey": (work / "ours-monkey", monkeys, 182),
        "sheep": (work / "ours-sheep", sheep, 250),
    }
    for run, data, n_max in runs.values():
        if not (run / "best.pt").exists():
            quickdraw("train", "sketch-rnn", "--data", data, "--out", run, "--max-seq-len", n_max,
                      "--time-limit", seconds, *OURS)  # fmt: skip
    return {name: run / "best.pt" for name, (run, _, _) in runs.items()}


def row(label: str, data: str, checkpoint: Path, npz: Path) -> list[str]:
    """L_R and magenta's figure (each in the model's own units: offsets / its scale factor),
    and -log p(x) per drawing in the data's units, which compares across scale factors: N_max
    L_R plus 2 log(scale) for each offset point scored (the Jacobian of the division)."""
    from quickdraw_tools.formats import load_sketchrnn_npz
    from quickdraw_tools.models.checkpoint import read_checkpoint

    report = evaluate_checkpoint(checkpoint, [npz], split="test", progress=False, device="cpu")
    overall = report["overall"]
    ckpt = read_checkpoint(checkpoint)
    n_max, scale = ckpt["model_config"]["max_seq_len"], ckpt["data_state"]["scale_factor"]
    lengths = [len(s) for s in load_sketchrnn_npz(npz)["test"] if 0 < len(s) <= n_max]
    assert len(lengths) == overall["n"]
    nll = n_max * overall["L_R"] + 2 * math.log(scale) * float(np.mean(lengths))
    return [label, data, str(overall["n"]), str(n_max), f"{scale:.2f}",
            f"{overall['L_R']:.3f}", f"{overall[MAGENTA_EVAL]:.3f}", f"{nll:.1f}"]  # fmt: skip


def picture(ours: Path, n: int = 8) -> None:
    """Google's sheep beside ours: n samples each, tau = 0.5 (the paper's convention), seed 0."""
    import torch

    from quickdraw_tools.models.checkpoint import load_checkpoint
    from quickdraw_tools.svg import svg_grid

    rows, captions = [], []
    for label, path in (("Google", MAGENTA / "sheep.gen.json"), ("ours", ours)):
        model, state, _ = load_checkpoint(path)
        got = model.sample(n, temperature=0.5, generator=torch.Generator().manual_seed(0),
                           scale=state["scale_factor"])  # fmt: skip
        rows += got
        captions += [label] * n
    svg_grid(rows, n, captions, PICTURE)
    print(f"wrote {PICTURE.relative_to(ROOT)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "magenta",
                        help="data and our runs (reused; default runs/magenta)")  # fmt: skip
    parser.add_argument("--seconds", type=float, default=600,
                        help="training time of each model of ours (default 600)")  # fmt: skip
    args = parser.parse_args()
    data = prepare(args.work)
    ours = train_ours(args.work, args.seconds)
    lines = [["model", "drawings", "n", "N_max", "scale", "L_R (eq. 9)", "magenta's figure",
              "-log p(x), data units"]]  # fmt: skip
    for name, category in CATEGORIES.items():
        for kind, npz in data[name].items():
            lines.append(row(f"Google's {category}", kind, MAGENTA / f"{name}.gen.json", npz))
    lines.append(row("ours, monkey", "simplified", ours["monkey"], data["monkey"]["simplified"]))
    print("| " + " | ".join(lines[0]) + " |")
    print("| " + " | ".join(["---"] * 2 + ["---:"] * (len(lines[0]) - 2)) + " |")
    for line in lines[1:]:
        print("| " + " | ".join(line) + " |")
    picture(ours["sheep"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
