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
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from . import formats, manifest
from .atomic import staged_output
from .errors import QuickDrawError, check_choice
from .splits import SPLITS, split_records, write_sidecar
from .strokes import drawing_to_stroke3, is_raw

FORMATS = ("sketchrnn", "bitmap", "mnist", "parquet")
_META = ("key_id", "word", "countrycode", "timestamp", "recognized")  # what parquet keeps
CHUNK = 2_000  # drawings per unit of work


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
    meta: list[dict] | None = field(default=None, repr=False)  # for parquet, until written


def _process_chunk(args: tuple[list, list[bool], tuple[str, ...], int]) -> dict[str, Any]:
    """Worker: drawings -> (the raw ones simplified) -> stroke-3 list and/or bitmaps."""
    drawings, raw, wanted, size = args
    todo = [i for i, flag in enumerate(raw) if flag]
    if todo:
        from .simplify import simplify_drawings

        drawings = list(drawings)
        simplified = simplify_drawings([drawings[i] for i in todo], checked=True)  # read by formats
        for i, d in zip(todo, simplified, strict=True):
            drawings[i] = d
    out: dict[str, Any] = {}
    if "parquet" in wanted:
        out["drawing"] = drawings  # simplified (the raw ones just now)
    if "sketchrnn" in wanted:
        out["stroke3"] = [drawing_to_stroke3(d, checked=True) for d in drawings]
    if "bitmap" in wanted or "mnist" in wanted:
        from .raster import rasterize_many

        out["bitmap"] = np.asarray(rasterize_many(drawings, size=size)).reshape(len(drawings), -1)
    return out


def _read_category(
    source: Source, on_error: str, max_per_category: int | None, progress: bool = False
) -> tuple[list[dict], list[bool], formats.ReadStats]:
    """The category's records, whether each is raw, and what the reader skipped."""
    stats = formats.ReadStats()
    records, raw = [], []
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
        where = f":{stats.lines}" if stats.lines else f": drawing {index}"  # ndjson / .bin
        problem, looks_raw = None, False
        if not any(len(stroke[0]) for stroke in record["drawing"]):
            # nothing to learn from or draw; a raw one would fail in simplify, unnamed
            problem = "the drawing has no points"
        elif source.kind != "raw":
            looks_raw = is_raw(record["drawing"])
            if looks_raw and source.kind == "simplified":
                problem = (
                    "a raw drawing (times, or coordinates not integers 0-255) in simplified data"
                )
        if problem is not None:
            message = f"{source.path}{where}: {problem}"
            if on_error == "raise":
                raise QuickDrawError(message + " (--on-error skip leaves such drawings out)")
            stats.note_skip(message)
            continue
        records.append(record)
        raw.append(source.kind == "raw" or looks_raw)
        if max_per_category is not None and len(records) >= max_per_category:
            break
    return records, raw, stats


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
    results: list[CategoryResult] = []
    mnist_parts: dict[str, list[tuple[np.ndarray, int]]] = {"train": [], "test": []}
    written: dict[str, dict] = {}  # staged file -> its manifest fields
    # everything is written under a staging folder and put in place together at the end:
    # a run that fails (or is killed) part-way leaves `out` as it was
    with staged_output(out) as stage:
        pool = _pool(workers) if workers > 1 else None
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
                    label, where = len(results), (stage, wanted, seed)
                    written |= _write_category(result, parts, *where, label, mnist_parts)
                    results.append(result)
                pending = queued
        finally:
            bar.close()
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
        )
        manifest.write(stage.path, manifest.build(stage.path, out, run, written))
        stage.commit()
    return results


def _write_mnist(stage, parts, names, seed: int, size: int, gzip: bool) -> dict[str, dict]:
    """The MNIST files of all categories together (shuffled: MNIST is not sorted by label)."""
    from . import mnist

    rng = np.random.default_rng(seed)
    arrays = {}
    for split, items in parts.items():
        images = np.concatenate([a for a, _ in items])
        labels = np.concatenate([np.full(len(a), lab, dtype=np.int64) for a, lab in items])
        perm = rng.permutation(len(images))
        arrays[split] = (images[perm].reshape(-1, size, size), labels[perm])
    paths = mnist.write_mnist(stage.file("mnist"), arrays["train"], arrays["test"], names, gzip)
    for other in mnist.variant_names(not gzip):  # a previous run's other variant goes
        stage.remove(f"mnist/{other}")
    files = [*paths.values(), stage.file("mnist") / manifest.MANIFEST]
    return {p.relative_to(stage.path).as_posix(): {"seed": seed} for p in files}


