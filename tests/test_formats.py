"""File formats on the real sample data in ../shared/quickdraw, plus crafted bad input."""

from __future__ import annotations

import gzip
import io
import os
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import MIRROR

from quickdraw_tools import formats as F
from quickdraw_tools.cli import main
from quickdraw_tools.errors import QuickDrawError

RAW = sorted((MIRROR / "full" / "raw").glob("*.ndjson"))
SIMPLIFIED = sorted((MIRROR / "full" / "simplified").glob("*.ndjson"))


def without_fraction(timestamp: str) -> str:
    """An ndjson timestamp as .bin keeps it: whole seconds."""
    return timestamp.split(".")[0].removesuffix(" UTC") + " UTC"


# --- ndjson --------------------------------------------------------------------------------


def test_every_raw_mirror_file_parses(shared):
    assert len(RAW) == 230
    n = 0
    for path in RAW:
        for record in F.iter_ndjson(path):
            assert record["word"] == path.stem
            assert isinstance(record["key_id"], str) and record["key_id"].isdigit()
            for xs, ys, ts in record["drawing"]:
                assert len(xs) == len(ys) == len(ts)
            n += 1
    assert n == 6419


def test_every_simplified_mirror_file_parses(shared):
    assert len(SIMPLIFIED) == 230
    n = 0
    for path in SIMPLIFIED:
        for record in F.iter_ndjson(path):
            assert record["word"] == path.stem
            for xs, ys in record["drawing"]:
                assert all(type(v) is int and 0 <= v <= 255 for v in xs + ys)
            n += 1
    assert n == 6725


def test_records_without_optional_fields(shared):
    records = list(F.iter_ndjson(shared / "training" / "cake.ndjson"))
    assert len(records) == 1580
    assert set(records[0]) == {"word", "countrycode", "recognized", "drawing"}


BAD_LINES = {
    2: "{not json",
    3: "[1, 2, 3]",
    4: '{"word": "cat"}',
    5: '{"drawing": [[[1, 2], [3]]]}',
    6: '{"drawing": [[[1, "2"], [3, 4]]]}',
    7: '{"drawing": [[[1, 2]]]}',
    8: '{"drawing": "cat"}',
}


@pytest.fixture
def messy_ndjson(tmp_path: Path) -> Path:
    good = '{"word":"cat","drawing":[[[0,10],[0,10]]]}'
    lines = [good, *BAD_LINES.values(), "", good]
    path = tmp_path / "messy file.ndjson"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("line", sorted(BAD_LINES))
def test_malformed_line_names_file_and_line(tmp_path, line):
    path = tmp_path / "one bad.ndjson"
    path.write_text('{"drawing": []}\n' * (line - 1) + BAD_LINES[line] + "\n")
    with pytest.raises(QuickDrawError) as e:
        list(F.iter_ndjson(path))
    assert str(e.value).startswith(f"{path}:{line}: malformed line")


def test_skip_mode_counts_and_warns(messy_ndjson):
    stats = F.ReadStats()
    with pytest.warns(UserWarning, match=r"skipped 7 malformed line\(s\) of 10"):
        records = list(F.iter_ndjson(messy_ndjson, on_error="skip", stats=stats))
    assert len(records) == 2
    assert (stats.lines, stats.records, stats.skipped) == (10, 2, 7)
    assert stats.errors[0].startswith(f"{messy_ndjson}:2: invalid JSON")


def test_ndjson_argument_errors(tmp_path):
    with pytest.raises(QuickDrawError, match="unknown on_error mode 'ignore'"):
        F.iter_ndjson(tmp_path / "x.ndjson", on_error="ignore")
    with pytest.raises(QuickDrawError, match="no such ndjson file"):
        F.iter_ndjson(tmp_path / "missing.ndjson")  # raised at the call, not at first next()
    (tmp_path / "binary.ndjson").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(QuickDrawError, match="not a readable ndjson file"):
        list(F.iter_ndjson(tmp_path / "binary.ndjson"))


@pytest.mark.parametrize("suffix", [".ndjson", ".ndjson.gz"])
def test_windows_line_endings_and_byte_order_mark(tmp_path, suffix):
    source = MIRROR / "full" / "simplified" / "The Eiffel Tower.ndjson"
    text = b"\xef\xbb\xbf" + source.read_bytes().replace(b"\n", b"\r\n")
    path = tmp_path / f"windows{suffix}"
    path.write_bytes(gzip.compress(text) if suffix.endswith(".gz") else text)
    assert list(F.iter_ndjson(path)) == list(F.iter_ndjson(source))


