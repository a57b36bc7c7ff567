"""`quickdraw convert`: categories -> sketch-rnn `.npz`, bitmaps, MNIST, Parquet and PNG files.

Two passes per category, in bounded memory whatever its size. First the file is
read a chunk at a time into packed arrays on disk (`packed.pack_file`: checked,
raw drawings simplified with Google's recipe, stroke-3, identities); the split
(see `splits`) ranks the identities alone. Then every requested format is written
from that one split, a chunk of drawings at a time, so no drawing is in the
training data of one format and the test data of another.

Outputs under `out/`:

- `sketchrnn/<category>.npz`: the official sketch-rnn layout (train/valid/test
  object arrays of int16 stroke-3).
- `bitmap/<category>.npy`: uint8 `(N, size * size)` (`(N, 784)` at the default 28, the
  official numpy_bitmap layout), rows in split order (train, then valid, then test), with
  `bitmap/<category>.splits.json` giving the row count of each split.
- `mnist/`: IDX files for all the categories together (train split ->
  `train-*`, test split -> `t10k-*`; labels are positions in
  `mnist/categories.txt`).
- `parquet/<split>/<category>.parquet`: the official record schema plus `split`, `word`
  a Hugging Face ClassLabel of the run's categories (`parquet`).
- `png/<split>/<category>/<name>.png`: one image per drawing, the folder layout of
  torchvision's ImageFolder and Hugging Face's imagefolder (`images`).

Beside each file whose rows are drawings, `<name>.rows.csv` says which drawing each row
is (`rows`): `sketchrnn/cat.rows.csv`, `bitmap/cat.rows.csv`, `png/cat.rows.csv`,
`mnist/train-rows.csv` and `mnist/t10k-rows.csv` (the Parquet tables carry the same
fields in their columns). Bitmaps, MNIST images and PNG images are drawn by the official
renderer (`raster`) with the run's `Picture` settings, recorded in the manifest.

`split_sizes` chooses how many drawings each split gets: ``"official"``
(70,000 / 2,500 / 2,500, as the sketch-rnn files), ``"all"`` (every drawing, as the
numpy_bitmap files), or three numbers. With `workers > 1` the chunks run in a
process pool and are put back in order, so the files are byte-identical to a
serial run.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from . import formats, manifest
from .atomic import staged_output
from .errors import QuickDrawError, check_choice, check_seed, printable
from .packed import Packed, open_packed, pack_file
from .rows import RowsWriter, rows_path
from .splits import SPLITS, Split, split_identities, split_sizes, write_sidecar
from .workers import check_workers, ordered_map, process_pool

FORMATS = ("sketchrnn", "bitmap", "mnist", "parquet", "png")
PICTURE_FORMATS = ("bitmap", "mnist", "png")  # what `Picture` settings draw
CHUNK = 4_096  # drawings drawn (or tabled) at a time
CHUNK_PIXELS = 1 << 24  # and at most 16 MB of bitmaps at a time (a 1024x1024 one is 1 MB)


@dataclass(frozen=True)
class Picture:
    """How bitmaps, MNIST and PNG images are drawn (`raster`): the side in pixels, the line
    width and padding in the 256-unit drawing space (the defaults are the official
    numpy_bitmap settings, byte for byte), and for PNG black ink on white (`invert`)
    instead of the official grey on black."""

    size: int = 28
    line_width: float = 16.0
    padding: float = 16.0
    invert: bool = False

    def settings(self) -> dict:
        """What the manifest records, under ``picture`` (of the run, and of each file drawn)."""
        out = {"size": self.size, "line_width": self.line_width, "padding": self.padding}
        return out | ({"invert": True} if self.invert else {})

    def chunk(self) -> int:
        """Drawings rendered at a time: `CHUNK`, fewer for large images."""
        return max(1, min(CHUNK, CHUNK_PIXELS // (self.size * self.size)))


@dataclass
class Source:
    """Where one category's drawings come from.

    kind: "raw" (every drawing is simplified here), "simplified" (every drawing must
    already be simplified), or None (a local file: each drawing is looked at on its own).
    """

    category: str
    path: Path
    kind: str | None = None


def file_category(path: Path) -> str:
    """The category of a local drawings file: its records' ``word`` when they all name the
    same one (what `quickdraw sample --out x.ndjson` and `import-svg` write), else the file's
    name without its suffix (records of several words, or of none). A word that cannot name
    files (`check_name`) is refused, and so is a file name that is not UTF-8 (the manifest and
    the rows sidecars record the source by its name)."""
    stem = formats.file_stem(path)
    word = None
    if formats.file_kind(path) != "binary":  # .bin records carry no word
        for record in formats.iter_ndjson(path, on_error="skip", warn=False):
            found = record.get("word")
            if not isinstance(found, str) or not found or word not in (None, found):
                return stem  # no word, or a second one: the name decides
            word = found
    if word is None:
        return stem
    # the word names files as a category name does: checked here, where the fix is known
    fix = f"every record of {printable(str(path))} has this word: give them another"
    return check_name(word, fix)


def not_a_source(path: Path) -> str:
    """Why convert cannot read `path`, a file it is not made for, and what it can read."""
    kind = formats.file_kind(path)
    what = {
        "sketchrnn": "is a sketch-rnn .npz, converted already (train, svg and sample read it "
        "as it is)",
        "bitmap": "is 28x28 bitmaps (.npy), converted already (train draw and svg read it)",
    }.get(kind or "", "is not a drawings file")
    return (
        f"{path} {what if path.is_file() else 'is no category name and no file'}; convert "
        "reads official category names (`quickdraw download --list`) and drawings files "
        "(.ndjson, .ndjson.gz, .jsonl, .bin: a category each)"
    )


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


def check_formats(formats_wanted: Sequence[str], picture: Picture = Picture()) -> None:
    """Raise unless every name is one of `FORMATS` (at least one) and `picture` is a
    picture `raster` draws (sizes 8-1024...; `raster.check_settings`)."""
    from .raster import check_settings

    if not formats_wanted:
        raise QuickDrawError(f"no output format given; valid: {', '.join(FORMATS)}")
    for f in formats_wanted:
        check_choice("format", f, FORMATS)
    try:
        check_settings(picture.size, picture.line_width, picture.padding)
    except QuickDrawError as e:  # "line_width must be..." -> "--line-width must be..."
        name, rest = str(e).split(" ", 1)
        raise QuickDrawError(f"--{name.replace('_', '-')} {rest}") from None
    if picture.invert and "png" not in formats_wanted:
        raise QuickDrawError("--invert applies to --formats png (the bitmaps stay official)")


def check_name(category: str, fix: str = "rename its file") -> str:
    """`category` if it can name files and folders inside the output folder, and no other
    place: not empty, no ``/``, ``\\``, control characters or leading ``.`` (so neither
    ``..`` nor a hidden file), at most 200 bytes. `fix` ends the message: what to change."""
    bad = (
        not category
        or category.startswith(".")
        or any(c in category for c in "/\\")
        or any(ord(c) < 32 or ord(c) == 127 for c in category)
        or len(category.encode("utf-8", "surrogatepass")) > 200
    )
    if bad:
        raise QuickDrawError(
            f"category name '{printable(category)}' cannot name files inside the output folder "
            "(it must not be empty, hold '/', '\\' or control characters, start with '.', or "
            f"pass 200 bytes); {fix}"
        )
    return category


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
    line_width: float = 16.0,
    padding: float = 16.0,
    invert: bool = False,
) -> list[CategoryResult]:
    """Convert each source category into the requested formats under `out`.

    size, line_width, padding: how bitmaps, MNIST and PNG images are drawn (`Picture`);
    invert: PNG images black on white."""
    picture = Picture(size, line_width, padding, invert)
    check_formats(formats_wanted, picture)
    check_workers(workers)
    check_seed(seed)
    if max_per_category is not None and max_per_category < 1:
        raise QuickDrawError(f"--max-per-category must be >= 1, got {max_per_category}")
    split_sizes(0 if isinstance(sizes, str) else sum(sizes), sizes)  # a bad value fails now
    names = [check_name(s.category) for s in sources]
    if not names:
        raise QuickDrawError("no categories to convert")
    if len(set(names)) != len(names):
        raise QuickDrawError(f"a category is given twice: {names}")
    out = Path(out)
    wanted = tuple(formats_wanted)
    _check_one_split(out, names, wanted, seed, sizes, max_per_category)
    if "png" in wanted:
        _check_image_folders(out, names)
    results: list[CategoryResult] = []
    mnist_parts: dict[str, list[_MnistPart]] = {"train": [], "test": []}
    written: dict[str, dict] = {}  # staged file -> its manifest fields
    # everything is written under a staging folder and put in place together at the end:
    # a run that fails (or is killed) part-way leaves `out` as it was
    with staged_output(out) as stage:
        pool = process_pool(workers) if workers > 1 else None
        try:
            for label, source in enumerate(sources):
                work = stage.scratch() / str(label)
                result, data, split = _read(
                    source, work, seed, sizes, pool, progress, on_error, max_per_category
                )
                job = _Category(
                    stage, result, data, split, wanted, seed, picture, pool, progress, names
                )
                written |= job.write(work, label, mnist_parts)
                results.append(result)
            if "mnist" in wanted:
                written |= _write_mnist(stage, mnist_parts, names, seed, picture, gzip_mnist)
                for result in results:
                    result.outputs.append(str(out / "mnist"))
        finally:
            if pool is not None:
                pool.shutdown(cancel_futures=True)
        if "png" in wanted:
            from .images import dataset_card

            stage.file("png/README.md").write_text(dataset_card(size, invert), "utf-8")
            written["png/README.md"] = {"seed": seed, "picture": picture.settings()}
        run = manifest.run_record(
            seed=seed,
            formats=list(wanted),
            sources={r.category: r.source for r in results},
            max_per_category=max_per_category,
            split_sizes=sizes if isinstance(sizes, str) else list(sizes),
        )
        if any(f in PICTURE_FORMATS for f in wanted):
            run["picture"] = picture.settings()
        manifest.write(stage.path, manifest.build(stage.path, out, run, written))
        stage.commit()
    return results


def _written_by(names: Sequence[str], wanted: Sequence[str]) -> set[str]:
    """The files (relative to the output folder) a run of `names` into `wanted` writes; a
    name ending in "/" stands for every file below it."""
    out = {"mnist/"} if "mnist" in wanted else set()
    out |= {"png/README.md"} if "png" in wanted else set()
    for name in names:
        if "sketchrnn" in wanted:
            out |= {f"sketchrnn/{name}.npz", f"sketchrnn/{name}.rows.csv"}
        if "bitmap" in wanted:
            out |= {f"bitmap/{name}.{end}" for end in ("npy", "splits.json", "rows.csv")}
        if "parquet" in wanted:  # one table per split, and the one-table layout of before goes
            out |= {f"parquet/{name}.parquet", *(f"parquet/{s}/{name}.parquet" for s in SPLITS)}
        if "png" in wanted:
            out |= {f"png/{name}.rows.csv", *(f"png/{s}/{name}/" for s in SPLITS)}
    return out


def _check_one_split(out: Path, names, wanted, seed, sizes, max_per_category) -> None:
    """Refuse, before any work, a run that would leave `out` holding files of two splits: the
    files of earlier runs it does not replace must come from the same --seed and
    --split-sizes (and, for these categories, the same --max-per-category)."""
    found = manifest.read(out)
    if found is None:
        return
    replaced = _written_by(names, wanted)
    label = sizes if isinstance(sizes, str) else ",".join(str(int(v)) for v in sizes)
    for rel, entry in sorted(found["files"].items()):
        if rel in replaced or any(rel.startswith(d) for d in replaced if d.endswith("/")):
            continue
        run = found.get("runs", {}).get(entry.get("run"), {})
        if "split_sizes" not in run:  # not a convert run (write_mnist alone): no split to mix
            continue
        theirs = run["split_sizes"]
        theirs = theirs if isinstance(theirs, str) else ",".join(str(int(v)) for v in theirs)
        same_category = entry.get("category") in names
        if (
            run.get("seed") == seed
            and theirs == label
            and (not same_category or run.get("max_per_category") == max_per_category)
        ):
            continue
        held = sorted({r.split("/")[0] for r in found["files"] if "/" in r})
        most = f" --max-per-category {run.get('max_per_category') or 'all'}"
        mine = f" --max-per-category {max_per_category or 'all'}"
        raise QuickDrawError(
            f"{out} holds {rel} of another split (--seed {run.get('seed')} --split-sizes "
            f"{theirs}{most if same_category else ''}), which this run (--seed {seed} "
            f"--split-sizes {label}{mine if same_category else ''}) would "
            "not replace: a folder holds one split. Write every format it holds again with "
            f"these settings (--formats {','.join(held)}), use that run's settings, or choose "
            "another --out"
        )


def _check_image_folders(out: Path, names: Sequence[str]) -> None:
    """Refuse to write PNG folders through a link: a run replaces a category's images, and
    must not delete files anywhere else."""
    for rel in [
        "png",
        *(f"png/{s}" for s in SPLITS),
        *(f"png/{s}/{c}" for s in SPLITS for c in names),
    ]:
        if (out / rel).is_symlink():
            raise QuickDrawError(
                f"{out / rel} is a symbolic link; PNG folders are written only into real folders"
            )


def _read(source, work, seed, sizes, pool, progress, on_error, max_per_category):
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
            meta=True,  # every format has its rows' key_id, country... beside it
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
        self, stage, result, data: Packed, split: Split, wanted, seed, picture, pool, progress,
        names,
    ) -> None:  # fmt: skip
        self.stage, self.result, self.data, self.split = stage, result, data, split
        self.wanted, self.seed, self.picture, self.pool = wanted, seed, picture, pool
        self.order = np.concatenate(
            [np.asarray(split.indices[name], dtype=np.int64) for name in SPLITS]
        )
        # the split of each row of the files, in their order
        self.split_of_row = np.repeat(np.array(SPLITS), [result.sizes[s] for s in SPLITS])
        self.progress, self.names = progress, names
        self.entry = {"category": result.category, "seed": seed, "source": result.source}

    def chunks(self, size: int = CHUNK) -> list[tuple[int, np.ndarray]]:
        """(first row, the drawings of rows first...) `size` at a time, in file order."""
        return [(i, self.order[i : i + size]) for i in range(0, len(self.order), size)]

    def write(self, work: Path, label: int, mnist_parts) -> dict[str, dict]:
        """Stage the files; returns them (relative paths) with their manifest fields."""
        staged: dict[str, dict] = {}
        category = self.result.category
        drawn = {**self.entry, "picture": self.picture.settings()}  # how its pictures are drawn
        if "sketchrnn" in self.wanted:
            rel = self._sketchrnn()
            staged |= {rel: self.entry, self._rows(rel): self.entry}
        bitmaps = None  # the .npy of the bitmaps, once drawn
        if "bitmap" in self.wanted or "mnist" in self.wanted:
            if "bitmap" in self.wanted:
                rel = f"bitmap/{category}.npy"
                path = self.stage.file(rel)
                sidecar = write_sidecar(path, self.result.sizes, self.seed)
                staged |= {rel: drawn, sidecar.relative_to(self.stage.path).as_posix(): drawn}
                staged[self._rows(rel)] = drawn
            else:
                path = work / "bitmaps.npy"
            self._bitmaps(path)
            bitmaps = path
            sizes = self.result.sizes
            train_end, test_start = sizes["train"], sizes["train"] + sizes["valid"]
            for split, rows in (
                ("train", np.arange(0, train_end)),
                ("test", np.arange(test_start, len(self.order))),
            ):
                mnist_parts[split].append(_MnistPart(path, rows, label, self.data, self.order))
        if "parquet" in self.wanted:
            staged |= {rel: self.entry for rel in self._parquet()}
        if "png" in self.wanted:
            staged[self._png(bitmaps)] = drawn
        target = self.stage.target
        self.result.outputs += [
            str(target / rel) for rel in staged if not rel.endswith((".json", ".csv"))
        ]
        return staged

    def _bar(self, what: str) -> tqdm:
        return tqdm(
            total=len(self.order),
            desc=f"{what} {printable(self.result.category)}",
            unit=" drawings",
            leave=False,
            disable=not self.progress,
            delay=0.5,  # a quick write shows no bar at all
        )

    def _rows(self, rel: str) -> str:
        """Write the rows sidecar of the staged file `rel` (`rows`); returns its path."""
        sidecar = rows_path(rel).as_posix()
        writer = RowsWriter(self.stage.file(sidecar))
        try:
            for start, rows in self.chunks():
                writer.append(self.data.meta(rows), self.split_of_row[start : start + len(rows)])
        finally:
            writer.close()
        return sidecar

    def _sketchrnn(self) -> str:
        rel = f"sketchrnn/{self.result.category}.npz"
        data = self.data
        splits = {name: (data.stroke3(i) for i in self.split.indices[name]) for name in SPLITS}
        formats.save_sketchrnn_npz(self.stage.file(rel), splits)
        return rel

    def _bitmaps(self, path: Path) -> None:
        """Every drawing in split order, drawn by the official renderer, appended to `path`."""
        path.parent.mkdir(parents=True, exist_ok=True)
        picture = self.picture
        out = formats.GrowingNpy(path, np.uint8, (picture.size * picture.size,))
        jobs = ((self.data.take(rows), picture) for _, rows in self.chunks(picture.chunk()))
        bar = self._bar("draw")
        try:
            for bitmaps in ordered_map(self.pool, _render, jobs):
                out.append(bitmaps)
                bar.update(len(bitmaps))
        finally:
            out.close()
            bar.close()

    def _parquet(self) -> list[str]:
        """One table per split, ``parquet/<split>/<category>.parquet`` (see `parquet`)."""
        from .parquet import write_packed

        category = self.result.category
        self.stage.remove(f"parquet/{category}.parquet")  # the one-table layout of before
        written = []
        for split in SPLITS:
            rel = f"parquet/{split}/{category}.parquet"
            rows = np.asarray(self.split.indices[split], dtype=np.int64)
            parts = (
                (self.data.take(rows[i : i + CHUNK]), [split] * len(rows[i : i + CHUNK]))
                for i in range(0, len(rows), CHUNK)
            )
            write_packed(self.stage.file(rel), parts, word=category, names=self.names)
            written.append(rel)
        return written

    def _png(self, bitmaps: Path | None) -> str:
        """One PNG per drawing in ``png/<split>/<category>/`` (`images`), and the rows
        sidecar ``png/<category>.rows.csv``, which names each file; returns the sidecar.
        `bitmaps`: the ``.npy`` of this run's bitmaps (rows in split order), if it drew them."""
        from .images import drawing_names, write_pngs

        category, picture, stage = self.result.category, self.picture, self.stage
        for split in SPLITS:  # each replaces a previous run's folder whole: none of it stays
            stage.folder(f"png/{split}/{category}")

        # the rows sidecar (with each image's file) is written as the images are handed out
        sidecar = rows_path(f"png/{category}.png").as_posix()  # png/<category>.rows.csv
        writer = RowsWriter(stage.file(sidecar), ("file",))
        settings = (picture.size, picture.line_width, picture.padding, picture.invert)
        folder = str(stage.path / "png")

        def jobs() -> Iterator[tuple]:
            assert self.data.key_id is not None, "packed with meta=True"
            for start, rows in self.chunks(picture.chunk()):
                splits = self.split_of_row[start : start + len(rows)]
                names = drawing_names(self.data.key_id[rows], self.data.identity[rows])
                files = [f"{s}/{category}/{n}.png" for s, n in zip(splits, names, strict=True)]
                writer.append(self.data.meta(rows), splits, file=files)
                # what the worker draws: the drawings, or the rows of the bitmaps drawn already
                pictures = (str(bitmaps), start) if bitmaps else self.data.take(rows)
                yield (pictures, folder, files, *settings)

        bar = self._bar("png")
        try:
            for done in ordered_map(self.pool, write_pngs, jobs()):
                bar.update(done)
        finally:
            bar.close()
            writer.close()
        return sidecar


