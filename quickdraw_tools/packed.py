"""One category's drawings as flat arrays: read once, a chunk at a time, in bounded memory.

`pack_file` reads an ndjson (plain or gzipped) or ``.bin`` file `CHUNK` drawings at
a time, checks each chunk's drawings together (`pack_records`: shapes and types in a
few C-speed passes, the points gathered into one array, nothing per point in
Python), simplifies the raw ones with Google's recipe, and appends the chunk to
files in a folder, so memory holds one chunk and a few bytes per drawing whatever
the category's size:

==================  ==============  =====================================================
file                array           what
==================  ==============  =====================================================
``strokes.npy``     int16 (P, 3)    every drawing's stroke-3 rows (`strokes`), in order
``offsets.npy``     int64 (D + 1,)  drawing i is ``strokes[offsets[i]:offsets[i + 1]]``
``identity.npy``    bytes (D,)      what the split ranks (`splits.drawing_identity`)
``raw.npy``         bool (D,)       raw in the file, simplified here
``key_id.npy``      bytes (D,)      the record's key_id (b"" if none)    } with
``countrycode.npy`` bytes (D,)      two letters (b"" if unknown)         } meta=True
``timestamp.npy``   int64 (D,)      microseconds since 1970 UTC (-1 if unknown)
``recognized.npy``  int8 (D,)       1 or 0 (-1 if unknown)
``line.npy``        int64 (D,)      where it was in the file: its line (ndjson, from 1), or
                                    its place (``.bin``, from 1); 0 if unknown
==================  ==============  =====================================================

`open_packed` memory-maps such a folder as a `Packed`; `Packed.take` gathers
drawings (e.g. one split, in order) and `Packed.flat` gives their absolute points
as `strokes.FlatDrawings`, which the renderer and the Parquet writer read without
a Python list per drawing. ``quickdraw convert`` and `datasets.QuickDraw` both read
categories through here: one reader, one set of checks, one stroke-3 conversion.

Stroke-3 rows are lossless for simplified drawings (integers 0-255) except that
empty strokes, which draw nothing, are dropped.
"""

from __future__ import annotations

import contextlib
import gc
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from . import formats
from .errors import QuickDrawError
from .splits import drawing_identity
from .strokes import MAX_POINTS, PLAIN_NUMBERS, FlatDrawings, drawing_problem, ranges
from .workers import ordered_map

CHUNK = 2_000  # drawings read, checked and converted at a time
META = ("key_id", "countrycode", "timestamp", "recognized", "line")
RAW_IN_SIMPLIFIED = "a raw drawing (times, or coordinates not integers 0-255) in simplified data"