def test_corrupt_gzip_is_a_clear_error(tmp_path):
    data = gzip.compress(b'{"drawing": [[[0, 1], [0, 1]]]}\n' * 1000)
    path = tmp_path / "corrupt.ndjson.gz"
    path.write_bytes(data[:20] + bytes(200) + data[220:])  # damaged deflate stream
    with pytest.raises(QuickDrawError, match="not a readable ndjson file"):
        list(F.iter_ndjson(path))


@pytest.mark.parametrize("suffix", [".ndjson", ".ndjson.gz"])
def test_write_ndjson_round_trips_real_records(tmp_path, suffix):
    source = MIRROR / "full" / "raw" / "The Eiffel Tower.ndjson"
    records = list(F.iter_ndjson(source))
    out = tmp_path / f"copy{suffix}"
    assert F.write_ndjson(out, records) == len(records)
    assert list(F.iter_ndjson(out)) == records
    if suffix == ".ndjson":  # written exactly as the official files are
        assert out.read_bytes() == source.read_bytes()
    else:
        assert gzip.decompress(out.read_bytes()) == source.read_bytes()


def test_write_ndjson_accepts_numpy_and_is_atomic(tmp_path):
    out = tmp_path / "out.ndjson"
    F.write_ndjson(out, [{"drawing": [np.array([[1, 2], [3, 4]])], "recognized": np.bool_(True)}])
    assert list(F.iter_ndjson(out)) == [{"drawing": [[[1, 2], [3, 4]]], "recognized": True}]
    before = out.read_bytes()

    def records():
        yield {"drawing": [[[5], [6]]]}
        yield {"drawing": [[[5], [6]]], "bad": object()}

    with pytest.raises(QuickDrawError, match="record 1 cannot be written"):
        F.write_ndjson(out, records())
    assert out.read_bytes() == before
    assert os.listdir(tmp_path) == ["out.ndjson"]


# --- binary --------------------------------------------------------------------------------


def test_binary_layout_matches_the_specification(tmp_path):
    """Bytes packed by hand from the dataset's description parse to the expected record."""
    path = tmp_path / "hand.bin"
    data = struct.pack("<Q2sbIH", 5201136883597312, b"VE", 1, 1488497110, 2)
    data += struct.pack("<H", 3) + bytes([1, 2, 3]) + bytes([4, 5, 6])
    data += struct.pack("<H", 1) + bytes([255]) + bytes([0])
    data += struct.pack("<Q2sbIH", 7, b"\0\0", 0, 0, 0)  # empty drawing, no optional fields
    path.write_bytes(data)
    records = list(F.iter_binary(path, word="cat"))
    assert records == [
        {
            "word": "cat",
            "countrycode": "VE",
            "timestamp": "2017-03-02 23:25:10 UTC",
            "recognized": True,
            "key_id": "5201136883597312",
            "drawing": [[[1, 2, 3], [4, 5, 6]], [[255], [0]]],
        },
        {"word": "cat", "recognized": False, "key_id": "7", "drawing": []},
    ]
    F.write_binary(tmp_path / "again.bin", records)
    assert (tmp_path / "again.bin").read_bytes() == data


def test_ndjson_to_binary_round_trip_on_real_drawings(tmp_path):
    checked = 0
    for path in SIMPLIFIED:
        records = list(F.iter_ndjson(path))
        out = tmp_path / f"{path.stem}.bin"
        assert F.write_binary(out, records) == len(records)
        back = list(F.iter_binary(out, word=path.stem))
        expected = [{**r, "timestamp": without_fraction(r["timestamp"])} for r in records]
        assert back == expected
        # And .bin -> records -> .bin is byte for byte.
        F.write_binary(tmp_path / "again.bin", back)
        assert (tmp_path / "again.bin").read_bytes() == out.read_bytes()
        checked += len(records)
    assert checked == 6725


def test_binary_records_without_optional_fields(shared, tmp_path):
    records = list(F.iter_ndjson(shared / "training" / "piano.ndjson"))[:50]
    F.write_binary(tmp_path / "piano.bin", records)
    back = list(F.iter_drawings(tmp_path / "piano.bin"))
    assert back == [{k: v for k, v in r.items() if k != "word"} for r in records]


