"""`quickdraw convert`: categories -> sketch-rnn `.npz`, bitmaps, MNIST and Parquet files.

Two passes per category, in bounded memory whatever its size. First the file is
read a chunk at a time into packed arrays on disk (`packed.pack_file`: checked,
raw drawings simplified with Google's recipe, stroke-3, identities); the split
(see `splits`) ranks the identities alone. Then every requested format is written
from that one split, a chunk of drawings at a time, so no drawing is in the
training data of one format and the test data of another.

Outputs under `out/`:

- `sketchrnn/<category>.npz`: the official sketch-rnn layout (train/valid/test
  object arrays of int16 stroke-3).
- `bitmap/<category>.npy`: uint8 `(N, 784)` in the official numpy_bitmap layout,
  rows in split order (train, then valid, then test), with
  `bitmap/<category>.splits.json` giving the row count of each split.
- `mnist/`: IDX files for all the categories together (train split ->
  `train-*`, test split -> `t10k-*`; labels are positions in
  `mnist/categories.txt`).
- `parquet/<category>.parquet`: the official record schema plus `split`.

`split_sizes` chooses how many drawings each split gets: ``"official"``
(70,000 / 2,500 / 2,500, as the sketch-rnn files), ``"all"`` (every drawing, as the
numpy_bitmap files), or three numbers. With `workers > 1` the chunks run in a
process pool and are put back in order, so the files are byte-identical to a
serial run.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from . import formats, manifest
from .atomic import staged_output
from .errors import QuickDrawError, check_choice, check_seed, printable
from .packed import Packed, open_packed, pack_file
from .splits import SPLITS, Split, split_identities, split_sizes, write_sidecar
from .workers import check_workers, ordered_map, process_pool

FORMATS = ("sketchrnn", "bitmap", "mnist", "parquet")
CHUNK = 4_096  # drawings drawn (or tabled) at a time


@dataclass
class Source:
    """Where one category's drawings come from.

    kind: "raw" (every drawing is simplified here), "simplified" (every drawing must
    already be simplified), or None (a local file: each drawing is looked at on its own).
    """

    category: str
    path: Path
    kind: str | None = None


@dataclass
class CategoryResult:
    category: str
    source: str
    read: int
    skipped: int
    skip_reasons: list[str]  # the first few ("file:line: why"), when lines were skipped
    duplicates: int
    raw: int  # how many of the drawings were raw (and simplified here)
    sizes: dict[str, int]
    outputs: list[str] = field(default_factory=list)


def check_formats(formats_wanted: Sequence[str], size: int = formats.BITMAP_SIDE) -> None:
    """Raise unless every name is one of `FORMATS` (at least one) and `size` suits them."""
    if not formats_wanted:
        raise QuickDrawError(f"no output format given; valid: {', '.join(FORMATS)}")
    for f in formats_wanted:
        check_choice("format", f, FORMATS)
    if size < 1:
        raise QuickDrawError(f"--size must be >= 1, got {size}")
    if "bitmap" in formats_wanted and size != formats.BITMAP_SIDE:
        # checked before any work: the bitmap writer refuses other sizes only at the end
        raise QuickDrawError(
            f"--size {size} does not fit the bitmap format, the official 28x28 numpy_bitmap "
            "layout; other sizes are for --formats mnist"
        )


def convert(
    sources: Sequence[Source],
    out: str | os.PathLike,
    formats_wanted: Sequence[str] = ("sketchrnn",),
    *,
    seed: int = 0,
    max_per_category: int | None = None,
    workers: int = 1,
    size: int = 28,
    on_error: str = "raise",
    progress: bool = True,
    gzip_mnist: bool = False,
    sizes: str | Sequence[int] = "official",
) -> list[CategoryResult]:
    """Convert each source category into the requested formats under `out`."""
    check_formats(formats_wanted, size)
    check_workers(workers)
    check_seed(seed)
    if max_per_category is not None and max_per_category < 1:
        raise QuickDrawError(f"--max-per-category must be >= 1, got {max_per_category}")
    split_sizes(0 if isinstance(sizes, str) else sum(sizes), sizes)  # a bad value fails now
    names = [s.category for s in sources]
    if not names:
        raise QuickDrawError("no categories to convert")
    if len(set(names)) != len(names):
        raise QuickDrawError(f"a category is given twice: {names}")
    out = Path(out)
    wanted = tuple(formats_wanted)
    results: list[CategoryResult] = []
    mnist_parts: dict[str, list[tuple[Path, np.ndarray, int]]] = {"train": [], "test": []}
    written: dict[str, dict] = {}  # staged file -> its manifest fields
    # everything is written under a staging folder and put in place together at the end:
    # a run that fails (or is killed) part-way leaves `out` as it was
    with staged_output(out) as stage:
        pool = process_pool(workers) if workers > 1 else None
        try:
            for label, source in enumerate(sources):
                work = stage.scratch() / str(label)
                result, data, split = _read(
                    source, work, wanted, seed, sizes, pool, progress, on_error, max_per_category
                )
                job = _Category(stage, result, data, split, wanted, seed, size, pool, progress)
                written |= job.write(work, label, mnist_parts)
                results.append(result)
        finally:
            if pool is not None:
                pool.shutdown(cancel_futures=True)
        if "mnist" in wanted:
            written |= _write_mnist(stage, mnist_parts, names, seed, size, gzip_mnist)
            for result in results:
                result.outputs.append(str(out / "mnist"))
        run = manifest.run_record(
            seed=seed,
            formats=list(wanted),
            sources={r.category: r.source for r in results},
            max_per_category=max_per_category,
            split_sizes=sizes if isinstance(sizes, str) else list(sizes),
        )
        manifest.write(stage.path, manifest.build(stage.path, out, run, written))
        stage.commit()
    return results


def _read(source, work, wanted, seed, sizes, pool, progress, on_error, max_per_category):
    """Pass 1: the category's drawings packed under `work`, and its split."""
    bar = tqdm(
        desc=f"read {printable(source.category)}",
        unit=" drawings",
        total=max_per_category,
        leave=False,
        disable=not progress,
        delay=0.5,  # a quick read shows no bar at all
    )
    with bar:
        stats = pack_file(
            source.path,
            work,
            kind=source.kind,
            on_error=on_error,
            meta="parquet" in wanted,
            max_drawings=max_per_category,
            pool=pool,
            progress=bar.update,
        )
    data = open_packed(work)
    split = split_identities(data.identity, source.category, seed, sizes)
    result = CategoryResult(
        category=source.category,
        source=str(source.path),
        read=len(data),
        skipped=stats.read.skipped,
        skip_reasons=stats.read.errors,
        duplicates=split.duplicates,
        raw=int(sum(data.raw[i] for name in SPLITS for i in split.indices[name])),
        sizes=split.sizes,
    )
    return result, data, split


