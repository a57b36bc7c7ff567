"""`quickdraw convert` end to end on real files: one split, every format, serial == parallel."""

from __future__ import annotations

import hashlib
import json
import shutil
import warnings

import numpy as np
import pytest

from quickdraw_tools import formats
from quickdraw_tools.cli import main
from quickdraw_tools.convert import Source, convert
from quickdraw_tools.errors import QuickDrawError
from quickdraw_tools.raster import rasterize_many
from quickdraw_tools.splits import split_sizes
from quickdraw_tools.strokes import drawing_to_stroke3


def _tree_digest(root):
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


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
    assert len(a) == 3 * 3 + 5 and a == b


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

    assert main(["convert", "cat", "--out", str(tmp_path), "--formats", "png"]) == 1
    assert "png" in capsys.readouterr().err


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
        ["--size", "64", "--formats", "sketchrnn,bitmap"],  # bitmap is the official 28x28
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
    # .bin keeps key_id, so the split and every output are the same as from the ndjson
    ndjson = shared / "mirror" / "full" / "simplified" / "cat.ndjson"
    binary = tmp_path / "cat.bin"
    formats.write_binary(binary, formats.iter_ndjson(ndjson))
    wanted = ["sketchrnn", "bitmap", "mnist"]
    convert([Source("cat", ndjson)], tmp_path / "a", wanted, progress=False)
    (r,) = convert([Source("cat", binary)], tmp_path / "b", wanted, progress=False)
    assert not r.raw and sum(r.sizes.values()) > 0
    assert _tree_digest(tmp_path / "a") == _tree_digest(tmp_path / "b")


@pytest.mark.parametrize("command", ["download", "convert", "simplify", "svg"])
def test_data_commands_help_has_examples(command, capsys):
    with pytest.raises(SystemExit) as e:
        main([command, "--help"])
    out = capsys.readouterr().out
    assert e.value.code == 0 and "examples:" in out and f"quickdraw {command} " in out


def test_workers_leave_ctrl_c_to_the_main_process():
    import signal

    import quickdraw_tools.convert as conv

    with conv._pool(1) as pool:
        assert pool.submit(signal.getsignal, signal.SIGINT).result() == signal.SIG_IGN


def test_no_sources_or_the_same_category_twice(shared, tmp_path):
    cake = Source("cake", shared / "training" / "cake.ndjson")
    with pytest.raises(QuickDrawError, match="no categories"):
        convert([], tmp_path, ["mnist"], progress=False)
    with pytest.raises(QuickDrawError, match="given twice"):
        convert([cake, cake], tmp_path, ["sketchrnn"], progress=False)
    assert list(tmp_path.iterdir()) == []
