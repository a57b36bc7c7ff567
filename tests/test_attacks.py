"""Crafted files: what a planted journal, a symlinked folder, a crafted .npz or ndjson file, a
file name that is not UTF-8 or one with control characters can make the toolkit do (issue 20,
items 1 and 4). Each case fails in one line, exits non-zero, and changes nothing that was there.
`scripts/red_team.py` replays them through the command."""

from __future__ import annotations

import io
import json
import os
import pickle
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from attack_support import one_line_error, run_limited

from quickdraw_tools import atomic, formats
from quickdraw_tools.cli import main
from quickdraw_tools.errors import QuickDrawError, printable
from quickdraw_tools.strokes import MAX_POINTS


def snapshot(folder: Path) -> dict[str, bytes | str]:
    """Every entry under `folder`, hidden ones and links too: files by content, links by
    target, folders by name."""
    out: dict[str, bytes | str] = {}
    for p in sorted(folder.rglob("*")):
        rel = str(p.relative_to(folder))
        if p.is_symlink():
            out[rel] = "-> " + os.readlink(p)
        elif p.is_file():
            out[rel] = p.read_bytes()
        else:
            out[rel] = "dir"
    return out


def small_cake(shared, tmp_path: Path, n: int = 60) -> Path:
    lines = (shared / "training" / "cake.ndjson").read_text().splitlines()[:n]
    path = tmp_path / "cake.ndjson"
    path.write_text("\n".join(lines) + "\n")
    return path


# --- 1. output folders: journals and links ---------------------------------------------------


def planted(tmp_path: Path, name: str, record) -> tuple[Path, Path]:
    """`out/<name>` holding `record` (JSON, or text as given), with a victim folder and file
    beside `out` that the journal names."""
    out, victim = tmp_path / "out", tmp_path / "victim"
    out.mkdir()
    victim.mkdir()
    (victim / "a").write_text("x")
    (tmp_path / "victim2").mkdir()
    (tmp_path / "victim2" / "precious.txt").write_text("precious")
    text = record if isinstance(record, str) else json.dumps(record)
    (out / name).write_text(text)
    return out, victim


MARK = atomic.JOURNAL_FORMAT
CRAFTED_JOURNALS = {
    # the attack: a journal of another name, with paths outside the folder
    "dotdot": (
        ".commit-x",
        {"staging": "../victim", "files": [], "removed": ["../victim2/precious.txt"]},
    ),
    # our name pattern and marker, but `..` and absolute paths in it
    "our-name-dotdot": (
        ".commit-abcd1234",
        {
            "format": MARK,
            "staging": ".staging-abcd1234",
            "files": ["a/../../victim/a"],
            "removed": [],
        },
    ),  # fmt: skip
    "absolute": (
        ".commit-abcd1234",
        {
            "format": MARK,
            "staging": ".staging-abcd1234",
            "files": [],
            "removed": ["/tmp/victim2/precious.txt"],
        },
    ),  # fmt: skip
    "other-staging": (
        ".commit-abcd1234",
        {"format": MARK, "staging": "../victim", "files": [], "removed": []},
    ),
    # a journal as this toolkit wrote it before the marker: not provably ours
    "no-marker": (
        ".commit-abcd1234",
        {"staging": ".staging-abcd1234", "files": [], "removed": ["../victim2/precious.txt"]},
    ),
    "not-json": (".commit-abcd1234", "rm -rf /"),
}


@pytest.mark.parametrize("case", sorted(CRAFTED_JOURNALS))
def test_a_planted_journal_is_refused_and_nothing_changes(shared, tmp_path, capsys, case):
    """Recovery acts only on journals this toolkit wrote; anything else is refused in one line
    and left alone, with nothing inside or outside the folder touched (convert and svg)."""
    name, record = CRAFTED_JOURNALS[case]
    out, _ = planted(tmp_path, name, record)
    source = small_cake(shared, tmp_path)
    before = snapshot(tmp_path)
    for command in (
        ["convert", str(source), "--out", str(out), "--quiet"],
        ["svg", str(source), "--out", str(out), "--limit", "2", "--quiet"],
    ):
        assert main(command) == 1
        one_line_error(capsys, f"{out / name} is not a commit journal that quickdraw-tools wrote")
        assert snapshot(tmp_path) == before


