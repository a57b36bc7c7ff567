"""Readers and writers for every official Quick, Draw! file format.

Formats (https://github.com/googlecreativelab/quickdraw-dataset):

raw / simplified ndjson (``.ndjson``, optionally ``.ndjson.gz``)
    One JSON record per line: ``drawing`` plus the optional fields ``word``,
    ``countrycode``, ``timestamp``, ``recognized`` and ``key_id``. A raw drawing's
    strokes are ``[xs, ys, ts]`` (floats, t in ms), a simplified one's ``[xs, ys]``
    (ints 0-255). Read as a stream: files are hundreds of MB.
binary (``.bin``)
    Simplified drawings packed little-endian, one after another: key_id uint64,
    countrycode 2 bytes, recognized int8, timestamp uint32 (Unix seconds), stroke
    count uint16; then per stroke a point count uint16, that many uint8 x, that
    many uint8 y.
numpy_bitmap (``.npy``)
    ``uint8`` array of shape ``(N, 784)``: 28x28 greyscale renderings, one per row.
sketch-rnn (``.npz``)
    Keys ``train``/``valid``/``test``, each a 1-D object array of ``int16`` stroke-3
    arrays ``(n, 3)`` (see `quickdraw_tools.strokes`). Object arrays are pickled, so
    the reader unpickles with a whitelist that admits numpy arrays and dtypes only.

Records read from ndjson and from ``.bin`` have the same shape and types, so code
downstream never cares which it got: ``key_id`` is a decimal string (as in ndjson;
``.bin`` stores uint64), ``countrycode`` a str, ``recognized`` a bool, ``timestamp``
a ``"YYYY-MM-DD HH:MM:SS[.ffffff] UTC"`` string (``.bin`` keeps whole seconds only),
``drawing`` lists of Python numbers. Every writer is atomic.
"""

from __future__ import annotations

import dataclasses
import gzip
import io
import json
import math
import pickle
import struct
import warnings
import zipfile
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import numpy as np
import orjson

from . import manifest
from .atomic import atomic_write
from .errors import QuickDrawError, check_choice, check_utf8, printable
from .splits import SPLITS  # the keys of a sketch-rnn .npz are the split names
from .strokes import MAX_POINTS, drawing_problem, drawing_to_stroke3

BITMAP_SIDE = 28
BITMAP_SIZE = BITMAP_SIDE * BITMAP_SIDE

# ---------------------------------------------------------------------------
# File kinds: the one table of suffixes (matched case-insensitively, longest first)

SUFFIXES = {
    "ndjson": (".ndjson", ".ndjson.gz", ".jsonl"),  # raw or simplified drawings
    "binary": (".bin",),  # the official binary drawings
    "bitmap": (".npy",),  # numpy_bitmap rows, uint8 (N, 784)
    "sketchrnn": (".full.npz", ".npz"),  # sketch-rnn stroke-3 splits
    "checkpoint": (".pt", ".pth", ".ckpt", ".gen.json"),  # `quickdraw train`'s; Magenta's
}
DRAWING_KINDS = ("ndjson", "binary")  # files of drawings (records)


def _suffix_of(path: str | Path) -> tuple[str | None, str]:
    name = Path(path).name
    lower = name.lower()
    pairs = sorted(
        ((suffix, kind) for kind, ss in SUFFIXES.items() for suffix in ss),
        key=lambda p: -len(p[0]),
    )
    for suffix, kind in pairs:
        if lower.endswith(suffix) and len(name) > len(suffix):
            return kind, name[: -len(suffix)]
    return None, Path(path).stem


def file_kind(path: str | Path) -> str | None:
    """Which of `SUFFIXES` the file's name says it is ("ndjson", "bitmap", ...), or None."""
    return _suffix_of(path)[0]


def file_stem(path: str | Path) -> str:
    """The name without its kind's suffix: ``cat.ndjson.gz`` -> ``cat``, ``cat.full.npz`` ->
    ``cat``; the category of a one-category file. A name that is not UTF-8 names no category
    (it could be neither written into a file nor shown): QuickDrawError."""
    check_utf8(Path(path).name, "file name")
    return _suffix_of(path)[1]


def suffix_list(*kinds: str) -> str:
    """``'.ndjson', '.ndjson.gz', ...`` for error messages."""
    return ", ".join(repr(s) for k in kinds for s in SUFFIXES[k])


# ---------------------------------------------------------------------------
# ndjson

