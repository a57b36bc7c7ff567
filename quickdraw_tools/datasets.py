"""Quick, Draw! as PyTorch datasets: `QuickDraw` (map-style), `QuickDrawStream` (streamed).

    from quickdraw_tools.datasets import QuickDraw
    ds = QuickDraw("data", categories=["cat", "power outlet"], split="train", format="bitmap",
                   download=True)
    image, label = ds[0]   # uint8 (28, 28); label indexes ds.classes

`QuickDraw` reads the official simplified files (downloaded into ``root`` in the
bucket's layout, or found there, or in a mirror named by `base_url`) and derives,
once per category, what every format needs: the stroke-3 rows of all drawings, the
bitmaps drawn by the official renderer (when first asked for), the metadata and
the drawings' identities. They are written under ``root/derived/<category>/``
all or nothing (`atomic.staged_output`, with the source and a format version in
its ``manifest.json``) and memory-mapped afterwards, so a second construction only
opens files. A split is the one `quickdraw convert` makes for the same seed
(`splits.split_identities` on the same identities), cached per seed.

Formats: ``"bitmap"`` uint8 ``(28, 28)`` (``(size, size)`` with `size`, drawn with
`line_width` and `padding` as ``quickdraw convert --size --line-width --padding``
draws them, pixel for pixel); ``"stroke3"`` int16 ``(n, 3)``;
``"stroke5"`` float32 ``(max_len + 1, 5)`` (drawings longer than `max_len` are left
out, as sketch-rnn leaves them out); ``"drawing"`` the simplified strokes
``[[xs, ys], ...]``. `collate_stroke5` pads a batch of stroke-3 items to stroke-5.

`QuickDraw.from_files` gives the same dataset over the files `quickdraw convert`
writes (sketch-rnn ``.npz``, bitmap ``.npy`` with their split), which is what the
models' datasets are built on. `QuickDrawStream` streams the full official files
(raw, simplified or binary) without holding a category in memory, sharded across
DataLoader workers and distributed ranks.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, IterableDataset, get_worker_info

from . import download, formats, manifest, splits
from .atomic import staged_output
from .categories import check_category
from .errors import QuickDrawError, check_choice, printable
from .packed import Packed, open_packed, pack_file
from .strokes import is_raw, stroke3_to_drawing, stroke3_to_stroke5

FORMATS = ("bitmap", "stroke3", "stroke5", "drawing")
SPLIT_CODES = {name: code for code, name in enumerate(splits.SPLITS)}  # train 0, valid 1, test 2
VERSION = 1  # of the derived files; another version is rebuilt
_BITMAP_CHUNK = 4096  # drawings rendered at a time when bitmaps are derived
_BITMAP_PIXELS = 1 << 24  # and at most 16 MB of them (large sizes)


# --- one category's derived arrays --------------------------------------------------------------


class _Arrays:
    """One category's drawings: a `packed.Packed` (memory-mapped from a derived folder, or in
    memory for `from_files`) and, for ``"bitmap"``, its bitmaps (the file `bitmap_file` of
    the folder). Opened lazily and dropped when pickled, so DataLoader workers map the files
    themselves. `rows`: for `from_files`, the rows sidecar beside the file (`rows`), read
    when `metadata` is first asked for."""

    def __init__(
        self,
        category: str,
        path: Path | None = None,
        packed: Packed | None = None,
        bitmaps: np.ndarray | None = None,
        bitmap_file: str = "bitmaps.npy",
        rows: Path | None = None,
    ):
        self.category, self.path, self.bitmap_file = category, path, bitmap_file
        self._packed, self._bitmaps = packed, bitmaps
        self.rows_path = rows
        self._rows: list[dict[str, Any]] | None = None

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        if self.path is not None:
            state["_packed"] = state["_bitmaps"] = None
        state["_rows"] = None
        return state

    @property
    def packed(self) -> Packed:
        if self._packed is None:
            if self.path is None or not (self.path / "strokes.npy").is_file():
                raise QuickDrawError(f"{self.category}: these files hold bitmaps only, no strokes")
            self._packed = open_packed(self.path)
        return self._packed

    @property
    def bitmaps(self) -> np.ndarray:
        if self._bitmaps is None:
            assert self.path is not None, "bitmaps are derived before they are read"
            self._bitmaps = np.load(self.path / self.bitmap_file, mmap_mode="r")
        return self._bitmaps

    def field(self, name: str) -> np.ndarray | None:
        """A metadata array of the packed drawings (None if these files have none)."""
        if self._packed is None and self.path is None:
            return None  # bitmaps alone
        return getattr(self.packed, name)

    def __len__(self) -> int:
        if self._packed is not None or self.path is not None:
            return len(self.packed)
        return len(self.bitmaps)

    def stroke3(self, i: int) -> np.ndarray:
        return np.array(self.packed.stroke3(i))

    def lengths(self) -> np.ndarray:
        return self.packed.lengths()

    def bitmap(self, i: int) -> np.ndarray:
        side = formats.bitmap_side(self.bitmaps.shape[1])
        return np.array(self.bitmaps[i]).reshape(side, side)

    def metadata(self, i: int) -> dict[str, Any]:
        if self.rows_path is not None:
            if self._rows is None:
                from .rows import read_rows

                rows = read_rows(self.rows_path)
                if len(rows) != len(self):
                    raise QuickDrawError(
                        f"{self.rows_path} has {len(rows)} rows for the {len(self)} drawings of"
                        f" {self.category}"
                    )
                self._rows = rows
            row = {k: v for k, v in self._rows[i].items() if k != "split"}
            return {"word": self.category, **row}
        if self._packed is None and self.path is None:
            return {"word": self.category}
        return self.packed.metadata(i, word=self.category)


def _source_state(source: Path) -> dict[str, Any]:
    stat = source.stat()
    return {"source": str(source), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _derived_is_current(folder: Path, source: Path | None) -> bool:
    """Whether `folder` holds complete derived files of this version (for `source`)."""
    try:
        record = manifest.read(folder)
    except QuickDrawError:
        return False
    if record is None or record.get("derived", {}).get("version") != VERSION:
        return False
    for rel, entry in record["files"].items():
        path = folder / rel
        if not path.is_file() or path.stat().st_size != entry["size"]:
            return False
    if source is None or not source.is_file():
        return True  # the source is gone (a mirror moved): what was derived from it stands
    known = record["derived"].get("source_state", {})
    return known == _source_state(source)


def _derive(folder: Path, source: Path, category: str, on_error: str, progress: bool) -> None:
    """Read `source` once (`packed.pack_file`) into the category's stroke-3 rows, metadata
    and identities, under `folder`, all or nothing."""
    from tqdm import tqdm

    with staged_output(folder) as stage:
        bar = tqdm(desc=f"derive {printable(category)}", unit=" drawings", disable=not progress)
        with bar:
            stats = pack_file(
                source, stage.path, kind="simplified", on_error=on_error, meta=True,
                progress=bar.update,
            )  # fmt: skip
        files: dict[str, dict] = {p.name: {} for p in stage.path.glob("*.npy")}
        for stale in folder.glob("*.npy"):  # bitmaps and splits of an older source go too
            if stale.name not in files:
                stage.remove(stale.name)
        run = manifest.run_record(category=category, source=str(source), skipped=stats.read.skipped)
        record = manifest.build(stage.path, folder, run, files)
        record["files"] = {k: v for k, v in record["files"].items() if k in files}
        record["derived"] = {"version": VERSION, "source_state": _source_state(source)}
        manifest.write(stage.path, record)
        stage.commit()


def _bitmap_file(size: int, line_width: float, padding: float) -> str:
    """The derived file of bitmaps drawn so: ``bitmaps.npy`` for the official settings."""
    if (size, line_width, padding) == (formats.BITMAP_SIDE, 16.0, 16.0):
        return "bitmaps.npy"
    return f"bitmaps-{size}-{float(line_width)!r}-{float(padding)!r}.npy"


def _derive_bitmaps(folder: Path, data: _Arrays, progress: bool, picture) -> None:
    """Draw every drawing of `data` with the official renderer at `picture` (``(size,
    line_width, padding)``), once, into `data.bitmap_file`."""
    from tqdm import tqdm

    from .raster import rasterize_many

    size, line_width, padding = picture
    n = len(data)
    chunk = max(1, min(_BITMAP_CHUNK, _BITMAP_PIXELS // (size * size)))
    with staged_output(folder) as stage:
        out = formats.GrowingNpy(stage.file(data.bitmap_file), np.uint8, (size * size,))
        bar = tqdm(
            total=n, desc=f"draw {printable(data.category)}", unit=" drawings", disable=not progress
        )
        with bar:
            try:
                for start in range(0, n, chunk):
                    rows = np.arange(start, min(start + chunk, n))
                    flat = data.packed.take(rows).flat()
                    out.append(rasterize_many(flat, size, line_width, padding))
                    bar.update(len(rows))
            finally:
                out.close()
        run = manifest.run_record(category=data.category, derived="bitmaps", picture=picture)
        _commit_beside(stage, folder, run, {data.bitmap_file: {}})
    data._bitmaps = None


def _commit_beside(stage, folder: Path, run: dict, files: dict[str, dict]) -> None:
    """Commit files derived from what `_derive` wrote, listed in the same manifest."""
    record = manifest.build(stage.path, folder, run, files)
    record["derived"] = (manifest.read(folder) or {}).get("derived", {})
    manifest.write(stage.path, record)
    stage.commit()


def _split_codes(
    folder: Path | None,
    data: _Arrays,
    seed: int,
    max_per_category: int | None,
    sizes: str | Sequence[int] = "official",
) -> np.ndarray:
    """int8 per drawing: 0 train, 1 valid, 2 test, -1 in no split (a duplicate, or beyond the
    split sizes), as `quickdraw convert` splits the same drawings with the same seed."""
    n = len(data) if not max_per_category else min(len(data), max_per_category)
    label = sizes if isinstance(sizes, str) else "-".join(str(int(v)) for v in sizes)
    name = f"split-{seed}-{n}-{label}.npy"
    if folder is not None and (folder / name).is_file():
        return np.load(folder / name)
    identities = data.packed.identity[:n]
    split = splits.split_identities(identities, data.category, seed, sizes)
    codes = np.full(len(data), -1, dtype=np.int8)
    for split_name, rows in split.indices.items():
        codes[rows] = SPLIT_CODES[split_name]
    if folder is not None:
        with staged_output(folder) as stage:
            np.save(stage.file(name), codes, allow_pickle=False)
            run = manifest.run_record(category=data.category, derived="split", seed=seed,
                                      split_sizes=label, drawings=n)  # fmt: skip
            _commit_beside(stage, folder, run, {name: {"seed": seed}})
    return codes


# --- filters: one value or several, checked ------------------------------------------------------

COUNTRY_CODE = re.compile(r"[A-Z]{2}")


def country_codes(codes: str | Sequence[str] | None) -> list[str] | None:
    """``countrycodes=`` as a list: one code (``"US"``) or several (``["US", "GB"]``), each two
    capital letters as the files write them (ISO 3166-1 alpha-2); None for no filter."""
    if codes is None:
        return None
    values = [codes] if isinstance(codes, str) else list(codes)
    if not values:
        raise QuickDrawError("countrycodes is empty: give one code ('US') or several, or None")
    for code in values:
        if not isinstance(code, str) or not COUNTRY_CODE.fullmatch(code):
            raise QuickDrawError(
                f"countrycodes: {code!r} is not a country code; give two capital letters as the "
                "files write them (ISO 3166-1 alpha-2), such as 'US' or ['US', 'GB']"
            )
    return values


def recognized_values(value: bool | Sequence[bool] | None) -> list[bool] | None:
    """``recognized=`` as a list: True, False, or both (``[True, False]``); None for no
    filter."""
    if value is None:
        return None
    values: Sequence[Any] = value if isinstance(value, list | tuple) and value else [value]
    for v in values:
        if not isinstance(v, bool | np.bool_):
            raise QuickDrawError(
                f"recognized: {v!r} is not True or False; give True, False or [True, False]"
            )
    return [bool(v) for v in values]


# --- the map-style dataset -----------------------------------------------------------------------


class QuickDraw(Dataset):
    """Quick, Draw! drawings of some categories, one split, in one format (see the module doc).

    root: the folder for the downloaded files (the official layout,
        ``root/full/simplified/<category>.ndjson``) and what is derived from them.
    categories: official category names (a string or a list); ``ds.classes`` in that order.
    split: ``"train"``, ``"valid"`` or ``"test"``, exactly as `quickdraw convert` splits.
    format: ``"bitmap"``, ``"stroke3"``, ``"stroke5"`` or ``"drawing"``.
    download: fetch missing files (through the cache/mirror code, `download.fetch`);
        without it, missing files are an error that says how to get them.
    base_url: a mirror (http(s) URL or a local folder in the official layout), as in
        every command; default ``$QUICKDRAW_BASE_URL`` or the official bucket.
    seed: the split seed (the same drawings as ``quickdraw convert --seed``).
    recognized, countrycodes: keep only drawings the game recognised (True) or did not
        (False) (or both: ``[True, False]``), or from this country or these countries
        (``"US"`` or ``["US", "GB"]``). A code no drawing of these categories has, or filters
        that leave no drawing, are refused with the codes there are.
    max_len: for ``"stroke5"``, the padded length (longer drawings are left out).
    max_per_category: use the first N drawings of each category (as ``convert``).
    split_sizes: ``"official"`` (70,000 / 2,500 / 2,500, or those proportions), ``"all"``
        (every drawing) or ``(train, valid, test)``: ``convert --split-sizes``.
    size, line_width, padding: for ``"bitmap"``, the side in pixels (8 to 1024) and the
        stroke width and margin in the 256-unit drawing space: the pixels of ``quickdraw
        convert --size --line-width --padding`` (default: the official 28, 16, 16).
    """

    def __init__(
        self,
        root: str | os.PathLike,
        categories: str | Sequence[str],
        split: str = "train",
        format: str = "bitmap",
        download: bool = False,
        base_url: str | None = None,
        seed: int = 0,
        transform: Callable | None = None,
        target_transform: Callable | None = None,
        *,
        recognized: bool | Sequence[bool] | None = None,
        countrycodes: str | Sequence[str] | None = None,
        max_len: int = 250,
        max_per_category: int | None = None,
        split_sizes: str | Sequence[int] = "official",
        on_error: str = "raise",
        progress: bool = True,
        size: int = formats.BITMAP_SIDE,
        line_width: float = 16.0,
        padding: float = 16.0,
    ):
        from .raster import check_settings

        check_choice("split", split, splits.SPLITS)
        check_choice("format", format, FORMATS)
        check_choice("on_error mode", on_error, ["raise", "skip"])
        recognized, countrycodes = recognized_values(recognized), country_codes(countrycodes)
        check_settings(size, line_width, padding)
        bitmap_file = _bitmap_file(size, line_width, padding)
        root = Path(root)
        names = [categories] if isinstance(categories, str) else list(categories)
        if not names:
            raise QuickDrawError("QuickDraw needs at least one category")
        names = [check_category(c) for c in names]
        if len(set(names)) != len(names):
            raise QuickDrawError(f"a category is given twice: {names}")
        parts = []
        for name in names:
            folder = root / "derived" / name
            source = self._source(root, name, download, base_url, folder)
            # source None: `_source` found the derived files current without one
            if source is not None and not _derived_is_current(folder, source):
                _derive(folder, source, name, on_error, progress)
            data = _Arrays(name, folder, bitmap_file=bitmap_file)
            if format == "bitmap" and not (folder / bitmap_file).is_file():
                _derive_bitmaps(folder, data, progress, (size, line_width, padding))
            codes = _split_codes(folder, data, seed, max_per_category, split_sizes)
            parts.append((data, codes == SPLIT_CODES[split]))
        self._setup(names, parts, split, format, transform, target_transform, max_len)
        self._filter(recognized, countrycodes)
        self.seed, self.root = seed, root
        self.size = size  # of the bitmaps (0: from_files of strokes)

    @staticmethod
    def _source(root: Path, name: str, fetch: bool, base_url: str | None, folder: Path):
        """The simplified file of `name`, fetched if asked; None when only its derived
        files are there."""
        local = root / download.remote_path(name, "simplified")
        if local.is_file():
            return local
        if fetch:
            return download.fetch(name, "simplified", cache_dir=root, base_url=base_url)
        if _derived_is_current(folder, None):
            return None
        raise QuickDrawError(
            f"{name!r} is not in {root}: no {local}. Pass download=True (base_url= for a "
            f"mirror), or run `quickdraw download {name!r} --cache {root}`"
        )

    def _setup(self, names, parts, split, format, transform, target_transform, max_len) -> None:
        self.classes = list(names)
        self.split, self.format, self.max_len = split, format, max_len
        self.transform, self.target_transform = transform, target_transform
        self._data = [data for data, _ in parts]
        masks = [mask for _, mask in parts]
        if format == "stroke5":
            masks = [m & (d.lengths() <= max_len) for d, m in zip(self._data, masks, strict=True)]
        self._rows = [np.flatnonzero(m) for m in masks]
        self._index()

    def _index(self) -> None:
        sizes = [len(r) for r in self._rows]
        self._label = np.repeat(np.arange(len(sizes)), sizes)
        self._row = np.concatenate(self._rows) if self._rows else np.zeros(0, np.int64)

    def _filter(self, recognized: list[bool] | None, countrycodes: list[str] | None) -> None:
        """Keep the rows that pass the filters (checked lists: `recognized_values`,
        `country_codes`); a code no drawing has, or nothing left, is refused in one line."""
        if recognized is None and countrycodes is None:
            return
        wanted = None if countrycodes is None else np.array([c.encode() for c in countrycodes])
        present: dict[bytes, int] = {}
        for k, (data, rows) in enumerate(zip(self._data, self._rows, strict=True)):
            keep = np.ones(len(rows), dtype=bool)
            if recognized is not None:
                flags = data.field("recognized")
                if flags is None:
                    raise QuickDrawError(f"{data.category}: these files carry no 'recognized'")
                keep &= np.isin(np.asarray(flags)[rows], [int(v) for v in recognized])
            if wanted is not None:
                codes = data.field("countrycode")
                if codes is None:
                    raise QuickDrawError(f"{data.category}: these files carry no countrycode")
                found, counts = np.unique(np.asarray(codes), return_counts=True)
                for code, count in zip(found.tolist(), counts.tolist(), strict=True):
                    present[code] = present.get(code, 0) + count
                keep &= np.isin(np.asarray(codes)[rows], wanted)
            self._rows[k] = rows[keep]
        self._index()
        where = ", ".join(self.classes)
        if wanted is not None:
            unknown = [c for c in countrycodes or [] if c.encode() not in present]
            if unknown:
                common = sorted(present.items(), key=lambda kv: -kv[1])[:12]
                there = ", ".join(f"{c.decode() or '(none)'} ({n})" for c, n in common)
                raise QuickDrawError(
                    f"countrycodes {unknown}: no drawing of {where} is from there; the codes "
                    f"these drawings have, most common first: {there}"
                )
        if len(self) == 0:
            chosen = [f"recognized={recognized}"] if recognized is not None else []
            chosen += [f"countrycodes={countrycodes}"] if countrycodes is not None else []
            raise QuickDrawError(
                f"no drawing of the {self.split} split of {where} has {' and '.join(chosen)}"
            )

    @classmethod
    def from_files(
        cls,
        files: str | os.PathLike | Sequence[str | os.PathLike],
        split: str = "train",
        format: str = "stroke3",
        seed: int = 0,
        max_per_category: int = 0,
        transform: Callable | None = None,
        target_transform: Callable | None = None,
        max_len: int = 250,
    ) -> QuickDraw:
        """The dataset over files `quickdraw convert` writes, one category each (its stem):
        sketch-rnn ``.npz`` (``stroke3``, ``stroke5``, ``drawing``; their own split) or bitmap
        ``.npy`` (``bitmap``, any size; the split beside them, else the keyed split of their
        rows, by `seed`). `files`: one path or several (str or Path). `max_per_category`: the
        first rows of each split, as `splits.limit`. `metadata(i)` reads the rows sidecar
        beside each file (``<name>.rows.csv``) when there is one."""
        check_choice("split", split, splits.SPLITS)
        options = dict(transform=transform, target_transform=target_transform, max_len=max_len)
        return cls.splits_from_files(files, format, seed, max_per_category, **options)[split]

    @classmethod
    def splits_from_files(
        cls,
        files: str | os.PathLike | Sequence[str | os.PathLike],
        format: str = "stroke3",
        seed: int = 0,
        max_per_category: int = 0,
        **options: Any,
    ) -> dict[str, QuickDraw]:
        """`from_files` for the three splits at once (each file is read once)."""
        check_choice("format", format, FORMATS)
        paths = [Path(files)] if isinstance(files, str | os.PathLike) else [Path(f) for f in files]
        if not paths:
            raise QuickDrawError("no data files given")
        names, loaded = [], []
        for file in paths:
            _check_file_format(file, format)
            if format == "bitmap":
                data, split_of = _from_bitmaps(file, seed)
            else:
                data, split_of = _from_npz(file)
            names.append(data.category)
            loaded.append((data, splits.limit(split_of, max_per_category)))
            if format == "bitmap" and data.bitmaps.shape[1] != loaded[0][0].bitmaps.shape[1]:
                side, first = formats.bitmap_side(data.bitmaps.shape[1]), paths[0]
                raise QuickDrawError(
                    f"{file} holds {side}x{side} bitmaps, {first} others: give files of one size"
                )
        if len(set(names)) != len(names):
            raise QuickDrawError(f"two files of the same category: {names}")
        out = {}
        for split in splits.SPLITS:
            parts = []
            for data, kept in loaded:
                mask = np.zeros(len(data), dtype=bool)
                mask[np.asarray(kept[split], dtype=np.int64)] = True
                parts.append((data, mask))
            self = cls.__new__(cls)
            self._setup(
                names,
                parts,
                split,
                format,
                options.get("transform"),
                options.get("target_transform"),
                options.get("max_len", 250),
            )
            self.seed, self.root = seed, Path()  # no root: the files are the source
            self.size = (
                formats.bitmap_side(loaded[0][0].bitmaps.shape[1]) if format == "bitmap" else 0
            )
            out[split] = self
        return out

    def __len__(self) -> int:
        return len(self._row)

    def _item(self, i: int):
        data, row = self._data[self._label[i]], int(self._row[i])
        if self.format == "bitmap":
            return data.bitmap(row)
        strokes = data.stroke3(row)
        if self.format == "stroke3":
            return strokes
        if self.format == "stroke5":
            return stroke3_to_stroke5(strokes, self.max_len)
        return stroke3_to_drawing(strokes)

    def __getitem__(self, i: int):
        if not -len(self) <= i < len(self):
            raise IndexError(f"index {i} out of range for {len(self)} drawings")
        i %= len(self)
        item, label = self._item(i), int(self._label[i])
        if self.transform is not None:
            item = self.transform(item)
        if self.target_transform is not None:
            label = self.target_transform(label)
        return item, label

    def metadata(self, i: int) -> dict[str, Any]:
        """``key_id``, ``countrycode``, ``timestamp`` (UTC datetime), ``recognized`` and
        ``word`` of drawing `i`, those the source file has."""
        i %= len(self)
        return self._data[self._label[i]].metadata(int(self._row[i]))

    def bitmaps(self) -> np.ndarray:
        """Every item's bitmap at once, uint8 ``(len, size * size)`` (``(len, 784)`` at the
        official 28) in item order (``"bitmap"``)."""
        if self.format != "bitmap":
            raise QuickDrawError(f"bitmaps() needs format 'bitmap', not {self.format!r}")
        parts = [
            np.asarray(d.bitmaps)[rows] for d, rows in zip(self._data, self._rows, strict=True)
        ]
        side = self.size or formats.BITMAP_SIDE
        return np.concatenate(parts) if parts else np.zeros((0, side * side), np.uint8)

    def sketches(self) -> list[np.ndarray]:
        """Every item's stroke-3 array (int16 ``(n, 3)``), in item order."""
        return [
            d.stroke3(int(r)) for d, rows in zip(self._data, self._rows, strict=True) for r in rows
        ]

    @property
    def targets(self) -> np.ndarray:
        """The label of every item (torchvision's name), without reading any drawing."""
        return self._label.copy()

    def __repr__(self) -> str:
        kinds = "category" if len(self.classes) == 1 else "categories"
        return (
            f"QuickDraw({len(self)} drawings of {len(self.classes)} {kinds}, "
            f"split={self.split!r}, format={self.format!r})"
        )


