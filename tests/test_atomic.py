"""atomic_write: all or nothing, and errors that name the file the caller asked for."""

from __future__ import annotations

import pytest

from quickdraw_tools.atomic import atomic_write
from quickdraw_tools.cli import main


def test_success_replaces_and_failure_keeps_the_old_file(tmp_path):
    path = tmp_path / "sub" / "out.txt"
    with atomic_write(path, "w") as f:
        f.write("old")
    with pytest.raises(KeyboardInterrupt), atomic_write(path, "w") as f:
        f.write("half of the new")
        raise KeyboardInterrupt  # Ctrl-C halfway
    assert path.read_text() == "old"
    assert [p.name for p in path.parent.iterdir()] == ["out.txt"]  # no temporary file left


def test_unwritable_targets_are_named(tmp_path):
    (tmp_path / "afile").write_text("")
    with pytest.raises(NotADirectoryError, match=r"cannot write .*afile/x\.txt: a file is in the"):
        with atomic_write(tmp_path / "afile" / "x.txt"):
            pass
    with pytest.raises(IsADirectoryError, match=f"cannot write {tmp_path}: it is a directory"):
        with atomic_write(tmp_path):
            pass


def test_cli_names_the_output_in_one_line(tmp_path, capsys):
    source = tmp_path / "in.ndjson"
    source.write_text('{"drawing": [[[0, 10], [0, 5], [0, 1]]]}\n')
    (tmp_path / "afile").write_text("")
    (tmp_path / "adir.ndjson").mkdir()
    for out in (tmp_path / "afile" / "out.ndjson", tmp_path / "adir.ndjson"):
        assert main(["simplify", str(source), "--out", str(out), "--quiet"]) == 1
        err = capsys.readouterr().err
        assert err.startswith(f"quickdraw simplify: error: cannot write {out}: ")
        assert err.count("\n") == 1 and ".tmp" not in err


def test_permissions_are_those_of_a_plain_open(tmp_path):
    import os
    import stat

    plain, atomic = tmp_path / "plain", tmp_path / "atomic"
    with open(plain, "w"):
        pass
    with atomic_write(atomic, "w"):
        pass
    assert stat.S_IMODE(atomic.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode)
    os.chmod(atomic, 0o640)  # an existing file keeps its mode, as open() keeps it
    with atomic_write(atomic, "w"):
        pass
    assert stat.S_IMODE(atomic.stat().st_mode) == 0o640


def _full_disk(monkeypatch, tmp_path):
    """Every atomic write goes to /dev/full (ENOSPC on write), and the disk reports no room."""
    import os
    import tempfile

    from quickdraw_tools import atomic

    real = tempfile.mkstemp

    def mkstemp(dir=None, prefix="", suffix=""):  # tempfile's own argument names
        fd, name = real(dir=dir, prefix=prefix, suffix=suffix)
        os.close(fd)
        return os.open("/dev/full", os.O_WRONLY), name

    class Full:
        f_bfree, f_frsize, f_bavail = 0, 4096, 0

    monkeypatch.setattr(atomic.tempfile, "mkstemp", mkstemp)
    monkeypatch.setattr(atomic.os, "statvfs", lambda folder: Full())


def test_a_full_disk_is_named_and_loses_nothing(tmp_path, monkeypatch, shared):
    import numpy as np
    import torch

    from quickdraw_tools import formats
    from quickdraw_tools.errors import QuickDrawError
    from quickdraw_tools.models.checkpoint import save_checkpoint

    bitmaps, ckpt, text = tmp_path / "b.npy", tmp_path / "c.pt", tmp_path / "d.ndjson"
    formats.save_bitmaps(bitmaps, np.zeros((3, 784), np.uint8))
    save_checkpoint(ckpt, {"a": 1})
    formats.write_ndjson(text, [{"drawing": []}])
    before = {p: p.read_bytes() for p in (bitmaps, ckpt, text)}
    _full_disk(monkeypatch, tmp_path)
    writes = [
        (bitmaps, lambda: formats.save_bitmaps(bitmaps, np.ones((5000, 784), np.uint8))),
        (ckpt, lambda: save_checkpoint(ckpt, {"w": torch.zeros(200_000)})),
        (text, lambda: formats.write_ndjson(text, [{"drawing": [[[1] * 99, [2] * 99]]}] * 999)),
    ]
    for path, write in writes:
        with pytest.raises(QuickDrawError, match=f"^no space left on device writing {path}$"):
            write()
    assert {p: p.read_bytes() for p in before} == before  # the old files are whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.npy", "c.pt", "d.ndjson"]


def test_a_full_disk_in_the_cli_is_one_line(tmp_path, monkeypatch, shared, capsys):
    _full_disk(monkeypatch, tmp_path)
    out = tmp_path / "o.ndjson"
    raw = shared / "mirror" / "full" / "raw" / "cat.ndjson"
    assert main(["simplify", str(raw), "--out", str(out), "--quiet"]) == 1
    assert (
        capsys.readouterr().err
        == f"quickdraw simplify: error: no space left on device writing {out}\n"
    )


def test_stale_temporaries_of_killed_writes_are_removed(tmp_path):
    import os
    import time

    path = tmp_path / "out.txt"
    stale = tmp_path / ".out.txt.abcd1234.tmp"  # what a killed atomic_write of out.txt left
    other = tmp_path / ".notes.txt.abcd1234.tmp"  # another file's: not this write's to remove
    mine = tmp_path / ".out.txt.tmp"  # not our pattern
    for p in (stale, other, mine):
        p.write_text("x")
        os.utime(p, (time.time() - 3600, time.time() - 3600))
    with atomic_write(path, "w") as f:
        f.write("new")
    assert not stale.exists() and other.exists() and mine.exists()
    fresh = tmp_path / ".out.txt.efgh5678.tmp"  # younger than this process: a live writer's
    fresh.write_text("x")
    with atomic_write(path, "w") as f:
        f.write("newer")
    assert fresh.exists()
