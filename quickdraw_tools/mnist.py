"""MNIST-format (IDX) files: the layout torchvision's `MNIST` and most tutorials read.

An IDX file is a big-endian header followed by the raw array, C order
(http://yann.lecun.com/exdb/mnist/):

- bytes 0-1: zero; byte 2: the element type (0x08 unsigned byte, 0x09 signed
  byte, 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64); byte 3: the number
  of dimensions. So images of uint8 are magic 0x00000803 and labels 0x00000801.
- then one big-endian uint32 per dimension (N, rows, cols for images; N for labels);
- then the data, big-endian for multi-byte types.

`write_mnist` writes the four standard files (``train-images-idx3-ubyte``,
``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``,
``t10k-labels-idx1-ubyte``; with ``gzip=True`` the same names plus ``.gz``, as
the original MNIST downloads) and ``categories.txt``, whose line ``i`` is the
name of label ``i``. With more than 256 categories (all 345 Quick, Draw!
categories) labels do not fit a byte: the label files then hold int16 (type
0x0B, magic 0x00000B01), which this reader and the IDX specification allow but
loaders hard-wired to MNIST's 0x00000801 will refuse.
"""

from __future__ import annotations

import gzip as gzip_module
import io
import os
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np

from . import manifest
from .atomic import atomic_write, staged_output
from .errors import QuickDrawError

# IDX element type code -> numpy dtype (big-endian where it matters).
IDX_TYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODE_OF = {dtype.newbyteorder("="): code for code, dtype in IDX_TYPES.items()}

FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
CATEGORIES_FILE = "categories.txt"


_BLOCK = 16_384  # rows written at a time: a category's images are never all in memory
_BLOCK_BYTES = 1 << 24  # and at most 16 MB of them (1024x1024 images are 1 MB each)


def _idx_code(array) -> int:
    code = _CODE_OF.get(np.dtype(array.dtype).newbyteorder("="))
    if code is None:
        valid = ", ".join(str(d) for d in IDX_TYPES.values())
        raise QuickDrawError(f"IDX cannot store dtype {array.dtype}; valid: {valid}")
    shape = tuple(array.shape)
    if not 1 <= len(shape) <= 255:
        raise QuickDrawError(f"IDX needs 1 to 255 dimensions, got {len(shape)}")
    if any(n >= 2**32 for n in shape):
        raise QuickDrawError(f"IDX dimensions must be < 2**32, got {shape}")
    return code


def _write_idx(f: IO[bytes], array, gzip: bool) -> None:
    """The IDX encoding (header + data) of `array` into `f`, `_BLOCK` rows at a time.

    `array`: a numpy array, or any object with ``shape``, ``dtype`` and row slicing
    (``array[a:b]``), such as a memory map or a lazily gathered set of rows.
    """
    code = _idx_code(array)
    shape = tuple(array.shape)
    if gzip:  # no time stamp or name in the gzip header: equal arrays give equal files
        with gzip_module.GzipFile(filename="", mode="wb", fileobj=f, mtime=0) as z:
            _write_idx_body(z, array, code, shape)
    else:
        _write_idx_body(f, array, code, shape)


