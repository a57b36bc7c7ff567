"""`quickdraw train MODEL --data FILES --out RUN_DIR [flags]`: train sketch-rnn or DRAW.

Every field of the model's config dataclass and of its training settings (its
``settings_class``: `TrainConfig` or a subclass with the model's defaults) is
a flag (``dec_size`` -> ``--dec-size``; booleans also as ``--no-...``), with
the field's comment and its default as help: ``quickdraw train sketch-rnn
--help`` lists them. The model's flags are parsed only once the model is
known, so torch is imported only when `train` runs. Which value wins (the
defaults, a resumed checkpoint's, the flags) is the trainer's business
(`run_configs`).
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
        epilog="examples:\n"
        "  quickdraw train sketch-rnn --data data/sketchrnn/cat.npz --out runs/cat\n"
        "  quickdraw train draw --data data/bitmap/cat.npy --out runs/draw-cat\n"
        "  quickdraw train sketch-rnn --help     # the model's and the trainer's flags",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model", metavar="MODEL", choices=MODELS, help="sketch-rnn or draw")
    p.add_argument("rest", nargs=argparse.REMAINDER, help="--data, --out and the model's flags")
    p.set_defaults(func=run)


def field_comments(cls) -> dict[str, str]:
    """Field name -> its trailing ``# comment`` in the dataclass source (a subclass's
    comment wins over its base class's)."""
    comments: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            source = textwrap.dedent(inspect.getsource(klass))  # type: ignore[arg-type]
        except (OSError, TypeError):
            continue
        lines = source.splitlines()
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


EXAMPLES = {
    "sketch-rnn": "  quickdraw train sketch-rnn --data data/sketchrnn/cat.npz --out runs/cat\n"
    "  quickdraw train sketch-rnn --data data/sketchrnn/cat.npz data/sketchrnn/pig.npz \\\n"
    "      --decoder hyper --dec-size 2048 --steps 100000 --out runs/cat-pig\n"
    "  quickdraw train sketch-rnn --data data/sketchrnn/cat.npz --out runs/cat --resume "
    "--steps 20000",
    "draw": "  quickdraw train draw --data data/bitmap/cat.npy --out runs/draw-cat\n"
    "  quickdraw train draw --data data --learn-canvas --optimizer adam --out runs/draw-all\n"
    "  quickdraw train draw --data ../shared/quickdraw/mirror/full/numpy_bitmap/cat.npy "
    "--steps 600 --out runs/draw-official",
}


def model_parser(model_cls) -> argparse.ArgumentParser:
    config_cls, settings_cls = model_cls.config_class, model_cls.settings_class
    parser = argparse.ArgumentParser(
        prog=f"quickdraw train {model_cls.name}",
        description=f"Train {model_cls.name}. Flags map onto {config_cls.__name__} (the model) "
        f"and {settings_cls.__name__} (training); with --resume the model's flags come from "
        "the checkpoint and only the given training flags change (e.g. a larger --steps).",
        epilog="examples:\n" + EXAMPLES.get(model_cls.name, ""),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--data", nargs="+", required=True, metavar="FILE",
        help="converted data files, one category each (sketch-rnn: .npz from `quickdraw "
        "convert`, several are concatenated; draw: bitmap .npy files or folders of them)",
    )  # fmt: skip
    parser.add_argument("--out", required=True, help="run directory for checkpoints and metrics")
    parser.add_argument("--resume", action="store_true", help="continue from RUN_DIR/last.pt")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    add_dataclass_flags(parser, config_cls, f"model ({config_cls.__name__})")
    add_dataclass_flags(parser, settings_cls, f"training ({settings_cls.__name__})")
    return parser


def run(args: argparse.Namespace) -> int:
    check_choice("model", args.model, MODELS)
    import torch

    from ..models.base import model_class
    from ..models.trainer import read_checkpoint, run_configs, train

    model_cls = model_class(args.model)
    opts = model_parser(model_cls).parse_args(args.rest)
    given = {k: v for k, v in vars(opts).items() if k not in ("data", "out", "resume", "quiet")}
    for path in opts.data:
        if not Path(path).exists():
            raise QuickDrawError(
                f"data file {path!r} not found (write it with `quickdraw convert`)"
            )
    out = Path(opts.out)
    checkpoint = read_checkpoint(out / "last.pt") if opts.resume else None
    model_cfg, settings = run_configs(model_cls, given, checkpoint)

    torch.manual_seed(settings.seed)  # the same initial weights for the same seed
    model = model_cls(model_cfg)
    data = model_cls.build_datasets(model_cfg, opts.data, settings)
    result = train(model, data, settings, out, resume=opts.resume, progress=not opts.quiet)
    best = f"{result.best_valid:.4f}" if result.best_valid is not None else "n/a"
    print(f"trained {args.model} to step {result.step}: best validation loss {best}")
    print(f"checkpoints: {result.last_checkpoint}, {result.best_checkpoint}; metrics: "
          f"{result.metrics}")  # fmt: skip
    return 0