# What one read of an ndjson file holds at a time, however the file is made: a line of more
# than MAX_LINE_BYTES is refused (file:line) without being held whole (a drawing of
# MAX_POINTS raw points takes ~3 MB), and a chunk of lines stops at CHUNK_BYTES. Parsed,
# JSON takes about 9 bytes of memory per byte of text, so a chunk's records take < 250 MB.
MAX_LINE_BYTES = 8 << 20
CHUNK_BYTES = 16 << 20
TOO_LONG = b""  # stands in a chunk for a line over MAX_LINE_BYTES (blank lines never do)


@dataclasses.dataclass
class ReadStats:
    """What a reader saw: lines read, records yielded, malformed lines skipped."""

    lines: int = 0
    records: int = 0
    skipped: int = 0
    # The first few skip reasons ("file:line: why"), so a user can look at them.
    errors: list[str] = dataclasses.field(default_factory=list)
    max_errors: int = 10

    def note_skip(self, message: str) -> None:
        self.skipped += 1
        if len(self.errors) < self.max_errors:
            self.errors.append(message)


def _open_binary(path: Path) -> IO[bytes]:
    if path.suffix == ".gz":
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return open(path, "rb")


def _parse_line(line: bytes, check: bool = True) -> dict:
    """One ndjson line -> record; raises ValueError saying what is wrong.

    orjson (a fast, strict JSON parser) refuses NaN and Infinity, and numbers too large for
    a float64 (``1e400``, a 400-digit integer): no coordinate is ever one of those.
    ``check=False`` leaves the drawing's shape to the caller (`packed` checks a whole chunk of
    drawings at once); a line that is not text raises UnicodeDecodeError either way.
    """
    if line == TOO_LONG:
        raise ValueError(
            f"the line is over {MAX_LINE_BYTES:,} bytes, more than any drawing of at most "
            f"{MAX_POINTS:,} points takes; it was not read"
        )
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError as e:
        line.decode("utf-8")  # not text at all: a UnicodeDecodeError, the whole file is bad
        raise ValueError(f"invalid JSON ({e.msg} at column {e.colno})") from None
    if not isinstance(record, dict):
        raise ValueError(f"a record must be a JSON object, got {type(record).__name__}")
    if "drawing" not in record:
        raise ValueError("record has no 'drawing'")
    why = drawing_problem(record["drawing"]) if check else None
    if why:
        raise ValueError(why)
    return record


def parse_lines(
    path: Path,
    lines: Sequence[tuple[int, bytes]],
    on_error: str,
    stats: ReadStats,
    check: bool = False,
) -> tuple[list[dict], list[int]]:
    """Parse numbered ndjson lines (from `iter_line_chunks`); returns the records and their
    line numbers. Malformed lines raise `QuickDrawError` naming ``path:line``, or with
    ``on_error="skip"`` are counted in `stats` and left out. The drawings' shapes are checked
    only with ``check=True`` (`packed` checks a whole chunk's at once)."""
    records, numbers = [], []
    for lineno, line in lines:
        try:
            records.append(_parse_line(line, check))
        except UnicodeDecodeError as e:
            raise QuickDrawError(f"{path}: not a readable ndjson file ({e})") from None
        except ValueError as e:
            if on_error == "raise":
                raise QuickDrawError(f"{path}:{lineno}: malformed line: {e}") from None
            stats.note_skip(f"{path}:{lineno}: {e}")
            continue
        numbers.append(lineno)
    stats.records += len(records)
    return records, numbers


def iter_line_chunks(
    path: str | Path, size: int, stats: ReadStats | None = None
) -> Iterator[list[tuple[int, bytes]]]:
    """The non-blank lines of an ``.ndjson``/``.ndjson.gz`` file, `size` at a time, each with
    its line number (from 1), unparsed: for readers that parse chunks elsewhere (`packed`).
    A byte-order mark is dropped; a broken gzip stream raises `QuickDrawError`."""
    path = Path(path)
    if not path.is_file():
        raise QuickDrawError(f"no such ndjson file: {path}")
    stats = stats if stats is not None else ReadStats()
    return _iter_line_chunks(path, size, stats)


def _iter_line_chunks(path: Path, size: int, stats: ReadStats) -> Iterator[list]:
    chunk: list[tuple[int, bytes]] = []
    held = 0  # bytes of the lines in `chunk`
    try:
        with _open_binary(path) as f:
            lineno = 0
            while line := f.readline(MAX_LINE_BYTES + 1):
                lineno += 1
                stats.lines = lineno
                if len(line) > MAX_LINE_BYTES and not line.endswith(b"\n"):
                    while (rest := f.readline(1 << 20)) and not rest.endswith(b"\n"):
                        pass  # the rest of the line, read and dropped a block at a time
                    line = TOO_LONG
                elif lineno == 1 and line.startswith(b"\xef\xbb\xbf"):
                    line = line[3:]  # a byte-order mark (Windows editors write one): not JSON
                if line == TOO_LONG or line.strip():
                    chunk.append((lineno, line))
                    held += len(line)
                    if len(chunk) >= size or held >= CHUNK_BYTES:
                        yield chunk
                        chunk, held = [], 0
    except (gzip.BadGzipFile, EOFError, zlib.error) as e:
        raise QuickDrawError(f"{path}: not a readable ndjson file ({e})") from None
    if chunk:
        yield chunk