def _check_file_format(path: Path, format: str) -> None:
    """Refuse a file `from_files` cannot read as `format`: one that is not there, or one of
    another kind, saying what it is and which ``format=`` reads it."""
    kind = formats.file_kind(path)
    if not path.is_file():
        what = "folder" if path.is_dir() else "file"
        raise QuickDrawError(f"{path}: no such {what} (write it with `quickdraw convert`)")
    if kind == "sketchrnn" and format != "bitmap" or kind == "bitmap" and format == "bitmap":
        return
    if kind == "sketchrnn":
        raise QuickDrawError(
            f"{path} is a sketch-rnn .npz (strokes): read it with format='stroke3', 'stroke5' "
            "or 'drawing' (format='bitmap' reads bitmap .npy files)"
        )
    if kind == "bitmap":
        raise QuickDrawError(
            f"{path} is 28x28 bitmaps (.npy): read it with format='bitmap' "
            f"(format={format!r} reads sketch-rnn .npz files)"
        )
    if kind in formats.DRAWING_KINDS:
        raise QuickDrawError(
            f"{path} is drawings ({formats.suffix_list(kind)}), not a converted file: "
            "`quickdraw convert` it first, or use QuickDraw(root, category) or "
            "QuickDrawStream for drawings"
        )
    raise QuickDrawError(
        f"{path}: from_files reads sketch-rnn .npz files (format='stroke3', 'stroke5', "
        "'drawing') and bitmap .npy files (format='bitmap')"
    )


