"""`quickdraw evaluate`: held-out likelihood of one or more checkpoints."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..splits import SPLITS
from .common import (
    MAX_BATCH,
    MAX_IMPORTANCE_SAMPLES,
    add_device_arguments,
    add_json_arguments,
    check_count,
    check_seed,
    emit_json,
    use_threads,
)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate",
        help="likelihood of checkpoints on a held-out split (JSON + table)",
        description="Evaluate trained checkpoints on one split of the files `quickdraw convert` "
        "wrote (sketch-rnn: DIR/sketchrnn/<category>.npz; DRAW: DIR/bitmap/<category>.npy or "
        "official numpy_bitmap files). Reports, per category and overall, the model's training "
        "loss terms (sketch-rnn: L_R, L_KL as in Ha & Eck; DRAW: L_x, L_z, their sum in nats and "
        "bits per pixel) and an importance-weighted bound with --k samples (k=1 is the ELBO; "
        "larger k is tighter). Several checkpoints are evaluated on the same split, for "
        "comparison. For sketch-rnn it also says how many sketches of the split were left out "
        "for being longer than the model's N_max (as its training left them out).",
        epilog="examples:\n  quickdraw evaluate runs/cat/best.pt runs/cat2/best.pt "
        "--data data/sketchrnn/cat.npz --split test --k 10\n"
        "  quickdraw evaluate runs/draw-cat/best.pt --data data/bitmap/cat.npy --json "
        "> report.json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "checkpoints", nargs="+", metavar="CHECKPOINT",
        help="best.pt / last.pt files, or Magenta .gen.json models",
    )  # fmt: skip
    p.add_argument(
        "--data", nargs="+", required=True, type=Path, metavar="FILE",
        help="data files, one per category (the files the models were trained on, or others)",
    )  # fmt: skip
    p.add_argument(
        "--split", default="test", choices=SPLITS,
        help="which split of each file to score (default test)",
    )  # fmt: skip
    p.add_argument(
        "--k", type=int, default=1,
        help=f"importance samples, 1 to {MAX_IMPORTANCE_SAMPLES:,} (default 1 = ELBO)",
    )  # fmt: skip
    p.add_argument(
        "--batch-size", type=int, default=100,
        help=f"examples per batch, 1 to {MAX_BATCH:,} (default 100)",
    )  # fmt: skip
    add_device_arguments(p, "the models run")
    p.add_argument(
        "--seed", type=int, default=0,
        help="seed for the z samples (the held-out split and its binarisation are the "
        "training run's, from the checkpoint; default 0)",
    )  # fmt: skip
    add_json_arguments(p, "the report(s)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def dropped_report(checkpoint: str | Path, files: list[Path], split: str) -> dict | None:
    """What the model's own filter left out of `split` of each file, as the checkpoint's run
    prepares its data (sketch-rnn: sketches longer than its N_max); None when it has none."""
    from ..formats import file_stem
    from ..models.base import model_class
    from ..models.checkpoint import checkpoint_settings, config_from_dict, read_checkpoint

    ckpt = read_checkpoint(checkpoint)
    model_cls = model_class(ckpt["model"])
    config = config_from_dict(model_cls.config_class, ckpt["model_config"], checkpoint)
    settings = checkpoint_settings(ckpt)
    out: dict = {"split": split, "dropped": 0, "of": 0, "why": "", "categories": {}}
    for path in files:
        data = model_cls.build_datasets(config, [path], settings, state=ckpt["data_state"])
        if split not in data.dropped:
            return None
        n, of = data.dropped[split], data.read_count(split)
        out["dropped"] += n
        out["of"] += of
        out["why"] = data.dropped_why
        out["categories"][file_stem(path)] = {"dropped": n, "of": of}
    return out


def dropped_line(label: str, report: dict) -> str:
    """One line such as "cat/best: dropped sketches longer than N_max = 250 points: test 3 of
    2500", with each category's count when there are several."""
    line = (
        f"{label}: dropped {report['why']}: {report['split']} {report['dropped']} of {report['of']}"
    )
    if len(report["categories"]) > 1:
        each = ", ".join(
            f"{c} {v['dropped']} of {v['of']}" for c, v in report["categories"].items()
        )
        line += f" ({each})"
    return line


def run(args: argparse.Namespace) -> int:

    from ..eval.labels import path_labels
    from ..eval.likelihood import evaluate_checkpoint, format_table

    check_count(args.k, "--k", 1, MAX_IMPORTANCE_SAMPLES)
    check_count(args.batch_size, "--batch-size", 1, MAX_BATCH)
    check_seed(args.seed)
    use_threads(args.threads)
    reports = [
        evaluate_checkpoint(
            ckpt,
            args.data,
            split=args.split,
            k=args.k,
            batch_size=args.batch_size,
            device=args.device,
            seed=args.seed,
            progress=not args.quiet,
        )
        for ckpt in args.checkpoints
    ]
    notes = []
    for report, label in zip(reports, path_labels(args.checkpoints), strict=True):
        dropped = dropped_report(report["checkpoint"], args.data, args.split)
        if dropped is not None:
            report["dropped"] = dropped  # also in the JSON
            notes.append(dropped_line(label, dropped))
    payload = reports if len(reports) > 1 else reports[0]
    if emit_json(payload, args):
        return 0
    models = {r["model"] for r in reports}
    if len(models) > 1:
        print(f"note: comparing different models ({', '.join(sorted(models))})")
    print(format_table(reports))
    for line in notes:
        print(line)
    if args.json_out:
        print(f"wrote {args.json_out}")
    return 0
