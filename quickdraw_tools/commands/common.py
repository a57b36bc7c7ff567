"""Flags several commands share, defined once so they mean the same everywhere."""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from ..errors import (  # noqa: F401 - the rules for numbers, for every command to import here
    SEED_MAX,
    TEMPERATURE_MAX,
    TEMPERATURE_MIN,
    QuickDrawError,
    check_count,
    check_finite,
    check_seed,
    check_temperature,
)
from ..workers import check_workers  # noqa: F401

# Upper bounds of counts that each cost memory or time in proportion (README, Reliability)
MAX_SAMPLES = 10_000  # sketches drawn by one command: sample --n, judge score --n, grade serve
MAX_IMPORTANCE_SAMPLES = 10_000  # evaluate --k
MAX_BOOTSTRAP = 20_000  # grade report --bootstrap (10x its default; memory grows with it)
MAX_BATCH = 10_000  # examples per batch

# what --threads means in every command that has it; `quickdraw train` takes the same words
# from `TrainConfig.threads`'s comment (a test holds the two the same)
THREADS_HELP = "torch threads (0: $OMP_NUM_THREADS, else the cores this process may use)"


def add_cache_arguments(p: argparse.ArgumentParser) -> None:
    """``--cache`` and ``--base-url``, for every command that may download."""
    from ..download import BASE_URL_ENV, CACHE_ENV

    p.add_argument(
        "--cache",
        type=Path,
        default=None,
        metavar="DIR",
        help=f"download cache (default: ${CACHE_ENV} or ~/.cache/quickdraw)",
    )
    p.add_argument(
        "--base-url",
        default=None,
        metavar="URL",
        help="mirror to download from: http(s):// URL, file:// URL or a local directory in "
        f"the official layout (default: ${BASE_URL_ENV} or the official bucket)",
    )


def add_device_arguments(p: argparse.ArgumentParser, what: str) -> None:
    """``--device`` (default auto) and ``--threads``, for every command that runs a model."""
    p.add_argument(
        "--device",
        default="auto",
        choices=("auto", "cpu", "cuda"),
        help=f"where {what} (default auto: CUDA when available)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=0,
        metavar="INT",
        help=f"{THREADS_HELP} (default: 0)",
    )


def use_threads(threads: int) -> int:
    """Apply ``--threads`` (`models.base.set_threads`, as `quickdraw train` does); returns
    the number of threads set."""
    if threads < 0:
        raise QuickDrawError(f"--threads must be >= 0, got {threads}")
    from ..models.base import set_threads

    return set_threads(threads)


def add_on_error_argument(p: argparse.ArgumentParser, bad: str) -> None:
    """``--on-error raise|skip`` for the input `bad` names ("a bad SVG file")."""
    p.add_argument(
        "--on-error",
        choices=["raise", "skip"],
        default="raise",
        help=f"{bad}: stop with an error naming it (raise, the default; nothing is written) "
        "or leave it out and report how many were skipped (skip)",
    )


def add_json_arguments(p: argparse.ArgumentParser, what: str) -> None:
    """``--json`` (print `what` as JSON instead of the table) and ``--json-out FILE``."""
    p.add_argument("--json", action="store_true", help=f"print {what} as JSON instead of the table")
    p.add_argument(
        "--json-out", type=Path, metavar="FILE", help="also write the JSON to FILE (atomically)"
    )


def emit_json(payload, args: argparse.Namespace) -> bool:
    """Write ``--json-out`` atomically, and print the JSON with ``--json``; whether it
    printed (the caller then prints no table)."""
    if args.json_out:
        from ..atomic import atomic_write

        with atomic_write(args.json_out, "w", encoding="utf-8") as f:
            json.dump(payload, f, indent=2)
    if args.json:
        json.dump(payload, sys.stdout, indent=2)
        print()
    return bool(args.json)


def temperature_help() -> str:
    """What --temperature means in `sample`, `judge score` and `grade serve`, with the one
    default they share (`models.SAMPLING_TEMPERATURE`)."""
    from ..models import SAMPLING_TEMPERATURE

    return (
        f"sampling temperature, {TEMPERATURE_MIN:g} to {TEMPERATURE_MAX:g} (default "
        f"{SAMPLING_TEMPERATURE:g}, the same in sample, judge score and grade serve: the model's "
        "own distribution; lower is tidier)"
    )


def check_temperatures(values) -> list[float]:
    """Every ``--temperature`` given (`check_temperature`: 0.001 to 100)."""
    return [check_temperature(t) for t in values]


# what argparse takes for a value, not an option, after a flag: its own "-1" and "-.5", and
# "-1e5", "-inf", "-nan" and "-1,5,5" (which it took for unknown options: "expected one
# argument"), so a bad number reaches the check that names it
NEGATIVE_VALUE = re.compile(r"^-(\d[\d,]*|\d*\.?\d+([eE][-+]?\d+)?|inf(inity)?|nan)$", re.I)


def accept_negative_values(parser: argparse.ArgumentParser) -> None:
    """Let `parser` and its subcommands' parsers take negative-looking values (`NEGATIVE_VALUE`)."""
    parser._negative_number_matcher = NEGATIVE_VALUE
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                accept_negative_values(sub)