def iter_ndjson(
    path: str | Path,
    on_error: str = "raise",
    stats: ReadStats | None = None,
    warn: bool = True,
    numbered: bool = False,
) -> Iterator:
    """Stream the records of a raw or simplified ``.ndjson`` (or ``.ndjson.gz``) file.

    Each record is a dict with ``drawing`` and whichever optional fields the line
    has (``word, countrycode, timestamp, recognized, key_id``). A malformed line
    raises `QuickDrawError` naming the file and line number; with
    ``on_error="skip"`` it is skipped, counted in ``stats.skipped`` (pass a
    `ReadStats` to see it) and a warning says how many were skipped (``warn=False``
    leaves the reporting to a caller that reads `stats`). Blank lines are ignored.
    With ``numbered=True`` it yields ``(line number, record)`` pairs (lines count
    from 1), for callers that name a record's line later.
    """
    check_choice("on_error mode", on_error, ["raise", "skip"])
    path = Path(path)
    if not path.is_file():
        raise QuickDrawError(f"no such ndjson file: {path}")
    stats = stats if stats is not None else ReadStats()
    return _iter_ndjson(path, on_error, stats, warn, numbered)


def _iter_ndjson(
    path: Path, on_error: str, stats: ReadStats, warn: bool, numbered: bool
) -> Iterator:
    for chunk in _iter_line_chunks(path, 1, stats):
        records, numbers = parse_lines(path, chunk, on_error, stats, check=True)
        for lineno, record in zip(numbers, records, strict=True):
            yield (lineno, record) if numbered else record
    if stats.skipped and warn:
        warnings.warn(
            printable(
                f"{path}: skipped {stats.skipped} malformed line(s) of {stats.lines}; "
                f"first: {stats.errors[0]}"
            ),
            stacklevel=2,
        )


def _json_default(value: Any) -> Any:
    # numpy values sneak into drawings that were computed rather than read.
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__} to ndjson")


def write_ndjson(path: str | Path, records: Iterable[Mapping]) -> int:
    """Write `records` (dicts with ``drawing``) as ndjson, atomically; returns the count.

    Written compactly, like the official files; ``.gz`` paths are gzip-compressed.
    """
    path = Path(path)
    n = 0
    with atomic_write(path, "wb") as raw:
        # no time stamp and no name in the gzip header: the same records give the same bytes
        zipped = path.suffix == ".gz"
        f = gzip.GzipFile(filename="", fileobj=raw, mode="wb", mtime=0) if zipped else raw
        text = io.TextIOWrapper(f, encoding="utf-8", newline="\n")
        for record in records:
            if not isinstance(record, Mapping) or "drawing" not in record:
                raise QuickDrawError(f"record {n} is not a mapping with a 'drawing'")
            try:
                line = json.dumps(
                    dict(record),
                    separators=(",", ":"),
                    ensure_ascii=False,
                    default=_json_default,
                    allow_nan=False,  # NaN and Infinity are not JSON: no reader would take them
                )
            except (TypeError, ValueError) as e:
                raise QuickDrawError(f"record {n} cannot be written as JSON: {e}") from None
            text.write(line)
            text.write("\n")
            n += 1
        text.flush()
        text.detach()
        if f is not raw:
            f.close()
    return n


# ---------------------------------------------------------------------------
# binary

_HEADER = struct.Struct("<Q2sbIH")
_COUNT = struct.Struct("<H")
_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


def _timestamp_to_seconds(value: Any) -> int:
    """ndjson timestamp (``"2017-03-02 23:25:10.07453 UTC"``), datetime or int -> Unix seconds."""
    if isinstance(value, bool):
        raise ValueError(f"timestamp {value!r} is not a time")
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, datetime):
        dt = value if value.tzinfo else value.replace(tzinfo=UTC)
        return int(dt.timestamp())
    if isinstance(value, str):
        text = value.strip().removesuffix("UTC").strip()
        whole = text.split(".", 1)[0]
        dt = datetime.strptime(whole, _TIME_FORMAT).replace(tzinfo=UTC)
        return int(dt.timestamp())
    raise ValueError(f"timestamp {value!r} is not a time")


