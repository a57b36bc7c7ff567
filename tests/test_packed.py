"""The chunked reader every category goes through (`quickdraw_tools.packed`), on real data."""

from __future__ import annotations

import hashlib
import io
import json
import re

import numpy as np
import pytest
from conftest import MIRROR

from quickdraw_tools import formats, packed, splits
from quickdraw_tools.errors import QuickDrawError
from quickdraw_tools.raster import rasterize_many
from quickdraw_tools.simplify import simplify_drawings
from quickdraw_tools.strokes import drawing_to_stroke3, flatten_drawings, stroke3_to_drawing
from quickdraw_tools.workers import process_pool

SIMPLIFIED = MIRROR / "full" / "simplified"
RAW = MIRROR / "full" / "raw"


def _pack(path, folder, **options) -> tuple[packed.Packed, packed.PackStats]:
    stats = packed.pack_file(path, folder, **options)
    return packed.open_packed(folder), stats


def test_stroke3_metadata_and_identities_match_the_per_drawing_functions(tmp_path):
    path = SIMPLIFIED / "cat.ndjson"
    records = list(formats.iter_ndjson(path))
    data, stats = _pack(path, tmp_path / "cat", kind="simplified", meta=True)
    assert stats.drawings == len(data) == len(records) and stats.raw == 0
    for i, record in enumerate(records):
        assert np.array_equal(data.stroke3(i), drawing_to_stroke3(record["drawing"]))
        assert data.identity[i].decode() == splits.drawing_identity(record)
        meta = data.metadata(i, word="cat")
        assert meta["key_id"] == record["key_id"] and meta["recognized"] == record["recognized"]
        assert meta["countrycode"] == record["countrycode"]
        assert meta["timestamp"] == formats.parse_timestamp(record["timestamp"])
    # the points, as the renderer reads them: the same as gathering the drawings
    flat, expected = data.flat(), flatten_drawings([r["drawing"] for r in records])
    for name in ("x", "y", "lengths", "counts"):
        assert np.array_equal(getattr(flat, name), getattr(expected, name)), name
    assert np.array_equal(
        rasterize_many(data.take(np.arange(20)).flat()),
        rasterize_many([r["drawing"] for r in records[:20]]),
    )


def test_raw_drawings_are_simplified_with_googles_recipe(tmp_path):
    path = RAW / "cat.ndjson"
    records = list(formats.iter_ndjson(path))
    data, stats = _pack(path, tmp_path / "raw", kind="raw")
    assert stats.raw == len(records) == len(data) and data.raw.all()
    expected = simplify_drawings([r["drawing"] for r in records])
    for i, drawing in enumerate(expected):
        assert stroke3_to_drawing(data.stroke3(i)) == [s for s in drawing if s[0]]
    # a local file of unknown kind: each drawing is looked at on its own
    mixed = tmp_path / "mixed.ndjson"
    lines = (SIMPLIFIED / "cat.ndjson").read_bytes().splitlines()[:5]
    mixed.write_bytes(b"\n".join([*lines, path.read_bytes().splitlines()[0]]) + b"\n")
    data, stats = _pack(mixed, tmp_path / "mixed")
    assert data.raw.tolist() == [False] * 5 + [True] and stats.raw == 1


def test_workers_give_the_same_files_as_one_process(tmp_path):
    path = SIMPLIFIED / "cat.ndjson"
    packed.pack_file(path, tmp_path / "one", meta=True)
    with process_pool(2) as pool:
        packed.pack_file(path, tmp_path / "two", meta=True, pool=pool)
    for file in sorted((tmp_path / "one").iterdir()):
        assert file.read_bytes() == (tmp_path / "two" / file.name).read_bytes(), file.name


def _lines(tmp_path, *lines: str, name="bad.ndjson"):
    path = tmp_path / name
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


GOOD = '{"word": "cat", "recognized": true, "key_id": "1", "drawing": [[[0, 9], [0, 9]]]}'


