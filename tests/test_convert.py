"""`quickdraw convert` end to end on real files: one split, every format, serial == parallel."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import warnings

import numpy as np
import pytest

from quickdraw_tools import formats
from quickdraw_tools.cli import main
from quickdraw_tools.convert import Source, convert
from quickdraw_tools.errors import QuickDrawError
from quickdraw_tools.raster import rasterize_many
from quickdraw_tools.rows import read_rows
from quickdraw_tools.splits import split_sizes
from quickdraw_tools.strokes import drawing_to_stroke3


def _tree_digest(root):
    """SHA-256 of every file below `root`; of a manifest, the digests it lists (its run ids
    and times differ from run to run)."""
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.name == "manifest.json":
            files = json.loads(p.read_text())["files"]
            out[str(p.relative_to(root))] = {
                k: v["sha256"] for k, v in files.items() if not k.endswith("manifest.json")
            }
        elif p.is_file():
            out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def test_convert_all_formats_from_one_split(shared, tmp_path):
    src = shared / "training"
    sources = [Source(c, src / f"{c}.ndjson") for c in ("cake", "snowman")]
    results = convert(
        sources, tmp_path, ["sketchrnn", "bitmap", "mnist"], max_per_category=300, progress=False
    )
    assert [r.category for r in results] == ["cake", "snowman"]
    for r in results:
        assert r.sizes == split_sizes(300 - r.duplicates) and not r.raw
        npz = formats.load_sketchrnn_npz(tmp_path / "sketchrnn" / f"{r.category}.npz")
        assert {k: len(v) for k, v in npz.items()} == r.sizes
        assert all(a.dtype == np.int16 and a.shape[1] == 3 for v in npz.values() for a in v)
        bitmaps = formats.load_bitmaps(tmp_path / "bitmap" / f"{r.category}.npy")
        counts = json.loads((tmp_path / "bitmap" / f"{r.category}.splits.json").read_text())
        assert bitmaps.shape == (sum(r.sizes.values()), 784)
        assert [counts[s] for s in ("train", "valid", "test")] == list(r.sizes.values())
        # the bitmap rows are the same drawings, in the same order, as the npz splits
        test_rows = bitmaps[r.sizes["train"] + r.sizes["valid"] :]
        from quickdraw_tools.strokes import stroke3_to_drawing

        again = rasterize_many([stroke3_to_drawing(s) for s in npz["test"]])
        np.testing.assert_array_equal(np.asarray(again).reshape(len(test_rows), -1), test_rows)

    from quickdraw_tools.mnist import read_mnist

    mn = read_mnist(tmp_path / "mnist")
    n_train = sum(r.sizes["train"] for r in results)
    n_test = sum(r.sizes["test"] for r in results)
    assert mn["train"][0].shape == (n_train, 28, 28) and mn["test"][0].shape == (n_test, 28, 28)
    assert sorted(np.unique(mn["train"][1]).tolist()) == [0, 1]


def test_convert_from_raw_simplifies(shared, tmp_path):
    raw = shared / "mirror" / "full" / "raw" / "cat.ndjson"
    (r,) = convert([Source("cat", raw)], tmp_path, ["sketchrnn"], progress=False)
    assert r.raw
    npz = formats.load_sketchrnn_npz(tmp_path / "sketchrnn" / "cat.npz")
    points = np.concatenate([np.cumsum(a[:, :2], axis=0) for v in npz.values() for a in v])
    assert points.min() >= 0 and points.max() == 255  # simplified space


def test_parallel_output_is_byte_identical(shared, tmp_path, monkeypatch):
    import quickdraw_tools.convert as conv

    monkeypatch.setattr(conv, "CHUNK", 97)  # many chunks per category
    src = shared / "training"
    sources = [Source(c, src / f"{c}.ndjson") for c in ("piano", "necklace", "teapot")]
    kw = dict(max_per_category=400, progress=False)
    convert(sources, tmp_path / "serial", ["sketchrnn", "bitmap", "mnist"], **kw)
    convert(sources, tmp_path / "parallel", ["sketchrnn", "bitmap", "mnist"], workers=2, **kw)
    a, b = _tree_digest(tmp_path / "serial"), _tree_digest(tmp_path / "parallel")
    # per category: .npz, .npy, .splits.json and two .rows.csv; mnist/: 5 files and two
    # .rows.csv; the manifests of the folder and of mnist/
    assert len(a) == 3 * 5 + 7 + 2 and a == b


def test_stroke3_in_npz_matches_the_source_drawings(shared, tmp_path):
    path = shared / "training" / "smiley face.ndjson"
    convert([Source("smiley face", path)], tmp_path, ["sketchrnn"], progress=False)
    npz = formats.load_sketchrnn_npz(tmp_path / "sketchrnn" / "smiley face.npz")
    with open(path) as f:
        expected = {drawing_to_stroke3(json.loads(line)["drawing"]).tobytes() for line in f}
    got = [a.tobytes() for v in npz.values() for a in v]
    assert len(set(got)) == len(got) and set(got) <= expected


def test_cli_convert_from_mirror_and_errors(shared, tmp_path, capsys):
    mirror = shared / "mirror"
    rc = main(
        ["convert", "cat", "fish", "--base-url", str(mirror), "--cache", str(tmp_path / "c"),
         "--out", str(tmp_path / "o"), "--formats", "sketchrnn,bitmap", "--quiet"]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert rc == 0 and "cat" in out and "total" in out
    assert (tmp_path / "o" / "sketchrnn" / "fish.npz").is_file()

    assert main(["convert", "catt", "--out", str(tmp_path / "x"), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "catt" in err and "'cat'" in err and "Traceback" not in err

    assert main(["convert", "cat", "--out", str(tmp_path), "--formats", "jpeg"]) == 1
    assert "jpeg" in capsys.readouterr().err


def test_malformed_line_is_reported_or_skipped(shared, tmp_path, capsys):
    bad = tmp_path / "cake.ndjson"
    shutil.copy(shared / "training" / "cake.ndjson", bad)
    with open(bad, "a") as f:
        f.write("{not json\n")
    out = tmp_path / "o"
    assert main(["convert", str(bad), "--out", str(out), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "cake.ndjson" in err and "1581" in err
    assert not (out / "sketchrnn" / "cake.npz").exists()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # counted in the summary, not a Python warning
        rc = main(["convert", str(bad), "--out", str(out), "--quiet", "--on-error", "skip"])
    assert rc == 0 and (out / "sketchrnn" / "cake.npz").is_file()
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split()[:3] == ["cake", "1580", "1"]  # category, read, skipped
    assert lines[2].startswith(f"cake: skipped 1; first: {bad}:1581: invalid JSON")


@pytest.mark.parametrize(
    "bad",
    [
        ["--workers", "0"],
        ["--max-per-category", "0"],
        ["--size", "0"],
        ["--size", "2000", "--formats", "sketchrnn,bitmap"],  # sizes are 8 to 1024
    ],
)
def test_bad_numbers_are_rejected(shared, tmp_path, capsys, bad):
    path = str(shared / "training" / "cake.ndjson")
    assert main(["convert", path, "--out", str(tmp_path / "o"), "--quiet", *bad]) == 1
    assert bad[0] in capsys.readouterr().err
    assert not (tmp_path / "o").exists()  # refused before any work


def test_mnist_at_another_size(shared, tmp_path):
    from quickdraw_tools.mnist import read_mnist

    path = shared / "training" / "cake.ndjson"
    convert(
        [Source("cake", path)], tmp_path, ["mnist"], size=64, max_per_category=30, progress=False
    )
    images, _ = read_mnist(tmp_path / "mnist")["train"]
    assert images.shape[1:] == (64, 64) and images.max() > 0


def test_cli_convert_local_gzip_file_with_spaces(shared, tmp_path, capsys):
    import gzip

    plain = shared / "training" / "smiley face.ndjson"
    packed = tmp_path / "smiley face.ndjson.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    args = ["--formats", "sketchrnn", "--max-per-category", "200", "--quiet"]
    assert main(["convert", str(plain), "--out", str(tmp_path / "a"), *args]) == 0
    assert main(["convert", str(packed), "--out", str(tmp_path / "b"), *args]) == 0
    assert capsys.readouterr().out.splitlines()[1].startswith("smiley face ")
    name = "sketchrnn/smiley face.npz"
    assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


@pytest.mark.parametrize("kind", ["simplified", "raw"])
def test_drawing_without_points_is_named_or_skipped(tmp_path, capsys, kind):
    stroke = [[0, 9], [0, 9], [0, 5]] if kind == "raw" else [[0, 9], [0, 9]]
    lines = [{"drawing": [stroke]}, {"drawing": []}, {"drawing": [[[], []]]}]
    path = tmp_path / "cake.ndjson"
    path.write_text("".join(json.dumps(r) + "\n" for r in lines))
    assert main(["convert", str(path), "--out", str(tmp_path / "o"), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert f"{path}:2: the drawing has no points" in err and "Traceback" not in err
    rc = main(["convert", str(path), "--out", str(tmp_path / "o"), "--on-error", "skip", "--quiet"])
    lines = capsys.readouterr().out.splitlines()
    assert rc == 0 and lines[1].split()[:3] == ["cake", "1", "2"]
    assert f"cake: skipped 2; first: {path}:2: the drawing has no points" in lines


def test_cli_convert_downloads_over_http(mirror_server, tmp_path, capsys):
    # a category with spaces, fetched from a real HTTP server into the cache, then converted
    cache, out = tmp_path / "cache", tmp_path / "out"
    args = ["--base-url", mirror_server.url, "--cache", str(cache), "--out", str(out), "--quiet"]
    assert main(["convert", "The Eiffel Tower", "--source-format", "raw", *args]) == 0
    assert mirror_server.requests[-1]["path"] == "/full/raw/The%20Eiffel%20Tower.ndjson"
    assert (cache / "full" / "raw" / "The Eiffel Tower.ndjson").is_file()
    npz = formats.load_sketchrnn_npz(out / "sketchrnn" / "The Eiffel Tower.npz")
    assert sum(map(len, npz.values())) > 0
    assert "The Eiffel Tower" in capsys.readouterr().out


def test_binary_source_gives_the_same_files_as_ndjson(shared, tmp_path):
    # .bin keeps key_id, so the split and every output are the same as from the ndjson; the
    # rows sidecars differ only in the timestamps, which .bin keeps to the second
    ndjson = shared / "mirror" / "full" / "simplified" / "cat.ndjson"
    binary = tmp_path / "cat.bin"
    formats.write_binary(binary, formats.iter_ndjson(ndjson))
    wanted = ["sketchrnn", "bitmap", "mnist"]
    convert([Source("cat", ndjson)], tmp_path / "a", wanted, progress=False)
    (r,) = convert([Source("cat", binary)], tmp_path / "b", wanted, progress=False)
    assert not r.raw and sum(r.sizes.values()) > 0

    def no_rows(tree: dict) -> dict:
        """The digests but those of the rows sidecars (in the manifests too)."""
        out = {k: no_rows(v) if isinstance(v, dict) else v for k, v in tree.items()}
        return {k: v for k, v in out.items() if not k.endswith("rows.csv")}

    a, b = _tree_digest(tmp_path / "a"), _tree_digest(tmp_path / "b")
    assert no_rows(a) == no_rows(b) and len(no_rows(a)) == len(a) - 4
    for name in ("bitmap/cat.rows.csv", "sketchrnn/cat.rows.csv", "mnist/t10k-rows.csv"):
        rows_a, rows_b = read_rows(tmp_path / "a" / name), read_rows(tmp_path / "b" / name)
        assert len(rows_a) == len(rows_b) > 0
        for x, y in zip(rows_a, rows_b, strict=True):
            assert x["timestamp"].replace(microsecond=0) == y.pop("timestamp")
            assert {**x, "timestamp": None} == {**y, "timestamp": None}


@pytest.mark.parametrize("command", ["download", "convert", "simplify", "svg"])
def test_data_commands_help_has_examples(command, capsys):
    with pytest.raises(SystemExit) as e:
        main([command, "--help"])
    out = capsys.readouterr().out
    assert e.value.code == 0 and "examples:" in out and f"quickdraw {command} " in out


def test_workers_leave_ctrl_c_to_the_main_process():
    import signal

    from quickdraw_tools.workers import process_pool

    with process_pool(1) as pool:
        assert pool.submit(signal.getsignal, signal.SIGINT).result() == signal.SIG_IGN


def test_no_sources_or_the_same_category_twice(shared, tmp_path):
    cake = Source("cake", shared / "training" / "cake.ndjson")
    with pytest.raises(QuickDrawError, match="no categories"):
        convert([], tmp_path, ["mnist"], progress=False)
    with pytest.raises(QuickDrawError, match="given twice"):
        convert([cake, cake], tmp_path, ["sketchrnn"], progress=False)
    assert list(tmp_path.iterdir()) == []


# --- all or nothing ------------------------------------------------------------------------


def _snapshot(root):
    """Every file below `root` (hidden ones too) and its bytes."""
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_a_convert_that_fails_part_way_leaves_the_folder_as_it_was(shared, tmp_path):
    """It used to leave the first categories of the new run beside the rest of the old one
    (test cakes of the old MNIST set ended up in the new train split)."""
    src = shared / "training"
    out = tmp_path / "data"
    wanted = ["sketchrnn", "bitmap", "mnist"]
    convert([Source(c, src / f"{c}.ndjson") for c in ("cake", "snowman")], out, wanted,
            max_per_category=120, progress=False)  # fmt: skip
    before = _snapshot(out)
    bad = tmp_path / "teapot.ndjson"
    bad.write_text((src / "teapot.ndjson").read_text().splitlines()[0] + "\n{not json\n")
    sources = [Source("snowman", src / "snowman.ndjson"), Source("cake", src / "cake.ndjson")]
    with pytest.raises(QuickDrawError, match="teapot.ndjson:2"):
        convert([*sources, Source("teapot", bad)], out, wanted, seed=5, progress=False)
    assert _snapshot(out) == before
    assert sorted(p.name for p in out.iterdir()) == [
        "bitmap",
        "manifest.json",
        "mnist",
        "sketchrnn",
    ]


def test_every_reader_refuses_a_file_from_another_run(shared, tmp_path):
    src = shared / "training"
    for seed, out in ((0, tmp_path / "a"), (1, tmp_path / "b")):
        convert([Source("cake", src / "cake.ndjson")], out, ["sketchrnn", "bitmap"], seed=seed,
                max_per_category=90, progress=False)  # fmt: skip
    for rel in ("sketchrnn/cake.npz", "bitmap/cake.npy", "bitmap/cake.splits.json"):
        shutil.copy(tmp_path / "b" / rel, tmp_path / "a" / rel)
    with pytest.raises(QuickDrawError, match="cake.npz is not the file .*manifest.json lists"):
        formats.load_sketchrnn_npz(tmp_path / "a" / "sketchrnn" / "cake.npz")
    with pytest.raises(QuickDrawError, match="cake.npy is not the file"):
        formats.load_bitmaps(tmp_path / "a" / "bitmap" / "cake.npy")
    from quickdraw_tools.splits import read_sidecar

    with pytest.raises(QuickDrawError, match="cake.splits.json is not the file"):
        read_sidecar(tmp_path / "a" / "bitmap" / "cake.npy", 90)
    # a file no manifest lists (an official download, say) is read as it is
    assert len(formats.load_bitmaps(shared / "mirror/full/numpy_bitmap/cat.npy")) == 3000


KILL_SCRIPT = """
import sys, time
from pathlib import Path
from quickdraw_tools import convert as C
real = C._Category.write
def slow(*args, **kwargs):  # a category takes a while: the test kills the run meanwhile
    out = real(*args, **kwargs)
    print("wrote a category", flush=True)
    time.sleep(60)
    return out
