"""Bitmaps and PNG folders at any size, line width and padding, and the rows sidecar that
says which drawing each row is: all on the real sample data."""

from __future__ import annotations

import hashlib
import io
import json
import os

import numpy as np
import pytest
from conftest import MIRROR
from PIL import Image

from quickdraw_tools import formats
from quickdraw_tools.cli import main
from quickdraw_tools.convert import Source, convert
from quickdraw_tools.datasets import QuickDraw
from quickdraw_tools.errors import QuickDrawError
from quickdraw_tools.mnist import read_mnist
from quickdraw_tools.raster import reference_rasterize
from quickdraw_tools.rows import read_rows
from quickdraw_tools.splits import SPLITS

SIMPLIFIED = MIRROR / "full" / "simplified"


def _records(path) -> list[dict]:
    return list(formats.iter_ndjson(path))


def _convert(out, *args: str) -> None:
    assert main(["convert", *args, "--base-url", str(MIRROR), "--out", str(out), "--quiet"]) == 0


def _png(path) -> np.ndarray:
    with Image.open(path) as image:
        assert image.mode == "L"
        return np.asarray(image)


# --- item 1: any size, any line width; the defaults are the official bytes ---------------------


def test_the_defaults_are_the_official_bitmaps_byte_for_byte(shared, tmp_path):
    # row i of the official numpy_bitmap file is line i + 1 of the simplified file; the rows
    # sidecar gives each converted row's line, so every row can be held to the official one
    _convert(tmp_path, "cat", "apple", "fish", "--formats", "bitmap", "--split-sizes", "all")
    checked = 0
    for category in ("cat", "apple", "fish"):
        official = formats.load_bitmaps(MIRROR / "full" / "numpy_bitmap" / f"{category}.npy")
        ours = formats.load_bitmaps(tmp_path / "bitmap" / f"{category}.npy")
        rows = read_rows(tmp_path / "bitmap" / f"{category}.npy")
        assert ours.shape == (25, 784) and len(rows) == 25
        for row, meta in zip(ours, rows, strict=True):
            np.testing.assert_array_equal(row, official[meta["line"] - 1])
            checked += 1
    assert checked == 75
    run = next(iter(json.loads((tmp_path / "manifest.json").read_text())["runs"].values()))
    assert run["picture"] == {"size": 28, "line_width": 16.0, "padding": 16.0}


def test_other_sizes_are_recorded_and_quickdraw_gives_the_same_pixels(shared, tmp_path):
    out = tmp_path / "data"
    settings = ["--size", "64", "--line-width", "8", "--padding", "0"]
    _convert(out, "cat", "--formats", "bitmap,mnist", *settings)
    bitmaps = formats.load_bitmaps(out / "bitmap" / "cat.npy")
    rows = read_rows(out / "bitmap" / "cat.rows.csv")
    assert bitmaps.shape == (25, 64 * 64)
    picture = {"size": 64, "line_width": 8.0, "padding": 0.0}
    listed = json.loads((out / "manifest.json").read_text())
    assert next(iter(listed["runs"].values()))["picture"] == picture
    assert listed["files"]["bitmap/cat.npy"]["picture"] == picture
    # the plain cairo loop, drawing by drawing, gives the same pixels
    source = _records(SIMPLIFIED / "cat.ndjson")
    drawings = [source[r["line"] - 1]["drawing"] for r in rows]
    expected = reference_rasterize(drawings, 64, 8.0, 0.0)
    np.testing.assert_array_equal(bitmaps, expected)
    assert read_mnist(out / "mnist")["train"][0].shape[1:] == (64, 64)

    ds = QuickDraw(
        tmp_path / "root", "cat", split="train", format="bitmap", download=True,
        base_url=str(MIRROR), progress=False, size=64, line_width=8, padding=0,
    )  # fmt: skip
    train = [i for i, r in enumerate(rows) if r["split"] == "train"]
    assert len(ds) == len(train) and ds[0][0].shape == (64, 64)
    np.testing.assert_array_equal(ds.bitmaps(), bitmaps[train])
    # ...and the same rows: metadata(i) is the sidecar's row i of its split
    for i, row in enumerate(train):
        expected_meta = {k: v for k, v in rows[row].items() if k != "split"}
        assert ds.metadata(i) == {"word": "cat", **expected_meta}
    # the official settings are still the official file, beside the other one
    official = QuickDraw(tmp_path / "root", "cat", split="train", format="bitmap", progress=False)
    assert official[0][0].shape == (28, 28)
    assert {p.name for p in (tmp_path / "root" / "derived" / "cat").glob("bitmaps*.npy")} == {
        "bitmaps.npy",
        "bitmaps-64-8.0-0.0.npy",
    }


