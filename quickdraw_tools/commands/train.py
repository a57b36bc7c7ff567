"""`quickdraw train MODEL --data FILES --out RUN_DIR [flags]`: train sketch-rnn or DRAW.

Every field of the model's config dataclass and of its training settings (its
``settings_class``: `TrainConfig` or a subclass with the model's defaults) is
a flag (``dec_size`` -> ``--dec-size``; booleans also as ``--no-...``), with
the field's comment and the default a run gets (the model's default preset
applied) as help: ``quickdraw train sketch-rnn --help`` lists them. The
model's flags are parsed only once the model is known, so torch is imported
only when `train` runs. Which run it is (new, ``--resume RUN/last.pt``,
``--init-from CKPT``) and which value wins (the defaults, the preset, a
resumed checkpoint's, the flags) is the trainer's business (`prepare_run`,
`run_configs`); this command prints what it says and, when a signal stops
the run, the command that continues it.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import math
import os
import shlex
import sys
import textwrap
from pathlib import Path

from ..errors import QuickDrawError, check_choice
from .common import accept_negative_values

MODELS = ["sketch-rnn", "draw"]


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "train",
        help="train a model (sketch-rnn or draw) on converted data",
        description="Train sketch-rnn (on sketch-rnn .npz files) or DRAW (on bitmap files) "
        "that `quickdraw convert` wrote. Writes RUN_DIR/last.pt (every --checkpoint-every "
        "steps, at the end, and at the step where Ctrl-C or SIGTERM stops it), "
        "RUN_DIR/best.pt (best validation loss) and RUN_DIR/metrics.csv. "
        "--resume RUN/last.pt continues a run on its own data; --init-from CKPT starts a new "
        "one from CKPT's weights. "
        "Run `quickdraw train MODEL --help` for the model's and the trainer's flags. "
        "Several GPUs: torchrun --nproc_per_node N -m quickdraw_tools.cli train ...",
        epilog="examples:\n"
        "  quickdraw train sketch-rnn --data data/sketchrnn/cat.npz --out runs/cat\n"
        "  quickdraw train draw --data data/bitmap/cat.npy --out runs/draw-cat\n"
        "  quickdraw train sketch-rnn --resume runs/cat/last.pt --steps 20000\n"
        "  quickdraw train sketch-rnn --init-from runs/cat/best.pt --data data/sketchrnn/lion.npz"
        " --out runs/lion\n"
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


def add_dataclass_flags(parser: argparse.ArgumentParser, cls, title: str, presets=None) -> None:
    """One flag per field; defaults are SUPPRESSed so we can tell which flags were given.

    `presets` (name -> {field: value}, the first the default) make the help show the value
    a run gets: the default preset's, then what each other preset sets instead."""
    group = parser.add_argument_group(title)
    comments = field_comments(cls)
    presets = presets or {}
    first: dict = next(iter(presets.values()), {})
    for f in dataclasses.fields(cls):
        default = first.get(f.name, f.default)
        flag = "--" + f.name.replace("_", "-")
        others = [
            f"--preset {name}: {values[f.name]}"
            for name, values in list(presets.items())[1:]
            if f.name in values and values[f.name] != default
        ]
        shown = "; ".join([f"default: {default}", *others])
        help_text = f"{comments.get(f.name, '')} ({shown})"
        if isinstance(f.default, bool):
            group.add_argument(
                flag, dest=f.name, action=argparse.BooleanOptionalAction,
                default=argparse.SUPPRESS, help=help_text,
            )  # fmt: skip
        else:
            kind = type(f.default)
            group.add_argument(
                flag, dest=f.name, type=kind, metavar=kind.__name__.upper(),
                default=argparse.SUPPRESS, help=help_text,
            )  # fmt: skip


EXAMPLES = {
    "sketch-rnn": "  quickdraw train sketch-rnn --data data/sketchrnn/cat.npz --out runs/cat\n"
    "  quickdraw train sketch-rnn --data data/sketchrnn/cat.npz data/sketchrnn/pig.npz \\\n"
    "      --decoder hyper --dec-size 2048 --steps 100000 --out runs/cat-pig\n"
    "  quickdraw train sketch-rnn --resume runs/cat/last.pt --steps 20000   # on its own data\n"
    "  quickdraw train sketch-rnn --init-from runs/cat/best.pt --data data/sketchrnn/lion.npz "
    "--out runs/lion",
    "draw": "  quickdraw train draw --data data/bitmap/cat.npy --out runs/draw-cat\n"
    "  quickdraw train draw --data data --preset report --out runs/draw-report\n"
    "  quickdraw train draw --data ../shared/quickdraw/mirror/full/numpy_bitmap/cat.npy "
    "--steps 600 --out runs/draw-official\n"
    "  quickdraw train draw --resume runs/draw-cat/last.pt --steps 20000",
}

RUN_FLAGS = ("data", "out", "resume", "init_from", "preset", "quiet")


def _ordered_presets(model_cls) -> dict[str, dict]:
    """The model's presets with its default first (what the help shows as the default)."""
    presets = dict(getattr(model_cls, "presets", {}) or {})
    default = getattr(model_cls, "default_preset", None)
    if default in presets:
        presets = {default: presets[default], **presets}
    return presets


