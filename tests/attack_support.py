"""Helpers of the attack and limit tests (test_attacks.py, test_limits.py)."""

from __future__ import annotations

import resource
import subprocess
import sys


def one_line_error(capsys, *words: str) -> str:
    """What the command printed to stderr: one line, no traceback, holding every one of `words`."""
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for word in words:
        assert word in err, (word, err)
    return err


def run_limited(args: list[str], memory: int = 1 << 30, timeout: float = 120):
    """`quickdraw ARGS` in a process that may not use more than `memory` bytes."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))

    return subprocess.run(
        [sys.executable, "-m", "quickdraw_tools.cli", *args], capture_output=True, text=True,
        timeout=timeout, preexec_fn=limit,
    )  # fmt: skip
