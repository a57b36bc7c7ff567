"""Atomic file writes: a temporary file in the target's folder, then a rename.

A reader never sees a half-written file, and a crash leaves the previous file
(if any) in place.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO


def _mode_for(path: Path) -> int:
    """The permissions a plain ``open(path, "w")`` gives: the file's own, else 0666 less umask."""
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        umask = os.umask(0)  # reading the umask means setting it; put it straight back
        os.umask(umask)
        return 0o666 & ~umask


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb", **kwargs) -> Iterator[IO]:
    """Open a temporary file beside `path`; on success rename it over `path`.

    On an exception the temporary file is removed and `path` is untouched.
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, f"cannot write {path}: it is a directory")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except FileExistsError:  # mkdir met a file where a folder should be
        raise NotADirectoryError(
            errno.ENOTDIR, f"cannot write {path}: a file is in the way of its folder"
        ) from None
    except OSError as e:  # name the file asked for, not a folder above it or the temporary file
        raise type(e)(e.errno, f"cannot write {path}: {e.strerror}") from None
    try:
        os.fchmod(fd, _mode_for(path))  # mkstemp makes 0600: private to its owner
        with os.fdopen(fd, mode, **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
