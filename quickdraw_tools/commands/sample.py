"""`quickdraw sample CHECKPOINT [...] --out FILE`: use a trained model.

The checkpoint names its model; this command loads it and hands over to that
model module's hook ``sample_cli(model, data_state, args) -> int`` (sketch-rnn:
`models.sketch_rnn.sample_cli`; DRAW defines its own), so each model decides
what its modes mean. The flags below are shared by all models; a model
rejects a mode it does not support with a clear error.
"""

from __future__ import annotations

import argparse

MODES = ["sample", "reconstruct", "interpolate", "analogy", "complete"]


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "sample",
        help="draw samples (and reconstructions, interpolations...) from a checkpoint",
        description="Load a checkpoint written by `quickdraw train` and write samples. "
        "Modes (sketch-rnn): sample = N new sketches; reconstruct = each --index sketch of "
        "--input and its decodings at every --temperature; interpolate = the latent path "
        "between two --index sketches (--method slerp|lerp, --steps); analogy = "
        "z(a) - z(b) + z(c) for three --index sketches; complete = N endings of the first "
        "--prefix points of an --index sketch. --out for sketch-rnn: .svg (a grid) or "
        ".ndjson (drawings); for draw: .png, .gif or .npy.",
        epilog="example: quickdraw sample runs/cat/best.pt --n 16 --temperature 0.5 "
        "--seed 0 --out grid.svg",
    )
    p.add_argument("checkpoint", help="a .pt file from `quickdraw train` (last.pt or best.pt)")
    p.add_argument(
        "--out", required=True, help="output file (sketch-rnn: .svg/.ndjson; draw: .png/.gif/.npy)"
    )
    p.add_argument("--mode", default="sample", help=f"one of {', '.join(MODES)} (default sample)")
    p.add_argument("--n", type=int, default=16, help="how many samples / endings (default 16)")
    p.add_argument(
        "--temperature", type=float, nargs="+", default=[0.5],
        help="sampling temperature(s) > 0; lower is tidier (default 0.5)",
    )  # fmt: skip
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--device", default="cpu", help="auto, cpu or cuda (default cpu)")
    p.add_argument("--cols", type=int, default=None, help="grid columns (default: a square)")
    p.add_argument("--input", help="sketches to reconstruct/interpolate/complete: .npz/.ndjson")
    p.add_argument("--split", default="test", help="split of an --input .npz (default test)")
    p.add_argument(
        "--index", type=int, nargs="+", default=None, help="which --input sketches (default 0 1 2)"
    )
    p.add_argument("--steps", type=int, default=8, help="interpolation points (default 8)")
    p.add_argument("--method", default="slerp", help="interpolation: slerp or lerp")
    p.add_argument("--prefix", type=int, default=None, help="complete: points kept (default: half)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..errors import QuickDrawError, check_choice
    from ..models.base import model_module
    from ..models.trainer import load_checkpoint

    check_choice("mode", args.mode, MODES)
    if args.n < 1:
        raise QuickDrawError(f"--n must be at least 1, got {args.n}")
    for t in args.temperature:
        if t <= 0:
            raise QuickDrawError(f"--temperature must be > 0, got {t}")
    if args.cols is not None and args.cols < 1:
        raise QuickDrawError(f"--cols must be at least 1, got {args.cols}")
    if args.steps < 2:
        raise QuickDrawError(f"--steps must be at least 2 (the path's two ends), got {args.steps}")
    model, data_state, ckpt = load_checkpoint(args.checkpoint, args.device)
    module = model_module(ckpt["model"])
    hook = getattr(module, "sample_cli", None)
    if hook is None:
        raise QuickDrawError(f"the {ckpt['model']} model has no sample_cli hook yet")
    return hook(model, data_state, args)
