"""`quickdraw convert`: categories -> sketch-rnn `.npz`, bitmaps and MNIST files.

One pass per category: read its drawings (download, mirror or local file),
simplify raw drawings with Google's recipe, split once (see `splits`), then
write every requested format from that one split, so no drawing is in the
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

The work (simplify, stroke-3, rasterize) runs in chunks; with `workers > 1`
the chunks run in a process pool and are put back in order, so the files are
byte-identical to a serial run.
"""

from __future__ import annotations

import functools
import os
import signal
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from . import formats
from .errors import QuickDrawError, check_choice
from .splits import SPLITS, split_records, write_sidecar
from .strokes import drawing_to_stroke3

FORMATS = ("sketchrnn", "bitmap", "mnist")
CHUNK = 2_000  # drawings per unit of work


@dataclass
class Source:
    """Where one category's drawings come from."""

    category: str
    path: Path


@dataclass
class CategoryResult:
    category: str
    source: str
    read: int
    skipped: int
    skip_reasons: list[str]  # the first few ("file:line: why"), when lines were skipped
    duplicates: int
    raw: bool
    sizes: dict[str, int]
    outputs: list[str] = field(default_factory=list)


def is_raw(drawing: Sequence) -> bool:
    """A raw drawing has timestamps (three arrays per stroke) or float coordinates."""
    for stroke in drawing:
        if len(stroke) == 3:
            return True
        if any(isinstance(v, float) and not v.is_integer() for v in stroke[0]):
            return True
        if any(v < 0 or v > 255 for v in stroke[0]) or any(v < 0 or v > 255 for v in stroke[1]):
            return True
    return False


def _process_chunk(args: tuple[list, bool, tuple[str, ...], int]) -> dict[str, Any]:
    """Worker: drawings -> (simplified) -> stroke-3 list and/or bitmaps."""
    drawings, raw, wanted, size = args
    if raw:
        from .simplify import simplify_drawing

        drawings = [simplify_drawing(d) for d in drawings]
    out: dict[str, Any] = {}
    if "sketchrnn" in wanted:
        out["stroke3"] = [drawing_to_stroke3(d) for d in drawings]
    if "bitmap" in wanted or "mnist" in wanted:
        from .raster import rasterize_many

        out["bitmap"] = np.asarray(rasterize_many(drawings, size=size)).reshape(len(drawings), -1)
    return out


def _read_category(
    source: Source, on_error: str, max_per_category: int | None, progress: bool = False
) -> tuple[list[dict], formats.ReadStats]:
    stats = formats.ReadStats()
    records = []
    # skipped lines are counted in the result (and the summary), not warned about
    drawings = formats.iter_drawings(source.path, on_error=on_error, stats=stats, warn=False)
    reading = tqdm(
        drawings,
        desc=f"read {source.category}",
        unit=" drawings",
        total=max_per_category,
        leave=False,
        disable=not progress,
        delay=0.5,  # a quick read shows no bar at all
    )
    for index, record in enumerate(reading):
        if not any(len(stroke[0]) for stroke in record["drawing"]):
            # nothing to learn from or draw; a raw one would fail in simplify, unnamed
            where = f":{stats.lines}" if stats.lines else f": drawing {index}"  # ndjson/.bin
            message = f"{source.path}{where}: the drawing has no points"
            if on_error == "raise":
                raise QuickDrawError(message + " (--on-error skip leaves such drawings out)")
            stats.note_skip(message)
            continue
        records.append(record)
        if max_per_category is not None and len(records) >= max_per_category:
            break
    return records, stats


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
) -> list[CategoryResult]:
    """Convert each source category into the requested formats under `out`."""
    check_formats(formats_wanted, size)
    if workers < 1:
        raise QuickDrawError(f"--workers must be >= 1, got {workers}")
    if max_per_category is not None and max_per_category < 1:
        raise QuickDrawError(f"--max-per-category must be >= 1, got {max_per_category}")
    names = [s.category for s in sources]
    if not names:
        raise QuickDrawError("no categories to convert")
    if len(set(names)) != len(names):
        raise QuickDrawError(f"a category is given twice: {names}")
    out = Path(out)
    wanted = tuple(formats_wanted)
    pool = _pool(workers) if workers > 1 else None
    results: list[CategoryResult] = []
    mnist_parts: dict[str, list[tuple[np.ndarray, int]]] = {"train": [], "test": []}
    bar = _Bar(progress)
    try:
        # Category k's chunks run in the pool while category k+1 is read and split;
        # its files are written once all its chunks are back, in submission order.
        pending: tuple[CategoryResult, list[Future]] | None = None
        for source in [*sources, None]:
            queued = _plan(source, wanted, seed, max_per_category, on_error, size, pool, bar)
            if pending is not None:
                result, futures = pending
                parts = [f.result() for f in futures]
                _write_category(result, parts, out, wanted, seed, len(results), mnist_parts)
                results.append(result)
            pending = queued
    finally:
        bar.close()
        if pool is not None:
            pool.shutdown(cancel_futures=True)

    if "mnist" in wanted:
        from . import mnist

        rng = np.random.default_rng(seed)
        arrays = {}
        for split, items in mnist_parts.items():
            images = np.concatenate([a for a, _ in items])
            labels = np.concatenate([np.full(len(a), lab, dtype=np.int64) for a, lab in items])
            perm = rng.permutation(len(images))  # MNIST files are not sorted by label
            arrays[split] = (images[perm].reshape(-1, size, size), labels[perm])
        mnist.write_mnist(out / "mnist", arrays["train"], arrays["test"], names, gzip=gzip_mnist)
        for result in results:
            result.outputs.append(str(out / "mnist"))
    return results


