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
_IEND = b"\x00\x00\x00\x00IEND\xaeB`\x82"  # the empty end chunk and its CRC


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_images(images: np.ndarray, invert: bool = False) -> list[bytes]:
    """uint8 ``(n, h, w)`` bitmaps, each as an 8-bit greyscale PNG.

    Each PNG is three chunks (the specification's IHDR, IDAT, IEND): the rows, each after its
    filter byte 0 (none), deflated into a zlib stream by ISA-L's fastest level (`isal`). It is
    written here rather than by pillow, and deflated by ISA-L rather than zlib, for speed: a
    64x64 drawing takes pillow ~95 µs, zlib at its fastest ~40 µs (most of it building
    each image's Huffman codes), ISA-L's level 0 ~5 µs, for a file about 1.5x zlib's (still
    within one 4 KB disk block at 64x64). The tests decode every image with pillow."""
    from isal import isal_zlib

    pixels = np.asarray(images, dtype=np.uint8)
    if pixels.ndim != 3 or 0 in pixels.shape[1:]:
        raise ValueError(f"PNG images are a (n, h, w) array of h, w > 0, got {pixels.shape}")
    n, height, width = pixels.shape
    rows = np.zeros((n, height, width + 1), dtype=np.uint8)  # column 0: the filter byte
    if invert:
        np.subtract(255, pixels, out=rows[:, :, 1:])
    else:
        rows[:, :, 1:] = pixels
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grey, no interlace
    head = _SIGNATURE + _chunk(b"IHDR", header)
    out = []
    for image in rows:
        data = b"IDAT" + isal_zlib.compress(image, 0)
        size, crc = struct.pack(">I", len(data) - 4), struct.pack(">I", zlib.crc32(data))
        out.append(b"".join((head, size, data, crc, _IEND)))
    return out


def png_bytes(image: np.ndarray, invert: bool = False) -> bytes:
    """One uint8 ``(h, w)`` bitmap as an 8-bit greyscale PNG (`png_images`)."""
    pixels = np.asarray(image, dtype=np.uint8)
    if pixels.ndim != 2:
        raise ValueError(f"a PNG image is a (h, w) array, got shape {pixels.shape}")
    return png_images(pixels[None], invert)[0]


def write_pngs(job: tuple) -> int:
    """Worker: write bitmaps as PNG files; returns how many.

    job: ``(pictures, folder, files, size, line_width, padding, invert)``. `pictures` are the
    packed drawings to render (`raster.rasterize_many`), or ``(npy, first)``: rows ``first``
    onwards of a ``.npy`` of bitmaps drawn already at those settings. `files` are new paths
    inside `folder` (``<split>/<category>/<name>.png``), one per picture.
    """
    pictures, folder, files, size, line_width, padding, invert = job
    if isinstance(pictures, tuple):
        npy, first = pictures
        bitmaps = np.load(npy, mmap_mode="r")[first : first + len(files)]
    else:
        from .raster import rasterize_many

        bitmaps = rasterize_many(pictures.flat(), size, line_width, padding)
    encoded = png_images(bitmaps.reshape(-1, size, size), invert)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    # the names are looked up from the folder, not each from / (where the system allows it)
    where = os.open(folder, os.O_RDONLY) if os.open in os.supports_dir_fd else None
    try:
        for name, data in zip(files, encoded, strict=True):
            if where is None:
                name = os.path.join(folder, name)
            fd = os.open(name, flags, 0o666, dir_fd=where)  # the umask applies, as to any file
            try:
                done = os.write(fd, data)
                while done < len(data):  # a short write: the rest
                    done += os.write(fd, data[done:])
            finally:
                os.close(fd)
    finally:
        if where is not None:
            os.close(where)
    return len(files)


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