@pytest.mark.parametrize(
    ("line", "why"),
    [
        ('{"drawing": [[[true, 9], [0, 9]]], "recognized": true}', "among its coordinates"),
        # a string that says true hides a bool among the coordinates from the fast count
        ('{"word": "true", "drawing": [[[0, false], [0, 9]]]}', "among its coordinates"),
        ('{"drawing": [[["1", 9], [0, 9]]]}', "among its coordinates"),
        ('{"drawing": [[[1, null], [0, 9]]]}', "among its coordinates"),
        ('{"drawing": [[[1, 2], [0]]]}', "different lengths"),
        ('{"drawing": [[[1, 2]]]}', "not [xs, ys]"),
        ('{"drawing": [[]]}', "not [xs, ys]"),
        ('{"drawing": {"x": 1}}', "not a list of strokes"),
        ('{"drawing": [[[], []]]}', "the drawing has no points"),
        ('{"drawing": [[[0, 1e400], [0, 9]]]}', "invalid JSON"),
        ('{"drawing": [[[0, NaN], [0, 9]]]}', "invalid JSON"),
        ('{"drawing": [[[0, 1], [0, 9]]], "timestamp": "yesterday"}', "is not a time"),
        ("[1, 2]", "must be a JSON object"),
    ],
)
def test_a_crafted_line_is_named_by_file_and_line(tmp_path, line, why):
    path = _lines(tmp_path, GOOD, GOOD.replace('"1"', '"2"'), line)
    with pytest.raises(QuickDrawError, match=rf"bad.ndjson:3: .*{re.escape(why)}"):
        packed.pack_file(path, tmp_path / "out", meta=True)
    data, stats = _pack(path, tmp_path / "skip", on_error="skip", meta=True)
    assert len(data) == 2 and stats.read.skipped == 1
    assert stats.read.errors[0].startswith(f"{path}:3: ")


def test_raw_drawings_in_simplified_data_and_limits(tmp_path):
    raw_line = '{"drawing": [[[0.5, 9], [0, 9], [0, 10]]]}'
    path = _lines(tmp_path, GOOD, raw_line)
    with pytest.raises(QuickDrawError, match=r"bad.ndjson:2: a raw drawing"):
        packed.pack_file(path, tmp_path / "out", kind="simplified")
    lines = [GOOD.replace('"1"', f'"{i}"') for i in range(5000)]
    many = _lines(tmp_path, *lines, name="many.ndjson")
    data, stats = _pack(many, tmp_path / "many", max_drawings=2_345)
    assert len(data) == stats.drawings == 2_345 and data.identity[-1] == b"key:2344"
    with pytest.raises(QuickDrawError, match="no drawings in"):
        packed.pack_file(_lines(tmp_path, "", name="empty.ndjson"), tmp_path / "e")


def test_binary_and_gzip_files_pack_like_ndjson(tmp_path):
    records = list(formats.iter_ndjson(SIMPLIFIED / "cat.ndjson"))
    formats.write_binary(tmp_path / "cat.bin", records)
    data, _ = _pack(tmp_path / "cat.bin", tmp_path / "bin", meta=True)
    ndjson, _ = _pack(SIMPLIFIED / "cat.ndjson", tmp_path / "ndjson", meta=True)
    assert np.array_equal(data.strokes, ndjson.strokes)
    assert np.array_equal(data.key_id, ndjson.key_id)
    import gzip

    with gzip.open(tmp_path / "cat.ndjson.gz", "wb") as f:
        f.write(b"\xef\xbb\xbf" + (SIMPLIFIED / "cat.ndjson").read_bytes())  # and a BOM
    gz, _ = _pack(tmp_path / "cat.ndjson.gz", tmp_path / "gz")
    assert np.array_equal(gz.strokes, ndjson.strokes)
    broken = tmp_path / "broken.ndjson.gz"
    broken.write_bytes((tmp_path / "cat.ndjson.gz").read_bytes()[:-200])
    with pytest.raises(QuickDrawError, match="not a readable ndjson file"):
        packed.pack_file(broken, tmp_path / "broken")


