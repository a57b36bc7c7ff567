"""Quick, Draw! records as Parquet tables, for pandas, DuckDB, polars and Hugging Face `datasets`.

One row per drawing, the official schema plus the split:

==============  ============================  =========================================
column          type                          what
==============  ============================  =========================================
key_id          string                        the drawing's id (null if the file had none)
word            int64                         the category: a label, position in the names
                                              of the file's ClassLabel (below)
countrycode     string                        two letters (null if unknown)
timestamp       timestamp[us, UTC]            when it was drawn (null if unknown)
recognized      bool                          whether the game recognised it (null if unknown)
drawing         list<list<list<int16>>>       simplified strokes ``[[xs, ys], ...]``, 0-255
split           string                        train, valid or test (`quickdraw_tools.splits`)
==============  ============================  =========================================

`word` is stored as Hugging Face `datasets` stores a ``ClassLabel`` (as the
``google/quickdraw`` dataset on the Hub has it): an int64 label, with the names in
the schema's metadata under ``huggingface``, exactly where and how ``datasets``
writes its features (`hf_features`). So ``datasets`` reads `word` as a ClassLabel
with the category names, and `category_names` gives them to pandas or DuckDB users.
`quickdraw convert` writes ``parquet/<split>/<category>.parquet``, one folder per
split, which ``datasets.load_dataset("parquet", data_dir="DIR/parquet")`` reads as
the splits train, validation and test.

Written with pyarrow (the reference Parquet implementation for Python): a table a
reader opens with ``pandas.read_parquet``, ``datasets.load_dataset("parquet", ...)``,
``duckdb.read_parquet`` or ``polars.read_parquet``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .atomic import atomic_write
from .errors import QuickDrawError
from .splits import SPLITS

if TYPE_CHECKING:
    from .packed import Packed


def hf_features(names: Sequence[str]) -> dict[str, Any]:
    """The table's features as Hugging Face `datasets` writes them (``Features.to_dict()``):
    `word` a ``ClassLabel`` of `names`, the other columns plain values and lists."""

    def value(dtype: str) -> dict[str, str]:
        return {"dtype": dtype, "_type": "Value"}

    def listed(feature: dict) -> dict:
        return {"feature": feature, "_type": "List"}

    return {
        "key_id": value("string"),
        "word": {"names": list(names), "_type": "ClassLabel"},
        "countrycode": value("string"),
        "timestamp": value("timestamp[us, tz=UTC]"),
        "recognized": value("bool"),
        "drawing": listed(listed(listed(value("int16")))),
        "split": value("string"),
    }


def schema(names: Sequence[str] = ()):
    """The Arrow schema of a table whose `word` labels are positions in `names`."""
    import pyarrow as pa

    fields = [
        ("key_id", pa.string()),
        ("word", pa.int64()),
        ("countrycode", pa.string()),
        ("timestamp", pa.timestamp("us", tz="UTC")),
        ("recognized", pa.bool_()),
        ("drawing", pa.list_(pa.list_(pa.list_(pa.int16())))),
        ("split", pa.string()),
    ]
    metadata = {"huggingface": json.dumps({"info": {"features": hf_features(names)}})}
    return pa.schema(fields, metadata=metadata)


def category_names(path: str | os.PathLike) -> list[str]:
    """The category names a table's `word` labels index (from its schema's metadata)."""
    import pyarrow.parquet as pq

    try:
        metadata = pq.read_schema(path).metadata or {}
        features = json.loads(metadata[b"huggingface"])["info"]["features"]
        names = features["word"]["names"]
    except (KeyError, ValueError, TypeError, OSError) as e:
        raise QuickDrawError(f"{path}: not a table written by quickdraw-tools ({e})") from None
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise QuickDrawError(f"{path}: its category names are not a list of strings")
    return names


ROW_GROUP = 65_536  # rows per Parquet row group


def write_parquet(
    path: str | os.PathLike,
    records: Sequence[Mapping],
    splits: Sequence[str],
    word: str | None = None,
    names: Sequence[str] | None = None,
) -> int:
    """Write simplified `records` (dicts with ``drawing`` and the optional fields) and the
    split of each (``splits[i]`` for record i) as one Parquet file, atomically; returns the
    number of rows. `word` fills the category where a record has none; `names` are the
    ClassLabel's names (default: the words in the order they first appear)."""
    from .packed import pack_records

    records = list(records)
    if len(records) != len(splits):
        raise QuickDrawError(f"{len(records)} records but {len(splits)} split names")
    names = [f"record {i}" for i in range(len(records))]
    packed = pack_records(records, names, kind="simplified", meta=True)
    words = [_text(r.get("word")) or word for r in records]
    if names is None:
        names = list(dict.fromkeys(w for w in words if w is not None))
    write_packed(path, [(packed, splits, words)], word=word, names=names)
    return len(records)