C._Category.write = slow
src = Path(sys.argv[1])
sources = [C.Source(c, src / f"{c}.ndjson") for c in ("cake", "piano")]
C.convert(sources, sys.argv[2], ["sketchrnn", "bitmap", "mnist"], workers=2,
          max_per_category=100, progress=False)
"""


def _children(pid: int) -> list[int]:
    path = f"/proc/{pid}/task/{pid}/children"
    with open(path) as f:
        return [int(c) for c in f.read().split()]


def _alive(pid: int) -> bool:
    """Any thread of the process still running. Not the main thread's state alone: killed, a
    worker's main thread turns zombie while its other threads still exit, holding its files
    (and so the output folder's lock) a moment longer."""
    try:
        threads = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return False
    for tid in threads:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                if f.read().split(")")[-1].split()[0] != "Z":
                    return True
        except FileNotFoundError:
            continue
    return False


def test_kill_9_leaves_the_folder_as_it_was_and_no_workers(shared, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "data"
    convert([Source("cake", shared / "training" / "cake.ndjson")], out, ["sketchrnn"],
            max_per_category=60, progress=False)  # fmt: skip
    before = _snapshot(out)
    proc = subprocess.Popen(
        [sys.executable, "-c", KILL_SCRIPT, str(shared / "training"), str(out)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout.readline() == "wrote a category\n"  # mid-run, the pool is up
        workers = _children(proc.pid)
        assert len(workers) >= 2
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        proc.kill()
        proc.stdout.close()
    deadline = time.monotonic() + 10
    while any(_alive(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(w) for w in workers), "workers outlived their killed parent"
    staged = [p for p in out.iterdir() if p.name.startswith(".staging-")]
    assert staged  # what the killed run had written lies hidden, outside the output
    visible = {k: v for k, v in _snapshot(out).items() if not k.startswith(".staging-")}
    assert visible == before
    # the next run there removes the killed run's leftovers and writes its own
    convert([Source("piano", shared / "training" / "piano.ndjson")], out, ["sketchrnn"],
            max_per_category=60, progress=False)  # fmt: skip
    assert not [p for p in out.iterdir() if p.name.startswith(".")]
    assert {"sketchrnn/cake.npz", "sketchrnn/piano.npz"} <= set(_snapshot(out))


def test_raw_drawings_anywhere_in_a_local_file_are_simplified(shared, tmp_path):
    """convert once looked at the first 50 drawings only: a raw one after them went in as it
    was (raw coordinates in a sketch-rnn file)."""
    simplified = (shared / "mirror/full/simplified/monkey.ndjson").read_text().splitlines()[:60]
    raw_line = (shared / "mirror/full/raw/cat.ndjson").read_text().splitlines()[0]
    mixed = tmp_path / "mixed.ndjson"
    mixed.write_text("\n".join([*simplified, raw_line]) + "\n")
    (r,) = convert([Source("mixed", mixed)], tmp_path / "o", ["sketchrnn"], progress=False)
    assert r.raw == 1
    from quickdraw_tools.simplify import simplify_drawing

    expected = drawing_to_stroke3(simplify_drawing(json.loads(raw_line)["drawing"]))
    npz = formats.load_sketchrnn_npz(tmp_path / "o" / "sketchrnn" / "mixed.npz")
    assert any(np.array_equal(a, expected) for v in npz.values() for a in v)
    # data said to be simplified (an official simplified file) is checked, drawing by drawing
    with pytest.raises(QuickDrawError, match=r"mixed.ndjson:61: a raw drawing"):
        convert([Source("mixed", mixed, kind="simplified")], tmp_path / "p", ["sketchrnn"],
                progress=False)  # fmt: skip


def test_every_drawing_with_split_sizes_all_or_explicit_sizes(shared, tmp_path, capsys):
    path = shared / "training" / "cake.ndjson"
    records = list(formats.iter_ndjson(path))
    (r,) = convert([Source("cake", path)], tmp_path / "all", ["bitmap", "mnist"],
                   sizes="all", progress=False)  # fmt: skip
    unique = len(records) - r.duplicates
    assert sum(r.sizes.values()) == unique and r.sizes == split_sizes(unique, "all")
    bitmaps = formats.load_bitmaps(tmp_path / "all" / "bitmap" / "cake.npy")
    assert len(bitmaps) == unique  # every drawing, as the official numpy_bitmap files
    from quickdraw_tools.mnist import read_mnist

    mn = read_mnist(tmp_path / "all" / "mnist")
    assert len(mn["train"][0]) == r.sizes["train"] and len(mn["test"][0]) == r.sizes["test"]
    # MNIST rows are the bitmap rows of their split, shuffled
    train = {row.tobytes() for row in bitmaps[: r.sizes["train"]]}
    assert {im.tobytes() for im in mn["train"][0]} <= train
    assert main(["convert", str(path), "--out", str(tmp_path / "few"), "--split-sizes",
                 "100,20,30", "--quiet"]) == 0  # fmt: skip
    npz = formats.load_sketchrnn_npz(tmp_path / "few" / "sketchrnn" / "cake.npz")
    assert [len(npz[s]) for s in ("train", "valid", "test")] == [100, 20, 30]
    assert main(["convert", str(path), "--out", str(tmp_path / "x"), "--split-sizes", "9,9"]) == 1
    assert "--split-sizes must be 'official', 'all' or TRAIN,VALID,TEST" in capsys.readouterr().err
    with pytest.raises(QuickDrawError, match="ask for more than"):
        convert([Source("cake", path)], tmp_path / "big", sizes=(10**6, 1, 1), progress=False)
    assert not (tmp_path / "x").exists() and not list((tmp_path / "big").glob("*"))
