"""Worker processes for the data layer: a pool that dies with its parent, and an ordered map.

`process_pool` makes the pool ``quickdraw convert --workers N`` uses; `ordered_map`
runs jobs on it (or here, without one) and yields the results in submission
order, with a bounded number in flight, so memory holds a few chunks however
long the input and the output is the same as a serial run's.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Generator, Iterable
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any

from .errors import QuickDrawError


def process_pool(workers: int) -> ProcessPoolExecutor:
    """Worker processes that leave Ctrl-C to the main one and die with it.

    The terminal sends SIGINT to every process of the group; the main process
    cancels the pool and reports "interrupted", so the workers need not (they
    would each print a KeyboardInterrupt traceback). If the main process is
    killed (kill -9 runs no clean-up), its workers end too instead of running
    on as orphans.
    """
    return ProcessPoolExecutor(
        max_workers=workers, initializer=_worker_init, initargs=(os.getpid(),)
    )


def _worker_init(parent: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:  # Linux: the kernel signals us the moment the parent dies
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:  # it died before prctl took effect
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()


def _watch_parent(parent: int) -> None:
    """Elsewhere (or as a second line): exit once the parent is gone (we are reparented)."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(1)


def check_workers(workers: int, what: str = "--workers", low: int = 1) -> int:
    """Worker processes: `low` to the cores this process may use. More would only share the
    same cores, each with its own memory: 100,000 of them run the machine out of memory."""
    cores = usable_cores()
    if isinstance(workers, bool) or not isinstance(workers, int) or not low <= workers <= cores:
        raise QuickDrawError(
            f"{what} must be {low} to {cores} (the cores this process may use), got {workers!r}"
        )
    return workers


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity; all of them off Linux)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def ordered_map(
    pool: ProcessPoolExecutor | None, fn: Callable[[Any], Any], jobs: Iterable[Any]
) -> Generator[Any, None, None]:
    """``fn(job)`` for each job, in order: on `pool` (at most two jobs per worker in flight),
    or in this process when `pool` is None. Closing the generator cancels what is queued."""
    if pool is None:
        for job in jobs:
            yield fn(job)
        return
    window = 2 * pool._max_workers  # type: ignore[attr-defined]
    pending: deque[Future] = deque()
    try:
        for job in jobs:
            pending.append(pool.submit(fn, job))
            if len(pending) >= window:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        for future in pending:
            future.cancel()
