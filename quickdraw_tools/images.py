"""PNG folders: one image per drawing, in the layout image libraries read as they are.

`quickdraw convert --formats png` writes ``DIR/png/<split>/<category>/<name>.png``:
``torchvision.datasets.ImageFolder("DIR/png/train")`` and Hugging Face's
``load_dataset("imagefolder", data_dir="DIR/png")`` (splits train, validation, test; a
class per category) read it with no other file. Each image is a drawing rendered by the
official renderer (`raster.rasterize_many`) at the chosen size, line width and padding:
grey ink on black as the official bitmaps (8-bit greyscale PNG, the bitmap's bytes
exactly), or black on white (``invert``).

The name of a drawing is stable, whatever the seed, the order of the file or the run:

- its ``key_id`` when that is the official form (digits only): ``4503939515072512.png``;
- a record without a key_id (the ``training/`` sets have none): ``sha1-`` and the SHA-1 of
  its strokes as compact JSON (``json.dumps(drawing, separators=(",", ":"))``), the identity
  the split ranks it by (`splits.drawing_identity`);
- any other key_id (one that is not digits could hold ``/`` or ``..``): ``key-`` and the
  SHA-1 of ``"key:" + key_id``.

Duplicates are dropped before the split, so names never repeat within a category. The
rows sidecar ``png/<category>.rows.csv`` (`rows`) gives each image's file and drawing.
"""

from __future__ import annotations

import hashlib
import os
import struct
import zlib

import numpy as np

_DIGITS = frozenset(b"0123456789")


def drawing_names(key_id: np.ndarray, identity: np.ndarray) -> list[str]:
    """The file name (without ``.png``) of each drawing (module doc), from the `packed`
    arrays ``key_id`` and ``identity`` (bytes)."""
    names = []
    for key, ident in zip(key_id.tolist(), identity.tolist(), strict=True):
        if key and len(key) <= 32 and _DIGITS.issuperset(key):
            names.append(key.decode())
        elif ident.startswith(b"sha1:") and not key:
            names.append("sha1-" + ident[5:].decode())
        else:
            names.append("key-" + hashlib.sha1(ident).hexdigest())
    return names


_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data))
        + kind
        + data
        + struct.pack(">I", zlib.crc32(data, zlib.crc32(kind)))
    )


def png_bytes(image: np.ndarray, invert: bool = False) -> bytes:
    """One uint8 ``(h, w)`` bitmap as an 8-bit greyscale PNG.

    The PNG is three chunks (the specification's IHDR, IDAT, IEND): the rows, each after
    its filter byte 0 (none), deflated by zlib with run-length matching, which packs
    mostly-black bitmaps as small as zlib's default at a fraction of its time. It is
    written here rather than by pillow because pillow's own work per image (making an
    Image, its plugin and encoder objects) takes several times what zlib does on a 64x64
    bitmap; the tests decode every image with pillow."""
    pixels = np.asarray(image, dtype=np.uint8)
    if pixels.ndim != 2 or 0 in pixels.shape:
        raise ValueError(f"a PNG image is a non-empty (h, w) array, got shape {pixels.shape}")
    height, width = pixels.shape
    rows = np.zeros((height, width + 1), dtype=np.uint8)  # column 0: the filter byte
    rows[:, 1:] = 255 - pixels if invert else pixels
    deflate = zlib.compressobj(1, zlib.DEFLATED, 15, 8, zlib.Z_RLE)
    data = deflate.compress(rows.tobytes()) + deflate.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grey, no interlace
    return _SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", data) + _chunk(b"IEND", b"")


def write_pngs(job: tuple) -> int:
    """Worker: render packed drawings and write each as a PNG at its path; returns how many.

    job: ``(packed, paths, size, line_width, padding, invert)``; the paths are new files in
    a staging folder.
    """
    from .raster import rasterize_many

    packed, paths, size, line_width, padding, invert = job
    bitmaps = rasterize_many(packed.flat(), size, line_width, padding)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    for path, row in zip(paths, bitmaps, strict=True):
        data = png_bytes(row.reshape(size, size), invert)
        fd = os.open(path, flags, 0o666)  # the umask applies, as to any new file
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
    return len(paths)


def dataset_card(size: int, invert: bool) -> str:
    """``png/README.md``: what the folder holds, and a Hugging Face dataset card whose
    configuration names the splits by folder, so ``load_dataset("DIR/png")`` reads them
    exactly (the ``imagefolder`` builder guesses splits from folder names, and a category
    called ``train`` inside ``test/`` would fool the guess)."""
    ink = "black ink on white" if invert else "grey ink on black, as the official bitmaps"
    lines = [
        "---",
        "configs:",
        "- config_name: default",
        "  data_files:",
        "  - split: train",
        '    path: "train/**/*.png"',
        "  - split: validation",
        '    path: "valid/**/*.png"',
        "  - split: test",
        '    path: "test/**/*.png"',
        "---",
        "",
        "# Quick, Draw! drawings as PNG images",
        "",
        f"Written by `quickdraw convert --formats png`: {size}x{size} greyscale, {ink}.",
        "One folder per split, one per category inside it (the label):",
        "",
        "    from torchvision.datasets import ImageFolder",
        '    train = ImageFolder("png/train")',
        "",
        "    import datasets",
        '    ds = datasets.load_dataset("png")  # train, validation, test',
        "",
        "`<category>.rows.csv` gives each image's drawing: key_id, countrycode, recognized,",
        "timestamp, and its line in the source file.",
        "",
        "The drawings are from Google's Quick, Draw! dataset, CC BY 4.0.",
        "",
    ]
    return "\n".join(lines)
