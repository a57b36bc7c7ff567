"""Test bounds of the DRAW report's configurations against our improved default.

Trains every configuration below with the shared trainer (`models.trainer`) on
the same data, for the same number of steps, then prints the test L^x, L^z and
their sum (nats per image, the negative ELBO: an upper bound on −log p(x)) on
one fixed binarisation of the held-out test images, for all test images and
for the official cat bitmaps alone.

The report's configurations (its Table 1: cat, batch 64 and 100, read N 5 and 2)
train as the report did: RMSprop, grey levels as Bernoulli targets. Their
rows are evaluated like every other row, on binary test images with the
correct KL; the report's own KL constant would add T·(z − 1)/2 = 90 nats to
L^z (column "report's L^z"). The next rows add one change each, ending in our
default.

    # data: the official cat bitmaps + bitmaps rendered from ../shared/quickdraw/training
    .venv/bin/quickdraw convert ../shared/quickdraw/training/*.ndjson \\
        --formats bitmap --out runs/draw-data
    nice .venv/bin/python scripts/report_draw.py --steps 800          # trains, then prints
    .venv/bin/python scripts/report_draw.py --steps 800 --images docs/img   # + pictures

Runs go to `--out` (default runs/draw-report/<name>/); a finished run is
reused, an interrupted one resumes.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd
import torch
from torch.utils.data import DataLoader, Subset

from quickdraw_tools.atomic import atomic_write
from quickdraw_tools.errors import QuickDrawError
from quickdraw_tools.models import draw_viz
from quickdraw_tools.models.draw import (
    Draw,
    DrawConfig,
    DrawTraining,
    build_datasets,
    report_kl_offset,
)
from quickdraw_tools.models.trainer import checkpoint_settings, load_checkpoint, train

ROOT = Path(__file__).resolve().parents[1]

CAT = ROOT.parent / "shared/quickdraw/mirror/full/numpy_bitmap/cat.npy"
DEFAULT_DATA = [CAT, ROOT / "runs/draw-data/bitmap"]

REPORT = {"optimizer": "rmsprop", "binarize": "grey"}  # the report's training settings
ADAM = {"optimizer": "adam", "binarize": "grey"}
OURS = {"optimizer": "adam", "binarize": "dynamic"}
# name -> (what it is, DrawConfig changes, DrawTraining changes)
CONFIGS = {
    "report-b100-n5": ("report, batch 100, read N 5", {}, {**REPORT, "batch_size": 100}),
    "report-b64-n5": ("report, batch 64, read N 5", {}, {**REPORT, "batch_size": 64}),
    "report-b100-n2": ("report, batch 100, read N 2", {"read_n": 2}, REPORT),
    "adam": ("+ Adam", {}, ADAM),
    "adam-dynamic": ("+ dynamic binarisation", {}, OURS),
    "ours": ("+ learned c_0 (ours)", {"learn_canvas": True}, OURS),
    "ours-w8": ("ours + write N 8", {"learn_canvas": True, "write_n": 8}, OURS),
}


def train_config(name: str, steps: int, seed: int) -> DrawTraining:
    return DrawTraining(
        steps=steps,
        seed=seed,
        device="cpu",
        eval_every=max(1, steps // 4),
        checkpoint_every=max(1, steps // 8),
        log_every=10,
        **CONFIGS[name][2],
    )


def run(name: str, data_paths, steps: int, seed: int, out: Path) -> Path:
    """Train configuration `name` (or resume it) to `steps`; returns its run folder."""
    run_dir = out / name
    last = run_dir / "last.pt"
    resume = last.exists()
    if resume:
        _, _, ckpt = load_checkpoint(last)
        if ckpt["step"] >= steps:
            return run_dir
    config = DrawConfig(**CONFIGS[name][1])
    settings = train_config(name, steps, seed)
    torch.manual_seed(seed)
    model = Draw(config)
    data = build_datasets(config, data_paths, settings)
    print(f"{name}: training {steps} steps on {len(data.train)} images", flush=True)
    train(model, data, settings, run_dir, resume=resume)
    return run_dir


@torch.no_grad()
def per_example(model: Draw, dataset, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """L^x and L^z of every image (one z sample each, seeded), in eval mode."""
    model.eval()
    recon, kl = [], []
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        for batch in DataLoader(dataset, batch_size=250):
            losses = model(batch, reduction="none")
            recon.append(losses.recon)
            kl.append(losses.kl)
    return torch.cat(recon), torch.cat(kl)


def optimizer_used(ckpt: dict) -> str:
    """Which optimiser wrote a checkpoint's state: RMSprop keeps `square_avg`, Adam `exp_avg`."""
    state = next(iter(ckpt["optimizer"]["state"].values()), {})
    return "rmsprop" if "square_avg" in state else "adam" if "exp_avg" in state else "unknown"


def test_sets(data_paths, seed: int):
    """The held-out test images binarised once (seeded), all and cat only."""
    data = build_datasets(DrawConfig(), data_paths, DrawTraining(seed=seed, binarize="dynamic"))
    test = data.test
    cat = [i for i, label in enumerate(test.labels.tolist()) if test.categories[label] == "cat"]
    return {"all": test, "cat": Subset(test, cat)}, data