def test_svg_png_takes_the_size(shared, tmp_path, capsys):
    args = ["svg", str(SIMPLIFIED / "cat.ndjson"), "--limit", "2", "--png", "--quiet"]
    assert main([*args, "--size", "96", "--out", str(tmp_path / "one")]) == 0
    assert _png_size(tmp_path / "one" / "cat_00000.png") == (96, 96)
    assert main([*args, "--size", "40", "--grid", "2x1", "--out", str(tmp_path / "grid")]) == 0
    assert _png_size(tmp_path / "grid" / "cat_grid_000.png") == (80, 40)
    bitmap = MIRROR / "full" / "numpy_bitmap" / "cat.npy"
    bitmaps = ["svg", str(bitmap), "--limit", "1", "--size", "56", "--out", str(tmp_path / "b")]
    assert main(bitmaps) == 0
    assert _png_size(tmp_path / "b" / "cat_00000.png") == (56 + 16, 56 + 16)  # and its margin


def _png_size(path) -> tuple[int, int]:
    with Image.open(path) as image:
        return image.size


# --- item 2: PNG folders -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def png_folder(shared, tmp_path_factory):
    """cat and apple (with key_ids) and cake (without), as PNG folders and bitmaps at 32."""
    out = tmp_path_factory.mktemp("png")
    cake = str(shared / "training" / "cake.ndjson")
    args = ["cat", "apple", cake, "--max-per-category", "120", "--size", "32"]
    _convert(out, *args, "--formats", "png,bitmap", "--workers", "2")
    return out


def _image_folder(root) -> list[tuple[str, int]]:
    """What torchvision's ImageFolder(root) lists (its find_classes and make_dataset): one class
    per sub-folder, sorted; in each, the files with an image suffix, sorted."""
    classes = sorted(e.name for e in os.scandir(root) if e.is_dir())
    suffixes = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
    samples = []
    for label, name in enumerate(classes):
        for folder, _, files in sorted(os.walk(root / name, followlinks=True)):
            for file in sorted(files):
                if file.lower().endswith(suffixes):
                    samples.append((os.path.join(folder, file), label))
    return samples


def test_png_folders_are_the_imagefolder_layout(png_folder):
    for split in SPLITS:
        root = png_folder / "png" / split
        # nothing but one folder per category, and nothing but PNGs in them
        assert sorted(p.name for p in root.iterdir()) == ["apple", "cake", "cat"]
        assert all(p.suffix == ".png" for p in root.rglob("*") if p.is_file())
        samples = _image_folder(root)
        assert {label for _, label in samples} == {0, 1, 2}
        for category in ("apple", "cake", "cat"):
            rows = [r for r in read_rows(png_folder / "png" / f"{category}.rows.csv")]
            files = sorted(r["file"] for r in rows if r["split"] == split)
            mine = sorted(os.path.relpath(p, png_folder / "png") for p, _ in samples)
            assert set(files) <= set(mine) and files
    # every image is the bitmap row of the same drawing, grey ink on black
    for category in ("apple", "cake", "cat"):
        bitmaps = formats.load_bitmaps(png_folder / "bitmap" / f"{category}.npy")
        rows = read_rows(png_folder / "png" / f"{category}.rows.csv")
        assert read_rows(png_folder / "bitmap" / f"{category}.npy") == [
            {k: v for k, v in r.items() if k != "file"} for r in rows
        ]
        for bitmap, row in zip(bitmaps, rows, strict=True):
            np.testing.assert_array_equal(_png(png_folder / "png" / row["file"]).ravel(), bitmap)