def test_binary_writer_rejects_raw_drawings_and_leaves_nothing(tmp_path):
    raw = next(F.iter_ndjson(MIRROR / "full" / "raw" / "cat.ndjson"))
    out = tmp_path / "raw.bin"
    with pytest.raises(QuickDrawError, match="record 0 .* integers 0-255 .* simplify"):
        F.write_binary(out, [raw])
    assert not out.exists() and os.listdir(tmp_path) == []
    with pytest.raises(QuickDrawError, match="countrycode 'USA'"):
        F.write_binary(out, [{"countrycode": "USA", "drawing": []}])


def test_binary_writer_accepts_numpy_and_integral_floats(tmp_path):
    stroke = [np.array([0, 128, 255], dtype=np.int64), [1.0, 2.0, 3.0]]
    F.write_binary(tmp_path / "n.bin", [{"drawing": [stroke]}])
    assert next(F.iter_binary(tmp_path / "n.bin"))["drawing"] == [[[0, 128, 255], [1, 2, 3]]]
    for bad in ([[0, 256], [0, 0]], [[0, 1.5], [0, 0]], [[0, "a"], [0, 0]], [[0, 1], [0]]):
        with pytest.raises(QuickDrawError, match="record 0 cannot be written as .bin: stroke 0"):
            F.write_binary(tmp_path / "bad.bin", [{"drawing": [bad]}])


def test_truncated_binary_is_an_error(tmp_path):
    records = list(F.iter_ndjson(MIRROR / "full" / "simplified" / "cat.ndjson"))
    F.write_binary(tmp_path / "cat.bin", records)
    data = (tmp_path / "cat.bin").read_bytes()
    (tmp_path / "cut.bin").write_bytes(data[: len(data) - 7])
    with pytest.raises(QuickDrawError, match=r"truncated binary file \(drawing 24 ends early\)"):
        list(F.iter_binary(tmp_path / "cut.bin"))


def test_iter_drawings_dispatches_on_suffix(tmp_path):
    path = MIRROR / "full" / "simplified" / "fish.ndjson"
    records = list(F.iter_drawings(path))
    F.write_binary(tmp_path / "fish.bin", records)
    assert [r["drawing"] for r in F.iter_drawings(tmp_path / "fish.bin")] == [
        r["drawing"] for r in records
    ]
    with pytest.raises(QuickDrawError, match="unknown suffix"):
        F.iter_drawings(tmp_path / "fish.csv")


# --- numpy_bitmap --------------------------------------------------------------------------


@pytest.mark.parametrize("category", ["cat", "apple", "fish"])
def test_real_bitmaps_load(category):
    bitmaps = F.load_bitmaps(MIRROR / "full" / "numpy_bitmap" / f"{category}.npy")
    assert bitmaps.dtype == np.uint8 and bitmaps.shape == (3000, 784)
    assert 0 < bitmaps.mean() < 255 and bitmaps.max() == 255
    mapped = F.load_bitmaps(MIRROR / "full" / "numpy_bitmap" / f"{category}.npy", mmap=True)
    assert np.array_equal(mapped, bitmaps)


def test_bitmaps_save_load(tmp_path):
    bitmaps = F.load_bitmaps(MIRROR / "full" / "numpy_bitmap" / "cat.npy")[:100]
    F.save_bitmaps(tmp_path / "a.npy", bitmaps)
    assert np.array_equal(F.load_bitmaps(tmp_path / "a.npy"), bitmaps)
    F.save_bitmaps(tmp_path / "b.npy", bitmaps.reshape(-1, 28, 28))
    assert np.array_equal(F.load_bitmaps(tmp_path / "b.npy"), bitmaps)


def test_bitmap_checks(tmp_path):
    with pytest.raises(QuickDrawError, match="must be uint8"):
        F.save_bitmaps(tmp_path / "f.npy", np.zeros((2, 784), dtype=np.float32))
    with pytest.raises(QuickDrawError, match=r"shape \(N, 784\).*got \(2, 785\)"):
        F.save_bitmaps(tmp_path / "s.npy", np.zeros((2, 785), dtype=np.uint8))
    assert os.listdir(tmp_path) == []
    np.save(tmp_path / "wrong.npy", np.zeros((3, 28, 28), dtype=np.uint8))
    with pytest.raises(QuickDrawError, match=r"got \(3, 28, 28\)"):
        F.load_bitmaps(tmp_path / "wrong.npy")
    np.save(tmp_path / "objects.npy", np.array([None, 1], dtype=object))
    with pytest.raises(QuickDrawError, match="not a numpy .npy bitmap file"):
        F.load_bitmaps(tmp_path / "objects.npy")
    with pytest.raises(QuickDrawError, match="no such bitmap file"):
        F.load_bitmaps(tmp_path / "missing.npy")