def write_packed(
    path: str | os.PathLike,
    parts: Iterable[tuple[Any, ...]],
    word: str | None = None,
    names: Sequence[str] | None = None,
) -> int:
    """Write packed drawings (`packed.Packed`, read with ``meta=True``), part by part, as one
    Parquet file, atomically; returns the number of rows.

    parts: ``(packed, splits)`` or ``(packed, splits, words)``: the split of each drawing,
    and its category where it is not `word`. names: the categories the `word` labels index
    (default: `word` alone). Memory holds one row group at a time.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    if names is None:
        names = [] if word is None else [word]
    names = [str(n) for n in names]
    if len(set(names)) != len(names):
        raise QuickDrawError(f"a category name is given twice: {names}")
    labels = {n: i for i, n in enumerate(names)}
    table_schema = schema(names)
    rows = 0
    with (
        atomic_write(Path(path), "wb") as f,
        pq.ParquetWriter(f, table_schema, compression="zstd") as out,
    ):
        waiting: list = []
        for part in parts:
            packed, splits = part[0], part[1]
            words = part[2] if len(part) > 2 else None  # type: ignore[misc]
            waiting.append(_table(path, packed, splits, words, word, labels, table_schema))
            rows += len(packed)
            if sum(len(t) for t in waiting) >= ROW_GROUP:
                out.write_table(pa.concat_tables(waiting))
                waiting = []
        if waiting or rows == 0:
            out.write_table(pa.concat_tables(waiting) if waiting else table_schema.empty_table())
    return rows


def _table(path, packed: Packed, splits: Sequence[str], words, word, labels, table_schema):
    """One part as an Arrow table of `schema()`: the nested drawing column built from the
    packed points directly, no Python list per drawing."""
    import numpy as np
    import pyarrow as pa

    n = len(packed)
    names = np.asarray(splits, dtype=str)
    if len(names) != n:
        raise QuickDrawError(f"{path}: {n} drawings but {len(names)} split names")
    bad = np.flatnonzero(~np.isin(names, SPLITS))
    if len(bad):
        name = str(names[bad[0]])
        raise QuickDrawError(f"record {bad[0]}: split {name!r} is not one of {SPLITS}")
    if not packed.has_meta:
        raise QuickDrawError("write_packed needs drawings packed with meta=True")
    assert packed.key_id is not None and packed.countrycode is not None
    assert packed.timestamp is not None and packed.recognized is not None
    flat = packed.flat()
    lengths = flat.lengths
    starts = np.cumsum(lengths) - lengths
    stroke_of_point = np.repeat(np.arange(len(lengths)), lengths)
    xs_at = starts[stroke_of_point] + np.arange(len(flat.x))  # stroke s: its xs, then its ys
    values = np.empty(2 * len(flat.x), dtype=np.int16)
    values[xs_at] = flat.x
    values[xs_at + lengths[stroke_of_point]] = flat.y
    axes = pa.ListArray.from_arrays(
        _offsets(np.repeat(lengths, 2)), pa.array(values, type=pa.int16())
    )
    strokes = pa.ListArray.from_arrays(_offsets(np.full(len(lengths), 2)), axes)
    drawings = pa.ListArray.from_arrays(_offsets(flat.counts), strokes)
    word_column = [word] if words is None else list(words)
    unknown = [w for w in dict.fromkeys(word_column) if w not in labels]
    if unknown:
        raise QuickDrawError(
            f"{path}: category {unknown[0]!r} is not one of the table's names {list(labels)}"
        )
    if words is None:
        label_column = np.full(n, labels[word], dtype=np.int64)
    else:
        label_column = np.array([labels[w] for w in word_column], dtype=np.int64)
    columns = {
        "key_id": _strings(packed.key_id),
        "word": pa.array(label_column, type=pa.int64()),
        "countrycode": _strings(packed.countrycode),
        "timestamp": pa.array(
            np.asarray(packed.timestamp),
            type=pa.timestamp("us", tz="UTC"),
            mask=np.asarray(packed.timestamp) < 0,
        ),
        "recognized": pa.array(
            np.asarray(packed.recognized) == 1, mask=np.asarray(packed.recognized) < 0
        ),
        "drawing": drawings,
        "split": pa.array(names, type=pa.string()),
    }
    return pa.Table.from_pydict(columns, schema=table_schema)


def _offsets(counts):
    import numpy as np
    import pyarrow as pa

    return pa.array(np.concatenate([[0], np.cumsum(counts)]).astype(np.int32), type=pa.int32())


def _strings(values):
    """bytes (b"" unknown) -> an Arrow string column with nulls."""
    import numpy as np
    import pyarrow as pa

    values = np.asarray(values)
    return pa.array(np.char.decode(values, "utf-8"), type=pa.string(), mask=values == b"")


def _text(value) -> str | None:
    return None if value in (None, "") else str(value)