@dataclass
class Packed:
    """Drawings as stroke-3 rows with their identities, flags and metadata (module doc)."""

    strokes: np.ndarray  # int16 (P, 3)
    offsets: np.ndarray  # int64 (D + 1,), offsets[0] == 0
    identity: np.ndarray  # bytes (D,)
    raw: np.ndarray  # bool (D,)
    key_id: np.ndarray | None = None  # the metadata: None unless read with meta=True
    countrycode: np.ndarray | None = None
    timestamp: np.ndarray | None = None
    recognized: np.ndarray | None = None
    line: np.ndarray | None = None  # with meta=True; None in folders packed before it

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def has_meta(self) -> bool:
        return self.key_id is not None

    def lengths(self) -> np.ndarray:
        """Stroke-3 rows per drawing."""
        return np.diff(np.asarray(self.offsets))

    def stroke3(self, i: int) -> np.ndarray:
        """Drawing `i` as int16 stroke-3 ``(n, 3)`` (a view when memory-mapped)."""
        return np.asarray(self.strokes[self.offsets[i] : self.offsets[i + 1]])

    def take(self, indices: Sequence[int] | np.ndarray) -> Packed:
        """The drawings at `indices`, in that order, gathered into memory."""
        indices = np.asarray(indices, dtype=np.int64)
        offsets = np.asarray(self.offsets)
        lengths = offsets[indices + 1] - offsets[indices]
        rows = ranges(offsets[indices], lengths)

        def pick(array: np.ndarray | None) -> np.ndarray | None:
            return None if array is None else np.asarray(array[indices])

        return Packed(
            strokes=np.asarray(self.strokes[rows]),
            offsets=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
            identity=np.asarray(self.identity[indices]),
            raw=np.asarray(self.raw[indices]),
            key_id=pick(self.key_id),
            countrycode=pick(self.countrycode),
            timestamp=pick(self.timestamp),
            recognized=pick(self.recognized),
            line=pick(self.line),
        )

    def meta(self, indices: Sequence[int] | np.ndarray) -> dict[str, np.ndarray]:
        """The metadata arrays (`META`) of the drawings at `indices`, without their strokes;
        ``line`` is 0 (unknown) in folders packed before it was kept."""
        if not self.has_meta:
            raise QuickDrawError("these drawings were packed without their metadata (meta=True)")
        indices = np.asarray(indices, dtype=np.int64)
        out = {}
        for name in META:
            array = getattr(self, name)
            out[name] = np.zeros(len(indices), np.int64) if array is None else array[indices]
        return out

    def flat(self) -> FlatDrawings:
        """Every drawing's absolute points, strokes and counts (what `raster` draws).

        A stroke ends at each row whose pen is lifted (``> 0.5``) and at the end of its
        drawing, as `strokes.stroke3_to_drawing` reads stroke-3.
        """
        rows, offsets = np.asarray(self.strokes), np.asarray(self.offsets)
        lengths = np.diff(offsets)
        xy = np.cumsum(rows[:, :2], axis=0, dtype=np.int64)
        before = np.zeros((len(self), 2), dtype=np.int64)  # the running sum where each starts
        starts = offsets[:-1]
        later = starts > 0
        before[later] = xy[starts[later] - 1]
        xy -= np.repeat(before, lengths, axis=0)
        bounds = np.union1d(np.flatnonzero(rows[:, 2] > 0.5) + 1, offsets)
        first = np.searchsorted(bounds, offsets)
        return FlatDrawings(
            x=xy[:, 0].astype(np.float64),
            y=xy[:, 1].astype(np.float64),
            t=None,
            lengths=np.diff(bounds).astype(np.int64),
            counts=np.diff(first).astype(np.int64),
        )

    def metadata(self, i: int, word: str | None = None) -> dict[str, Any]:
        """Drawing `i`'s record fields (those known): word, key_id, countrycode, timestamp
        (an aware UTC datetime), recognized, and the line of the source file it was on."""
        out: dict[str, Any] = {} if word is None else {"word": word}
        if not self.has_meta:
            return out
        assert self.countrycode is not None and self.timestamp is not None
        assert self.recognized is not None and self.key_id is not None
        if self.key_id[i]:
            out["key_id"] = self.key_id[i].decode()
        if self.countrycode[i]:
            out["countrycode"] = self.countrycode[i].decode()
        if self.timestamp[i] >= 0:
            out["timestamp"] = formats.timestamp_from_micros(int(self.timestamp[i]))
        if self.recognized[i] >= 0:
            out["recognized"] = bool(self.recognized[i])
        if self.line is not None and self.line[i] > 0:
            out["line"] = int(self.line[i])
        return out


def open_packed(folder: str | os.PathLike, mmap: bool = True) -> Packed:
    """The `Packed` that `pack_file` wrote into `folder`, memory-mapped (or loaded)."""
    folder = Path(folder)
    arrays: dict[str, np.ndarray | None] = {}
    for f in fields(Packed):
        file = folder / f"{f.name}.npy"
        if file.is_file():
            array = np.load(file, mmap_mode="r" if mmap else None, allow_pickle=False)
            # plain ndarray views of the map: slicing a numpy.memmap costs 10x more
            arrays[f.name] = np.asarray(array)
        elif f.name in META:
            arrays[f.name] = None
        else:
            raise QuickDrawError(f"{folder}: no {file.name}; it holds no packed drawings")
    return Packed(**arrays)  # type: ignore[arg-type]


# --- reading a file -------------------------------------------------------------------------


@dataclass
class PackStats:
    """What `pack_file` read: drawings kept, how many were raw, what the reader skipped."""

    drawings: int
    raw: int
    read: formats.ReadStats


