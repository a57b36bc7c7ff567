"""Flags several commands share, defined once so they mean the same everywhere."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import QuickDrawError


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
        help="torch threads in this process (default: torch's own)",
    )


def use_threads(threads: int) -> None:
    """Apply ``--threads`` (0 keeps torch's default)."""
    if threads < 0:
        raise QuickDrawError(f"--threads must be >= 0, got {threads}")
    if threads:
        import torch

        torch.set_num_threads(threads)