def test_a_journal_that_names_links_is_refused(tmp_path):
    """A journal in our own form whose staging folder, or a file in it, is a symbolic link, or
    whose file lies under a symlinked subfolder: refused before anything moves."""
    out = tmp_path / "out"
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "secret").write_text("secret")
    cases = {
        "staging is a link": lambda s: s.symlink_to(tmp_path / "elsewhere"),
        "staged file is a link": lambda s: (s.mkdir(), (s / "f").symlink_to("/etc/passwd")),
        "a folder on the way is a link": lambda s: (
            s.mkdir(),
            (s / "d").symlink_to(tmp_path / "elsewhere"),
        ),
    }
    for why, make in cases.items():
        out.mkdir()
        make(out / ".staging-abcd1234")
        rel = "d/secret" if "folder" in why else "f"
        (out / ".commit-abcd1234").write_text(json.dumps(
            {"format": MARK, "staging": ".staging-abcd1234", "files": [rel], "removed": []}
        ))  # fmt: skip
        before = snapshot(tmp_path)
        with pytest.raises(QuickDrawError, match="not a commit journal that quickdraw-tools"):
            atomic.recover(out)
        assert snapshot(tmp_path) == before, why
        shutil.rmtree(out)  # removes the links, never what they point at


def test_a_symlinked_subfolder_of_the_output_is_refused(shared, tmp_path, capsys):
    """`out/sketchrnn -> ../elsewhere`: convert refuses to write through it, and nothing lands
    there or in `out`."""
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    (out / "sketchrnn").symlink_to("../elsewhere")
    source = small_cake(shared, tmp_path)
    before = snapshot(tmp_path)
    assert main(["convert", str(source), "--out", str(out), "--quiet"]) == 1
    one_line_error(capsys, f"{out / 'sketchrnn'} is a symbolic link", "refusing to write")
    assert snapshot(tmp_path) == before
    assert not list(elsewhere.iterdir())


def test_our_own_journal_still_finishes_and_a_failed_run_leaves_no_folder(shared, tmp_path):
    """The journals of this toolkit are still carried out (the kill-9 recovery); and a refused
    run into a folder that did not exist leaves none behind."""
    out = tmp_path / "out"
    with atomic.staged_output(out) as stage:
        stage.file("a.txt").write_text("new")
        stage.journal.write_text(json.dumps({"format": MARK, "staging": stage.path.name,
                                             "files": ["a.txt"], "removed": []}))  # fmt: skip
        stage.committed = True  # killed here: the next writer finishes it
    atomic.recover(out)
    assert (out / "a.txt").read_text() == "new" and sorted(os.listdir(out)) == ["a.txt"]
    bad = tmp_path / "bad.ndjson"
    bad.write_text('{"drawing": [[[0, 1], [0, 1]]]}\n{broken\n')
    assert main(["convert", str(bad), "--out", str(tmp_path / "new" / "deeper"), "--quiet"]) == 1
    assert not (tmp_path / "new").exists()


def test_readers_name_a_planted_journal_too(shared, tmp_path):
    """A reader of a folder with a journal that is not ours says so (rather than calling it an
    interrupted commit that the next run would finish)."""
    out = tmp_path / "out"
    assert main(["convert", str(small_cake(shared, tmp_path)), "--out", str(out), "--quiet"]) == 0
    (out / "sketchrnn" / ".commit-x").write_text('{"staging": "../..", "files": [], "removed": []}')
    with pytest.raises(QuickDrawError, match=r"\.commit-x is not a commit journal that quick"):
        formats.load_sketchrnn_npz(out / "sketchrnn" / "cake.npz")


# --- 4. files: .npz bombs, long lines, names --------------------------------------------------


def npz_with_train(path: Path, train: np.ndarray) -> Path:
    """A sketch-rnn .npz whose train split pickles `train` (an object array) as numpy does,
    with shared references kept shared (pickle's memo)."""
    empty = io.BytesIO()
    np.save(empty, np.empty(0, dtype=object), allow_pickle=True)
    header = io.BytesIO()
    shape = {"descr": "|O", "fortran_order": False, "shape": train.shape}
    np.lib.format.write_array_header_1_0(header, shape)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("train.npy", header.getvalue() + pickle.dumps(train, protocol=3))
        zf.writestr("valid.npy", empty.getvalue())
        zf.writestr("test.npy", empty.getvalue())
    return path


def one(item) -> np.ndarray:
    array = np.empty(1, dtype=object)
    array[0] = item
    return array


def test_a_nested_list_bomb_is_refused_by_its_count_before_it_is_built(tmp_path):
    """A 1 KB .npz whose drawing is a list of 10,000 references to a list of 10,000
    references to one row would be a 3 GB array: refused by counting, in a process held to
    1 GB of memory."""
    rows = [[0, 0, 1]] * 10_000
    path = npz_with_train(tmp_path / "bomb.npz", one([rows] * 10_000))
    assert path.stat().st_size < 2000
    done = run_limited(["svg", str(path), "--out", str(tmp_path / "svg"), "--quiet"])
    assert done.returncode == 1 and done.stderr.count("\n") == 1, done.stderr[-500:]
    assert "bomb.npz[train][0]: nested lists of more than 300,000 numbers" in done.stderr
    # two levels (a (n, 3) table) past the drawing's limit: refused the same way
    with pytest.raises(QuickDrawError, match=r"\[train\]\[0\]: nested lists of more than"):
        formats.load_sketchrnn_npz(npz_with_train(tmp_path / "rows.npz", one(rows * 11)))
    assert not (tmp_path / "svg").exists()