def pack_file(
    path: str | os.PathLike,
    folder: str | os.PathLike,
    *,
    kind: str | None = None,
    on_error: str = "raise",
    meta: bool = False,
    max_drawings: int | None = None,
    pool=None,
    progress: Callable[[int], Any] | None = None,
) -> PackStats:
    """Read one category's file into the packed files of `folder` (module doc).

    kind: ``"raw"`` (simplify every drawing), ``"simplified"`` (a raw drawing is an
        error) or None (each drawing is looked at on its own: raw ones are simplified).
    on_error: a malformed line or a drawing with no points raises `QuickDrawError`
        naming ``file:line`` (``"raise"``), or is left out and counted (``"skip"``).
    meta: also keep key_id, countrycode, timestamp and recognized.
    max_drawings: stop after this many drawings.
    pool: a process pool (`workers.process_pool`) for the ndjson chunks, or None.
    progress: called with the number of drawings of each chunk as it is kept.

    Writes the files directly (the caller stages `folder`); raises if no drawing is left.
    """
    path, folder = Path(path), Path(folder)
    kind_ = formats.file_kind(path)
    if kind_ not in formats.DRAWING_KINDS:
        raise QuickDrawError(
            f"cannot read drawings from {path}: unknown suffix; valid: "
            f"{formats.suffix_list(*formats.DRAWING_KINDS)}"
        )
    stats = formats.ReadStats()
    if kind_ == "ndjson":
        chunks = formats.iter_line_chunks(path, CHUNK, stats)
        jobs = ((path, lines, kind, on_error, meta) for lines in chunks)
        results = ordered_map(pool, _pack_lines, jobs)
    else:
        results = (
            _pack_binary(path, first, chunk, kind, on_error, meta)
            for first, chunk in _binary_chunks(path)
        )
    folder.mkdir(parents=True, exist_ok=True)
    n = raw = 0
    with _Writer(folder, meta) as writer:
        for packed, chunk_stats in results:
            stats.records += chunk_stats.records
            for message in chunk_stats.errors:
                stats.note_skip(message)
            stats.skipped += chunk_stats.skipped - len(chunk_stats.errors)
            if max_drawings is not None and n + len(packed) > max_drawings:
                packed = packed.take(np.arange(max_drawings - n))
            writer.append(packed)
            n += len(packed)
            raw += int(packed.raw.sum())
            if progress is not None:
                progress(len(packed))
            if max_drawings is not None and n >= max_drawings:
                break
        results.close()  # stops the reader (and cancels chunks still queued)
        if n == 0:
            raise QuickDrawError(f"no drawings in {path}")
    return PackStats(drawings=n, raw=raw, read=stats)


def _binary_chunks(path: Path) -> Iterator[tuple[int, list[dict]]]:
    """The drawings of a `.bin` file in chunks of `CHUNK`, each with its first drawing's index."""
    chunk: list[dict] = []
    first = 0
    for record in formats.iter_binary(path):
        chunk.append(record)
        if len(chunk) >= CHUNK:
            yield first, chunk
            first += len(chunk)
            chunk = []
    if chunk:
        yield first, chunk


def _pack_binary(path: Path, first: int, records: list[dict], kind, on_error: str, meta: bool):
    """`records`, drawings `first`... of the `.bin` file `path` -> a `Packed` chunk, stats."""
    stats = formats.ReadStats(records=len(records))
    names = [f"{path}: drawing {first + i}" for i in range(len(records))]
    lines = range(first + 1, first + len(records) + 1)
    packed = pack_records(records, names, kind, on_error, meta, stats, no_bools=True, lines=lines)
    return packed, stats


def _pack_lines(job) -> tuple[Packed, formats.ReadStats]:
    """Worker: numbered ndjson lines -> a `Packed` chunk and what was skipped."""
    path, lines, kind, on_error, meta = job
    stats = formats.ReadStats(max_errors=CHUNK)
    with _no_gc():
        records, numbers = formats.parse_lines(path, lines, on_error, stats)
        names = [f"{path}:{n}" for n in numbers]
        # Every JSON true/false is a bool of some record; if the records' "recognized" fields
        # hold as many as the lines spell, none is a coordinate (a bool in another field, or
        # a string that says "true", only makes the counts differ, and the check is then
        # made value by value).
        literals = sum(line.count(b"true") + line.count(b"false") for _, line in lines)
        fields_ = sum(type(r.get("recognized")) is bool for r in records)
        packed = pack_records(
            records, names, kind, on_error, meta, stats, no_bools=literals == fields_, lines=numbers
        )
        del records  # freed now, while the collector is off: it never has to look at them
    return packed, stats