def test_png_names_are_key_ids_or_the_strokes_digest(shared, png_folder):
    cats = read_rows(png_folder / "png" / "cat.rows.csv")
    assert all(r["file"] == f"{r['split']}/cat/{r['key_id']}.png" for r in cats)
    cakes = read_rows(png_folder / "png" / "cake.rows.csv")
    source = _records(shared / "training" / "cake.ndjson")  # no key_id in these records
    for row in cakes:
        drawing = source[row["line"] - 1]["drawing"]
        digest = hashlib.sha1(json.dumps(drawing, separators=(",", ":")).encode()).hexdigest()
        assert "key_id" not in row and row["file"] == f"{row['split']}/cake/sha1-{digest}.png"


def test_hugging_face_reads_the_png_folders(png_folder, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    import datasets

    rows = [
        r for c in ("apple", "cake", "cat") for r in read_rows(png_folder / "png" / f"{c}.rows.csv")
    ]
    counts = {s: sum(r["split"] == s for r in rows) for s in SPLITS}
    for how in ({"path": "imagefolder", "data_dir": str(png_folder / "png")},
                {"path": str(png_folder / "png")}):  # fmt: skip
        ds = datasets.load_dataset(**how, cache_dir=str(tmp_path / "cache"))
        assert {s: len(ds[s]) for s in ds} == {
            "train": counts["train"], "validation": counts["valid"], "test": counts["test"]
        }  # fmt: skip
        assert ds["train"].features["label"] == datasets.ClassLabel(names=["apple", "cake", "cat"])
        first = ds["test"][0]
        assert first["image"].size == (32, 32) and first["image"].mode == "L"


def test_png_invert_workers_and_a_second_run(shared, tmp_path):
    cake = shared / "training" / "cake.ndjson"
    kw = dict(max_per_category=150, progress=False, size=28)
    convert([Source("cake", cake)], tmp_path / "serial", ["png"], invert=True, **kw)
    convert([Source("cake", cake)], tmp_path / "par", ["png"], invert=True, workers=2, **kw)
    serial = sorted((tmp_path / "serial" / "png").rglob("*.png"))
    assert len(serial) == 150
    for path in serial:  # byte-identical with 2 workers
        assert (
            path.read_bytes()
            == (tmp_path / "par" / path.relative_to(tmp_path / "serial")).read_bytes()
        )
    # black on white: the official bitmap, inverted
    official = convert([Source("cake", cake)], tmp_path / "b", ["bitmap"], **kw)
    bitmaps = formats.load_bitmaps(tmp_path / "b" / "bitmap" / "cake.npy")
    rows = read_rows(tmp_path / "serial" / "png" / "cake.rows.csv")
    assert len(rows) == sum(official[0].sizes.values())
    for bitmap, row in zip(bitmaps[:20], rows, strict=False):
        np.testing.assert_array_equal(
            _png(tmp_path / "serial" / "png" / row["file"]).ravel(), 255 - bitmap
        )
    # another seed moves drawings between splits: no image of the first run is left behind
    convert([Source("cake", cake)], tmp_path / "serial", ["png"], seed=7, **kw)
    again = read_rows(tmp_path / "serial" / "png" / "cake.rows.csv")
    root = tmp_path / "serial" / "png"
    images = sorted(str(p.relative_to(root)) for p in root.rglob("*.png"))
    assert images == sorted(r["file"] for r in again)
    assert {r["file"] for r in again} != {r["file"] for r in rows}


def test_a_failed_png_run_writes_nothing(shared, tmp_path, capsys):
    bad = tmp_path / "cake.ndjson"
    lines = (shared / "training" / "cake.ndjson").read_text().splitlines()[:300]
    bad.write_text("\n".join(lines) + '\n{"word": "cake", "drawing": [[[1, 2], [3]]]}\n')
    out = tmp_path / "out"
    _convert(
        out,
        str(shared / "training" / "teapot.ndjson"),
        "--formats",
        "png",
        "--max-per-category",
        "40",
    )
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    assert main(["convert", str(bad), "--formats", "png", "--out", str(out), "--quiet"]) == 1
    assert "cake.ndjson:301" in capsys.readouterr().err
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before  # nothing half-written


# --- item 3: every row traceable ---------------------------------------------------------------


def test_rows_sidecars_name_every_row_of_every_format(shared, tmp_path):
    out = tmp_path / "data"
    _convert(out, "cat", "apple", "--formats", "sketchrnn,bitmap,mnist,parquet")
    for category in ("cat", "apple"):
        source = _records(SIMPLIFIED / f"{category}.ndjson")
        npz = formats.load_sketchrnn_npz(out / "sketchrnn" / f"{category}.npz")
        rows = read_rows(out / "sketchrnn" / f"{category}.rows.csv")
        sketches = [s for split in SPLITS for s in npz[split]]
        assert [r["split"] for r in rows] == [s for s in SPLITS for _ in npz[s]]
        for sketch, row in zip(sketches, rows, strict=True):
            record = source[row["line"] - 1]
            assert record["key_id"] == row["key_id"]
            assert record["countrycode"] == row["countrycode"]
            assert record["recognized"] == row["recognized"]
            assert row["timestamp"] == formats.parse_timestamp(record["timestamp"])
            np.testing.assert_array_equal(sketch, formats.drawing_to_stroke3(record["drawing"]))
        assert read_rows(out / "bitmap" / f"{category}.rows.csv") == rows
    # the MNIST rows follow its shuffled order, with the category of each
    mnist = read_mnist(out / "mnist")
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images, labels = mnist[split]
        rows = read_rows(out / "mnist" / f"{prefix}-rows.csv")
        assert [r["word"] for r in rows] == [mnist["categories"][i] for i in labels]
        for image, row in zip(images, rows, strict=True):
            record = _records(SIMPLIFIED / f"{row['word']}.ndjson")[row["line"] - 1]
            assert record["key_id"] == row["key_id"] and row["split"] == split
            np.testing.assert_array_equal(
                image, reference_rasterize([record["drawing"]])[0].reshape(28, 28)
            )
    # a user filters bitmaps by country without reading the ndjson
    import pandas as pd

    table = pd.read_csv(out / "bitmap" / "cat.rows.csv", dtype={"key_id": str})
    bitmaps = formats.load_bitmaps(out / "bitmap" / "cat.npy")
    us = bitmaps[(table["countrycode"] == "US").to_numpy()]
    expected = [r for r in _records(SIMPLIFIED / "cat.ndjson") if r["countrycode"] == "US"]
    assert len(us) == len(expected) > 0


def test_from_files_metadata_reads_the_sidecar(shared, tmp_path):
    out = tmp_path / "data"
    _convert(out, "cat", "--formats", "sketchrnn,bitmap", "--size", "48")
    bitmaps = QuickDraw.from_files([out / "bitmap" / "cat.npy"], split="test", format="bitmap")
    strokes = QuickDraw.from_files([out / "sketchrnn" / "cat.npz"], split="test")
    derived = QuickDraw(tmp_path / "root", "cat", split="test", format="stroke3", download=True,
                        base_url=str(MIRROR), progress=False)  # fmt: skip
    assert bitmaps[0][0].shape == (48, 48) and len(bitmaps) == len(strokes) == len(derived)
    for i in range(len(bitmaps)):
        assert bitmaps.metadata(i) == strokes.metadata(i) == derived.metadata(i)
        assert set(derived.metadata(i)) == {
            "word", "key_id", "countrycode", "recognized", "timestamp", "line",
        }  # fmt: skip


# --- item 6: bad input -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "flag, value",
    [
        ("--size", "0"), ("--size", "-28"), ("--size", "7"), ("--size", "1025"),
        ("--size", "100000000"), ("--line-width", "0"), ("--line-width", "-1"),
        ("--line-width", "nan"), ("--line-width", "inf"), ("--line-width", "1e9"),
        ("--padding", "-1"), ("--padding", "nan"), ("--padding", "1e300"),
    ],
)  # fmt: skip
def test_bad_picture_settings_are_one_line_errors(tmp_path, capsys, flag, value):
    out = tmp_path / "out"
    args = ["convert", "cat", "--formats", "png", "--out", str(out), f"{flag}={value}"]
    assert main([*args, "--base-url", str(MIRROR)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and flag in err and "Traceback" not in err
    assert not out.exists()
    with pytest.raises(QuickDrawError):
        QuickDraw(tmp_path, "cat", format="bitmap", **{flag[2:].replace("-", "_"): float(value)})
    svg = ["svg", str(SIMPLIFIED / "cat.ndjson"), "--out", str(tmp_path / "svg"), "--png"]
    if flag == "--size":
        assert main([*svg, "--size", value]) == 1
        assert "size" in capsys.readouterr().err and not (tmp_path / "svg").exists()


def test_invert_without_png_is_refused(tmp_path, capsys):
    assert (
        main(["convert", "cat", "--formats", "bitmap", "--invert", "--out", str(tmp_path / "o")])
        == 1
    )
    assert "--invert" in capsys.readouterr().err and not (tmp_path / "o").exists()


@pytest.mark.parametrize("name", ["...ndjson", "..ndjson", ".hidden.ndjson"])
def test_a_category_name_that_would_leave_the_output_folder_is_refused(
    shared, tmp_path, capsys, name
):
    crafted = tmp_path / "in" / name
    crafted.parent.mkdir()
    # records that name no word: the file's name is the category
    lines = (shared / "training" / "cake.ndjson").read_text().splitlines()
    crafted.write_text("".join(line.replace('"word":"cake",', "") + "\n" for line in lines))
    out = tmp_path / "a" / "b"
    assert (
        main(["convert", str(crafted), "--formats", "png,bitmap", "--out", str(out), "--quiet"])
        == 1
    )
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "category name" in err
    assert not (tmp_path / "a").exists()
    for category in ("../evil", "a/b", "x\\y", "", "tab\there"):
        with pytest.raises(QuickDrawError, match="category name"):
            convert([Source(category, crafted)], out, ["png"], progress=False)
    assert not out.exists()


def test_a_word_that_would_leave_the_output_folder_is_refused(shared, tmp_path, capsys):
    """A local file's category is its records' word (`convert.file_category`): a word that
    cannot name files inside the output folder is refused as a file's name would be."""
    lines = (shared / "training" / "cake.ndjson").read_text().splitlines()[:30]
    crafted, out = tmp_path / "cake.ndjson", tmp_path / "a" / "b"
    for word in ("../evil", "..", ".hidden", "a/b"):
        quoted = '"word":' + json.dumps(word)
        crafted.write_text("".join(line.replace('"word":"cake"', quoted) + "\n" for line in lines))
        args = ["convert", str(crafted), "--formats", "png,sketchrnn", "--out", str(out)]
        assert main([*args, "--quiet"]) == 1
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and f"category name '{word}'" in err, err
        assert "every record of" in err and not (tmp_path / "a").exists()


def test_a_one_point_drawing_is_a_dot(tmp_path):
    dot = tmp_path / "dot.ndjson"
    records = [
        {"word": "dot", "key_id": "1", "drawing": [[[128], [128]]]},
        {"word": "dot", "key_id": "2", "drawing": [[[0, 255], [0, 255]], [[30], [200]]]},
        {"word": "dot", "key_id": "3", "drawing": [[[10, 10], [10, 10]]]},
    ]
    formats.write_ndjson(dot, records)
    convert([Source("dot", dot)], tmp_path / "o", ["png", "bitmap"], progress=False, size=64)
    bitmaps = formats.load_bitmaps(tmp_path / "o" / "bitmap" / "dot.npy").reshape(-1, 64, 64)
    expected = reference_rasterize([r["drawing"] for r in records], 64)
    np.testing.assert_array_equal(bitmaps.reshape(3, -1), _by_key(tmp_path, expected))
    for image in bitmaps:
        ink = np.argwhere(image > 0)
        assert len(ink) > 0  # a round dot, not nothing
    lone = bitmaps[
        [r["key_id"] for r in read_rows(tmp_path / "o" / "bitmap" / "dot.npy")].index("1")
    ]
    # where the official renderer puts it: shifted by ((256, 256) - max corner) / 2, then
    # scaled by 64 / (256 + 2 * 16 + 16) after the half padding (16 + 16 / 2)
    where = (128 + (256 - 128) / 2 + 24) * 64 / 304
    ys, xs = np.nonzero(lone)
    assert abs(ys.mean() + 0.5 - where) < 1 and abs(xs.mean() + 0.5 - where) < 1
    assert len(list((tmp_path / "o" / "png").rglob("*.png"))) == 3


def _by_key(tmp_path, expected):
    order = [int(r["key_id"]) - 1 for r in read_rows(tmp_path / "o" / "bitmap" / "dot.npy")]
    return expected[order]


def test_png_bytes_decode_to_the_bitmap():
    from quickdraw_tools.images import png_bytes

    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(37, 37), dtype=np.uint8)
    with Image.open(io.BytesIO(png_bytes(image))) as decoded:
        np.testing.assert_array_equal(np.asarray(decoded), image)
    with Image.open(io.BytesIO(png_bytes(image, invert=True))) as decoded:
        np.testing.assert_array_equal(np.asarray(decoded), 255 - image)


def test_crafted_key_ids_name_no_other_place_and_no_formula(shared, tmp_path):
    records = list(formats.iter_ndjson(SIMPLIFIED / "cat.ndjson"))[:6]
    crafted = ["../../../x", '=HYPERLINK("http://x")', "a/b", "..", "+1", "'quoted"]
    for record, key in zip(records, crafted, strict=True):
        record["key_id"] = key
    source = tmp_path / "cat.ndjson"
    formats.write_ndjson(source, records)
    convert([Source("cat", source)], tmp_path / "o", ["png", "bitmap"], progress=False)
    images = sorted((tmp_path / "o").rglob("*.png"))
    assert len(images) == 6
    for image in images:
        split, category, name = image.relative_to(tmp_path / "o" / "png").parts
        assert category == "cat" and name.startswith("key-") and len(name) == 48
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cat.ndjson", "o"]
    text = (tmp_path / "o" / "bitmap" / "cat.rows.csv").read_text()
    assert "'=HYPERLINK" in text and ",'+1," in text and ",''quoted," in text
    rows = read_rows(tmp_path / "o" / "bitmap" / "cat.rows.csv")
    assert sorted(r["key_id"] for r in rows) == sorted(crafted)  # read back as they were


def test_a_category_called_train_keeps_its_splits(shared, tmp_path, monkeypatch):
    # Hugging Face's imagefolder guesses splits from folder names anywhere in a path, so
    # png/test/train/ could pass for the train split; the dataset card names each split's
    # folder, and load_dataset("DIR/png") reads exactly those
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    import datasets

    train = tmp_path / "train.ndjson"  # records that name no word: the file's name decides
    cake = (shared / "training" / "cake.ndjson").read_text()
    train.write_text(cake.replace('"word":"cake",', ""))
    out = tmp_path / "out"
    _convert(out, "cat", str(train), "--formats", "png", "--size", "16", "--max-per-category", "60")
    rows = [r for c in ("cat", "train") for r in read_rows(out / "png" / f"{c}.rows.csv")]
    ds = datasets.load_dataset(str(out / "png"), cache_dir=str(tmp_path / "cache"))
    assert {s: len(ds[s]) for s in ds} == {
        "train": sum(r["split"] == "train" for r in rows),
        "validation": sum(r["split"] == "valid" for r in rows),
        "test": sum(r["split"] == "test" for r in rows),
    }
    assert ds["test"].features["label"].names == ["cat", "train"]
