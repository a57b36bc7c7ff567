"""`quickdraw train MODEL --data FILES --out RUN_DIR [flags]`: train sketch-rnn or DRAW.

Every field of the model's config dataclass and of `models.trainer.TrainConfig`
is a flag (``dec_size`` -> ``--dec-size``; booleans also as ``--no-...``), with
the field's comment as its help: ``quickdraw train sketch-rnn --help`` lists
them. The model's flags are parsed only once the model is known, so torch is
imported only when `train` runs.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import textwrap
from pathlib import Path

from ..errors import QuickDrawError, check_choice

MODELS = ["sketch-rnn", "draw"]


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "train",
        help="train a model (sketch-rnn or draw) on converted data",
        description="Train sketch-rnn (on sketch-rnn .npz files) or DRAW (on bitmap files) "
        "that `quickdraw convert` wrote. Writes RUN_DIR/last.pt (every --checkpoint-every "
        "steps), RUN_DIR/best.pt (best validation loss) and RUN_DIR/metrics.csv. "
        "Run `quickdraw train MODEL --help` for the model's and the trainer's flags. "
        "Several GPUs: torchrun --nproc_per_node N -m quickdraw_tools.cli train ...",
        epilog="example: quickdraw train sketch-rnn --data out/sketchrnn/cat.npz "
        "--out runs/cat --steps 20000",
    )
    p.add_argument("model", metavar="MODEL", help="sketch-rnn or draw")
    p.add_argument("rest", nargs=argparse.REMAINDER, help="--data, --out and the model's flags")
    p.set_defaults(func=run)


def field_comments(cls) -> dict[str, str]:
    """Field name -> its trailing ``# comment`` in the dataclass source."""
    try:
        source = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):
        return {}
    lines = source.splitlines()
    comments = {}
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            line = lines[node.lineno - 1]
            if "#" in line:
                comments[node.target.id] = line.split("#", 1)[1].strip()
    return comments


def add_dataclass_flags(parser: argparse.ArgumentParser, cls, title: str) -> None:
    """One flag per field; defaults are SUPPRESSed so we can tell which flags were given."""
    group = parser.add_argument_group(title)
    comments = field_comments(cls)
    for f in dataclasses.fields(cls):
        default = f.default
        flag = "--" + f.name.replace("_", "-")
        help_text = f"{comments.get(f.name, '')} (default: {default})"
        if isinstance(default, bool):
            group.add_argument(
                flag, dest=f.name, action=argparse.BooleanOptionalAction,
                default=argparse.SUPPRESS, help=help_text,
            )  # fmt: skip
        else:
            group.add_argument(
                flag, dest=f.name, type=type(default), metavar=type(default).__name__.upper(),
                default=argparse.SUPPRESS, help=help_text,
            )  # fmt: skip


def model_parser(model: str, model_config_cls, train_config_cls) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"quickdraw train {model}",
        description=f"Train {model}. Flags map onto {model_config_cls.__name__} "
        "and TrainConfig; with --resume the model's flags come from the checkpoint and "
        "only the given training flags change (e.g. a larger --steps).",
    )
    parser.add_argument(
        "--data", nargs="+", required=True, metavar="FILE",
        help="converted data files (sketch-rnn: .npz from `quickdraw convert`, several "
        "files are concatenated; draw: bitmap files)",
    )  # fmt: skip
    parser.add_argument("--out", required=True, help="run directory for checkpoints and metrics")
    parser.add_argument("--resume", action="store_true", help="continue from RUN_DIR/last.pt")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    add_dataclass_flags(parser, model_config_cls, f"model ({model_config_cls.__name__})")
    add_dataclass_flags(parser, train_config_cls, "training (TrainConfig)")
    return parser


def run(args: argparse.Namespace) -> int:
    check_choice("model", args.model, MODELS)
    import torch

    from ..models.base import model_module
    from ..models.trainer import TrainConfig, model_class, read_checkpoint, train

    model_cls = model_class(args.model)
    config_cls = model_cls.config_class  # type: ignore[attr-defined]
    opts = model_parser(args.model, config_cls, TrainConfig).parse_args(args.rest)
    given = vars(opts)
    model_fields = {f.name for f in dataclasses.fields(config_cls)}
    train_fields = {f.name for f in dataclasses.fields(TrainConfig)}
    overlap = model_fields & train_fields
    assert not overlap, f"config fields clash with TrainConfig: {overlap}"

    for path in opts.data:
        if not Path(path).exists():
            raise QuickDrawError(
                f"data file {path!r} not found (write it with `quickdraw convert`)"
            )
    out = Path(opts.out)
    if opts.resume:
        ckpt = read_checkpoint(out / "last.pt")
        model_cfg = config_cls(**ckpt["model_config"])
        changed = sorted(model_fields & given.keys())
        if changed:
            raise QuickDrawError(
                f"--resume keeps the checkpoint's model; drop the model flag(s) {changed}"
            )
        train_cfg = TrainConfig(**ckpt["train_config"])
    else:
        model_cfg = config_cls(**{k: given[k] for k in model_fields & given.keys()})
        # a model may name its paper's training settings (DRAW: constant lr, clip 5)
        train_cfg = TrainConfig(**getattr(model_module(args.model), "TRAIN_DEFAULTS", {}))
    train_cfg = dataclasses.replace(train_cfg, **{k: given[k] for k in train_fields & given.keys()})

    torch.manual_seed(train_cfg.seed)  # the same initial weights for the same seed
    model = model_cls(model_cfg)
    data = model_module(args.model).build_datasets(model_cfg, opts.data, train_cfg.seed)
    result = train(model, data, train_cfg, out, resume=opts.resume, progress=not opts.quiet)
    best = f"{result.best_valid:.4f}" if result.best_valid is not None else "n/a"
    print(f"trained {args.model} to step {result.step}: best validation loss {best}")
    print(f"checkpoints: {result.last_checkpoint}, {result.best_checkpoint}; metrics: "
          f"{result.metrics}")  # fmt: skip
    return 0