def _from_npz(path: Path) -> tuple[_Arrays, splits.Split]:
    """A sketch-rnn ``.npz`` as arrays, train, valid, test in that order, with its split."""
    parts = formats.load_sketchrnn_npz(path)
    ordered = [s for name in splits.SPLITS for s in parts[name]]
    lengths = np.array([len(s) for s in ordered], dtype=np.int64)
    strokes = np.concatenate(ordered) if ordered else np.zeros((0, 3), np.int16)
    packed = Packed(
        strokes=strokes.astype(np.int16),
        offsets=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
        identity=np.zeros(len(ordered), dtype="S1"),  # the file's split is used as it is
        raw=np.zeros(len(ordered), dtype=bool),
    )
    bounds = np.cumsum([0] + [len(parts[s]) for s in splits.SPLITS]).tolist()
    indices = {s: list(range(bounds[i], bounds[i + 1])) for i, s in enumerate(splits.SPLITS)}
    return _Arrays(formats.file_stem(path), packed=packed, rows=_rows_beside(path)), splits.Split(
        indices=indices
    )


def _rows_beside(path: Path) -> Path | None:
    """The rows sidecar `quickdraw convert` wrote beside `path`, if there is one."""
    from .rows import rows_path

    sidecar = rows_path(path)
    return sidecar if sidecar.is_file() else None