def test_a_ragged_drawing_is_one_line(tmp_path, capsys):
    path = npz_with_train(tmp_path / "ragged.npz", one([[0, 0, 1], [1, 1]]))
    assert main(["svg", str(path), "--out", str(tmp_path / "svg"), "--quiet"]) == 1
    one_line_error(capsys, "ragged.npz[train][0]: row 1 is 2 values, not 3 numbers")
    path = npz_with_train(tmp_path / "text.npz", one([[0, 0, "x"]]))
    with pytest.raises(QuickDrawError, match="row 0 holds something other than numbers"):
        formats.load_sketchrnn_npz(path)


def test_references_to_one_drawing_count_as_copies(tmp_path):
    """1,000,000 references to one 5,000-point drawing (a 5 KB file) are 30 GB of drawings:
    refused by the limit a file holding the copies would meet, quickly, in 1 GB of memory;
    fewer references load, sharing one array."""
    drawing = np.zeros((5000, 3), dtype=np.int16)
    many = np.empty(1_000_000, dtype=object)
    many[:] = [drawing] * len(many)
    path = npz_with_train(tmp_path / "refs.npz", many)
    assert path.stat().st_size < 100_000
    done = run_limited(["svg", str(path), "--out", str(tmp_path / "svg"), "--limit", "2"])
    assert done.returncode == 1 and done.stderr.count("\n") == 1, done.stderr[-500:]
    assert f"hold over {formats.MAX_MEMBER_BYTES:,} bytes of stroke-3 rows" in done.stderr
    few = np.empty(1000, dtype=object)
    few[:] = [drawing] * len(few)
    loaded = formats.load_sketchrnn_npz(npz_with_train(tmp_path / "few.npz", few))["train"]
    assert len(loaded) == 1000 and len({id(a) for a in loaded}) == 1