def model_parser(model_cls) -> argparse.ArgumentParser:
    config_cls, settings_cls = model_cls.config_class, model_cls.settings_class
    presets = _ordered_presets(model_cls)
    parser = argparse.ArgumentParser(
        prog=f"quickdraw train {model_cls.name}",
        description=f"Train {model_cls.name}. Flags map onto {config_cls.__name__} (the model) "
        f"and {settings_cls.__name__} (training). Three kinds of run: a new one (--data, "
        "--out); --resume RUN/last.pt, which continues that run exactly, on the data its "
        "checkpoint names (no --data needed; other data is refused), with its model and "
        "settings (only the training flags given change, e.g. a larger --steps); and "
        "--init-from CKPT, a new run in a new --out from CKPT's model and weights, with a "
        "fresh optimiser at step 0, on the --data given"
        + (
            " (sketch-rnn keeps CKPT's scale factor: the units its weights expect)."
            if "scale_factor" in getattr(settings_cls, "inherited", ())
            else "."
        )
        + " Ctrl-C or SIGTERM saves RUN/last.pt at the current step and prints the command "
        "that continues it.",
        epilog="examples:\n" + EXAMPLES.get(model_cls.name, ""),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--data", nargs="+", metavar="FILE",
        help="converted data files, one category each (sketch-rnn: .npz from `quickdraw "
        "convert`, several are concatenated; draw: bitmap .npy files or folders of them); "
        "not needed with --resume",
    )  # fmt: skip
    parser.add_argument(
        "--out", help="run directory for checkpoints and metrics (with --resume: the run's own)"
    )
    parser.add_argument(
        "--resume", nargs="?", const=True, default=None, metavar="RUN/last.pt",
        help="continue the run whose last.pt this is (or a run directory; bare --resume: "
        "--out's), on the data it names",
    )  # fmt: skip
    parser.add_argument(
        "--init-from", metavar="CKPT",
        help="start a new run (in --out, on --data) from this checkpoint's model and weights",
    )  # fmt: skip
    if presets:
        names = list(presets)
        parser.add_argument(
            "--preset", choices=names, default=None,
            help="starting configuration, then the flags given: "
            + "; ".join(
                f"{name}{' (default)' if i == 0 else ''}: "
                + ", ".join(f"{k}={v}" for k, v in values.items())
                for i, (name, values) in enumerate(presets.items())
            ),
        )  # fmt: skip
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    add_dataclass_flags(parser, config_cls, f"model ({config_cls.__name__})", presets)
    add_dataclass_flags(parser, settings_cls, f"training ({settings_cls.__name__})", presets)
    accept_negative_values(parser)
    return parser


def resume_command(model: str, checkpoint: Path) -> str:
    """The command that continues an interrupted run (under torchrun: with torchrun)."""
    args = ["train", model, "--resume", str(checkpoint)]
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1:
        per_node = os.environ.get("LOCAL_WORLD_SIZE", str(world))
        head = ["torchrun", "--nproc_per_node", per_node, "-m", "quickdraw_tools.cli"]
    else:
        head = ["quickdraw"]
    return shlex.join([*head, *args])


def run(args: argparse.Namespace) -> int:
    check_choice("model", args.model, MODELS)
    from ..models.base import model_class
    from ..models.trainer import TrainingInterrupted, describe_dropped, prepare_run, train

    model_cls = model_class(args.model)
    opts = model_parser(model_cls).parse_args(args.rest)
    given = {k: v for k, v in vars(opts).items() if k not in RUN_FLAGS}
    for name, value in given.items():  # argparse's float() takes "nan" and "inf"
        if isinstance(value, float) and not math.isfinite(value):
            flag = "--" + name.replace("_", "-")
            raise QuickDrawError(f"{flag} must be a finite number, got {value}")
    plan = prepare_run(
        args.model,
        given,
        data=opts.data,
        out=opts.out,
        resume=opts.resume,
        init_from=opts.init_from,
        preset=getattr(opts, "preset", None),
    )
    main_rank = os.environ.get("RANK", "0") == "0"
    dropped = describe_dropped(plan.data)
    if main_rank:
        for line in [*plan.notes, dropped] if dropped else plan.notes:
            print(line, flush=True)
    try:
        result = train(
            plan.model, plan.data, plan.settings, plan.out_dir, resume=plan.resume,
            progress=not opts.quiet,
        )  # fmt: skip
    except TrainingInterrupted as e:
        if e.rank == 0:
            command = resume_command(args.model, e.checkpoint)
            print(f"{e}; continue with: {command}", file=sys.stderr, flush=True)
        return 128 + e.signum
    best = f"{result.best_valid:.4f}" if result.best_valid is not None else "n/a"
    print(f"trained {args.model} to step {result.step}: best validation loss {best}")
    checkpoints = [result.last_checkpoint]
    if result.best_checkpoint is not None:
        checkpoints.append(result.best_checkpoint)
    else:  # --steps 0: no step, so no validation and no best.pt
        print(f"no best.pt: no validation ran in {result.step} step(s)")
    print(f"checkpoints: {', '.join(map(str, checkpoints))}; metrics: {result.metrics}")
    if result.time_limited and main_rank:
        limit = plan.settings.time_limit
        print(
            f"stopped at the --time-limit of {limit:g} s at step {result.step} of "
            f"{plan.settings.steps}; continue with (another {limit:g} s; --time-limit 0 for "
            f"none): {resume_command(args.model, result.last_checkpoint)}"
        )
    return 0
