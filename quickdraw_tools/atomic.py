"""All-or-nothing writes: one file (`atomic_write`), or a set of files (`staged_output`).

`atomic_write` writes a temporary file in the target's folder and renames it
over the target: a reader never sees a half-written file, and a crash leaves
the previous file (if any) in place.

`staged_output` does the same for everything one command writes into a folder
(`quickdraw convert`, `quickdraw svg`): the files are written under a hidden
staging folder beside them, and only once all of them are complete does a
commit journal (one small file, written atomically) name them; then each is
renamed into place and the journal removed. A folder staged whole
(`StagedOutput.folder`: a PNG folder of 50,000 images) is named once and put in
place by one rename, the folder it replaces moved into the staging folder first
and removed with it. A run that fails or is killed
before the journal exists leaves the folder exactly as it was (its staging
folder is removed, or, if the process was killed, by the next run). A run
killed after it is finished by the next command that writes there
(`recover`), and readers that find a journal say so instead of reading a half
swapped set (`check_no_commit`).

A folder's contents may come from anyone (an archive, a sync, a shared disk), so recovery
trusts nothing it finds there: it acts only on a journal that this module wrote (`read_journal`:
its fixed name pattern, its format marker, a staging folder that is the journal's own direct
child of the folder, every named file a plain relative path inside it, no ``..``, no
absolute path, no symbolic link followed). Anything else is refused with a message and left
alone. A subfolder of the output that is a symbolic link (``out/sketchrnn -> ../elsewhere``)
is never written through.

Disks fill: a write that runs out of space says ``no space left on device
writing FILE`` and leaves what was there before.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import stat
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, NamedTuple

from .errors import QuickDrawError

# when this process started: temporaries of ours older than that belong to killed runs
_STARTED = time.time()
_TEMP = re.compile(r"\.(?P<name>.+)\.[A-Za-z0-9_]{8}\.tmp")  # what mkstemp makes below
JOURNAL_PREFIX = ".commit-"
STAGING_PREFIX = ".staging-"
SCRATCH = ".scratch"  # inside a staging folder: work files, never committed
REPLACED = ".replaced"  # inside a staging folder: what its whole folders replace, until removed
_RUN = re.compile(r"[A-Za-z0-9_]{8}")  # what mkdtemp puts after STAGING_PREFIX
JOURNAL_FORMAT = "quickdraw-tools commit journal 1"  # the marker every journal of ours holds
MAX_JOURNAL_BYTES = 16 << 20  # a journal lists file names: far less than this


def _mode_for(path: Path) -> int:
    """The permissions a plain ``open(path, "w")`` gives: the file's own, else 0666 less umask."""
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        umask = os.umask(0)  # reading the umask means setting it; put it straight back
        os.umask(umask)
        return 0o666 & ~umask


def _out_of_space(error: BaseException, folder: Path) -> bool:
    """Whether a failed write ran out of disk: ENOSPC, or a short write (numpy's "N requested
    and M written", torch's writer) on a file system with (almost) no free space left."""
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    if isinstance(error, OSError | RuntimeError) and re.search(
        r"requested and \d+ written|write failed|unexpected pos|No space left", str(error)
    ):
        try:
            disk = os.statvfs(folder)
        except OSError:
            return False
        return disk.f_bfree * disk.f_frsize < 1 << 20
    return False