def test_a_bad_binary_drawing_is_named_by_its_index_on_every_read(tmp_path):
    """The index counts from 0 in each read of a file (it was kept per path for the whole
    process, so a second read of the same file named drawing 3 as drawing 6)."""
    records = list(formats.iter_ndjson(SIMPLIFIED / "cat.ndjson"))[:3]
    records.append({**records[0], "drawing": []})  # no points
    formats.write_binary(tmp_path / "cat.bin", records)
    for attempt in range(2):
        with pytest.raises(QuickDrawError, match=r"cat\.bin: drawing 3\b"):
            packed.pack_file(tmp_path / "cat.bin", tmp_path / f"out{attempt}")


def test_growing_npy_is_what_np_save_writes(tmp_path):
    rows = np.arange(3 * 1001, dtype=np.int16).reshape(1001, 3)
    out = formats.GrowingNpy(tmp_path / "a.npy", np.int16, (3,))
    for start in range(0, 1001, 300):
        out.append(rows[start : start + 300])
    out.close()
    expected = io.BytesIO()
    np.save(expected, rows)
    assert (tmp_path / "a.npy").read_bytes() == expected.getvalue()
    with pytest.raises(QuickDrawError, match="rows of shape"):
        formats.GrowingNpy(tmp_path / "b.npy", np.int16, (3,)).append(np.zeros((2, 2)))


def _split_as_before(identities, category, seed, sizes="official"):
    """The split as it was computed one identity at a time (the reference it must keep)."""
    seen, ranked = set(), []
    for i, identity in enumerate(identities):
        if identity in seen:
            continue
        seen.add(identity)
        digest = hashlib.blake2b(f"{seed}\0{category}\0{identity}".encode(), digest_size=16)
        ranked.append((digest.digest(), i))
    ranked.sort()
    counts = splits.split_sizes(len(ranked), sizes)
    out, start = {}, 0
    for name in splits.SPLITS:
        out[name] = sorted(i for _, i in ranked[start : start + counts[name]])
        start += counts[name]
    return out


def test_the_split_is_the_one_every_earlier_version_made(tmp_path):
    records = list(formats.iter_ndjson(SIMPLIFIED / "cat.ndjson"))
    identities = [splits.drawing_identity(r) for r in records] * 2  # and duplicates
    identities.append("ключ")  # not ASCII
    for seed, sizes in ((0, "official"), (7, "all"), (3, (10, 5, 2))):
        got = splits.split_identities(identities, "cat", seed, sizes)
        assert got.indices == _split_as_before(identities, "cat", seed, sizes)
        as_bytes = np.array([i.encode() for i in identities], dtype="S")
        assert splits.split_identities(as_bytes, "cat", seed, sizes).indices == got.indices
    assert got.duplicates == len(records)


def test_parquet_tables_from_packed_chunks_hold_the_drawings(tmp_path):
    import pyarrow.parquet as pq

    from quickdraw_tools.parquet import write_packed

    records = list(formats.iter_ndjson(SIMPLIFIED / "cat.ndjson"))
    data, _ = _pack(SIMPLIFIED / "cat.ndjson", tmp_path / "cat", meta=True)
    halves = [np.arange(0, 10), np.arange(10, len(data))]
    parts = [(data.take(rows), ["train"] * len(rows)) for rows in halves]
    assert write_packed(tmp_path / "cat.parquet", parts, word="cat") == len(records)
    table = pq.read_table(tmp_path / "cat.parquet").to_pylist()
    for row, record in zip(table, records, strict=True):
        assert row["drawing"] == record["drawing"] and row["key_id"] == record["key_id"]
        assert row["timestamp"] == formats.parse_timestamp(record["timestamp"])
    assert json.loads(json.dumps(table[0]["split"])) == "train"