def _write_idx_body(f, array, code: int, shape: tuple[int, ...]) -> None:
    f.write(bytes([0, 0, code, len(shape)]) + np.asarray(shape, dtype=">u4").tobytes())
    row_bytes = int(np.prod(shape[1:], dtype=np.int64)) * IDX_TYPES[code].itemsize
    rows = max(1, min(_BLOCK, _BLOCK_BYTES // max(row_bytes, 1)))
    for start in range(0, shape[0], rows):
        block = np.asarray(array[start : start + rows])
        f.write(np.ascontiguousarray(block, dtype=IDX_TYPES[code]).tobytes())


def idx_bytes(array: np.ndarray) -> bytes:
    """The IDX encoding (header + data) of `array`."""
    buffer = io.BytesIO()
    _write_idx(buffer, np.asarray(array), gzip=False)
    return buffer.getvalue()


def write_idx(path: str | os.PathLike, array: np.ndarray, gzip: bool | None = None) -> Path:
    """Write `array` as an IDX file, atomically; gzipped if `gzip` (default: name ends .gz).

    The gzip header carries no time stamp or name, so equal arrays give equal files.
    """
    path = Path(path)
    if gzip is None:
        gzip = path.suffix == ".gz"
    with atomic_write(path, "wb") as f:
        _write_idx(f, np.asarray(array), gzip)
    return path


def parse_idx(data: bytes, where: str = "IDX data") -> np.ndarray:
    """Decode IDX bytes (header + data) to a native-endian array; checks every size."""
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise QuickDrawError(f"{where}: not an IDX file (magic must start with two zero bytes)")
    code, ndim = data[2], data[3]
    if code not in IDX_TYPES:
        raise QuickDrawError(f"{where}: unknown IDX element type 0x{code:02X}")
    header = 4 + 4 * ndim
    if ndim == 0 or len(data) < header:
        raise QuickDrawError(f"{where}: truncated IDX header")
    shape = tuple(int(n) for n in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dtype = IDX_TYPES[code]
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) != expected:
        raise QuickDrawError(
            f"{where}: header says shape {shape} ({expected} bytes), file has {len(data)} bytes"
        )
    array = np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
    return array.astype(dtype.newbyteorder("="))


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (gzipped or not: detected from its first bytes)."""
    path = Path(path)
    if not path.is_file():
        raise QuickDrawError(f"IDX file not found: {path}")
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip_module.decompress(data)
        except (OSError, EOFError, zlib.error) as e:
            raise QuickDrawError(f"{path}: broken gzip data ({e})") from None
    return parse_idx(data, str(path))


def _check_split(name: str, images, labels: np.ndarray, n_classes: int):
    if not hasattr(images, "shape") or not hasattr(images, "dtype"):
        images = np.asarray(images)  # a list: small enough to hold (large ones are arrays)
    labels = np.asarray(labels)
    if images.dtype != np.uint8 or len(images.shape) != 3:
        raise QuickDrawError(
            f"{name} images must be uint8 (N, rows, cols), got {images.dtype} {images.shape}"
        )
    if labels.ndim != 1 or len(labels) != len(images):
        raise QuickDrawError(
            f"{name} labels must be one per image: {labels.shape} for {len(images)} images"
        )
    if not np.issubdtype(labels.dtype, np.integer):
        raise QuickDrawError(f"{name} labels must be integers, got {labels.dtype}")
    if len(labels) and (labels.min() < 0 or labels.max() >= n_classes):
        raise QuickDrawError(
            f"{name} labels must be in 0..{n_classes - 1} (one per category), "
            f"got {labels.min()}..{labels.max()}"
        )
    return images, labels


def variant_names(gzip: bool) -> list[str]:
    """The four IDX file names, plain or with ``.gz``."""
    suffix = ".gz" if gzip else ""
    return [name + suffix for files in FILES.values() for name in files]


def write_mnist(
    directory: str | os.PathLike,
    train: tuple[Any, np.ndarray],
    test: tuple[Any, np.ndarray],
    categories: Sequence[str],
    gzip: bool = False,
) -> dict[str, Path]:
    """Write the four MNIST files and ``categories.txt`` into `directory`.

    train, test: ``(images uint8 (N, rows, cols), labels int (N,))``; label ``i``
        means ``categories[i]``. Images may be any array-like with ``shape``, ``dtype``
        and row slicing (a memory map, rows gathered on demand): they are written a
        block at a time.
    gzip: write ``*.gz`` files (as the original MNIST downloads) instead.

    Returns the written paths by role (``train-images``, ..., ``categories``).

    The five files replace the previous ones together, all or nothing
    (`atomic.staged_output`), with a ``manifest.json`` that `read_mnist` checks:
    bad input, Ctrl-C or a kill part-way leaves the previous set whole, never a
    mix of two runs. The other variant of a previous run (``.gz`` or plain),
    which `read_mnist` could read instead, is removed in the same commit.
    """
    names = [str(c) for c in categories]
    if not names:
        raise QuickDrawError("write_mnist needs at least one category name")
    bad = [c for c in names if not c or "\n" in c or "\r" in c]
    if bad:
        raise QuickDrawError(f"category names must be non-empty single lines, got {bad[0]!r}")
    label_dtype = np.uint8 if len(names) <= 256 else np.dtype(">i2")
    directory = Path(directory)
    suffix = ".gz" if gzip else ""
    arrays: dict[str, Any] = {}  # file name -> what it holds
    for split, (images, labels) in (("train", train), ("test", test)):
        images, labels = _check_split(split, images, labels, len(names))
        image_file, label_file = FILES[split]
        arrays[image_file] = images
        arrays[label_file] = labels.astype(label_dtype)
    written: dict[str, Path] = {}
    with staged_output(directory) as stage:
        for name, array in arrays.items():
            with open(stage.file(name + suffix), "wb") as f:
                _write_idx(f, array, gzip)
            written[name.split("-idx")[0]] = directory / (name + suffix)  # "train-images", ...
        stage.file(CATEGORIES_FILE).write_text("".join(n + "\n" for n in names), "utf-8")
        written["categories"] = directory / CATEGORIES_FILE
        for other in variant_names(not gzip):
            stage.remove(other)
        files: dict[str, dict] = {p.name: {} for p in written.values()}
        run = manifest.run_record(categories=len(names))
        manifest.write(stage.path, manifest.build(stage.path, directory, run, files))
        stage.commit()
    return written


def read_mnist(directory: str | os.PathLike) -> dict:
    """Read what `write_mnist` wrote (plain or gzipped).

    Returns ``{"train": (images, labels), "test": (images, labels),
    "categories": [names]}``; images uint8 (N, rows, cols), labels int64. Files
    that `write_mnist` listed in the folder's ``manifest.json`` must still be the
    ones it wrote (a mix of two runs' files is refused).
    """
    directory = Path(directory)
    out: dict = {}
    for split, files in FILES.items():
        arrays = []
        for name in files:
            path = directory / name
            if not path.exists() and (directory / (name + ".gz")).exists():
                path = directory / (name + ".gz")
            if path.exists():
                manifest.verify(path)  # a set written by one run, nothing mixed in
            arrays.append(read_idx(path))
        images, labels = arrays
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise QuickDrawError(
                f"{directory}: {split} images {images.shape} and labels {labels.shape} do not match"
            )
        out[split] = (images, labels.astype(np.int64))
    categories_path = directory / CATEGORIES_FILE
    if not categories_path.is_file():
        raise QuickDrawError(f"{categories_path} not found (it maps labels to category names)")
    manifest.verify(categories_path)
    out["categories"] = categories_path.read_text(encoding="utf-8").splitlines()
    n = len(out["categories"])
    for split in FILES:
        labels = out[split][1]
        if len(labels) and labels.max() >= n:
            raise QuickDrawError(f"{directory}: {split} label {labels.max()} has no category")
    return out
