"""Folders staged whole (`atomic.StagedOutput.folder`): a PNG folder of any size lands by one
rename, all or nothing like single files; a crash between the renames is finished by the next
writer; a crafted journal naming folders is refused like any other (issue 23, item 5)."""

from __future__ import annotations

import io
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from quickdraw_tools import atomic
from quickdraw_tools.convert import Source, convert
from quickdraw_tools.errors import QuickDrawError
from quickdraw_tools.images import png_images
from quickdraw_tools.rows import read_rows


def tree(folder: Path) -> dict[str, bytes | str]:
    """Every entry under `folder`: files by content, links by target, folders by name."""
    out: dict[str, bytes | str] = {}
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder).as_posix()
        if p.is_symlink():
            out[rel] = "-> " + os.readlink(p)
        elif p.is_file():
            out[rel] = p.read_bytes()
        else:
            out[rel] = "dir"
    return out


def old_set(out: Path) -> None:
    """What an earlier run left: a category folder, a folder beside it, a file above them."""
    files = {
        "png/train/cat/1.png": "old",
        "png/train/cat/2.png": "old",
        "png/train/dog/3.png": "dog",
        "png/cat.rows.csv": "old rows",
    }
    for rel, text in files.items():
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_text(text)


def stage_new(stage: atomic.StagedOutput) -> None:
    folder = stage.folder("png/train/cat")
    (folder / "4.png").write_text("new")
    (folder / "sub").mkdir()
    (folder / "sub" / "5.png").write_text("new")
    stage.file("png/cat.rows.csv").write_text("new rows")
    stage.folder("png/test/cat")  # empty: an empty folder lands too


def test_a_staged_folder_replaces_its_own_whole_and_nothing_else(tmp_path):
    out = tmp_path / "out"
    old_set(out)
    with atomic.staged_output(out) as stage:
        stage_new(stage)
        assert stage.staged() == ["png/cat.rows.csv"]  # the folders' files are not listed
        landed = stage.commit()
    assert {p.relative_to(out).as_posix() for p in landed} == {
        "png/cat.rows.csv", "png/train/cat", "png/test/cat"
    }  # fmt: skip
    assert tree(out) == {
        "png": "dir", "png/cat.rows.csv": b"new rows", "png/test": "dir", "png/test/cat": "dir",
        "png/train": "dir", "png/train/cat": "dir", "png/train/cat/4.png": b"new",
        "png/train/cat/sub": "dir", "png/train/cat/sub/5.png": b"new",
        "png/train/dog": "dir", "png/train/dog/3.png": b"dog",
    }  # fmt: skip


def test_a_failed_run_leaves_the_old_folder(tmp_path):
    out = tmp_path / "out"
    old_set(out)
    before = tree(out)
    with pytest.raises(RuntimeError), atomic.staged_output(out) as stage:
        stage_new(stage)
        raise RuntimeError("the run fails before its commit")
    assert tree(out) == before


@pytest.mark.parametrize("moved", [0, 1, 2])
def test_a_commit_killed_between_the_renames_is_finished_by_the_next_writer(tmp_path, moved):
    """kill -9 after 0, 1 or 2 of a folder's renames (the old folder moved away, the new one
    moved in): readers refuse the folder, `recover` (the next writer) puts the new set in."""
    out = tmp_path / "out"
    old_set(out)
    real = atomic._finish

    def killed(target: Path, journal: Path) -> None:
        staging, files, _, folders = atomic.read_journal(target, journal)
        assert files == ["png/cat.rows.csv"] and folders == ["png/train/cat", "png/test/cat"]
        if moved >= 1:  # the folder it replaces, into the staging folder
            (staging / atomic.REPLACED).mkdir()
            os.replace(target / folders[0], staging / atomic.REPLACED / "0")
        if moved >= 2:  # and the new one in place
            os.replace(staging / folders[0], target / folders[0])
        raise KeyboardInterrupt

    atomic._finish = killed
    try:
        with pytest.raises(KeyboardInterrupt), atomic.staged_output(out) as stage:
            stage_new(stage)
            stage.commit()
    finally:
        atomic._finish = real
    with pytest.raises(QuickDrawError, match="interrupted while putting its files in place"):
        atomic.check_no_commit(out)
    atomic.recover(out)
    assert (out / "png/train/cat/4.png").read_text() == "new"
    assert (out / "png/train/cat/sub/5.png").read_text() == "new"
    assert not (out / "png/train/cat/1.png").exists()
    assert (out / "png/cat.rows.csv").read_text() == "new rows"
    assert (out / "png/train/dog/3.png").read_text() == "dog"
    assert sorted(os.listdir(out)) == ["png"]  # no journal, no staging folder left