@contextlib.contextmanager
def _no_gc() -> Iterator[None]:
    """No cyclic garbage collection while a chunk is parsed: it makes no cycles, and the
    collector's passes over the many new lists cost more than the parsing (3x on 300,000
    drawings)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class _Writer:
    """Appends chunks to the packed files of a folder; strokes go straight to disk."""

    def __init__(self, folder: Path, meta: bool) -> None:
        self.folder, self.meta = folder, meta
        self.parts: dict[str, list[np.ndarray]] = {}
        self.rows = 0
        self.offsets = [np.zeros(1, dtype=np.int64)]

    def __enter__(self) -> _Writer:
        self.strokes = formats.GrowingNpy(self.folder / "strokes.npy", np.int16, (3,))
        return self

    def append(self, packed: Packed) -> None:
        self.strokes.append(packed.strokes)
        self.offsets.append(packed.offsets[1:] + self.rows)
        self.rows += len(packed.strokes)
        for f in fields(Packed):
            array = getattr(packed, f.name)
            if f.name not in ("strokes", "offsets") and array is not None:
                self.parts.setdefault(f.name, []).append(array)

    def __exit__(self, kind, error, traceback) -> None:
        self.strokes.close()
        if error is not None:
            return
        np.save(self.folder / "offsets.npy", np.concatenate(self.offsets), allow_pickle=False)
        for name, parts in self.parts.items():
            np.save(self.folder / f"{name}.npy", np.concatenate(parts), allow_pickle=False)


# --- checking and converting one chunk -------------------------------------------------------


def pack_records(
    records: Sequence[Any],
    names: Sequence[str],
    kind: str | None = None,
    on_error: str = "raise",
    meta: bool = False,
    stats: formats.ReadStats | None = None,
    *,
    no_bools: bool = False,
    lines: Sequence[int] | None = None,
) -> Packed:
    """Check records (dicts with a ``drawing``) and pack the good ones (module doc).

    names[i] is how errors name record i (``file:line``). A bad drawing raises
    `QuickDrawError`, or with ``on_error="skip"`` is left out and noted in `stats`.
    `no_bools`: the caller knows no coordinate is a bool (``.bin`` records; ndjson lines
    whose true/false literals are all record fields). `lines`: where each record was in
    its file (kept with `meta`; 0, unknown, when not given).
    """
    drawings = [r.get("drawing") if isinstance(r, dict) else None for r in records]
    gathered = _gather(drawings, no_bools)
    problems: dict[int, str] = {}
    if gathered is None:  # something irregular: find it, drawing by drawing
        for i, drawing in enumerate(drawings):
            why: str | None
            if drawing is None:
                why = "not a record with a 'drawing'"
            elif isinstance(drawing, dict):  # drawing_problem would take it for a record
                why = "the drawing is dict, not a list of strokes [xs, ys(, ts)]"
            else:
                why = drawing_problem(drawing)
            if why:
                problems[i] = why
            else:
                drawings[i] = _plain(drawing)
        good = [i for i in range(len(drawings)) if i not in problems]
        gathered = _gather([drawings[i] for i in good], True) if good else _Gathered.empty()
        assert gathered is not None, "plain drawings always gather"
    else:
        good = list(range(len(drawings)))
    problems |= {good[j]: why for j, why in gathered.problems(kind).items()}
    stamps = None
    if meta:
        stamps, bad_times = _timestamps([records[i].get("timestamp") for i in good])
        problems |= {good[j]: why for j, why in bad_times.items()}
    if problems:
        return _without(records, names, problems, kind, on_error, meta, stats, lines)
    identity = [drawing_identity(r) for r in records]  # of the drawing as read (raw ones too)
    raw = gathered.raw if kind is None else np.full(len(records), kind == "raw")
    if raw.any():  # Google's recipe, then gathered again
        from .simplify import simplify_drawings

        todo = np.flatnonzero(raw)
        simplified = simplify_drawings([drawings[i] for i in todo], checked=True)
        for j, drawing in zip(todo.tolist(), simplified, strict=True):
            drawings[j] = drawing
        gathered = _gather(drawings, True)
        assert gathered is not None
    strokes, offsets = gathered.stroke3()
    identities = np.array([i.encode() for i in identity], dtype="S")
    packed = Packed(strokes, offsets, identities, raw.astype(bool))
    if meta:
        packed.key_id = _text([r.get("key_id") for r in records])
        packed.countrycode = _text([r.get("countrycode") for r in records])
        packed.timestamp = stamps
        flags = [r.get("recognized") for r in records]
        packed.recognized = np.array([-1 if v is None else int(bool(v)) for v in flags], np.int8)
        where = np.zeros(len(records), np.int64) if lines is None else np.asarray(lines, np.int64)
        packed.line = where
    return packed


def _without(records, names, problems, kind, on_error, meta, stats, lines) -> Packed:
    """`pack_records` of the records without problems, the problems raised or noted."""
    first = min(problems)
    if on_error == "raise":
        raise QuickDrawError(
            f"{names[first]}: {problems[first]} (on_error='skip' / --on-error skip leaves such"
            " drawings out)"
        )
    for i in sorted(problems):
        if stats is not None:
            stats.note_skip(f"{names[i]}: {problems[i]}")
    keep = [i for i in range(len(records)) if i not in problems]
    return pack_records(
        [records[i] for i in keep],
        [names[i] for i in keep],
        kind,
        on_error,
        meta,
        stats,
        no_bools=True,  # they passed drawing_problem or the gathering's checks
        lines=None if lines is None else [lines[i] for i in keep],
    )


def _plain(drawing) -> list:
    """A checked drawing of any accepted form (tuples, numpy arrays) as plain lists."""

    def axis(values) -> list:
        if isinstance(values, np.ndarray):
            return values.tolist()
        return [v.item() if isinstance(v, np.generic) else v for v in values]

    return [[axis(a) for a in stroke] for stroke in drawing]


def _text(values: list) -> np.ndarray:
    return np.array([b"" if v in (None, "") else str(v).encode() for v in values], dtype="S")


def _timestamps(values: list) -> tuple[np.ndarray, dict[int, str]]:
    """Record timestamps -> microseconds since 1970 UTC (-1 unknown), and the bad ones."""
    out = np.full(len(values), -1, dtype=np.int64)
    official, where, problems = [], [], {}
    for i, v in enumerate(values):
        if v is None or v == "":
            continue
        # the official form, "2017-03-08 21:12:07.26604 UTC": parsed by numpy, all at once
        if type(v) is str and v.endswith(" UTC") and 23 <= len(v) <= 30 and v[10] == " ":
            official.append(v[:-4])
            where.append(i)
            continue
        try:
            out[i] = formats.timestamp_micros(v)
        except QuickDrawError as e:
            problems[i] = str(e)
    if official:
        try:
            parsed = np.array(official, dtype="datetime64[us]").astype(np.int64)
        except ValueError:
            parsed = None
        if parsed is None or (parsed == np.iinfo(np.int64).min).any():  # "NaT", or not a time
            for i in where:
                try:
                    out[i] = formats.timestamp_micros(values[i])
                except QuickDrawError as e:
                    problems[i] = str(e)
        else:
            out[where] = parsed
    return out, problems


class _Gathered:
    """The points of a chunk of drawings in flat arrays (empty strokes dropped).

    x, y: uint8 when every coordinate is an integer 0-255 (what simplified files hold),
    else float64.
    """

    def __init__(self, x, y, lengths, counts, timed) -> None:
        self.x, self.y = x, y
        self.lengths = lengths  # points per stroke
        self.counts = counts  # strokes per drawing
        self.timed = timed  # bool per drawing: a stroke has times
        before = np.concatenate([[0], np.cumsum(lengths)])  # points before each stroke
        first = np.cumsum(counts) - counts  # each drawing's first stroke
        self.points = before[first + counts] - before[first]  # per drawing

    @classmethod
    def empty(cls) -> _Gathered:
        none = np.zeros(0, dtype=np.int64)
        return cls(np.zeros(0, np.uint8), np.zeros(0, np.uint8), none, none, none.astype(bool))

    def _per_drawing(self, point_flags: np.ndarray) -> np.ndarray:
        drawing_of_point = np.repeat(np.arange(len(self.counts)), self.points)
        hits = np.bincount(drawing_of_point[point_flags], minlength=len(self.counts))
        return hits > 0

    @property
    def bytes_only(self) -> bool:
        return self.x.dtype == np.uint8

    @property
    def raw(self) -> np.ndarray:
        """Per drawing: times, or coordinates that are not integers 0-255."""
        if self.bytes_only:
            return self.timed.copy()
        off = np.zeros(len(self.x), dtype=bool)
        for v in (self.x, self.y):
            with np.errstate(invalid="ignore"):
                off |= (v != np.round(v)) | (v < 0) | (v > 255)
        return self.timed | self._per_drawing(off)

    def problems(self, kind: str | None) -> dict[int, str]:
        """Why drawings cannot be packed: no points, points that are not finite, or a raw
        drawing where `kind` says simplified."""
        out: dict[int, str] = {}
        bad = np.zeros(len(self.counts), dtype=bool)
        if not self.bytes_only:
            bad = self._per_drawing(~(np.isfinite(self.x) & np.isfinite(self.y)))
        for i in np.flatnonzero(bad):
            out[int(i)] = "coordinates must be finite numbers (not NaN, infinite or beyond float64)"
        for i in np.flatnonzero(self.points == 0):
            out[int(i)] = "the drawing has no points"
        for i in np.flatnonzero(self.points > MAX_POINTS):
            out[int(i)] = f"the drawing has {self.points[i]:,} points; at most {MAX_POINTS:,}"
        if kind == "simplified":
            for i in np.flatnonzero(self.raw & ~bad & (self.points > 0)):
                out[int(i)] = RAW_IN_SIMPLIFIED
        return out

    def stroke3(self) -> tuple[np.ndarray, np.ndarray]:
        """int16 stroke-3 rows and drawing offsets (the points must be integers 0-255)."""
        rows = np.empty((len(self.x), 3), dtype=np.int16)
        firsts = (np.cumsum(self.points) - self.points)[self.points > 0]
        for column, v in enumerate((self.x, self.y)):
            v = v.astype(np.int16)
            step = rows[:, column]
            step[:] = v
            step[1:] -= v[:-1]
            step[firsts] = v[firsts]  # a drawing's first point: its offset from the origin
        rows[:, 2] = 0
        rows[np.cumsum(self.lengths) - 1, 2] = 1
        offsets = np.concatenate([[0], np.cumsum(self.points)]).astype(np.int64)
        return rows, offsets


def _gather(drawings: Sequence, no_bools: bool = False) -> _Gathered | None:
    """The points of drawings given as plain lists (what JSON and ``.bin`` give), or None if
    any drawing is not that (the caller then checks them one by one). `no_bools`: the
    caller knows no coordinate is a bool (one more type check saved)."""
    xs: list = []
    ys: list = []
    ts: list = []
    lengths: list[int] = []
    counts: list[int] = []
    timed: list[bool] = []
    plain = list
    for drawing in drawings:
        if type(drawing) is not plain:
            return None
        n, has_times = 0, False
        for stroke in drawing:
            if type(stroke) is not plain:
                return None
            if len(stroke) == 2:
                x, y = stroke
            elif len(stroke) == 3:
                x, y, t = stroke
                if type(t) is not plain or len(t) != len(x):
                    return None
                ts += t
                has_times = True
            else:
                return None
            if type(x) is not plain or type(y) is not plain or len(x) != len(y):
                return None
            if x:
                xs += x
                ys += y
                lengths.append(len(x))
                n += 1
        counts.append(n)
        timed.append(has_times)
    numbers = PLAIN_NUMBERS.issuperset
    if ts and not numbers(map(type, ts)):
        return None
    try:  # the common case, at C speed: every coordinate an int 0-255 (or a bool)
        x_array = np.frombuffer(bytes(xs), dtype=np.uint8)
        y_array = np.frombuffer(bytes(ys), dtype=np.uint8)
        if not no_bools and bool in set(map(type, xs)) | set(map(type, ys)):
            return None
    except (TypeError, ValueError):  # floats, numbers beyond 0-255, or not numbers at all
        if not (numbers(map(type, xs)) and numbers(map(type, ys))):
            return None  # a bool, a string, null...: named by drawing_problem
        x_array, y_array = _floats(xs), _floats(ys)
    return _Gathered(
        x_array,
        y_array,
        np.array(lengths, dtype=np.int64),
        np.array(counts, dtype=np.int64),
        np.array(timed, dtype=bool),
    )


def _floats(values: list) -> np.ndarray:
    try:
        return np.array(values, dtype=np.float64)
    except OverflowError:  # an integer beyond float64 (a 400-digit coordinate): not finite
        return np.array([float(v) if abs(v) < 2**1023 else np.inf for v in values])