class _Category:
    """Pass 2: one category's files, written from its packed drawings in split order."""

    def __init__(
        self, stage, result, data: Packed, split: Split, wanted, seed, size, pool, progress
    ) -> None:
        self.stage, self.result, self.data, self.split = stage, result, data, split
        self.wanted, self.seed, self.size, self.pool = wanted, seed, size, pool
        self.order = np.concatenate(
            [np.asarray(split.indices[name], dtype=np.int64) for name in SPLITS]
        )
        self.progress = progress
        self.entry = {"category": result.category, "seed": seed, "source": result.source}

    def chunks(self) -> list[np.ndarray]:
        return [self.order[i : i + CHUNK] for i in range(0, len(self.order), CHUNK)]

    def write(self, work: Path, label: int, mnist_parts) -> dict[str, dict]:
        """Stage the files; returns them (relative paths) with their manifest fields."""
        staged: list[str] = []
        if "sketchrnn" in self.wanted:
            staged.append(self._sketchrnn())
        if "bitmap" in self.wanted or "mnist" in self.wanted:
            if "bitmap" in self.wanted:
                rel = f"bitmap/{self.result.category}.npy"
                path = self.stage.file(rel)
                sidecar = write_sidecar(path, self.result.sizes, self.seed)
                staged += [rel, sidecar.relative_to(self.stage.path).as_posix()]
            else:
                path = work / "bitmaps.npy"
            self._bitmaps(path)
            sizes = self.result.sizes
            train_end, test_start = sizes["train"], sizes["train"] + sizes["valid"]
            mnist_parts["train"].append((path, np.arange(0, train_end), label))
            mnist_parts["test"].append((path, np.arange(test_start, len(self.order)), label))
        if "parquet" in self.wanted:
            staged.append(self._parquet())
        target = self.stage.target
        self.result.outputs += [str(target / rel) for rel in staged if not rel.endswith(".json")]
        return {rel: self.entry for rel in staged}

    def _sketchrnn(self) -> str:
        rel = f"sketchrnn/{self.result.category}.npz"
        data = self.data
        splits = {name: (data.stroke3(i) for i in self.split.indices[name]) for name in SPLITS}
        formats.save_sketchrnn_npz(self.stage.file(rel), splits)
        return rel

    def _bitmaps(self, path: Path) -> None:
        """Every drawing in split order, drawn by the official renderer, appended to `path`."""
        path.parent.mkdir(parents=True, exist_ok=True)
        side = self.size * self.size
        out = formats.GrowingNpy(path, np.uint8, (side,))
        jobs = ((self.data.take(rows), self.size) for rows in self.chunks())
        bar = tqdm(
            total=len(self.order),
            desc=f"draw {printable(self.result.category)}",
            unit=" drawings",
            leave=False,
            disable=not self.progress,
            delay=0.5,
        )
        try:
            for bitmaps in ordered_map(self.pool, _render, jobs):
                out.append(bitmaps)
                bar.update(len(bitmaps))
        finally:
            out.close()
            bar.close()

    def _parquet(self) -> str:
        from .parquet import write_packed

        rel = f"parquet/{self.result.category}.parquet"
        names = np.repeat(np.array(SPLITS), [self.result.sizes[s] for s in SPLITS])
        parts = (
            (self.data.take(rows), names[i : i + len(rows)])
            for i, rows in zip(range(0, len(self.order), CHUNK), self.chunks(), strict=True)
        )
        write_packed(self.stage.file(rel), parts, word=self.result.category)
        return rel