# --- sketch-rnn .npz -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def sheep() -> dict[str, list[np.ndarray]]:
    return F.load_sketchrnn_npz(MIRROR.parent / "other" / "aaron_sheep.npz")


def test_real_sketchrnn_file(sheep):
    assert {k: len(v) for k, v in sheep.items()} == {"train": 7400, "valid": 300, "test": 300}
    for split in sheep.values():
        for d in split:
            assert d.dtype == np.int16 and d.ndim == 2 and d.shape[1] == 3
            assert set(np.unique(d[:, 2])) <= {0, 1}
    reference = np.load(MIRROR.parent / "other" / "aaron_sheep.npz", encoding="latin1",
                        allow_pickle=True)  # fmt: skip
    assert all(np.array_equal(a, b) for a, b in zip(sheep["test"], reference["test"], strict=True))


def test_sketchrnn_write_read_round_trip(sheep, tmp_path):
    small = {k: v[:50] for k, v in sheep.items()}
    out = tmp_path / "sheep.npz"
    F.save_sketchrnn_npz(out, small)
    back = F.load_sketchrnn_npz(out)
    for split in F.SPLITS:
        assert all(np.array_equal(a, b) for a, b in zip(back[split], small[split], strict=True))
    # The same layout numpy (and sketch-rnn's loader) expects.
    with np.load(out, encoding="latin1", allow_pickle=True) as z:
        assert sorted(z.files) == ["test", "train", "valid"]
        assert z["train"].dtype == object and z["train"].shape == (50,)
        assert z["train"][0].dtype == np.int16


def test_sketchrnn_writer_checks(tmp_path):
    stroke = np.array([[1, 2, 0], [3, 4, 1]])
    with pytest.raises(QuickDrawError, match="exactly"):
        F.save_sketchrnn_npz(tmp_path / "x.npz", {"train": [stroke]})
    with pytest.raises(QuickDrawError, match=r"shape \(n, 3\)"):
        F.save_sketchrnn_npz(
            tmp_path / "x.npz", {"train": [stroke[:, :2]], "valid": [], "test": []}
        )
    with pytest.raises(QuickDrawError, match="fit int16"):
        big = stroke * 40_000
        F.save_sketchrnn_npz(tmp_path / "x.npz", {"train": [big], "valid": [], "test": []})
    assert os.listdir(tmp_path) == []
    # Equal-length drawings must stay separate arrays, not one stacked 3-D array.
    F.save_sketchrnn_npz(tmp_path / "eq.npz", {"train": [stroke, stroke], "valid": [], "test": []})
    assert len(F.load_sketchrnn_npz(tmp_path / "eq.npz")["train"]) == 2


class _Evil:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch '{self.marker}'",))


def test_malicious_npz_is_rejected_without_running(tmp_path):
    marker = tmp_path / "pwned"
    evil = np.empty(1, dtype=object)
    evil[0] = _Evil(marker)
    ok = np.empty(0, dtype=object)
    path = tmp_path / "evil.npz"
    np.savez(path, train=evil, valid=ok, test=ok)
    assert b"system" in zipfile.ZipFile(path).read("train.npy")
    with pytest.raises(QuickDrawError, match=r"unsafe.*refusing to load (posix|os)\.system"):
        F.load_sketchrnn_npz(path)
    assert not marker.exists()
    # The payload is live: numpy's own loader with allow_pickle runs it.
    with np.load(path, allow_pickle=True) as z:
        z["train"]
    assert marker.exists()


def test_hand_written_pickle_with_eval_is_rejected(tmp_path):
    marker = tmp_path / "pwned"
    payload = f"__import__('os').system(\"touch '{marker}'\")"
    pickle_bytes = b"cbuiltins\neval\n(V" + payload.encode() + b"\ntR."
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "|O", "fortran_order": False, "shape": (1,)}
    )
    npy = b"\x93NUMPY\x01\x00" + header.getvalue()[8:] + pickle_bytes
    path = tmp_path / "eval.npz"
    with zipfile.ZipFile(path, "w") as z:
        for split in F.SPLITS:
            z.writestr(f"{split}.npy", npy)
    with pytest.raises(QuickDrawError, match="refusing to load builtins.eval"):
        F.load_sketchrnn_npz(path)
    assert not marker.exists()