def journal(folders: list, files: list | None = None) -> dict:
    return {"format": atomic.JOURNAL_FORMAT, "staging": ".staging-abcd1234",
            "files": files or [], "removed": [], "folders": folders}  # fmt: skip


CRAFTED = {
    "dotdot": (journal(["png/../../victim"]), None),
    "absolute": (journal(["/tmp/victim"]), None),
    "staged folder is a link": (journal(["png/cat"]), "png/cat"),
    "replaced is a link": (journal(["png/cat"]), ".replaced"),
    "a link on the way": (journal(["png/cat"]), "png"),
    "a file inside a folder": (journal(["png/cat"], ["png/cat/x.png"]), None),
    "a folder inside a folder": (journal(["png", "png/cat"]), None),
    "folders not a list": ({**journal([]), "folders": "png"}, None),
    "an unknown key": ({**journal([]), "more": []}, None),
}


@pytest.mark.parametrize("case", sorted(CRAFTED))
def test_a_crafted_journal_naming_folders_is_refused_and_nothing_changes(tmp_path, case):
    """A journal in our own form whose folders leave the output folder, run through a link, or
    overlap: refused before anything moves, inside or outside the folder."""
    record, link = CRAFTED[case]
    out, victim = tmp_path / "out", tmp_path / "victim"
    victim.mkdir()
    (victim / "precious.txt").write_text("precious")
    (out / "png" / "cat").mkdir(parents=True)
    (out / "png" / "cat" / "1.png").write_text("ours")
    staging = out / ".staging-abcd1234"
    staging.mkdir()
    for rel in ("png", "png/cat", ".replaced"):
        if rel == link:
            (staging / rel).symlink_to(victim)
        elif rel != ".replaced" and not (staging / rel).parent.is_symlink():
            (staging / rel).mkdir()
    (out / ".commit-abcd1234").write_text(json.dumps(record))
    before = tree(tmp_path)
    with pytest.raises(QuickDrawError, match="not a commit journal that quickdraw-tools wrote"):
        atomic.recover(out)
    assert tree(tmp_path) == before
    shutil.rmtree(out)  # removes the links, never what they point at
    assert (victim / "precious.txt").read_text() == "precious"


# --- the PNG writer ---------------------------------------------------------------------------


def test_png_images_decode_to_the_bitmaps_and_are_deterministic():
    rng = np.random.default_rng(0)
    for shape in ((3, 64, 64), (2, 17, 40), (1, 1, 1)):
        images = rng.integers(0, 256, size=shape, dtype=np.uint8)
        images[0, : shape[1] // 2] = 0  # runs, as in a drawing's black background
        encoded = png_images(images)
        assert encoded == png_images(images.copy())
        for image, data in zip(images, encoded, strict=True):
            with Image.open(io.BytesIO(data)) as decoded:
                assert decoded.mode == "L" and decoded.size == shape[:0:-1]
                np.testing.assert_array_equal(np.asarray(decoded), image)
        for image, data in zip(images, png_images(images, invert=True), strict=True):
            with Image.open(io.BytesIO(data)) as decoded:
                np.testing.assert_array_equal(np.asarray(decoded), 255 - image)


def test_png_with_bitmaps_draws_each_drawing_once_and_the_same_pixels(
    shared, tmp_path, monkeypatch
):
    """`--formats png,bitmap` (and png,mnist) renders once and writes its PNGs from the
    bitmaps: the same pixels as a PNG-only run, at other settings too."""
    from quickdraw_tools import raster

    drawn = []
    real = raster.rasterize_many

    def counting(drawings, *args, **kwargs):
        out = real(drawings, *args, **kwargs)
        drawn.append(len(out))
        return out

    monkeypatch.setattr(raster, "rasterize_many", counting)
    cake = Source("cake", shared / "training" / "cake.ndjson")
    kw = dict(max_per_category=90, progress=False, size=40, line_width=8.0, padding=4.0)
    convert([cake], tmp_path / "alone", ["png"], **kw)
    assert sum(drawn) == 90
    for formats in (["png", "bitmap"], ["png", "mnist"]):
        drawn.clear()
        out = tmp_path / "-".join(formats)
        convert([cake], out, formats, **kw)
        assert sum(drawn) == 90, formats  # once, for the bitmaps
        rows = read_rows(out / "png" / "cake.rows.csv")
        assert rows == read_rows(tmp_path / "alone" / "png" / "cake.rows.csv")
        for row in rows:
            mine, alone = (Image.open(o / "png" / row["file"]) for o in (out, tmp_path / "alone"))
            with mine, alone:
                np.testing.assert_array_equal(np.asarray(mine), np.asarray(alone))