def parse_timestamp(value: Any) -> datetime | None:
    """A record's ``timestamp`` (``"2017-03-02 23:25:10.07453 UTC"``, seconds, a datetime) as
    an aware UTC datetime, fractions kept; None when the record has none."""
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, int | np.integer) and not isinstance(value, bool):
        return datetime.fromtimestamp(int(value), UTC)
    if isinstance(value, str):
        text = value.strip().removesuffix("UTC").strip()
        try:
            form = _TIME_FORMAT + ".%f" if "." in text else _TIME_FORMAT
            return datetime.strptime(text, form).replace(tzinfo=UTC)
        except ValueError:
            pass
    raise QuickDrawError(f"timestamp {value!r} is not a time (expected 'YYYY-MM-DD HH:MM:SS UTC')")


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def timestamp_micros(value: Any) -> int:
    """A record's timestamp (as `parse_timestamp` takes it) as whole microseconds since 1970
    UTC, exactly (no float rounding); -1 when the record has none."""
    when = parse_timestamp(value)
    return -1 if when is None else (when - _EPOCH) // _MICROSECOND


def timestamp_from_micros(micros: int) -> datetime:
    """`timestamp_micros` back to an aware UTC datetime."""
    return _EPOCH + micros * _MICROSECOND


def _seconds_to_timestamp(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime(_TIME_FORMAT) + " UTC"


def iter_binary(path: str | Path, word: str | None = None) -> Iterator[dict]:
    """Stream the drawings of an official ``.bin`` file as records like `iter_ndjson`'s.

    ``key_id`` is a decimal str, ``countrycode`` a str, ``recognized`` a bool,
    ``timestamp`` ``"YYYY-MM-DD HH:MM:SS UTC"``, ``drawing`` ``[[xs, ys], ...]`` of
    ints. Fields stored as zero/empty (what `write_binary` writes for a missing
    field) are left out, except ``recognized``. The file holds no category name:
    pass `word` to add it to every record. A truncated file raises `QuickDrawError`.
    """
    path = Path(path)
    if not path.is_file():
        raise QuickDrawError(f"no such binary file: {path}")
    return _iter_binary(path, word)


def _iter_binary(path: Path, word: str | None) -> Iterator[dict]:
    with open(path, "rb") as f:
        index = 0
        while True:
            head = f.read(_HEADER.size)
            if not head:
                return
            try:
                if len(head) < _HEADER.size:
                    raise EOFError
                key_id, country, recognized, seconds, n_strokes = _HEADER.unpack(head)
                drawing, points = [], 0
                for _ in range(n_strokes):
                    count = f.read(2)
                    if len(count) < 2:
                        raise EOFError
                    (n,) = _COUNT.unpack(count)
                    points += n
                    if points > MAX_POINTS:
                        raise QuickDrawError(
                            f"{path}: drawing {index} has more than {MAX_POINTS:,} points; a "
                            "drawing has at most that many"
                        )
                    xy = f.read(2 * n)
                    if len(xy) < 2 * n:
                        raise EOFError
                    drawing.append([list(xy[:n]), list(xy[n:])])
            except EOFError:
                raise QuickDrawError(
                    f"{path}: truncated binary file (drawing {index} ends early)"
                ) from None
            record: dict[str, Any] = {}
            if word is not None:
                record["word"] = word
            country = country.rstrip(b"\0")
            if country:
                record["countrycode"] = country.decode("ascii", errors="replace")
            if seconds:
                record["timestamp"] = _seconds_to_timestamp(seconds)
            record["recognized"] = bool(recognized)
            if key_id:
                record["key_id"] = str(key_id)
            record["drawing"] = drawing
            index += 1
            yield record


def _uint8_bytes(values: Any, stroke: int) -> bytes:
    """Coordinates (ints 0-255, or integral floats) -> bytes; ValueError if they do not fit."""
    if isinstance(values, np.ndarray):
        values = values.tolist()
    if isinstance(values, list | tuple):
        try:
            return bytes(values)  # fast path: a list of ints 0-255; rejects anything else
        except (TypeError, ValueError):
            pass
    try:
        a = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        a = np.array([np.nan])
    if a.ndim != 1 or not np.all((a == np.round(a)) & (a >= 0) & (a <= 255)):
        raise ValueError(
            f"stroke {stroke} has coordinates that are not integers 0-255 "
            "(.bin holds simplified drawings; simplify raw ones first)"
        )
    return a.astype(np.uint8).tobytes()


def _pack_drawing(record: Mapping) -> bytes:
    """One record -> its ``.bin`` bytes; raises ValueError saying what does not fit."""
    key_id = int(record.get("key_id", 0) or 0)
    if not 0 <= key_id < 2**64:
        raise ValueError(f"key_id {key_id} does not fit uint64")
    country = str(record.get("countrycode", "") or "").encode("ascii")
    if len(country) > 2:
        raise ValueError(f"countrycode {record['countrycode']!r} is longer than 2 characters")
    seconds = _timestamp_to_seconds(record["timestamp"]) if record.get("timestamp") else 0
    if not 0 <= seconds < 2**32:
        raise ValueError(f"timestamp {record['timestamp']!r} does not fit uint32 seconds")
    drawing = record["drawing"]
    if len(drawing) >= 2**16:
        raise ValueError(f"{len(drawing)} strokes do not fit uint16")
    parts = [
        _HEADER.pack(
            key_id, country, int(bool(record.get("recognized", False))), seconds, len(drawing)
        )
    ]
    for i, stroke in enumerate(drawing):
        if len(stroke) < 2:
            raise ValueError(f"stroke {i} is not [xs, ys]")
        xs, ys = _uint8_bytes(stroke[0], i), _uint8_bytes(stroke[1], i)
        if len(xs) != len(ys):
            raise ValueError(f"stroke {i} has xs and ys of different lengths")
        if len(xs) >= 2**16:
            raise ValueError(f"stroke {i} has {len(xs)} points; at most 65535 fit")
        parts += (_COUNT.pack(len(xs)), xs, ys)
    return b"".join(parts)


def write_binary(path: str | Path, records: Iterable[Mapping]) -> int:
    """Write simplified drawings to the official ``.bin`` format, atomically; returns the count.

    Records are dicts like `iter_ndjson`'s; coordinates must be integers 0-255. A
    missing ``key_id``/``timestamp``/``countrycode`` is written as 0/empty (and read
    back as missing); a missing ``recognized`` as False. The timestamp keeps whole
    seconds only. ``.bin`` has no ``word`` field.
    """
    path = Path(path)
    n = 0
    with atomic_write(path, "wb") as f:
        for record in records:
            if not isinstance(record, Mapping) or "drawing" not in record:
                raise QuickDrawError(f"{path}: record {n} is not a mapping with a 'drawing'")
            try:
                f.write(_pack_drawing(record))
            except (ValueError, TypeError, UnicodeEncodeError) as e:
                raise QuickDrawError(f"{path}: record {n} cannot be written as .bin: {e}") from None
            n += 1
    return n


def iter_drawings(
    path: str | Path, on_error: str = "raise", stats: ReadStats | None = None, warn: bool = True
) -> Iterator[dict]:
    """Stream the records of a ``.ndjson``/``.ndjson.gz`` or ``.bin`` file, chosen by suffix.

    Yields the records `iter_ndjson` / `iter_binary` do (dicts with ``drawing``);
    `on_error`, `stats` and `warn` apply to ndjson (a ``.bin`` has no lines to skip).
    """
    path = Path(path)
    kind = file_kind(path)
    if kind == "ndjson":
        return iter_ndjson(path, on_error=on_error, stats=stats, warn=warn)
    if kind == "binary":
        return iter_binary(path)
    raise QuickDrawError(
        f"cannot read drawings from {path}: unknown suffix; valid: {suffix_list(*DRAWING_KINDS)}"
    )


def read_stroke3(path: str | Path, split: str = "test") -> list[np.ndarray]:
    """Stroke-3 sketches ``(n, 3)`` from a sketch-rnn ``.npz`` (its `split`) or from the
    drawings of an ndjson / ``.bin`` file (every record; `split` does not apply)."""
    path = Path(path)
    if file_kind(path) == "sketchrnn":
        splits = load_sketchrnn_npz(path)
        check_choice("split", split, list(splits))
        return splits[split]
    return [drawing_to_stroke3(r["drawing"]) for r in iter_drawings(path)]


# ---------------------------------------------------------------------------
# numpy_bitmap


def bitmap_side(row_size: int) -> int:
    """The side of square bitmaps of `row_size` pixels (784 -> 28); 0 if there is none from
    8 to 1024 (`quickdraw convert --size`)."""
    side = math.isqrt(row_size)
    return side if side * side == row_size and 8 <= side <= 1024 else 0


def _check_bitmaps(array: Any, where: str) -> np.ndarray:
    if not isinstance(array, np.ndarray):
        raise QuickDrawError(f"{where}: bitmaps must be a numpy array, got {type(array).__name__}")
    if array.dtype != np.uint8:
        raise QuickDrawError(f"{where}: bitmaps must be uint8 (0-255), got {array.dtype}")
    if array.ndim != 2 or not bitmap_side(array.shape[1]):
        raise QuickDrawError(
            f"{where}: bitmaps must have shape (N, {BITMAP_SIZE}) (28x28 flattened; or any"
            f" side 8-1024 squared), got {array.shape}"
        )
    return array


def load_bitmaps(path: str | Path, mmap: bool = False) -> np.ndarray:
    """Load an official numpy_bitmap ``.npy``: ``uint8 (N, 784)``, row i is drawing i (or
    ``(N, side * side)``, bitmaps `quickdraw convert --size` drew: `bitmap_side`).

    `mmap` maps the file instead of reading it (the official files are large).
    """
    path = Path(path)
    if not path.is_file():
        raise QuickDrawError(f"no such bitmap file: {path}")
    manifest.verify(path)
    try:
        array = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise QuickDrawError(f"{path}: not a numpy .npy bitmap file ({e})") from None
    return _check_bitmaps(array, str(path))


def save_bitmaps(path: str | Path, array: np.ndarray) -> None:
    """Save ``uint8 (N, 784)`` bitmaps (``(N, 28, 28)`` is flattened) as ``.npy``, atomically."""
    path = Path(path)
    if isinstance(array, np.ndarray) and array.ndim == 3 and array.shape[1:] == (28, 28):
        array = array.reshape(len(array), BITMAP_SIZE)
    array = _check_bitmaps(array, str(path))
    with atomic_write(path, "wb") as f:
        np.save(f, np.ascontiguousarray(array), allow_pickle=False)


class GrowingNpy:
    """An ``.npy`` file written a block of rows at a time, its length unknown until the end.

    The header numpy writes leaves room for any length, so the one written first
    (length 0) is rewritten in place by `close`; the file is then byte-identical to
    ``np.save`` of the whole array, which never had to be in memory. Write it where
    a half-written file does no harm (a staging folder): it is not atomic itself.
    """

    def __init__(self, path: str | Path, dtype, row_shape: tuple[int, ...] = ()) -> None:
        self.path, self.dtype, self.row_shape = Path(path), np.dtype(dtype), tuple(row_shape)
        self.rows = 0
        self._file: IO[bytes] | None = open(self.path, "wb")
        self._header_size = self._write_header()

    def _write_header(self) -> int:
        assert self._file is not None
        header = {
            "descr": np.lib.format.dtype_to_descr(self.dtype),
            "fortran_order": False,
            "shape": (self.rows, *self.row_shape),
        }
        start = self._file.tell()
        np.lib.format.write_array_header_1_0(self._file, header)
        return self._file.tell() - start

    def append(self, rows: np.ndarray) -> None:
        rows = np.ascontiguousarray(rows, dtype=self.dtype)
        if rows.shape[1:] != self.row_shape:
            raise QuickDrawError(
                f"{self.path}: rows of shape {rows.shape[1:]}, expected {self.row_shape}"
            )
        assert self._file is not None, "appended to after close"
        self._file.write(rows.data)
        self.rows += len(rows)

    def close(self) -> None:
        if self._file is None:
            return
        try:
            self._file.seek(0)
            if self._write_header() != self._header_size:
                raise QuickDrawError(f"{self.path}: {self.rows} rows do not fit its header")
        finally:
            self._file.close()
            self._file = None


# ---------------------------------------------------------------------------
# sketch-rnn .npz

# The only globals a pickled numpy array needs. Anything else in a pickle (os.system,
# builtins.eval, ...) is refused before it can run.
_SAFE_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
}


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """An unpickler that can rebuild numpy arrays and dtypes and nothing else."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _SAFE_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        if module.startswith("numpy.core."):  # numpy 1 names; numpy 2 moved them to numpy._core
            module = "numpy._core." + module.removeprefix("numpy.core.")
        if module == "numpy":
            return getattr(np, name)
        return getattr(__import__(module, fromlist=[name]), name)


# What one split of a sketch-rnn file may declare before anything is read: the official
# files hold 70,000 drawings per split (the .full ones a few hundred thousand, ~100 MB).
MAX_DRAWINGS = 5_000_000
MAX_MEMBER_BYTES = 4 << 30


def _read_npy_member(f: IO, where: str, size: int) -> np.ndarray:
    """One .npy member of `size` bytes (uncompressed, as the zip declares it), its declared
    shape checked against `size` and the limits above before its data is read."""
    if size > MAX_MEMBER_BYTES:
        raise QuickDrawError(
            f"{where}: declares {size:,} bytes uncompressed; at most {MAX_MEMBER_BYTES:,} are read"
        )
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
    else:
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
    count = int(np.prod(shape, dtype=object))  # in Python ints: a crafted shape cannot wrap
    if dtype.hasobject and count > MAX_DRAWINGS:
        raise QuickDrawError(
            f"{where}: declares {count:,} drawings; a split holds at most {MAX_DRAWINGS:,}"
        )
    if not dtype.hasobject:
        if count * dtype.itemsize > size:
            raise QuickDrawError(
                f"{where}: declares shape {shape} ({count * dtype.itemsize:,} bytes) but the "
                f"member holds {size:,} bytes"
            )
        raw = f.read(count * dtype.itemsize)
        if len(raw) < count * dtype.itemsize:
            raise QuickDrawError(f"{where}: array data ends early")
        data = np.frombuffer(raw, dtype=dtype, count=count)
        return data.reshape(shape, order="F" if fortran else "C")
    try:
        array = _NumpyOnlyUnpickler(f, encoding="latin1").load()
    except pickle.UnpicklingError as e:
        raise QuickDrawError(
            f"{where}: unsafe or invalid pickle ({e}); only numpy arrays are allowed"
        ) from None
    except Exception as e:  # a corrupt pickle can fail in many ways
        raise QuickDrawError(f"{where}: invalid pickled array ({type(e).__name__}: {e})") from None
    if not isinstance(array, np.ndarray):
        raise QuickDrawError(f"{where}: pickle holds {type(array).__name__}, not a numpy array")
    return array


_INT16 = np.dtype(np.int16)
_SCALARS = (int, float, bool, np.generic)


def _element_rows(item: Any, where: str) -> int:
    """How many stroke-3 rows a drawing of a pickled split holds, found without building
    anything: an array says its shape; a list (what an object array of lists unpickles to)
    must be rows of 3 numbers, at most MAX_POINTS of them. A list's rows may all be one
    shared object, so that a 1 KB pickle unpickles to a list that would take gigabytes as an
    array: it is counted, and refused, before it is made one."""
    if isinstance(item, np.ndarray):
        return int(item.shape[0]) if item.ndim else 1
    if not isinstance(item, list | tuple):
        raise QuickDrawError(f"{where}: a drawing is {type(item).__name__}, not stroke-3 rows")
    limit = 3 * MAX_POINTS
    if _count_numbers(item, limit, {}) > limit:
        raise QuickDrawError(
            f"{where}: nested lists of more than {limit:,} numbers (shared references counted "
            f"as often as they appear); a drawing has at most {MAX_POINTS:,} points of 3"
        )
    for j, row in enumerate(item):
        if not isinstance(row, list | tuple | np.ndarray) or len(row) != 3:
            shown = f"{len(row)} values" if isinstance(row, list | tuple) else type(row).__name__
            raise QuickDrawError(f"{where}: row {j} is {shown}, not 3 numbers (dx, dy, pen)")
        if not all(isinstance(v, _SCALARS) for v in row):
            raise QuickDrawError(f"{where}: row {j} holds something other than numbers")
    return len(item)


def _count_numbers(obj: Any, limit: int, seen: dict[int, int], depth: int = 0) -> int:
    """The numbers nested lists hold, each shared list counted once per reference but walked
    once (`seen`: id -> count); stops soon after passing `limit` (the count is then only
    known to be over it). Deeper than a stroke-3 array's lists counts as over."""
    if isinstance(obj, np.ndarray):
        return int(obj.size)
    if not isinstance(obj, list | tuple):
        return 1
    if depth >= 2:  # rows of numbers sit at depth 1
        return limit + 1
    if id(obj) not in seen:
        total = 0
        for child in obj:
            total += _count_numbers(child, limit, seen, depth + 1)
            if total > limit:
                break
        seen[id(obj)] = total
    return seen[id(obj)]