def test_bad_sketchrnn_files(tmp_path):
    (tmp_path / "text.npz").write_text("hello")
    with pytest.raises(QuickDrawError, match="not a .npz"):
        F.load_sketchrnn_npz(tmp_path / "text.npz")
    np.savez(tmp_path / "two.npz", train=np.zeros(3), valid=np.zeros(3))
    with pytest.raises(QuickDrawError, match=r"missing split\(s\) \['test'\]"):
        F.load_sketchrnn_npz(tmp_path / "two.npz")
    np.savez(tmp_path / "flat.npz", train=np.zeros((2, 3)), valid=np.zeros(3), test=np.zeros(3))
    with pytest.raises(QuickDrawError, match="1-D array of drawings"):
        F.load_sketchrnn_npz(tmp_path / "flat.npz")


# --- numbers a drawing cannot hold, and files that lie about their size ---------------------


HUGE = "1" + "0" * 400  # a 400-digit integer: no float64 holds it


@pytest.mark.parametrize("number", [HUGE, "NaN", "Infinity", "-Infinity", "1e400"])
def test_numbers_beyond_float64_are_malformed_lines(tmp_path, number):
    path = tmp_path / "bad.ndjson"
    good = '{"drawing": [[[0, 10], [0, 5]]]}'
    path.write_text(f'{good}\n{{"drawing": [[[0, {number}], [0, 5]]]}}\n{good}\n')
    with pytest.raises(QuickDrawError, match=rf"^{path}:2: malformed line"):
        list(F.iter_ndjson(path))
    stats = F.ReadStats()
    assert len(list(F.iter_ndjson(path, on_error="skip", stats=stats, warn=False))) == 2
    assert stats.skipped == 1 and stats.errors[0].startswith(f"{path}:2:")


def test_every_command_names_the_line_of_a_huge_number(tmp_path, capsys):
    raw = tmp_path / "cat.ndjson"
    line = '{"drawing": [[[0.5, 10.25], [0.5, 5.5], [0, 1]]]}'
    raw.write_text(f"{line}\n{line}\n" + '{"drawing": [[[0, ' + HUGE + "], [0, 5], [0, 1]]]}\n")
    for command in (
        ["convert", str(raw), "--out", str(tmp_path / "o")],
        ["simplify", str(raw), "--out", str(tmp_path / "s.ndjson")],
        ["svg", str(raw), "--out", str(tmp_path / "svg")],
    ):
        assert main([*command, "--quiet"]) == 1
        err = capsys.readouterr().err
        assert f"{raw}:3: malformed line" in err and len(err.splitlines()) == 1, err
    for command in (
        ["convert", str(raw), "--out", str(tmp_path / "o")],
        ["simplify", str(raw), "--out", str(tmp_path / "s.ndjson")],
    ):
        assert main([*command, "--quiet", "--on-error", "skip"]) == 0, capsys.readouterr().err
    assert len(list(F.iter_ndjson(tmp_path / "s.ndjson"))) == 2


def test_gzipped_ndjson_is_reproducible_and_nan_is_not_written(tmp_path, monkeypatch):
    import time

    records = [{"word": "cat", "drawing": [[[1, 2], [3, 4]]]}]
    F.write_ndjson(tmp_path / "a.ndjson.gz", records)
    monkeypatch.setattr(time, "time", lambda: 2_000_000_000.0)  # another moment: same bytes
    F.write_ndjson(tmp_path / "b.ndjson.gz", records)
    assert (tmp_path / "a.ndjson.gz").read_bytes() == (tmp_path / "b.ndjson.gz").read_bytes()
    with pytest.raises(QuickDrawError, match="record 1 cannot be written as JSON"):
        F.write_ndjson(tmp_path / "c.ndjson", [records[0], {"drawing": [[[float("nan")], [1]]]}])
    assert not (tmp_path / "c.ndjson").exists()


def test_a_npz_claiming_half_a_billion_drawings_is_refused_before_reading(tmp_path):
    """2.9 MB of zip once grew to 2 GB of memory before failing with a misleading message."""
    import resource
    import zipfile

    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "|O", "fortran_order": False, "shape": (500_000_000,)}
    )
    body = header.getvalue() + b"\x80\x02" + b"N" * 2_000_000  # compresses to almost nothing
    path = tmp_path / "bomb.npz"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for split in ("valid", "test"):
            F_empty = io.BytesIO()
            np.save(F_empty, np.empty(0, dtype=object), allow_pickle=True)
            zf.writestr(f"{split}.npy", F_empty.getvalue())
        zf.writestr("train.npy", body)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(QuickDrawError, match=r"bomb.npz\[train\]: declares 500,000,000 drawings"):
        F.load_sketchrnn_npz(path)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200_000  # KiB
