"""Report on trained sketch-rnn runs: validation/test L_R and L_KL, and SVG grids.

For every run directory given (default: runs/sketch-rnn/*/ with a best.pt),
loads the best checkpoint, rebuilds its datasets from the files recorded in
the checkpoint (same scale factor), and prints L_R and L_KL on the validation
and test splits with the paper's definitions (eq. 9 and 10 of Ha & Eck 2018:
L_R per sketch divided by N_max, L_KL averaged over the N_z dimensions; z is
sampled, seed fixed). It writes, per run, SVG grids of samples, of test-set
reconstructions and of a slerp interpolation between two test sketches.

Usage: .venv/bin/python scripts/report_sketch_rnn.py [RUN_DIR ...] [--out runs/sketch-rnn/report]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from quickdraw_tools import svg
from quickdraw_tools.formats import read_stroke3
from quickdraw_tools.models import sketch_rnn as R
from quickdraw_tools.models.trainer import checkpoint_settings, evaluate, load_checkpoint

ROOT = Path(__file__).resolve().parents[1]

PAPER = "Ha & Eck (2018) Table 1, cat, conditional, w_KL = 1.00: L_R = -0.98 (70,000 train)"


def report_run(run: Path, out: Path, seed: int, temperature: float) -> dict:
    model, state, ckpt = load_checkpoint(run / "best.pt")
    cfg = model.config
    data = R.build_datasets(cfg, state["files"], checkpoint_settings(ckpt), state)
    row = {
        "run": run.name,
        "step": ckpt["step"],
        "train": len(data.train),
        "w_KL": cfg.kl_weight,
        "dec": f"{cfg.decoder} {cfg.dec_size}",
    }
    for split in ("valid", "test"):
        losses = evaluate(model, getattr(data, split), 100, torch.device("cpu"), seed)
        row[f"{split} L_R"], row[f"{split} L_KL"] = losses["recon"], losses["kl"]

    scale = state["scale_factor"]
    test = read_stroke3(state["files"][0], "test")
    test = [s for s in test if len(s) <= cfg.max_seq_len]
    gen = torch.Generator().manual_seed(seed)
    out.mkdir(parents=True, exist_ok=True)
    name = run.name
    samples = model.sample(16, temperature=temperature, generator=gen, scale=scale)
    svg.svg_grid(samples, 8, None, out / f"{name}-samples.svg", cell=96)
    temps = (0.1, 0.4, 0.8)
    grid, captions = [], []
    for i in range(5):
        grid += [test[i], *model.reconstruct(test[i], scale, temps, gen)]
        captions += ["input", *[f"τ={t:g}" for t in temps]]
    svg.svg_grid(grid, 4, captions, out / f"{name}-reconstructions.svg", cell=96)
    path = model.interpolate(test[0], test[1], scale, 8, "slerp", 0.1, gen)
    captions = ["a", *[f"{k / 7:.2f}" for k in range(8)], "b"]
    svg.svg_grid(
        [test[0], *path, test[1]], 10, captions, out / f"{name}-interpolation.svg", cell=96
    )
    return row


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "runs", nargs="*", type=Path, help="run directories (default: runs/sketch-rnn/*)"
    )
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "sketch-rnn" / "report")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--temperature", type=float, default=0.4, help="for the samples grid")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    runs = args.runs or sorted(
        d for d in (ROOT / "runs" / "sketch-rnn").glob("*/") if (d / "best.pt").exists()
    )
    if not runs:
        print("no runs with a best.pt found; train first (see docs/sketch-rnn.md)")
        return 1
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; best.pt of each run; {PAPER}")
    rows = [report_run(run, args.out, args.seed, args.temperature) for run in runs]
    cols = list(rows[0])
    print(" | ".join(cols))
    print(" | ".join("---" for _ in cols))
    for row in rows:
        print(" | ".join(f"{v:.3f}" if isinstance(v, float) else str(v) for v in row.values()))
    print(f"SVG grids in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