def remove_stale_temporaries(folder: Path, name: str | None = None) -> None:
    """Delete temporaries that killed writes of ours left in `folder` (of `name`, or any):
    only files matching `atomic_write`'s own pattern, last touched before this run began."""
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return
    for entry in entries:
        found = _TEMP.fullmatch(entry.name)
        if not found or (name is not None and found.group("name") != name):
            continue
        with contextlib.suppress(OSError):
            if entry.is_file(follow_symlinks=False) and entry.stat().st_mtime < _STARTED:
                os.unlink(entry.path)


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
        remove_stale_temporaries(path.parent, path.name)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except FileExistsError:  # mkdir met a file where a folder should be
        raise NotADirectoryError(
            errno.ENOTDIR, f"cannot write {path}: a file is in the way of its folder"
        ) from None
    except OSError as e:  # name the file asked for, not a folder above it or the temporary file
        if _out_of_space(e, path.parent):
            raise QuickDrawError(f"no space left on device writing {path}") from None
        raise type(e)(e.errno, f"cannot write {path}: {e.strerror}") from None
    try:
        os.chmod(tmp, _mode_for(path))  # mkstemp makes 0600: private to its owner
        with os.fdopen(fd, mode, **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if _out_of_space(e, path.parent):
            raise QuickDrawError(f"no space left on device writing {path}") from None
        raise


# --- a set of files, all or nothing ----------------------------------------------------------


class StagedOutput:
    """A staging folder whose files `commit` moves into `target`, all of them or none."""

    def __init__(self, target: Path, staging: Path):
        self.target, self.path = target, staging
        self.removed: list[str] = []  # files of `target` to delete at the commit
        self.folders: list[str] = []  # folders staged whole: each replaces its own in `target`
        self.committed = False  # the journal is written: the set lands, now or by recovery
        self.journal = target / f"{JOURNAL_PREFIX}{staging.name.removeprefix(STAGING_PREFIX)}"

    def file(self, rel: str | os.PathLike) -> Path:
        """Where to write what will become ``target / rel``."""
        return self.path / rel

    def remove(self, rel: str | os.PathLike) -> None:
        """Delete ``target / rel`` (if it exists) when the new files go in."""
        self.removed.append(str(rel))

    def scratch(self) -> Path:
        """A folder for work files that are not outputs: removed, never committed."""
        folder = self.path / SCRATCH
        folder.mkdir(exist_ok=True)
        return folder

    def folder(self, rel: str) -> Path:
        """Stage the folder ``target / rel`` whole (`rel` written with ``/``): at the commit
        the folder made here replaces it and everything in it, by one rename, however many
        files it holds. Returns where to write its files."""
        assert plain_relative(rel) and not _overlapping([*self.folders, rel]), rel
        path = self.path / rel
        path.mkdir(parents=True)
        self.folders.append(rel)
        return path

    def staged(self) -> list[str]:
        """The staged files (with ``/``, sorted), but those inside folders staged whole."""
        skip = {SCRATCH, REPLACED, *self.folders}
        files = []
        for folder, subfolders, names in os.walk(self.path):
            rel = Path(folder).relative_to(self.path).as_posix()
            prefix = "" if rel == "." else rel + "/"
            subfolders[:] = [d for d in subfolders if prefix + d not in skip]
            files += [prefix + name for name in names]
        return sorted(files)

    def commit(self) -> list[Path]:
        """Put every staged file and folder in place; returns their final paths."""
        shutil.rmtree(self.path / SCRATCH, ignore_errors=True)
        files = self.staged()
        for rel in [*files, *self.removed, *self.folders]:  # a refusal here changes nothing
            _check_no_links(self.target, rel)
        with atomic_write(self.journal, "w", encoding="utf-8") as f:
            record = {
                "format": JOURNAL_FORMAT,
                "staging": self.path.name,
                "files": files,
                "removed": self.removed,
                "folders": self.folders,
            }
            json.dump(record, f)
        self.committed = True
        _finish(self.target, self.journal)  # from here on the new set is certain to land
        return [self.target / rel for rel in [*files, *self.folders]]


def _refuse_journal(journal: Path, why: str) -> QuickDrawError:
    return QuickDrawError(
        f"{journal} is not a commit journal that quickdraw-tools wrote ({why}); left it and "
        f"everything it names alone: look at it, and remove it to write into {journal.parent}"
    )


def _is_link(path: Path) -> bool:
    try:
        return stat.S_ISLNK(os.lstat(path).st_mode)
    except FileNotFoundError:
        return False


def _link_on_the_way(target: Path, rel: str) -> Path | None:
    """The first subfolder of `target` on the way to ``target / rel`` that is a symbolic
    link, if any: a file put there would land wherever the link points."""
    folder = target
    for part in Path(rel).parts[:-1]:
        folder = folder / part
        if _is_link(folder):
            return folder
    return None


def _check_no_links(target: Path, rel: str) -> None:
    """Refuse to write ``target / rel`` through a subfolder that is a symbolic link."""
    link = _link_on_the_way(target, rel)
    if link is not None:
        raise QuickDrawError(
            f"{link} is a symbolic link (to {os.readlink(link)}): refusing to write through "
            f"it; make it a real folder, or give another output folder than {target}"
        )


def plain_relative(rel: object) -> bool:
    """A path that names something inside a folder: relative, no ``..`` or ``.``, no empty
    part, no NUL, written as the journal writes it."""
    if not isinstance(rel, str) or not rel or "\0" in rel or rel.startswith("/"):
        return False
    parts = rel.split("/")
    return all(part not in ("", ".", "..") for part in parts)


def _overlapping(names: list[str]) -> bool:
    """Whether a name repeats, or one lies inside another (``a`` and ``a/b``)."""
    seen = set(names)
    return len(seen) < len(names) or any(
        "/".join(rel.split("/")[:k]) in seen for rel in names for k in range(1, rel.count("/") + 1)
    )


class Journal(NamedTuple):
    """A commit journal, checked (`read_journal`)."""

    staging: Path  # the staging folder
    files: list[str]  # staged files to rename into place
    removed: list[str]  # files of the folder to delete
    folders: list[str]  # staged folders that replace their own whole


def read_journal(target: Path, journal: Path) -> Journal:
    """A commit journal in `target`, checked to be one this module wrote and to name nothing
    outside `target`; raises QuickDrawError otherwise, having changed nothing."""
    name = journal.name.removeprefix(JOURNAL_PREFIX)
    if not _RUN.fullmatch(name):
        raise _refuse_journal(journal, f"its name is not {JOURNAL_PREFIX} and 8 letters or digits")
    info = os.lstat(journal)
    if not stat.S_ISREG(info.st_mode):
        raise _refuse_journal(journal, "it is not a plain file")
    if info.st_size > MAX_JOURNAL_BYTES:
        raise _refuse_journal(journal, f"it is over {MAX_JOURNAL_BYTES:,} bytes")
    try:
        record = json.loads(journal.read_bytes())
    except (ValueError, UnicodeDecodeError):
        raise _refuse_journal(journal, "it is not JSON") from None
    if not isinstance(record, dict) or record.get("format") != JOURNAL_FORMAT:
        raise _refuse_journal(journal, f"it has no format marker {JOURNAL_FORMAT!r}")
    keys = {"format", "staging", "files", "removed"}
    if set(record) not in (keys, keys | {"folders"}):  # journals before whole folders: none
        raise _refuse_journal(journal, f"its keys are {sorted(record)}")
    if record["staging"] != STAGING_PREFIX + name:
        raise _refuse_journal(
            journal, f"its staging folder {record['staging']!r} is not {STAGING_PREFIX + name!r}"
        )
    staging = target / record["staging"]
    for folder in (staging, staging / REPLACED):  # REPLACED: where replaced folders go
        if _is_link(folder) or (folder.exists() and not folder.is_dir()):
            raise _refuse_journal(journal, f"{folder.relative_to(target)} is not a real folder")
    record.setdefault("folders", [])
    for key in ("files", "removed", "folders"):
        names = record[key]
        if not isinstance(names, list):
            raise _refuse_journal(journal, f"its {key!r} is not a list")
        for rel in names:
            if not plain_relative(rel):
                raise _refuse_journal(journal, f"{key!r} names {rel!r}, not a file inside it")
            link = _link_on_the_way(target, rel) or _link_on_the_way(staging, rel)
            if link is not None:
                raise _refuse_journal(journal, f"{link} on the way to {rel!r} is a symbolic link")
            source = staging / rel
            if key == "files" and (_is_link(source) or source.is_dir()):
                raise _refuse_journal(journal, f"{source} is not a plain file")
            if key == "folders" and (_is_link(source) or source.exists() != source.is_dir()):
                raise _refuse_journal(journal, f"{source} is not a real folder")
    if _overlapping([*record["files"], *record["folders"]]):
        raise _refuse_journal(journal, "it names a file or folder twice, or one inside another")
    return Journal(staging, record["files"], record["removed"], record["folders"])


def _finish(target: Path, journal: Path) -> None:
    """Carry out a commit journal (checked by `read_journal`): move what is still staged into
    place, delete what it says, then remove the journal and the staging folder. Safe to repeat
    after a crash."""
    staging, files, removed, folders = read_journal(target, journal)
    for rel in removed:
        if rel not in files:
            (target / rel).unlink(missing_ok=True)
    for rel in files:
        source, dest = staging / rel, target / rel
        if source.exists():  # else moved already, before a crash
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(source, dest)
    for k, rel in enumerate(folders):
        source, dest = staging / rel, target / rel
        if not source.is_dir():  # moved already, before a crash
            continue
        if os.path.lexists(dest):  # the folder it replaces goes into the staging folder first
            old = staging / REPLACED / str(k)
            old.parent.mkdir(exist_ok=True)
            if os.path.lexists(old):  # a crash moved it, and a folder came back to `dest`
                _remove(old)
            os.replace(dest, old)
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(source, dest)
    journal.unlink(missing_ok=True)
    shutil.rmtree(staging, ignore_errors=True)


def _remove(path: Path) -> None:
    """Delete a file, a link (not what it points at) or a folder and everything in it."""
    if path.is_dir() and not _is_link(path):
        shutil.rmtree(path)
    else:
        path.unlink()


def recover(target: Path) -> None:
    """Finish the commits a killed run left in `target`, and remove the staging folders of
    runs killed before they committed. Call it holding the folder's writer lock: a live run
    holds that lock while it stages, so every other staging folder is a dead run's. Every
    journal is checked before any is carried out: one that this module did not write stops
    the recovery (QuickDrawError), with nothing changed."""
    if not target.is_dir():
        return
    journals = [
        j for j in sorted(target.glob(f"{JOURNAL_PREFIX}*")) if _TEMP.fullmatch(j.name) is None
    ]
    for journal in journals:
        read_journal(target, journal)
    for journal in journals:
        _finish(target, journal)
    for staging in target.glob(f"{STAGING_PREFIX}*"):
        # only our own pattern, and never through a link: rmtree would follow none, but a
        # link is not ours to remove either
        if _RUN.fullmatch(staging.name.removeprefix(STAGING_PREFIX)) and not _is_link(staging):
            if staging.is_dir():
                shutil.rmtree(staging, ignore_errors=True)
    remove_stale_temporaries(target)


def check_no_commit(folder: Path) -> None:
    """Raise if a commit into `folder` was interrupted: its files may be half old, half new
    (or if a journal there is not one of ours: `read_journal` says so)."""
    journals = [p for p in folder.glob(f"{JOURNAL_PREFIX}*") if _TEMP.fullmatch(p.name) is None]
    for journal in journals:
        read_journal(folder, journal)
    if journals:
        raise QuickDrawError(
            f"{folder} was being written by a run that was interrupted while putting its files "
            "in place; run the same command again (or any convert into it) to finish it"
        )


@contextlib.contextmanager
def _writer_lock(target: Path) -> Iterator[None]:
    """One staged writer per folder at a time: an advisory lock on the folder itself."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        yield
        return
    fd = os.open(target, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise QuickDrawError(
                f"another run is writing to {target}; wait for it to finish"
            ) from None
        yield
    finally:
        os.close(fd)  # closing releases the lock


@contextlib.contextmanager
def staged_output(target: str | os.PathLike) -> Iterator[StagedOutput]:
    """Stage files for `target`; the caller calls `commit()` when all are written. On an
    exception (or without a commit) the staging folder is removed and `target` is unchanged
    (folders made for it are removed again)."""
    target = Path(target)
    made = [f for f in (target, *target.parents) if not f.exists()]  # deepest first
    try:
        target.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise QuickDrawError(f"cannot write into {target}: it is a file, not a folder") from None
    stage = None
    try:
        with _writer_lock(target):
            recover(target)
            stage = StagedOutput(target, Path(tempfile.mkdtemp(dir=target, prefix=STAGING_PREFIX)))
            try:
                yield stage
            finally:
                if not stage.committed:  # else the set lands (or the next writer finishes it)
                    shutil.rmtree(stage.path, ignore_errors=True)
    finally:
        if stage is None or not stage.committed:
            for folder in made:
                with contextlib.suppress(OSError):  # not empty: a file of someone else's
                    folder.rmdir()
