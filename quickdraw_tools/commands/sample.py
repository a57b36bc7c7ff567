"""`quickdraw sample CHECKPOINT [...] --out FILE`: use a trained model.

The checkpoint names its model; the model says what its samples are
(``output``: strokes or bitmaps) and which modes it supports
(``sample_modes``). This command runs the mode and writes the file: the models
themselves know nothing of files or flags.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from ..errors import QuickDrawError
from ..models import SAMPLING_TEMPERATURE
from .common import (
    MAX_SAMPLES,
    add_device_arguments,
    check_count,
    check_seed,
    check_temperatures,
    temperature_help,
    use_threads,
)

MODES = ["sample", "reconstruct", "interpolate", "analogy", "complete"]
OUTPUT_SUFFIXES = {
    "strokes": (".svg", ".png", ".gif", ".ndjson"),
    "bitmap": (".png", ".gif", ".npy"),
}
# sketch-rnn's pen in a GIF: a step every 20 ms, a frame every 3 steps
SECONDS_PER_STEP = 0.02
STEPS_PER_FRAME = 3
# what --input a model of each output reads (formats.SUFFIXES kinds), and in words
INPUT_KINDS = {
    "strokes": (("sketchrnn", "ndjson", "binary"), "drawings (strokes)"),
    "bitmap": (("bitmap",), "28x28 bitmaps"),
}
KIND_WORDS = {
    "sketchrnn": "a sketch-rnn .npz of strokes",
    "ndjson": "ndjson drawings (strokes)",
    "binary": "a .bin file of drawings (strokes)",
    "bitmap": "a .npy of bitmaps",
    "checkpoint": "a checkpoint",
}
WANTED = {"reconstruct": 3, "interpolate": 2, "analogy": 3, "complete": 1}  # --index values


def add_parser(subparsers) -> None:
    from ..splits import SPLITS

    p = subparsers.add_parser(
        "sample",
        help="draw samples (and reconstructions, interpolations...) from a checkpoint",
        description="Load a checkpoint written by `quickdraw train` and write samples.\n\n"
        "modes (sketch-rnn has all five, DRAW sample and reconstruct):\n"
        "  sample       --n new sketches from the prior\n"
        "  reconstruct  each --index sketch of --input, then its decodings at every --temperature\n"
        "               (DRAW: the read and write windows at every step)\n"
        "  interpolate  the latent path between two --index sketches (--method, --steps)\n"
        "  analogy      z(a) - z(b) + z(c) for three --index sketches, decoded --n times\n"
        "  complete     --n endings of the first --prefix points of one --index sketch\n\n"
        "--out: sketch-rnn writes .svg or .png (the same grid, with captions; PNG drawn by\n"
        "cairo), .gif (the grid drawing itself: the pen of every sketch moving step by step,\n"
        "a frame every 3 steps) or .ndjson (drawings, `word` = the category it was trained\n"
        "on); DRAW writes\n"
        ".png (a grid, plus OUT.steps.png with every step), .gif (the canvas building up) or\n"
        ".npy (uint8 (n, 784) bitmaps). Every file is written atomically.",
        epilog="examples:\n"
        "  quickdraw sample runs/cat/best.pt --n 16 --temperature 0.5 --seed 0 --out samples.svg\n"
        "  quickdraw sample runs/cat/best.pt --mode interpolate --input data/sketchrnn/cat.npz"
        " --index 0 5 --out path.svg\n"
        "  quickdraw sample runs/cat/best.pt --n 16 --out samples.png\n"
        "  quickdraw sample runs/cat/best.pt --n 4 --out pen.gif\n"
        "  quickdraw sample runs/draw-cat/best.pt --n 64 --out draw.png\n"
        "  quickdraw sample ../shared/magenta/sheep.gen.json --n 16 --temperature 0.65"
        " --temperature-convention magenta-js --out sheep.svg",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "checkpoint",
        help="a .pt file from `quickdraw train` (last.pt or best.pt), or a Magenta .gen.json "
        "(unconditional: modes sample and complete)",
    )
    p.add_argument(
        "--out",
        required=True,
        help="output file (sketch-rnn: .svg/.png/.gif/.ndjson; draw: .png/.gif/.npy)",
    )
    p.add_argument("--mode", default="sample", choices=MODES, help="what to draw (default sample)")
    p.add_argument(
        "--n", type=int, default=16,
        help=f"how many samples / endings, 1 to {MAX_SAMPLES:,} (default 16)",
    )  # fmt: skip
    p.add_argument(
        "--temperature", type=float, nargs="+", default=[SAMPLING_TEMPERATURE],
        help=temperature_help() + "; reconstruct: several",
    )  # fmt: skip
    p.add_argument(
        "--temperature-convention", default="paper", choices=("paper", "magenta-js"),
        help="sketch-rnn: what --temperature divides the mixture-weight and pen logits by: "
        "paper (the default) τ itself, as the paper and magenta's Python; magenta-js "
        "0.5 + τ/2, as @magenta/sketch's getPDF does by default. σ is scaled by √τ in both",
    )  # fmt: skip
    p.add_argument("--seed", type=int, default=0, help="random seed, 0 to 2**63 - 1 (default 0)")
    add_device_arguments(p, "the model runs")
    p.add_argument("--cols", type=int, default=None, help="grid columns (default: a square)")
    p.add_argument(
        "--input", help="sketches for reconstruct/interpolate/analogy/complete: .npz, .ndjson, "
        ".bin (sketch-rnn) or .npy bitmaps (DRAW)",
    )  # fmt: skip
    p.add_argument(
        "--split", default="test", choices=SPLITS, help="split of an --input .npz (default test)"
    )
    p.add_argument(
        "--index", type=int, nargs="+", default=None,
        help="which --input sketches (default the first ones the mode needs)",
    )  # fmt: skip
    p.add_argument(
        "--steps", type=int, default=8, help="interpolation points, both ends too (default 8)"
    )
    p.add_argument(
        "--method", default="slerp", choices=("slerp", "lerp"),
        help="interpolation path (default slerp, the paper's)",
    )  # fmt: skip
    p.add_argument("--prefix", type=int, default=None, help="complete: points kept (default: half)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:

    from ..models.trainer import load_checkpoint

    check_count(args.n, "--n", 1, MAX_SAMPLES)
    check_temperatures(args.temperature)
    check_seed(args.seed)
    if args.cols is not None:
        check_count(args.cols, "--cols", 1, MAX_SAMPLES)
    check_count(args.steps, "--steps", 2, MAX_SAMPLES)  # the path's points, both ends among them
    use_threads(args.threads)
    model, data_state, _ = load_checkpoint(args.checkpoint, args.device)
    if args.mode not in model.sample_modes:
        raise QuickDrawError(
            f"the {model.name} model supports --mode {', '.join(model.sample_modes)}, "
            f"not {args.mode!r}"
        )
    out = Path(args.out)
    valid = OUTPUT_SUFFIXES[model.output]
    if out.suffix.lower() not in valid:
        raise QuickDrawError(
            f"{model.name} draws {model.output}: --out must end in {', '.join(valid)}, "
            f"not {out.name!r}"
        )
    if args.temperature_convention != "paper" and (
        model.output != "strokes" or args.mode not in ("sample", "complete")
    ):
        raise QuickDrawError(
            "--temperature-convention magenta-js applies to sketch-rnn's modes sample and "
            f"complete, not to the {model.name} model's --mode {args.mode}"
        )
    if args.mode != "sample" and not args.input:
        raise QuickDrawError(f"--mode {args.mode} needs --input (the sketches to start from)")
    if args.mode != "sample":
        _check_input_kind(model, args.input)
    if model.output == "strokes":
        count = _strokes(model, data_state, args, out)
    else:
        count = _bitmaps(model, args, out)
    print(f"wrote {args.mode} ({count} sketches) to {out}")
    return 0


def _check_input_kind(model, path: str) -> None:
    """Refuse an --input the model cannot start from (a DRAW model given strokes, a sketch-rnn
    model given bitmaps), saying what it takes."""
    from ..formats import file_kind, suffix_list

    kinds, words = INPUT_KINDS[model.output]
    kind = file_kind(path)
    if kind not in kinds:
        given = KIND_WORDS.get(kind or "", "a file of no kind it reads")
        raise QuickDrawError(
            f"the {model.name} model takes {words} as --input ({suffix_list(*kinds)}); "
            f"{path} is {given}"
        )


def _picked(pool_size: int, args) -> list[int]:
    """The --index values (default the first ones the mode needs), checked against the pool."""
    wanted = WANTED[args.mode]
    index = args.index if args.index is not None else list(range(min(wanted, pool_size)))
    for i in index:
        if not 0 <= i < pool_size:
            raise QuickDrawError(f"--index {i} is out of range: {args.input} has {pool_size}")
    if args.mode in ("interpolate", "analogy", "complete") and len(index) != wanted:
        raise QuickDrawError(f"--mode {args.mode} takes {wanted} --index value(s)")
    return index


def _square(n: int) -> int:
    return math.ceil(math.sqrt(n))


# --- strokes (sketch-rnn) -------------------------------------------------------------------


def _strokes(model, data_state: dict, args, out: Path) -> int:
    import torch

    from ..formats import read_stroke3
    from ..models.base import trained_category
    from ..models.sketch_rnn import magenta_js_temperature

    scale = data_state["scale_factor"]
    gen = torch.Generator().manual_seed(args.seed)
    temps = args.temperature
    soft = magenta_js_temperature(temps[0]) if args.temperature_convention == "magenta-js" else None
    if args.mode == "sample":
        rows = model.sample(
            args.n, temperature=temps[0], generator=gen, scale=scale, softmax_temperature=soft
        )
        captions = [f"τ={temps[0]:g}"] * len(rows)
        cols = args.cols or _square(len(rows))
    else:
        pool = read_stroke3(args.input, args.split)
        index = _picked(len(pool), args)
        picked = [pool[i] for i in index]
        if args.mode == "reconstruct":
            rows, captions = [], []
            for i, s in zip(index, picked, strict=True):
                rows += [s, *model.reconstruct(s, scale, temps, gen)]
                captions += [f"#{i}"] + [f"τ={t:g}" for t in temps]
            cols = 1 + len(temps)
        elif args.mode == "interpolate":
            path = model.interpolate(*picked, scale, args.steps, args.method, temps[0], gen)
            rows = [picked[0], *path, picked[1]]
            captions = ["a", *[f"{k / (args.steps - 1):.2f}" for k in range(args.steps)], "b"]
            cols = args.cols or len(rows)
        elif args.mode == "analogy":
            found = model.analogy(*picked, scale, args.n, temps[0], gen)
            rows, captions = [*picked, *found], ["a", "b", "c", *["a-b+c"] * len(found)]
            cols = args.cols or _square(len(rows))
        else:
            sketch = picked[0]
            k = args.prefix if args.prefix is not None else max(1, len(sketch) // 2)
            if not 1 <= k <= len(sketch):
                raise QuickDrawError(f"--prefix must be in 1..{len(sketch)}, got {k}")
            endings = model.complete(
                sketch[:k], scale, args.n, temps[0], gen, softmax_temperature=soft
            )
            rows = [sketch, sketch[:k], *endings]
            captions = ["whole", "given", *["ending"] * len(endings)]
            cols = args.cols or _square(len(rows))
    write_strokes(out, rows, cols, captions, trained_category(data_state) or "")
    return len(rows)


def write_strokes(path: Path, sketches: list, cols: int, captions: list[str], word: str) -> None:
    """Stroke-3 sketches -> a grid (``.svg``, ``.png`` drawn by cairo, or an animated ``.gif``
    of the pen, `STEPS_PER_FRAME` steps a frame) or drawings (``.ndjson``), atomically.

    ndjson records carry ``word`` (the model's category) and the caption as ``caption``.
    """
    import numpy as np

    from .. import formats, svg
    from ..strokes import stroke3_to_drawing

    if path.suffix.lower() == ".gif":
        from ..animate import animated_gif

        animated_gif(
            sketches, cols, captions, path, cell=128.0, seconds_per_step=SECONDS_PER_STEP,
            frame_seconds=STEPS_PER_FRAME * SECONDS_PER_STEP,
        )  # fmt: skip
        return
    if path.suffix.lower() == ".svg":
        svg.svg_grid(sketches, cols, captions, path)
        return
    if path.suffix.lower() == ".png":
        svg.png_grid(sketches, cols, captions, path)  # the same layout as the SVG
        return
    records = [
        {"word": word, "caption": c, "drawing": stroke3_to_drawing(np.round(s, 2))}
        for s, c in zip(sketches, captions, strict=True)
    ]
    formats.write_ndjson(path, records)


# --- bitmaps (DRAW) -------------------------------------------------------------------------


def _bitmaps(model, args, out: Path) -> int:
    import numpy as np
    import torch

    from ..atomic import atomic_write
    from ..formats import load_bitmaps
    from ..models import draw_viz

    originals = None
    if args.mode == "sample":
        generator = torch.Generator().manual_seed(args.seed)  # CPU: the same images anywhere
        trace = model.generate(args.n, generator=generator, temperature=args.temperature[0])
    else:
        pool = load_bitmaps(args.input)
        index = _picked(len(pool), args)
        originals = model.images(torch.from_numpy(pool[index]))
        torch.manual_seed(args.seed)
        trace = model.reconstruct(originals)
    trace = trace.cpu()
    n = trace.canvases.shape[1]
    cols = args.cols or _square(n)
    suffix = out.suffix.lower()
    if suffix == ".npy":
        bitmaps = (trace.final.flatten(1) * 255).round().to(torch.uint8).numpy()
        with atomic_write(out, "wb") as f:
            np.save(f, bitmaps, allow_pickle=False)
    elif suffix == ".gif":
        draw_viz.save_gif(trace, out, max_images=n, cols=cols)
    elif originals is not None:
        draw_viz.save_reconstructions(originals.cpu(), trace, out)
    else:
        draw_viz.save_sample_grid(trace, out, cols=cols)
        steps = out.with_name(out.stem + ".steps.png")
        draw_viz.save_step_grid(trace, steps, max_images=16)
        print(f"wrote every step of the first {min(n, 16)} to {steps}")
    return n