def test_a_drawing_longer_than_the_limit_never_lands_in_an_npz(tmp_path, capsys):
    """One drawing of MAX_POINTS + 1 points: refused by convert (file:line), skipped with
    --on-error skip, refused by the .npz writer and reader."""
    xs = list(range(256)) * (MAX_POINTS // 256 + 1)
    long_line = json.dumps({"drawing": [[xs[: MAX_POINTS + 1], xs[: MAX_POINTS + 1]]]})
    good = json.dumps({"drawing": [[[0, 10, 20], [0, 5, 9]]]})
    path = tmp_path / "long.ndjson"
    path.write_text(f"{good}\n{long_line}\n{good}\n")
    out = tmp_path / "out"
    assert main(["convert", str(path), "--out", str(out), "--quiet"]) == 1
    one_line_error(capsys, f"{path}:2: the drawing has {MAX_POINTS + 1:,} points; at most")
    assert not out.exists()
    assert main(["convert", str(path), "--out", str(out), "--quiet", "--on-error", "skip"]) == 0
    assert "skipped 1" in capsys.readouterr().out
    npz = formats.load_sketchrnn_npz(out / "sketchrnn" / "long.npz")
    assert max(len(d) for s in npz.values() for d in s) == 3
    big = np.zeros((MAX_POINTS + 1, 3), dtype=np.int16)
    with pytest.raises(QuickDrawError, match=f"at most {MAX_POINTS:,} points"):
        formats.save_sketchrnn_npz(tmp_path / "x.npz", {"train": [big], "valid": [], "test": []})
    assert not (tmp_path / "x.npz").exists()
    with pytest.raises(QuickDrawError, match=f"at most {MAX_POINTS:,} points"):
        formats.load_sketchrnn_npz(npz_with_train(tmp_path / "y.npz", one(big)))


def test_a_line_of_12_million_points_is_refused_within_a_memory_bound(tmp_path):
    """One ndjson line of 12,000,000 points (96 MB; about 8 times that to parse whole): refused,
    naming file:line, in a process held to 512 MB, never read whole; --on-error skip goes on."""
    xs = ",".join(["255"] * 12_000_000)
    path = tmp_path / "huge.ndjson"
    good = json.dumps({"drawing": [[[0, 10, 20], [0, 5, 9]]]})
    with open(path, "w") as f:
        f.write(good + "\n" + '{"drawing": [[[' + xs + "], [" + xs + "]]]}\n" + good + "\n")
    out = tmp_path / "out"
    commands = [
        ["convert", str(path), "--out", str(out)],
        ["simplify", str(path), "--out", str(tmp_path / "s.ndjson")],
        ["svg", str(path), "--out", str(out)],
    ]
    for command in commands:
        done = run_limited([*command, "--quiet"], memory=512 << 20)
        assert done.returncode == 1 and done.stderr.count("\n") == 1, done.stderr[-500:]
        assert f"{path}:2: malformed line: the line is over 8,388,608 bytes" in done.stderr
    assert not out.exists()
    done = run_limited(
        ["convert", str(path), "--out", str(out), "--quiet", "--on-error", "skip"], 512 << 20
    )
    assert done.returncode == 0 and "skipped 1" in done.stdout, done.stderr[-500:]


def test_a_bin_drawing_past_the_limit_is_refused(tmp_path):
    path = tmp_path / "long.bin"
    record = {"drawing": [[list(range(256)) * 255, [0] * 65280]] * 2}
    formats.write_binary(path, [record])
    with pytest.raises(QuickDrawError, match=f"drawing 0 has more than {MAX_POINTS:,} points"):
        list(formats.iter_binary(path))


def test_names_that_are_not_utf8_are_one_line(shared, tmp_path, capsys):
    """A file name or --word of bytes that are not UTF-8 (Python holds them as lone
    surrogates, which no file or terminal takes): one line, nothing written."""
    name = os.fsdecode(b"\xffcake.ndjson")
    path = tmp_path / name
    path.write_text((shared / "training" / "cake.ndjson").read_text().split("\n", 1)[0] + "\n")
    for command in (["convert", str(path), "--out", str(tmp_path / "o")],
                    ["svg", str(path), "--out", str(tmp_path / "o")]):  # fmt: skip
        assert main([*command, "--quiet"]) == 1
        one_line_error(capsys, "file name '\\udcffcake.ndjson' is not UTF-8 text")
        assert not (tmp_path / "o").exists()
    svgs = tmp_path / "svgs"
    assert main(["svg", str(shared / "training" / "cake.ndjson"), "--limit", "1", "--out",
                 str(svgs), "--quiet"]) == 0  # fmt: skip
    capsys.readouterr()
    word = os.fsdecode(b"\xe9clair")  # Latin-1 "eclair"
    assert main(["import-svg", str(svgs), "--word", word, "--out", str(tmp_path / "w.ndjson")]) == 1
    one_line_error(capsys, "--word '\\udce9clair' is not UTF-8 text")
    assert not (tmp_path / "w.ndjson").exists()


def test_control_characters_in_names_are_escaped_in_tables_and_messages(shared, tmp_path, capsys):
    """A file with an escape sequence, a newline or a direction override in its name: the
    summary table (whose category is the records' word) and the one-line errors show it
    escaped, never raw. A category named with them (by a file whose records name no word, or
    by the records' word) is refused in one line that shows it escaped."""
    lines = (shared / "training" / "cake.ndjson").read_text().splitlines()[:30]
    name = "ca\x1b[31mke\u202e"
    path = tmp_path / f"{name}.ndjson"
    path.write_text("\n".join(lines) + "\n")
    assert main(["convert", str(path), "--out", str(tmp_path / "o"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\u202e" not in out
    header, row = out.splitlines()[:2]
    assert row.startswith("cake  ") and row.endswith(" simplified ca\\x1b[31mke\\u202e.ndjson")
    # escaped, and the columns still line up
    assert row.index(" simplified ca\\x1b") + 1 == header.index("source")
    quoted = '"word":' + json.dumps(name)
    crafted = {  # the category is the name of a file whose records name no word, or their word
        f"{name}.ndjson": [line.replace('"word":"cake",', "") for line in lines],
        "cake.ndjson": [line.replace('"word":"cake"', quoted) for line in lines],
    }
    for file, records in crafted.items():
        named = tmp_path / "in" / file
        named.parent.mkdir(exist_ok=True)
        named.write_text("\n".join(records) + "\n")
        assert main(["convert", str(named), "--out", str(tmp_path / "o3"), "--quiet"]) == 1
        err = one_line_error(capsys, f"category name '{printable(name)}' cannot name files")
        assert "\x1b" not in err and "\u202e" not in err
        assert not (tmp_path / "o3").exists()
    bad = tmp_path / "x\n\x1b[2Jy.ndjson"
    bad.write_text(lines[0] + "\n{broken\n")
    assert main(["convert", str(bad), "--out", str(tmp_path / "o2"), "--quiet"]) == 1
    err = one_line_error(capsys, "x\\n\\x1b[2Jy.ndjson:2: malformed line")
    assert "\x1b" not in err
    assert printable("a\tb\x9bc\ud800", keep="\t") == "a\tb\\x9bc\\ud800"
