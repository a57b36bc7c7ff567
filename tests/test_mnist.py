"""MNIST IDX files: headers byte by byte against the IDX specification, round trips."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest

from quickdraw_tools import mnist
from quickdraw_tools.errors import QuickDrawError


def make_split(n: int, classes: int, seed: int):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, classes, size=n)
    return images, labels


def check_images_file(data: bytes, images: np.ndarray) -> None:
    # magic 0x00000803 = two zero bytes, type 0x08 (unsigned byte), 3 dimensions
    assert data[:4] == b"\x00\x00\x08\x03"
    assert struct.unpack(">I", data[:4])[0] == 0x00000803
    n, rows, cols = struct.unpack(">III", data[4:16])
    assert (n, rows, cols) == images.shape
    assert data[16:] == images.tobytes()  # row-major pixels, one byte each
    assert len(data) == 16 + images.size


def check_labels_file(data: bytes, labels: np.ndarray) -> None:
    assert data[:4] == b"\x00\x00\x08\x01"  # 0x00000801: unsigned byte, 1 dimension
    assert struct.unpack(">I", data[4:8])[0] == len(labels)
    assert data[8:] == bytes(int(v) for v in labels)


@pytest.mark.parametrize("use_gzip", [False, True])
def test_write_mnist_headers_and_round_trip(tmp_path, use_gzip):
    names = ["cat", "power outlet", "fish"]
    train, test = make_split(50, 3, 0), make_split(7, 3, 1)
    written = mnist.write_mnist(tmp_path, train, test, names, gzip=use_gzip)
    suffix = ".gz" if use_gzip else ""
    expected = {
        "train-images": "train-images-idx3-ubyte",
        "train-labels": "train-labels-idx1-ubyte",
        "t10k-images": "t10k-images-idx3-ubyte",
        "t10k-labels": "t10k-labels-idx1-ubyte",
    }
    for role, name in expected.items():
        assert written[role] == tmp_path / (name + suffix)
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images, labels = {"train": train, "test": test}[split]
        for role, check, array in (
            ("images", check_images_file, images),
            ("labels", check_labels_file, labels),
        ):
            raw = written[f"{prefix}-{role}"].read_bytes()
            if use_gzip:
                assert raw[:2] == b"\x1f\x8b"
                raw = gzip.decompress(raw)
            check(raw, array)
    assert (tmp_path / "categories.txt").read_text() == "cat\npower outlet\nfish\n"
    back = mnist.read_mnist(tmp_path)
    assert back["categories"] == names
    for split, (images, labels) in (("train", train), ("test", test)):
        np.testing.assert_array_equal(back[split][0], images)
        np.testing.assert_array_equal(back[split][1], labels)
    # no temporary files left behind, and gzip output is reproducible (no time stamp)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [n + suffix for n in expected.values()] + ["categories.txt", "manifest.json"]
    )
    again = tmp_path / "again"
    mnist.write_mnist(again, train, test, names, gzip=use_gzip)
    for path in written.values():
        assert (again / path.name).read_bytes() == path.read_bytes()


def test_idx_other_types_and_many_categories(tmp_path):
    for array in (
        np.arange(12, dtype=np.int16).reshape(3, 4) - 5,
        np.linspace(0, 1, 6, dtype=np.float32),
        np.arange(-3, 3, dtype=np.int32),
        np.array([1.5, -2.0]),
    ):
        path = mnist.write_idx(tmp_path / "a.idx", array)
        data = path.read_bytes()
        assert data[:2] == b"\x00\x00" and data[3] == array.ndim
        back = mnist.read_idx(path)
        assert back.dtype == array.dtype
        np.testing.assert_array_equal(back, array)
    assert mnist.idx_bytes(np.array([258], np.int16))[2] == 0x0B
    assert mnist.idx_bytes(np.array([258], np.int16))[-2:] == b"\x01\x02"  # big-endian
    # 345 categories do not fit a byte: labels become int16 (type 0x0B)
    names = [f"c{i}" for i in range(345)]
    train, test = make_split(20, 345, 2), make_split(5, 345, 3)
    train = (train[0], np.append(train[1][:-1], 344))
    mnist.write_mnist(tmp_path / "m", train, test, names)
    assert (tmp_path / "m" / "train-labels-idx1-ubyte").read_bytes()[:4] == b"\x00\x00\x0b\x01"
    back = mnist.read_mnist(tmp_path / "m")
    np.testing.assert_array_equal(back["train"][1], train[1])


def test_bad_input_and_corrupt_files(tmp_path):
    images, labels = make_split(4, 2, 0)
    with pytest.raises(QuickDrawError, match="labels must be in 0..1"):
        mnist.write_mnist(tmp_path, (images, labels + 5), (images, labels), ["a", "b"])
    with pytest.raises(QuickDrawError, match="uint8"):
        mnist.write_mnist(tmp_path, (images.astype(float), labels), (images, labels), ["a", "b"])
    with pytest.raises(QuickDrawError, match="one per image"):
        mnist.write_mnist(tmp_path, (images, labels[:2]), (images, labels), ["a", "b"])
    with pytest.raises(QuickDrawError, match="dtype"):
        mnist.idx_bytes(np.array([1], dtype=np.uint32))
    path = mnist.write_idx(tmp_path / "x", images)
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(QuickDrawError, match="bytes"):
        mnist.read_idx(path)
    gz = mnist.write_idx(tmp_path / "x.gz", np.arange(4000, dtype=np.uint8))
    data = gz.read_bytes()
    gz.write_bytes(data[:10] + b"\xff" + data[11:])  # deflate block type 3: invalid
    with pytest.raises(QuickDrawError, match="broken gzip"):
        mnist.read_idx(gz)
    (tmp_path / "y").write_bytes(b"\x01\x00\x08\x01")
    with pytest.raises(QuickDrawError, match="not an IDX"):
        mnist.read_idx(tmp_path / "y")
    with pytest.raises(QuickDrawError, match="not found"):
        mnist.read_mnist(tmp_path / "missing")


def test_the_files_are_replaced_together(tmp_path):
    first = make_split(6, 2, 0), make_split(3, 2, 1)
    mnist.write_mnist(tmp_path, *first, ["a", "b"])
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    bad_test = make_split(3, 2, 2)[0], np.array([0, 1, 7])  # label 7: no such category
    with pytest.raises(QuickDrawError, match="test labels"):
        mnist.write_mnist(tmp_path, make_split(9, 2, 3), bad_test, ["a", "b"])
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # train kept too

    # gzipped files replace the plain ones, which read_mnist would otherwise prefer
    second = make_split(5, 3, 4), make_split(2, 3, 5)
    mnist.write_mnist(tmp_path, *second, ["a", "b", "c"], gzip=True)
    others = ("categories.txt", "manifest.json")
    assert all(p.suffix == ".gz" for p in tmp_path.iterdir() if p.name not in others)
    np.testing.assert_array_equal(mnist.read_mnist(tmp_path)["train"][0], second[0][0])


def test_a_mixed_set_is_refused(tmp_path):
    """Images of one run beside labels of another (same sizes) used to load without a word."""
    mnist.write_mnist(tmp_path / "a", make_split(6, 2, 0), make_split(3, 2, 1), ["a", "b"])
    mnist.write_mnist(tmp_path / "b", make_split(6, 2, 7), make_split(3, 2, 8), ["a", "b"])
    name = "train-labels-idx1-ubyte"
    (tmp_path / "a" / name).write_bytes((tmp_path / "b" / name).read_bytes())
    with pytest.raises(QuickDrawError, match=f"{name} is not the file .*manifest.json lists"):
        mnist.read_mnist(tmp_path / "a")


def test_a_write_killed_while_putting_files_in_place_is_finished_or_refused(tmp_path):
    """kill -9 between the renames of a set: readers refuse it, the next writer finishes it."""
    from quickdraw_tools import atomic

    first, second = (
        (make_split(6, 2, 0), make_split(3, 2, 1)),
        (make_split(5, 2, 3), make_split(2, 2, 4)),
    )
    mnist.write_mnist(tmp_path, *first, ["a", "b"])
    real = atomic._finish
    calls = []

    def killed(target, journal):  # the process dies after moving one file
        record = __import__("json").loads(journal.read_text())
        staging = target / record["staging"]
        (staging / record["files"][0]).replace(target / record["files"][0])
        calls.append(1)
        raise KeyboardInterrupt

    atomic._finish = killed
    try:
        with pytest.raises(KeyboardInterrupt):
            mnist.write_mnist(tmp_path, *second, ["a", "b"])
    finally:
        atomic._finish = real
    assert calls
    with pytest.raises(QuickDrawError, match="interrupted while putting its files in place"):
        mnist.read_mnist(tmp_path)
    atomic.recover(tmp_path)  # what the next write there does first
    back = mnist.read_mnist(tmp_path)
    np.testing.assert_array_equal(back["train"][0], second[0][0])
    np.testing.assert_array_equal(back["test"][1], second[1][1])