def _pool(workers: int) -> ProcessPoolExecutor:
    """Worker processes that leave Ctrl-C to the main one.

    The terminal sends SIGINT to every process of the group; the main process
    cancels the pool and reports "interrupted", so the workers need not (they
    would each print a KeyboardInterrupt traceback).
    """
    return ProcessPoolExecutor(max_workers=workers, initializer=_ignore_sigint)


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class _Done:
    """A finished 'future' for the serial path, so both paths share one loop."""

    def __init__(self, value: Any) -> None:
        self._value = value

    def result(self) -> Any:
        return self._value


def _plan(source, wanted, seed, max_per_category, on_error, size, pool, bar):
    """Read and split one category, then queue (or, serially, run) its chunks."""
    if source is None:
        return None
    records, stats = _read_category(source, on_error, max_per_category, bar.progress)
    if not records:
        raise QuickDrawError(f"no drawings in {source.path} for {source.category!r}")
    split = split_records(records, source.category, seed=seed)
    drawings = [records[i]["drawing"] for s in SPLITS for i in split.indices[s]]
    read = len(records)
    del records
    raw = any(is_raw(d) for d in drawings[:50])
    bar.add(len(drawings))
    result = CategoryResult(
        category=source.category,
        source=str(source.path),
        read=read,
        skipped=stats.skipped,
        skip_reasons=stats.errors,
        duplicates=split.duplicates,
        raw=raw,
        sizes=split.sizes,
    )
    futures = []
    for i in range(0, len(drawings), CHUNK):
        job = (drawings[i : i + CHUNK], raw, wanted, size)
        if pool is None:
            futures.append(_Done(_process_chunk(job)))
            bar.update(len(job[0]))
        else:
            future = pool.submit(_process_chunk, job)
            future.add_done_callback(functools.partial(_tick, bar, len(job[0])))
            futures.append(future)
    return result, futures


class _Bar:
    """The drawings-converted bar, made once the first category has been read (so it never
    shows an empty "0 drawings" bar while a file is read; that has its own bar)."""

    def __init__(self, progress: bool) -> None:
        self.progress = progress
        self.bar: tqdm | None = None

    def add(self, n: int) -> None:
        """`n` more drawings to convert."""
        if self.bar is None:
            self.bar = tqdm(total=n, unit=" drawings", desc="convert", disable=not self.progress)
        else:
            self.bar.total += n
            self.bar.refresh()

    def update(self, n: int) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _tick(bar: _Bar, n: int, _future: Future) -> None:
    bar.update(n)


def _write_category(result, parts, out, wanted, seed, label, mnist_parts) -> None:
    bounds = np.cumsum([0] + [result.sizes[s] for s in SPLITS])
    if "sketchrnn" in wanted:
        stroke3 = [s for p in parts for s in p["stroke3"]]
        splits = {s: stroke3[bounds[j] : bounds[j + 1]] for j, s in enumerate(SPLITS)}
        path = out / "sketchrnn" / f"{result.category}.npz"
        formats.save_sketchrnn_npz(path, splits)
        result.outputs.append(str(path))
    if "bitmap" in wanted or "mnist" in wanted:
        bitmaps = np.concatenate([p["bitmap"] for p in parts])
    if "bitmap" in wanted:
        path = out / "bitmap" / f"{result.category}.npy"
        formats.save_bitmaps(path, bitmaps)
        write_sidecar(path, result.sizes, seed)
        result.outputs.append(str(path))
    if "mnist" in wanted:
        mnist_parts["train"].append((bitmaps[bounds[0] : bounds[1]], label))
        mnist_parts["test"].append((bitmaps[bounds[2] : bounds[3]], label))


def summary_table(results: Sequence[CategoryResult]) -> str:
    """A plain-text table of what `convert` read and wrote."""
    header = ("category", "read", "skipped", "dupes", "train", "valid", "test", "source")
    rows = [
        (
            r.category,
            r.read,
            r.skipped,
            r.duplicates,
            r.sizes["train"],
            r.sizes["valid"],
            r.sizes["test"],
            ("raw" if r.raw else "simplified") + " " + Path(r.source).name,
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