def _as_stroke3_list(items: Any, where: str) -> list[np.ndarray]:
    """The drawings of a split as int16 stroke-3 arrays, checked. A drawing given as one
    object many times (a pickle may hold one drawing and a million references to it) counts
    as many drawings, with all their rows: the same limits as a file that held each copy
    (MAX_DRAWINGS, MAX_MEMBER_BYTES as int16), and each is checked and copied only once."""
    out = []
    done: dict[int, np.ndarray] = {}  # id of an item -> its array (items live in `items`)
    rows = 0
    for i, item in enumerate(items):
        if i >= MAX_DRAWINGS:
            raise QuickDrawError(f"{where}: more than {MAX_DRAWINGS:,} drawings in a split")
        known = done.get(id(item))
        if known is None:
            known = done[id(item)] = _stroke3(item, f"{where}[{i}]")
        rows += len(known)
        if rows * 3 * _INT16.itemsize > MAX_MEMBER_BYTES:
            raise QuickDrawError(
                f"{where}: its drawings (counting each reference to a shared one) hold over "
                f"{MAX_MEMBER_BYTES:,} bytes of stroke-3 rows; at most that much is read"
            )
        out.append(known)
    return out


def _stroke3(item: Any, where: str) -> np.ndarray:
    """One drawing (`_as_stroke3_list`) as int16 stroke-3 ``(n, 3)``, or QuickDrawError."""
    n = _element_rows(item, where)
    if n > MAX_POINTS:
        raise QuickDrawError(f"{where}: {n:,} rows; a drawing has at most {MAX_POINTS:,} points")
    try:
        a = np.asarray(item)
    except (ValueError, TypeError, OverflowError) as e:
        raise QuickDrawError(f"{where}: not a stroke-3 array ({e})") from None
    if a.dtype is _INT16 and a.ndim == 2 and a.shape[1] == 3:
        return a  # the official layout already
    if a.dtype == np.int16 and a.ndim == 2 and a.shape[1] == 3:
        # Copy it into numpy's canonical int16 dtype object: an array unpickled from
        # another process has its own dtype instance, which pickle would write out
        # again instead of memoising, so the file's bytes would depend on where the
        # arrays were made.
        canonical = np.empty(a.shape, dtype=np.int16)
        canonical[...] = a
        return canonical
    if a.ndim != 2 or a.shape[1] != 3:
        raise QuickDrawError(f"{where}: stroke-3 must have shape (n, 3), got {a.shape}")
    if a.dtype.kind not in "iub":
        if a.dtype.kind != "f" or not np.all(a == np.round(a)):
            raise QuickDrawError(f"{where}: stroke-3 must hold integers, got {a.dtype}")
    if a.size and (a.min() < -(2**15) or a.max() >= 2**15):
        raise QuickDrawError(f"{where}: values do not fit int16")
    return a.astype(np.int16)


