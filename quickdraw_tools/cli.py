"""The `quickdraw` command: a thin layer over the library.

Each subcommand lives in `quickdraw_tools/commands/<name>.py` and exposes
`add_parser(subparsers)`, which registers the parser and sets `func(args) -> int`.
Modules are imported only when the CLI starts, so `import quickdraw_tools`
stays cheap, and torch is imported only by the commands that need it.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from . import __version__
from .commands.common import accept_negative_values
from .errors import QuickDrawError, printable

# One entry per subcommand module, in the order `--help` lists them.
COMMAND_MODULES = [
    "download",
    "convert",
    "simplify",
    "svg",
    "import_svg",
    "train",
    "sample",
    "evaluate",
    "export",
    "grade",
    "judge",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="quickdraw",
        description="Quick, Draw! toolkit: download the official files and convert them (to "
        "sketch-rnn .npz, bitmaps, MNIST and Parquet), train and sample DRAW and sketch-rnn, "
        "evaluate models (likelihood, a judge, human grading).",
    )
    parser.add_argument("--version", action="version", version=f"quickdraw {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"quickdraw_tools.commands.{name}").add_parser(sub)
    accept_negative_values(parser)  # "--temperature -inf" reaches the check that names it
    return parser


class EscapedOutput:
    """Standard output with control characters escaped (newlines and tabs kept): tables and
    messages show names taken from files and records, and a name must not be able to move
    the cursor, recolour the terminal or reorder a line (`errors.printable`)."""

    def __init__(self, stream):
        self._stream = stream

    def write(self, text: str) -> int:
        return self._stream.write(printable(text, keep="\n\t"))

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    stdout, sys.stdout = sys.stdout, EscapedOutput(sys.stdout)  # type: ignore[assignment]
    try:
        return _run(args)
    finally:
        sys.stdout = stdout


def _run(args: argparse.Namespace) -> int:
    """`args.func(args)`, its failures turned into one line on stderr and an exit status."""
    try:
        status = int(args.func(args) or 0)
        sys.stdout.flush()  # here, so a closed pipe is met inside this `try`
        return status
    except QuickDrawError as e:
        print(f"quickdraw {args.command}: error: {printable(str(e))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"quickdraw {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `quickdraw download --list | head`: the reader has gone, so end quietly (and keep
        # Python from complaining when it flushes stdout on the way out)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, what a shell reports for a writer whose pipe closed
    except OSError as e:
        # "[Errno 13] Permission denied: 'x'" -> "x: Permission denied"
        message = f"{e.filename}: {e.strerror}" if e.filename and e.strerror else e.strerror or e
        print(f"quickdraw {args.command}: error: {printable(str(message))}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
