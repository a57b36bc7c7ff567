"""`quickdraw export CHECKPOINT --out FILE`: a trained model in another program's format.

The format is chosen by the suffix of ``--out``; ``.gen.json`` is Google Magenta's for
its JavaScript library ``@magenta/sketch`` (`models.magenta`).
"""

from __future__ import annotations

import argparse

from ..errors import QuickDrawError

FORMATS = {".gen.json": "Magenta's sketch-rnn for @magenta/sketch (sketch-rnn-js)"}


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "export",
        help="write a trained model in another program's format (.gen.json: Magenta's JS)",
        description="Write the model of CHECKPOINT in the format --out's suffix names:\n"
        + "".join(f"  {suffix:<10} {what}\n" for suffix, what in FORMATS.items())
        + "\n.gen.json holds an unconditional sketch-rnn with an LSTM decoder and M = 20 (train\n"
        "with --no-conditional --decoder lstm): its N_max and scale factor, and the weights as\n"
        "int16 (value x 10 / 32767, so each weight moves by at most 1.5e-4 and must lie in\n"
        "[-10, 10]). A conditional model, a layer-norm or HyperLSTM decoder or another M is\n"
        "refused, saying why. The file is written atomically.",
        epilog="examples:\n"
        "  quickdraw export runs/cat/best.pt --out cat.gen.json\n"
        "  quickdraw export ../shared/magenta/sheep.gen.json --out sheep-again.gen.json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("checkpoint", help="a .pt from `quickdraw train` (or a .gen.json)")
    p.add_argument("--out", required=True, help="the file to write; its suffix names the format")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    name = args.out.lower()
    suffix = next((s for s in FORMATS if name.endswith(s) and len(name) > len(s)), None)
    if suffix is None:
        raise QuickDrawError(
            f"--out {args.out!r}: the suffix names the format; known: {', '.join(FORMATS)}"
        )
    from ..models.magenta import export_gen_json

    info = export_gen_json(args.checkpoint, args.out)
    print(
        f"wrote {args.out}: {info['name']}, N_max {info['max_seq_len']}, "
        f"scale factor {info['scale_factor']:.6g}"
    )
    return 0