def _pool(workers: int) -> ProcessPoolExecutor:
    """Worker processes that leave Ctrl-C to the main one and die with it.

    The terminal sends SIGINT to every process of the group; the main process
    cancels the pool and reports "interrupted", so the workers need not (they
    would each print a KeyboardInterrupt traceback). If the main process is
    killed (kill -9 runs no clean-up), its workers end too instead of running
    on as orphans.
    """
    return ProcessPoolExecutor(
        max_workers=workers, initializer=_worker_init, initargs=(os.getpid(),)
    )


def _worker_init(parent: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:  # Linux: the kernel signals us the moment the parent dies
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:  # it died before prctl took effect
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()


def _watch_parent(parent: int) -> None:
    """Elsewhere (or as a second line): exit once the parent is gone (we are reparented)."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(1)


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
    records, raw_flags, stats = _read_category(source, on_error, max_per_category, bar.progress)
    if not records:
        raise QuickDrawError(f"no drawings in {source.path} for {source.category!r}")
    split = split_records(records, source.category, seed=seed)
    order = [i for s in SPLITS for i in split.indices[s]]
    drawings = [records[i]["drawing"] for i in order]
    raw = [raw_flags[i] for i in order]
    meta = None
    if "parquet" in wanted:  # the fields a table keeps, in the same (split) order
        meta = [{k: records[i][k] for k in _META if k in records[i]} for i in order]
    read = len(records)
    del records
    bar.add(len(drawings))
    result = CategoryResult(
        category=source.category,
        source=str(source.path),
        read=read,
        skipped=stats.skipped,
        skip_reasons=stats.errors,
        duplicates=split.duplicates,
        raw=sum(raw),
        sizes=split.sizes,
        meta=meta,
    )
    futures = []
    for i in range(0, len(drawings), CHUNK):
        job = (drawings[i : i + CHUNK], raw[i : i + CHUNK], wanted, size)
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


def _write_category(result, parts, stage, wanted, seed, label, mnist_parts) -> dict[str, dict]:
    """Stage one category's files; returns them (relative paths) with their manifest fields."""
    bounds = np.cumsum([0] + [result.sizes[s] for s in SPLITS])
    entry = {"category": result.category, "seed": seed, "source": result.source}
    staged = []
    if "sketchrnn" in wanted:
        stroke3 = [s for p in parts for s in p["stroke3"]]
        splits = {s: stroke3[bounds[j] : bounds[j + 1]] for j, s in enumerate(SPLITS)}
        rel = f"sketchrnn/{result.category}.npz"
        formats.save_sketchrnn_npz(stage.file(rel), splits)
        staged.append(rel)
    if "bitmap" in wanted or "mnist" in wanted:
        bitmaps = np.concatenate([p["bitmap"] for p in parts])
    if "bitmap" in wanted:
        rel = f"bitmap/{result.category}.npy"
        formats.save_bitmaps(stage.file(rel), bitmaps)
        sidecar = write_sidecar(stage.file(rel), result.sizes, seed)
        staged += [rel, sidecar.relative_to(stage.path).as_posix()]
    if "mnist" in wanted:
        mnist_parts["train"].append((bitmaps[bounds[0] : bounds[1]], label))
        mnist_parts["test"].append((bitmaps[bounds[2] : bounds[3]], label))
    if "parquet" in wanted:
        from .parquet import write_parquet

        rel = f"parquet/{result.category}.parquet"
        drawings = [d for p in parts for d in p["drawing"]]
        rows = [{**m, "drawing": d} for m, d in zip(result.meta or [], drawings, strict=True)]
        names = [s for j, s in enumerate(SPLITS) for _ in range(bounds[j], bounds[j + 1])]
        write_parquet(stage.file(rel), rows, names, word=result.category)
        result.meta = None
        staged.append(rel)
    result.outputs += [str(stage.target / rel) for rel in staged if not rel.endswith(".json")]
    return {rel: entry for rel in staged}


def _kind(r: CategoryResult) -> str:
    total = sum(r.sizes.values())
    return "simplified" if r.raw == 0 else "raw" if r.raw == total else f"{r.raw} raw"


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
            _kind(r) + " " + Path(r.source).name,
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
