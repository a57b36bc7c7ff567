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