def load_sketchrnn_npz(path: str | Path) -> dict[str, list[np.ndarray]]:
    """Read a sketch-rnn ``.npz`` -> ``{"train"|"valid"|"test": [int16 (n, 3) stroke-3, ...]}``.

    Reads the zip members directly and unpickles with a whitelist of numpy array
    reconstruction only: a file whose pickle names anything else (``os.system``...)
    raises `QuickDrawError` and nothing in it runs. Reads Python 2 pickles too.
    """
    path = Path(path)
    if not path.is_file():
        raise QuickDrawError(f"no such sketch-rnn file: {path}")
    manifest.verify(path)
    try:
        zf = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise QuickDrawError(f"{path}: not a .npz (zip) file") from None
    with zf:
        members = {name.removesuffix(".npy"): name for name in zf.namelist()}
        missing = [s for s in SPLITS if s not in members]
        if missing:
            raise QuickDrawError(
                f"{path}: missing split(s) {missing}; a sketch-rnn file has {list(SPLITS)}, "
                f"this one has {sorted(members)}"
            )
        splits = {}
        for split in SPLITS:
            where = f"{path}[{split}]"
            try:
                info = zf.getinfo(members[split])
                with zf.open(info) as f:
                    array = _read_npy_member(f, where, info.file_size)
            except (ValueError, zipfile.BadZipFile, EOFError) as e:
                raise QuickDrawError(f"{where}: not a valid .npy member ({e})") from None
            if array.ndim != 1:
                raise QuickDrawError(
                    f"{where}: expected a 1-D array of drawings, got {array.shape}"
                )
            splits[split] = _as_stroke3_list(array, where)
    return splits