def _render(job: tuple[Packed, int]) -> np.ndarray:
    """Worker: packed drawings -> uint8 (n, size * size) bitmaps (the official renderer)."""
    from .raster import rasterize_many

    data, size = job
    return rasterize_many(data.flat(), size=size)


class _Shuffled:
    """Rows of several bitmap files in a shuffled order, read a block at a time: what
    `mnist.write_mnist` writes without every category's images in memory.

    Rows are read with ``pread``, not through a memory map: a map read in random
    order faults in (and counts as resident) most of the file within one block.
    """

    def __init__(self, parts: list[tuple[Path, np.ndarray]], order: np.ndarray, side: int):
        # (path, where its rows start): the header's length, as numpy's own map reads it
        self.files = [(path, np.load(path, mmap_mode="r").offset) for path, _ in parts]
        self.rows = np.concatenate([rows for _, rows in parts])
        self.part = np.repeat(np.arange(len(parts)), [len(rows) for _, rows in parts])
        self.order, self.side = order, side
        self.shape = (len(order), side, side)
        self.dtype = np.dtype(np.uint8)

    def __len__(self) -> int:
        return len(self.order)

    def __getitem__(self, block: slice) -> np.ndarray:
        picked = self.order[block]
        width = self.side * self.side
        out = np.empty((len(picked), width), dtype=np.uint8)
        parts = self.part[picked]
        for k in np.unique(parts):  # only the files this block reads from
            path, start = self.files[k]
            mine = np.flatnonzero(parts == k)
            rows = self.rows[picked[mine]]
            by_row = np.argsort(rows, kind="stable")  # in file order: the disk reads ahead
            with open(path, "rb") as f:
                fd = f.fileno()
                data = b"".join(os.pread(fd, width, start + int(r) * width) for r in rows[by_row])
            out[mine[by_row]] = np.frombuffer(data, dtype=np.uint8).reshape(-1, width)
        return out.reshape(-1, self.side, self.side)


def _write_mnist(stage, parts, names, seed: int, size: int, gzip: bool) -> dict[str, dict]:
    """The MNIST files of all categories together (shuffled: MNIST is not sorted by label)."""
    from . import mnist

    rng = np.random.default_rng(seed)
    arrays = {}
    for split, items in parts.items():
        labels = np.concatenate([np.full(len(rows), lab, dtype=np.int64) for _, rows, lab in items])
        perm = rng.permutation(len(labels))
        images = _Shuffled([(path, rows) for path, rows, _ in items], perm, size)
        arrays[split] = (images, labels[perm])
    paths = mnist.write_mnist(stage.file("mnist"), arrays["train"], arrays["test"], names, gzip)
    for other in mnist.variant_names(not gzip):  # a previous run's other variant goes
        stage.remove(f"mnist/{other}")
    files = [*paths.values(), stage.file("mnist") / manifest.MANIFEST]
    return {p.relative_to(stage.path).as_posix(): {"seed": seed} for p in files}


def _kind(r: CategoryResult) -> str:
    total = sum(r.sizes.values())
    return "simplified" if r.raw == 0 else "raw" if r.raw == total else f"{r.raw} raw"


def summary_table(results: Sequence[CategoryResult]) -> str:
    """A plain-text table of what `convert` read and wrote."""
    header = ("category", "read", "skipped", "dupes", "train", "valid", "test", "source")
    rows = [
        (
            printable(r.category),  # escaped here too, so the columns line up
            r.read,
            r.skipped,
            r.duplicates,
            r.sizes["train"],
            r.sizes["valid"],
            r.sizes["test"],
            _kind(r) + " " + printable(Path(r.source).name),
        )
        for r in results
    ]
    if len(rows) > 1:
        rows.append(
            ("total", *(sum(row[i] for row in rows) for i in range(1, 7)), "")  # type: ignore[misc, arg-type]
        )
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]
    lines = [
        "  ".join(str(x).ljust(w) for x, w in zip(row, widths, strict=True))
        for row in [header, *rows]
    ]
    return "\n".join(line.rstrip() for line in lines)