def speed(run_dir: Path) -> float:
    """Training steps per second, from the metrics CSV's `seconds` column (which restarts
    from 0 when a run resumes: only the last uninterrupted stretch counts)."""
    table = pd.read_csv(run_dir / "metrics.csv")
    rows = table[table["split"] == "train"].reset_index(drop=True)
    restarts = rows.index[rows["seconds"].diff() < 0]
    if len(restarts):
        rows = rows.iloc[restarts[-1] :]
    first, last = rows.iloc[0], rows.iloc[-1]
    return (last["step"] - first["step"]) / max(last["seconds"] - first["seconds"], 1e-9)


def markdown(table: pd.DataFrame) -> str:
    """A pipe table for docs/draw.md (pandas' to_markdown needs the tabulate package)."""

    def cell(value) -> str:
        if value is None or (isinstance(value, float) and pd.isna(value)):
            return ""
        return f"{value:.1f}" if isinstance(value, float) else str(value)

    header = [table.index.name, *table.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for index, *values in table.itertuples():
        lines.append("| " + " | ".join([str(index), *(cell(v) for v in values)]) + " |")
    return "\n".join(lines)


def report(names, data_paths, steps: int, seed: int, out: Path) -> pd.DataFrame:
    tests, data = test_sets(data_paths, seed)
    sizes = ", ".join(f"{s} {len(getattr(data, s))}" for s in ("train", "valid", "test"))
    print(f"\ndata: {', '.join(data.state['categories'])}; images: {sizes}")
    print(f"test bound on one fixed binarisation, nats per image, after {steps} steps\n")
    rows = []
    for name in names:
        model, _, ckpt = load_checkpoint(out / name / "last.pt")
        if ckpt["step"] != steps:
            raise QuickDrawError(f"{out / name} is at step {ckpt['step']}, not {steps}")
        wanted = checkpoint_settings(ckpt).optimizer
        if optimizer_used(ckpt) != wanted:  # the trainer must honour it
            raise QuickDrawError(
                f"{out / name} was trained with {optimizer_used(ckpt)}, not the configured {wanted}"
            )
        row = {"configuration": CONFIGS[name][0], "run": name}
        batch = ckpt["train_config"]["batch_size"]
        for split, dataset in tests.items():
            recon, kl = per_example(model, dataset, seed)
            bound = recon + kl
            row[f"L_x {split}"] = recon.mean().item()
            row[f"L_z {split}"] = kl.mean().item()
            row[f"L_x+L_z {split}"] = bound.mean().item()
            row[f"± {split}"] = (bound.std() / len(bound) ** 0.5).item()  # standard error
        offset = report_kl_offset(model.config)
        row["report's L_z"] = row["L_z all"] + offset if name.startswith("report") else None
        row["batch"] = int(batch)
        row["steps/s (shared CPU)"] = speed(out / name)
        rows.append(row)
    table = pd.DataFrame(rows).set_index("configuration")
    return table


def pictures(run_dir: Path, tests, images: Path, seed: int) -> None:
    """Samples per step, a GIF, attention windows and training curves of one run."""
    model, _, _ = load_checkpoint(run_dir / "last.pt")
    generator = torch.Generator().manual_seed(seed)
    samples = model.generate(8, generator=generator)
    steps = sorted({*range(1, model.config.T, 2), model.config.T - 1})  # ends on the last
    draw_viz.save_step_grid(samples, images / "draw_samples_steps.png", steps=steps, scale=2)
    many = model.generate(64, generator=generator)
    draw_viz.save_sample_grid(many, images / "draw_samples.png", cols=16, scale=2)
    draw_viz.save_gif(samples, images / "draw_samples.gif", max_images=4, cols=4, scale=2)
    cats = torch.stack([tests["cat"][i] for i in range(8)])
    torch.manual_seed(seed)
    recon = model.reconstruct(cats)
    draw_viz.save_attention(recon, images / "draw_attention.png", index=0, steps=steps, scale=4)
    draw_viz.plot_curves(run_dir / "metrics.csv", images / "draw_curves.png", title=run_dir.name)
    print(f"pictures of {run_dir.name} written to {images}/draw_*")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--data", nargs="+", type=Path, default=DEFAULT_DATA, metavar="PATH")
    parser.add_argument("--steps", type=int, default=800, help="training steps per config")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "runs/draw-report")
    parser.add_argument("--only", nargs="+", choices=list(CONFIGS), help="these configs only")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--no-train", action="store_true", help="only report finished runs")
    parser.add_argument("--images", type=Path, help="write pictures of 'ours' to this folder")
    parser.add_argument("--csv", type=Path, help="also write the table as CSV")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    names = args.only or list(CONFIGS)
    try:
        if not args.no_train:
            for name in names:
                started = time.perf_counter()
                run(name, args.data, args.steps, args.seed, args.out)
                print(f"{name}: done in {time.perf_counter() - started:.0f} s", flush=True)
        table = report(names, args.data, args.steps, args.seed, args.out)
    except QuickDrawError as e:
        print(f"report_draw: error: {e}", file=sys.stderr)
        return 1
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(table.drop(columns="run").round(2).to_string())
    print()
    print(markdown(table.drop(columns="run")))
    if args.csv:
        with atomic_write(args.csv, "w") as f:
            table.to_csv(f)
    if args.images and "ours" in names:
        tests, _ = test_sets(args.data, args.seed)
        pictures(args.out / "ours", tests, args.images, args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