def _render(job: tuple[Packed, Picture]) -> np.ndarray:
    """Worker: packed drawings -> uint8 (n, size * size) bitmaps (the official renderer)."""
    from .raster import rasterize_many

    data, picture = job
    return rasterize_many(data.flat(), picture.size, picture.line_width, picture.padding)


@dataclass
class _MnistPart:
    """Rows of one category's bitmap file that go into one MNIST split."""

    path: Path  # the bitmap file, rows in split order
    rows: np.ndarray  # which of its rows
    label: int
    data: Packed  # the category's drawings (for the rows sidecar)
    order: np.ndarray  # the drawing of each row of `path`


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


def _write_mnist(stage, parts, names, seed: int, picture: Picture, gzip: bool) -> dict[str, dict]:
    """The MNIST files of all categories together (shuffled: MNIST is not sorted by label),
    and the rows sidecars ``mnist/train-rows.csv`` and ``mnist/t10k-rows.csv``."""
    from . import mnist

    rng = np.random.default_rng(seed)
    arrays, perms = {}, {}
    for split, items in parts.items():
        labels = np.concatenate([np.full(len(p.rows), p.label, dtype=np.int64) for p in items])
        perm = rng.permutation(len(labels))
        images = _Shuffled([(p.path, p.rows) for p in items], perm, picture.size)
        arrays[split], perms[split] = (images, labels[perm]), perm
    paths = mnist.write_mnist(stage.file("mnist"), arrays["train"], arrays["test"], names, gzip)
    for other in mnist.variant_names(not gzip):  # a previous run's other variant goes
        stage.remove(f"mnist/{other}")
    files = [*paths.values(), stage.file("mnist") / manifest.MANIFEST]
    for split, prefix in (("train", "train"), ("test", "t10k")):
        sidecar = stage.file(f"mnist/{prefix}-rows.csv")
        _mnist_rows(sidecar, parts[split], perms[split], split, names)
        files.append(sidecar)
    entry = {"seed": seed, "picture": picture.settings()}
    return {p.relative_to(stage.path).as_posix(): entry for p in files}


def _mnist_rows(path: Path, items: list[_MnistPart], perm: np.ndarray, split: str, names) -> None:
    """The rows sidecar of one MNIST split: its drawings in the file's shuffled order, with
    their category (`word`), a block at a time."""
    drawing = np.concatenate([p.order[p.rows] for p in items])
    part = np.repeat(np.arange(len(items)), [len(p.rows) for p in items])
    writer = RowsWriter(path, ("word",))
    try:
        for start in range(0, len(perm), CHUNK):
            picked = perm[start : start + CHUNK]
            owner = part[picked]
            by_part = np.argsort(owner, kind="stable")
            metas = [
                items[k].data.meta(drawing[picked[by_part][owner[by_part] == k]])
                for k in np.unique(owner)
            ]
            back = np.empty_like(by_part)
            back[by_part] = np.arange(len(by_part))
            meta = {key: np.concatenate([m[key] for m in metas])[back] for key in metas[0]}
            words = [names[items[k].label] for k in owner]
            writer.append(meta, [split] * len(picked), word=words)
    finally:
        writer.close()


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