def save_sketchrnn_npz(path: str | Path, splits: Mapping[str, Iterable[np.ndarray]]) -> None:
    """Write ``{"train", "valid", "test"}`` lists of stroke-3 arrays as a sketch-rnn ``.npz``.

    The official layout: compressed, each key a 1-D object array of ``int16 (n, 3)``
    arrays, readable by ``np.load(path, encoding="latin1", allow_pickle=True)``.
    Written atomically.
    """
    path = Path(path)
    if set(splits) != set(SPLITS):
        raise QuickDrawError(
            f"sketch-rnn splits must be exactly {list(SPLITS)}, got {sorted(splits)}"
        )
    # What np.savez_compressed writes, but with a fixed timestamp on each zip
    # member, so the same drawings always give the same bytes. One split at a time:
    # the values may be iterables, read as their split is written.
    with atomic_write(path, "wb") as f, zipfile.ZipFile(f, "w", zipfile.ZIP_DEFLATED) as zf:
        for split in SPLITS:
            drawings = _as_stroke3_list(splits[split], f"splits[{split!r}]")
            obj = np.empty(len(drawings), dtype=object)
            for i, d in enumerate(drawings):  # element-wise: np.array() would stack them
                obj[i] = d
            del drawings
            info = zipfile.ZipInfo(f"{split}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            with zf.open(info, "w", force_zip64=True) as member:
                np.lib.format.write_array(member, obj, allow_pickle=True)