def _from_bitmaps(path: Path, seed: int) -> tuple[_Arrays, splits.Split]:
    """Bitmap rows and their split: the one recorded beside them, else the keyed split."""
    rows = formats.load_bitmaps(path)
    category = formats.file_stem(path)
    split = splits.read_sidecar(path, len(rows)) or splits.split_bitmaps(rows, category, seed)
    return _Arrays(category, bitmaps=rows, rows=_rows_beside(path)), split


def collate_stroke5(batch: Sequence, max_len: int | None = None):
    """Batch of ``(stroke3, label)`` items -> ``(stroke-5 (B, L + 1, 5) float32, lengths (B,),
    labels (B,))``, padded to the longest drawing of the batch (or to `max_len`)."""
    sketches = [np.asarray(s) for s, _ in batch]
    longest = max((len(s) for s in sketches), default=0)
    size = longest if max_len is None else max_len
    big = np.stack([stroke3_to_stroke5(s, size) for s in sketches]).astype(np.float32)
    lengths = torch.tensor([len(s) for s in sketches], dtype=torch.long)
    labels = torch.tensor([int(label) for _, label in batch], dtype=torch.long)
    return torch.from_numpy(big), lengths, labels


# --- streamed -------------------------------------------------------------------------------------


class QuickDrawStream(IterableDataset):
    """The drawings of official files, streamed: records (drawing + metadata), never a whole
    category in memory.

    sources: category names (fetched as `format` files, from `base_url` or into `root`),
        file paths (``.ndjson``, ``.ndjson.gz``, ``.bin``), or folders of such files.
    format: which official files to read for category names: ``"simplified"``, ``"raw"``
        or ``"binary"``.
    simplified: simplify raw drawings on the fly with Google's recipe.
    recognized, countrycodes: filters, as in `QuickDraw` (each code checked; a stream cannot
        know beforehand which codes its files hold).
    shuffle_buffer: yield in a shuffled order drawn from a buffer of this many records
        (0: file order), with a generator seeded by ``(seed, epoch, shard)``.
    rank, world_size: this process's place among distributed ranks (default: from
        `torch.distributed` when initialised, else ``$RANK``/``$WORLD_SIZE``, else 0/1).

    Shards: record number k (counting every record of every source, in order) goes to
    shard ``k % (world_size * workers)``, shard ``rank * workers + worker id``: across
    ranks and DataLoader workers, no drawing is yielded twice and none is missed.
    """

    def __init__(
        self,
        sources: str | os.PathLike | Sequence[str | os.PathLike],
        format: str = "simplified",
        root: str | os.PathLike | None = None,
        base_url: str | None = None,
        *,
        simplified: bool = False,
        recognized: bool | Sequence[bool] | None = None,
        countrycodes: str | Sequence[str] | None = None,
        shuffle_buffer: int = 0,
        seed: int = 0,
        rank: int | None = None,
        world_size: int | None = None,
        on_error: str = "raise",
    ):
        check_choice("format", format, ("simplified", "raw", "binary"))
        check_choice("on_error mode", on_error, ["raise", "skip"])
        if shuffle_buffer < 0:
            raise QuickDrawError(f"shuffle_buffer must be >= 0, got {shuffle_buffer}")
        items = [sources] if isinstance(sources, str | os.PathLike) else list(sources)
        self.files: list[Path] = [
            p for item in items for p in self._files(item, format, root, base_url)
        ]
        self.simplified = simplified
        self.recognized = recognized_values(recognized)
        codes = country_codes(countrycodes)
        self.countrycodes = None if codes is None else set(codes)
        self.shuffle_buffer, self.seed, self.epoch = shuffle_buffer, seed, 0
        self.rank, self.world_size, self.on_error = rank, world_size, on_error

    @staticmethod
    def _files(item, format: str, root, base_url) -> list[Path]:
        path = Path(item)
        if path.is_dir():
            found = sorted(
                p for p in path.iterdir() if formats.file_kind(p) in formats.DRAWING_KINDS
            )
            if not found:
                raise QuickDrawError(f"no drawing files (.ndjson, .ndjson.gz, .bin) in {path}")
            return found
        if formats.file_kind(path) in formats.DRAWING_KINDS:
            if not path.is_file():
                raise QuickDrawError(f"no such file: {path}")
            return [path]
        return [download.fetch(str(item), format, cache_dir=root, base_url=base_url)]

    def set_epoch(self, epoch: int) -> None:
        """A new shuffled order (with `shuffle_buffer`) for each epoch."""
        self.epoch = epoch

    def _shard(self) -> tuple[int, int]:
        rank, world = self.rank, self.world_size
        if rank is None or world is None:
            if torch.distributed.is_available() and torch.distributed.is_initialized():
                rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
            else:
                rank = int(os.environ.get("RANK", 0)) if rank is None else rank
                world = int(os.environ.get("WORLD_SIZE", 1)) if world is None else world
        info = get_worker_info()
        workers, worker = (info.num_workers, info.id) if info is not None else (1, 0)
        if not 0 <= rank < world:
            raise QuickDrawError(f"rank {rank} is not in 0..{world - 1}")
        return rank * workers + worker, world * workers

    def _records(self, shard: int, shards: int) -> Iterator[dict]:
        k = 0
        for path in self.files:
            word = formats.file_stem(path) if formats.file_kind(path) == "binary" else None
            reader = formats.iter_drawings(path, on_error=self.on_error, warn=False)
            for record in reader:
                mine = k % shards == shard
                k += 1
                if not mine:
                    continue
                if word is not None and "word" not in record:
                    record["word"] = word
                if self.recognized is not None and record.get("recognized") not in self.recognized:
                    continue
                if (
                    self.countrycodes is not None
                    and record.get("countrycode") not in self.countrycodes
                ):
                    continue
                yield record

    def _simplify_raw(self, records: Iterator[dict], batch: int = 256) -> Iterator[dict]:
        """Raw records simplified (a batch at a time), simplified ones passed through."""
        from .simplify import simplify_drawings

        def one(record: dict) -> list | None:
            try:
                return simplify_drawings([record["drawing"]], checked=True)[0]
            except QuickDrawError as e:
                if self.on_error == "raise":
                    raise QuickDrawError(f"key_id {record.get('key_id')}: {e}") from None
                return None  # skipped

        def flush(pending: list[dict]) -> Iterator[dict]:
            raw = [r for r in pending if is_raw(r["drawing"])]
            try:
                done: list = simplify_drawings([r["drawing"] for r in raw], checked=True)
            except QuickDrawError:  # find the bad one(s)
                done = [one(r) for r in raw]
            simplified = {id(r): d for r, d in zip(raw, done, strict=True)}
            for record in pending:
                if id(record) not in simplified:
                    yield record
                elif simplified[id(record)] is not None:
                    yield {**record, "drawing": simplified[id(record)]}

        pending: list[dict] = []
        for record in records:
            pending.append(record)
            if len(pending) == batch:
                yield from flush(pending)
                pending = []
        yield from flush(pending)

    def __iter__(self) -> Iterator[dict]:
        shard, shards = self._shard()
        records = self._records(shard, shards)
        if self.simplified:
            records = self._simplify_raw(records)
        if not self.shuffle_buffer:
            yield from records
            return
        rng = np.random.default_rng([self.seed, self.epoch, shard])
        buffer: list[dict] = []
        for record in records:
            if len(buffer) < self.shuffle_buffer:
                buffer.append(record)
                continue
            j = int(rng.integers(len(buffer)))
            yield buffer[j]
            buffer[j] = record
        rng.shuffle(buffer)
        yield from buffer


__all__ = ["FORMATS", "QuickDraw", "QuickDrawStream", "collate_stroke5"]
