"""Quick, Draw! records as Parquet tables, for pandas, DuckDB, polars and Hugging Face `datasets`.

One file per category, one row per drawing, the official schema plus the split:

==============  ============================  =========================================
column          type                          what
==============  ============================  =========================================
key_id          string                        the drawing's id (null if the file had none)
word            string                        the category
countrycode     string                        two letters (null if unknown)
timestamp       timestamp[us, UTC]            when it was drawn (null if unknown)
recognized      bool                          whether the game recognised it (null if unknown)
drawing         list<list<list<int16>>>       simplified strokes ``[[xs, ys], ...]``, 0-255
split           string                        train, valid or test (`quickdraw_tools.splits`)
==============  ============================  =========================================

Written with pyarrow (the reference Parquet implementation for Python): a table a
reader opens with ``pandas.read_parquet``, ``datasets.load_dataset("parquet",
data_files=...)``, ``duckdb.read_parquet`` or ``polars.read_parquet``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from .atomic import atomic_write
from .errors import QuickDrawError
from .formats import parse_timestamp
from .splits import SPLITS


def schema():
    import pyarrow as pa

    return pa.schema(
        [
            ("key_id", pa.string()),
            ("word", pa.string()),
            ("countrycode", pa.string()),
            ("timestamp", pa.timestamp("us", tz="UTC")),
            ("recognized", pa.bool_()),
            ("drawing", pa.list_(pa.list_(pa.list_(pa.int16())))),
            ("split", pa.string()),
        ]
    )


def write_parquet(
    path: str | os.PathLike,
    records: Iterable[Mapping],
    splits: Sequence[str],
    word: str | None = None,
) -> int:
    """Write simplified `records` (dicts with ``drawing`` and the optional fields) and the
    split of each (``splits[i]`` for record i) as one Parquet file, atomically; returns the
    number of rows. `word` fills the category where a record has none."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns: dict[str, list] = {name: [] for name in schema().names}
    n = 0
    for n, (record, split) in enumerate(zip(records, splits, strict=True), start=1):
        if split not in SPLITS:
            raise QuickDrawError(f"record {n - 1}: split {split!r} is not one of {SPLITS}")
        columns["key_id"].append(_text(record.get("key_id")))
        columns["word"].append(_text(record.get("word")) or word)
        columns["countrycode"].append(_text(record.get("countrycode")))
        columns["timestamp"].append(parse_timestamp(record.get("timestamp")))
        recognized = record.get("recognized")
        columns["recognized"].append(None if recognized is None else bool(recognized))
        columns["drawing"].append([[list(s[0]), list(s[1])] for s in record["drawing"]])
        columns["split"].append(split)
    try:
        table = pa.Table.from_pydict(columns, schema=schema())
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as e:
        raise QuickDrawError(f"{path}: the records do not fit the Parquet schema ({e})") from None
    with atomic_write(Path(path), "wb") as f:
        pq.write_table(table, f, compression="zstd")
    return n


def _text(value) -> str | None:
    return None if value in (None, "") else str(value)
