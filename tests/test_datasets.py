"""The library face: `QuickDraw` (map-style), `QuickDrawStream`, on the shared mirror."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from conftest import MIRROR
from torch.utils.data import DataLoader, DistributedSampler

from quickdraw_tools import datasets as D
from quickdraw_tools import formats
from quickdraw_tools.convert import Source, convert
from quickdraw_tools.datasets import QuickDraw, QuickDrawStream, collate_stroke5
from quickdraw_tools.errors import QuickDrawError
from quickdraw_tools.simplify import simplify_drawing
from quickdraw_tools.strokes import drawing_to_stroke3

SIMPLIFIED = MIRROR / "full" / "simplified"


@pytest.fixture(scope="module")
def root(shared, tmp_path_factory):
    """A dataset root whose files came from the mirror (download=True, base_url=mirror)."""
    path = tmp_path_factory.mktemp("root")
    for fmt in ("bitmap", "stroke3"):
        QuickDraw(path, ["cat", "hot dog"], format=fmt, download=True, base_url=MIRROR,
                  progress=False)  # fmt: skip
    return path


def test_bitmaps_are_the_official_ones_and_labels_index_classes(root, shared):
    official = np.load(MIRROR / "full" / "numpy_bitmap" / "cat.npy")[:25]
    everything = []
    for split in ("train", "valid", "test"):
        ds = QuickDraw(root, ["cat", "hot dog"], split=split, format="bitmap", progress=False)
        assert ds.classes == ["cat", "hot dog"]
        for i in range(len(ds)):
            image, label = ds[i]
            assert image.dtype == np.uint8 and image.shape == (28, 28) and label in (0, 1)
            if label == 0:
                key = ds.metadata(i)["key_id"]
                everything.append((key, image))
    lines = [json.loads(line) for line in (SIMPLIFIED / "cat.ndjson").read_text().splitlines()]
    order = {r["key_id"]: k for k, r in enumerate(lines)}
    assert len(everything) == 25
    for key, image in everything:  # the renderer gives the official bytes, drawing by drawing
        np.testing.assert_array_equal(image.ravel(), official[order[key]])


def test_the_split_is_the_one_convert_makes(root, tmp_path):
    convert([Source("cat", SIMPLIFIED / "cat.ndjson")], tmp_path, ["sketchrnn"], seed=3,
            progress=False)  # fmt: skip
    npz = formats.load_sketchrnn_npz(tmp_path / "sketchrnn" / "cat.npz")
    for split, expected in npz.items():
        ds = QuickDraw(root, "cat", split=split, format="stroke3", seed=3, progress=False)
        got = [ds[i][0] for i in range(len(ds))]
        assert len(got) == len(expected)
        assert all(np.array_equal(a, b) for a, b in zip(got, expected, strict=True))
    # and from the files convert wrote, the same items
    from_files = QuickDraw.from_files([tmp_path / "sketchrnn" / "cat.npz"], "train", "stroke3")
    assert all(
        np.array_equal(a, b) for a, b in zip(from_files.sketches(), npz["train"], strict=True)
    )


def test_every_format_and_the_metadata(root):
    lines = [json.loads(line) for line in (SIMPLIFIED / "cat.ndjson").read_text().splitlines()]
    by_key = {r["key_id"]: r for r in lines}
    drawing = QuickDraw(root, "cat", format="drawing", progress=False)
    stroke3 = QuickDraw(root, "cat", format="stroke3", progress=False)
    stroke5 = QuickDraw(root, "cat", format="stroke5", max_len=200, progress=False)
    meta = drawing.metadata(0)
    record = by_key[meta["key_id"]]
    assert drawing[0][0] == record["drawing"]  # the simplified strokes, as in the file
    np.testing.assert_array_equal(stroke3[0][0], drawing_to_stroke3(record["drawing"]))
    big = stroke5[0][0]
    assert big.shape == (201, 5) and big.dtype == np.float32
    assert meta["countrycode"] == record["countrycode"]
    assert meta["recognized"] == record["recognized"]
    assert meta["timestamp"] == formats.parse_timestamp(record["timestamp"])
    short = QuickDraw(root, "cat", format="stroke5", max_len=30, progress=False)
    assert len(short) < len(stroke5)  # drawings longer than max_len are left out


def test_filters(root):
    lines = [json.loads(line) for line in (SIMPLIFIED / "cat.ndjson").read_text().splitlines()]
    everything = QuickDraw(root, "cat", format="drawing", progress=False)
    keys = {everything.metadata(i)["key_id"] for i in range(len(everything))}
    expected = {r["key_id"] for r in lines if r["key_id"] in keys and not r["recognized"]}
    unrecognized = QuickDraw(root, "cat", format="drawing", recognized=False, progress=False)
    assert {unrecognized.metadata(i)["key_id"] for i in range(len(unrecognized))} == expected
    us = QuickDraw(root, "cat", format="drawing", countrycodes=["US", "GB"], progress=False)
    assert len(us) and all(us.metadata(i)["countrycode"] in ("US", "GB") for i in range(len(us)))


def test_a_second_construction_only_opens_files(root, monkeypatch):
    def rebuilt(*args, **kwargs):
        raise AssertionError("derived again")

    monkeypatch.setattr(D, "_derive", rebuilt)
    monkeypatch.setattr(D, "_derive_bitmaps", rebuilt)
    ds = QuickDraw(root, ["cat", "hot dog"], format="bitmap", progress=False)
    assert len(ds) > 0


def test_a_changed_source_is_derived_again_and_missing_files_say_how(tmp_path):
    local = tmp_path / "full" / "simplified"
    local.mkdir(parents=True)
    lines = (SIMPLIFIED / "cat.ndjson").read_text().splitlines()
    (local / "cat.ndjson").write_text("\n".join(lines[:10]) + "\n")
    assert len(QuickDraw(tmp_path, "cat", format="stroke3", progress=False)) == 10 - 2
    (local / "cat.ndjson").write_text("\n".join(lines) + "\n")
    assert len(QuickDraw(tmp_path, "cat", format="stroke3", progress=False)) == 23
    with pytest.raises(
        QuickDrawError, match=r"'fish' is not in .*download=True.*quickdraw download"
    ):
        QuickDraw(tmp_path, "fish", progress=False)
    with pytest.raises(QuickDrawError, match="did you mean 'cat'"):
        QuickDraw(tmp_path, "catt", progress=False)
    with pytest.raises(QuickDrawError, match="format 'png'"):
        QuickDraw(tmp_path, "cat", format="png")


def test_a_killed_derivation_leaves_nothing_half_done(tmp_path, monkeypatch):
    local = tmp_path / "full" / "simplified"
    local.mkdir(parents=True)
    shutil.copy(SIMPLIFIED / "cat.ndjson", local / "cat.ndjson")
    real = np.save

    def dies(file, *args, **kwargs):
        if str(file).endswith("countrycode.npy"):
            raise KeyboardInterrupt  # Ctrl-C (or a kill) part-way through
        return real(file, *args, **kwargs)

    monkeypatch.setattr(np, "save", dies)
    with pytest.raises(KeyboardInterrupt):
        QuickDraw(tmp_path, "cat", format="stroke3", progress=False)
    monkeypatch.setattr(np, "save", real)
    assert not (tmp_path / "derived" / "cat" / "strokes.npy").exists()
    assert len(QuickDraw(tmp_path, "cat", format="stroke3", progress=False)) == 23


def test_works_with_dataloader_workers_and_distributed_sampler(root):
    ds = QuickDraw(root, ["cat", "hot dog"], format="bitmap", progress=False)
    serial = [int(ds[i][1]) for i in range(len(ds))]
    loader = DataLoader(ds, batch_size=4, num_workers=2)
    labels = torch.cat([y for _, y in loader]).tolist()
    assert labels == serial
    seen = []
    for rank in (0, 1):
        sampler = DistributedSampler(ds, num_replicas=2, rank=rank, shuffle=False)
        seen += [i for i in sampler]
    assert sorted(set(seen)) == list(range(len(ds)))
    strokes = QuickDraw(root, ["cat", "hot dog"], format="stroke3", progress=False)
    big, lengths, labels = next(iter(DataLoader(strokes, batch_size=5, collate_fn=collate_stroke5)))
    assert big.shape == (5, int(lengths.max()) + 1, 5) and labels.shape == (5,)
    assert torch.equal(
        big[0, 1 : lengths[0] + 1, :2], torch.from_numpy(strokes[0][0][:, :2]).float()
    )


def test_from_files_bitmaps_with_and_without_a_split(tmp_path):
    convert([Source("cat", SIMPLIFIED / "cat.ndjson")], tmp_path, ["bitmap"], progress=False)
    parts = QuickDraw.splits_from_files([tmp_path / "bitmap" / "cat.npy"], "bitmap")
    assert [len(parts[s]) for s in ("train", "valid", "test")] == [23, 1, 1]
    official = QuickDraw.from_files(
        [MIRROR / "full" / "numpy_bitmap" / "cat.npy"], "test", "bitmap"
    )
    assert len(official) == 100 and official.bitmaps().shape == (100, 784)
    with pytest.raises(QuickDrawError, match="is 28x28 bitmaps .* read it with format=.bitmap."):
        QuickDraw.from_files([tmp_path / "bitmap" / "cat.npy"], "train", "stroke3")


# --- streamed ------------------------------------------------------------------------------------


def _all_records(paths):
    return [r for p in paths for r in formats.iter_drawings(p)]


def test_stream_shards_across_workers_and_ranks_without_gaps_or_doubles():
    paths = sorted(SIMPLIFIED.glob("*.ndjson"))[:12]
    expected = sorted(r["key_id"] for r in _all_records(paths))
    seen = []
    for rank in (0, 1):
        stream = QuickDrawStream(paths, rank=rank, world_size=2)
        loader = DataLoader(stream, batch_size=None, num_workers=2)
        seen += [r["key_id"] for r in loader]
    assert sorted(seen) == expected  # 2 ranks x 2 workers: each drawing once


def test_stream_filters_shuffles_reproducibly_and_simplifies_raw():
    paths = [SIMPLIFIED / "cat.ndjson", SIMPLIFIED / "monkey.ndjson"]
    a = [r["key_id"] for r in QuickDrawStream(paths, shuffle_buffer=50, seed=1)]
    b = [r["key_id"] for r in QuickDrawStream(paths, shuffle_buffer=50, seed=1)]
    plain = [r["key_id"] for r in QuickDrawStream(paths)]
    assert a == b and a != plain and sorted(a) == sorted(plain)
    stream = QuickDrawStream(paths, shuffle_buffer=50, seed=1)
    stream.set_epoch(1)
    assert [r["key_id"] for r in stream] != a
    recognized = list(QuickDrawStream(paths, recognized=True, countrycodes=["US"]))
    assert recognized and all(r["recognized"] and r["countrycode"] == "US" for r in recognized)
    raw = MIRROR / "full" / "raw" / "cat.ndjson"
    streamed = list(QuickDrawStream([raw], simplified=True))
    expected = [simplify_drawing(r["drawing"]) for r in formats.iter_drawings(raw)]
    assert [r["drawing"] for r in streamed] == expected
    by_name = list(QuickDrawStream("cat", base_url=MIRROR))  # a category name, from a mirror
    assert [r["key_id"] for r in by_name] == [r["key_id"] for r in formats.iter_drawings(paths[0])]


def test_split_sizes_all_is_convert_split_sizes_all(root, tmp_path):
    convert([Source("cat", SIMPLIFIED / "cat.ndjson")], tmp_path, ["sketchrnn"], seed=1,
            sizes="all", progress=False)  # fmt: skip
    npz = formats.load_sketchrnn_npz(tmp_path / "sketchrnn" / "cat.npz")
    for split, expected in npz.items():
        ds = QuickDraw(root, "cat", split=split, format="stroke3", seed=1, split_sizes="all",
                       progress=False)  # fmt: skip
        assert [a.tobytes() for a in ds.sketches()] == [a.tobytes() for a in expected]


def test_what_is_derived_is_recorded_with_its_seed_and_source(root):
    QuickDraw(root, "cat", split="valid", format="stroke3", seed=5, progress=False)
    record = json.loads((root / "derived" / "cat" / "manifest.json").read_text())
    runs = record["runs"]
    split = record["files"]["split-5-25-official.npy"]
    assert split["seed"] == 5 and runs[split["run"]]["derived"] == "split"
    strokes = runs[record["files"]["strokes.npy"]["run"]]
    assert strokes["source"].endswith("full/simplified/cat.ndjson")
