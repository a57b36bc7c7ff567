"""Start `quickdraw grade serve` as a process and wait for its link, with a timeout.

Shared by the scripts that drive a real server (the load test, the red-team
replay) and by the tests (`tests/grading_support.py`).
"""

from __future__ import annotations

import queue
import subprocess
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def start_server(
    args: list[str],
    timeout: float = 60,
    cwd: Path = ROOT,
    command: list[str] | None = None,
    any_port: bool = True,
) -> tuple[subprocess.Popen, str]:
    """Run `quickdraw grade serve ARGS --port 0` and return (process, page URL); with
    ``any_port=False``, ARGS as they are (the command's own port).

    The server's output is read by a thread into ``proc.lines`` (see `output`), so no read
    of it can hang a test: waiting for the link gives up after `timeout` seconds.
    """
    command = command or [sys.executable, "-m", "quickdraw_tools.cli", "grade", "serve"]
    proc = subprocess.Popen(
        [*command, *args, *(["--port", "0"] if any_port else [])],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    proc.lines = []  # type: ignore[attr-defined]
    fresh: queue.Queue = queue.Queue()

    def read() -> None:
        for line in proc.stdout:
            proc.lines.append(line)  # type: ignore[attr-defined]
            fresh.put(line)
        fresh.put(None)  # the server closed its output (it exited)

    proc.reader = threading.Thread(target=read, daemon=True)  # type: ignore[attr-defined]
    proc.reader.start()  # type: ignore[attr-defined]
    while True:
        try:
            line = fresh.get(timeout=timeout)
        except queue.Empty:
            stop(proc)
            raise AssertionError(
                f"no grading link within {timeout} s:\n" + "".join(proc.lines)  # type: ignore
            ) from None
        if line is None:
            proc.wait(timeout)
            raise AssertionError("server did not start:\n" + "".join(proc.lines))  # type: ignore
        if line.startswith("grading page: "):
            return proc, line.split(": ", 1)[1].strip()


def output(proc: subprocess.Popen, timeout: float = 20) -> str:
    """Everything the server printed, once it has exited (within `timeout` seconds)."""
    proc.wait(timeout)
    proc.reader.join(timeout)  # type: ignore[attr-defined]
    return "".join(proc.lines)  # type: ignore[attr-defined]


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    proc.stdout.close()
