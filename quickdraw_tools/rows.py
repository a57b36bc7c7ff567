"""Which drawing each row of a converted file is: the rows sidecar, ``<name>.rows.csv``.

`quickdraw convert` writes one beside every file whose rows are drawings
(``bitmap/cat.npy`` -> ``bitmap/cat.rows.csv``, ``sketchrnn/cat.npz`` ->
``sketchrnn/cat.rows.csv``, ``png/cat.rows.csv`` for the PNG folders,
``mnist/train-rows.csv`` and ``mnist/t10k-rows.csv``): line *i* after the header
describes row *i* of the file, in its order, so drawings can be picked by country
or recognition without the ndjson. The Parquet tables carry the same fields in
their own columns.

==============  ==============================================================
column          what
==============  ==============================================================
``split``       train, valid or test
``key_id``      the drawing's id (empty when the source record had none)
``countrycode`` two letters (empty when unknown)
``recognized``  ``true`` or ``false`` (empty when unknown)
``timestamp``   ISO 8601 UTC, microseconds (``2017-03-08T21:12:07.266040Z``; empty when
                unknown)
``line``        where the drawing was in its source file: the ndjson line (from 1), or
                the drawing's place in a ``.bin`` (from 1)
``word``        MNIST files only (they mix categories): the category
``file``        PNG folders only: the image, relative to ``png/``
                (``train/cat/4503939515072512.png``)
==============  ==============================================================

The source file is the one `manifest.json` records for the run. A value that
begins like a spreadsheet formula (``= + - @``, a tab or a return) or with an
apostrophe is written with one more apostrophe in front, so a spreadsheet shows
it as text; `read_rows` removes it.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import numpy as np

from . import manifest
from .errors import QuickDrawError

SUFFIX = ".rows.csv"
COLUMNS = ("split", "key_id", "countrycode", "recognized", "timestamp", "line")
_DEFUSE = ("=", "+", "-", "@", "\t", "\r", "'")


def rows_path(path: str | os.PathLike) -> Path:
    """The sidecar of a file: ``bitmap/cat.npy`` -> ``bitmap/cat.rows.csv``."""
    path = Path(path)
    return path.with_name(path.name.removesuffix(path.suffix) + SUFFIX)


def _text(values: np.ndarray) -> list[str]:
    """Bytes from `packed` (b"" unknown) -> CSV cells."""
    out = np.char.decode(np.asarray(values, dtype="S"), "utf-8").tolist()
    return ["'" + v if v.startswith(_DEFUSE) else v for v in out]


class RowsWriter:
    """Appends rows to a sidecar, a chunk at a time: the metadata arrays of drawings
    (`packed.Packed.meta`). Write it into a staging folder: it is not atomic itself."""

    def __init__(self, path: str | os.PathLike, extra: Sequence[str] = ()) -> None:
        self.path = Path(path)
        self.extra = tuple(extra)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file: IO[str] | None = open(self.path, "w", encoding="utf-8", newline="")
        self._csv = csv.writer(self._file, lineterminator="\n")
        self._csv.writerow(COLUMNS + self.extra)
        self.rows = 0

    def append(
        self,
        meta: Mapping[str, np.ndarray],
        splits: Sequence[str] | np.ndarray,
        **extra: Sequence[str],
    ) -> None:
        """One row per drawing: `meta` as `packed.Packed.meta` gives it, `splits` (and each
        extra column) one value per drawing."""
        n = len(splits)
        stamps = np.asarray(meta["timestamp"])
        iso = np.datetime_as_string(stamps.astype("datetime64[us]"), unit="us")
        timestamps = np.where(stamps >= 0, np.char.add(iso.astype(str), "Z"), "").tolist()
        flags = np.asarray(meta["recognized"])
        recognized = np.where(flags < 0, "", np.where(flags > 0, "true", "false")).tolist()
        columns = [
            list(splits),
            _text(meta["key_id"]),
            _text(meta["countrycode"]),
            recognized,
            timestamps,
            [str(v) if v > 0 else "" for v in np.asarray(meta["line"]).tolist()],
        ]
        for name in self.extra:
            values = [str(v) for v in extra[name]]
            columns.append(["'" + v if v.startswith(_DEFUSE) else v for v in values])
        if any(len(c) != n for c in columns):
            raise QuickDrawError(f"{self.path}: a column does not have {n} values")
        assert self._file is not None, "appended to after close"
        self._csv.writerows(zip(*columns, strict=True))
        self.rows += n

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def read_rows(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The rows of a sidecar (or of the file it is beside), as the metadata of
    `QuickDraw.metadata` gives it: ``split``, then ``key_id``, ``countrycode``,
    ``recognized`` (bool), ``timestamp`` (aware UTC datetime) and ``line`` (int) where known,
    and the extra columns."""
    path = Path(path)
    if path.suffix != ".csv":  # the file it is beside
        path = rows_path(path)
    if not path.is_file():
        raise QuickDrawError(f"no rows sidecar {path}; `quickdraw convert` writes one per file")
    manifest.verify(path)
    out = []
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None or tuple(reader.fieldnames[: len(COLUMNS)]) != COLUMNS:
            raise QuickDrawError(f"{path}: not a rows sidecar (columns {reader.fieldnames})")
        for number, row in enumerate(reader, start=2):
            try:
                out.append(_parse(row))
            except (ValueError, TypeError) as e:
                raise QuickDrawError(f"{path}:{number}: not a row of a sidecar ({e})") from None
    return out


def _parse(row: dict[str | None, Any]) -> dict[str, Any]:
    cells: dict[str, str] = {}
    for key, value in row.items():
        if key is None or not isinstance(value, str):
            raise ValueError("a row has more or fewer cells than the header")
        cells[key] = value[1:] if value.startswith("'") else value
    out: dict[str, Any] = {"split": cells.pop("split")}
    for name, value in cells.items():
        if value == "":
            continue
        if name == "recognized":
            if value not in ("true", "false"):
                raise ValueError(f"recognized is {value!r}, not true or false")
            out[name] = value == "true"
        elif name == "timestamp":
            out[name] = datetime.fromisoformat(value)
        elif name == "line":
            out[name] = int(value)
        else:
            out[name] = value
    return out
