"""Parquet tables: read back by pandas and by Hugging Face `datasets`, drawings identical."""

from __future__ import annotations

import pytest
from conftest import MIRROR

from quickdraw_tools import formats
from quickdraw_tools.cli import main
from quickdraw_tools.errors import QuickDrawError
from quickdraw_tools.parquet import write_parquet
from quickdraw_tools.strokes import drawing_to_stroke3


@pytest.fixture(scope="module")
def converted(shared, tmp_path_factory):
    out = tmp_path_factory.mktemp("data")
    cake = shared / "training" / "cake.ndjson"
    args = ["convert", "cat", str(cake), "--base-url", str(MIRROR), "--out", str(out)]
    assert (
        main([*args, "--formats", "parquet,sketchrnn", "--max-per-category", "90", "--quiet"]) == 0
    )
    return out


def test_pandas_reads_the_official_schema_and_the_split(converted):
    import pandas as pd

    table = pd.read_parquet(converted / "parquet" / "cat.parquet")
    assert list(table.columns) == [
        "key_id", "word", "countrycode", "timestamp", "recognized", "drawing", "split",
    ]  # fmt: skip
    assert str(table["timestamp"].dtype) == "datetime64[us, UTC]"
    source = {r["key_id"]: r for r in formats.iter_ndjson(MIRROR / "full/simplified/cat.ndjson")}
    for row in table.itertuples():
        record = source[row.key_id]
        assert [[list(s[0]), list(s[1])] for s in row.drawing] == record["drawing"]
        assert row.word == "cat" and row.countrycode == record["countrycode"]
        assert row.recognized == record["recognized"]
        assert row.timestamp.to_pydatetime() == formats.parse_timestamp(record["timestamp"])
    # the split column is the split of every other format
    npz = formats.load_sketchrnn_npz(converted / "sketchrnn" / "cat.npz")
    for split, sketches in npz.items():
        rows = table[table["split"] == split]
        drawings = [[[list(s[0]), list(s[1])] for s in d] for d in rows["drawing"]]
        assert [drawing_to_stroke3(d).tobytes() for d in drawings] == [
            s.tobytes() for s in sketches
        ]
    cake = pd.read_parquet(converted / "parquet" / "cake.parquet")  # a file without ids or times
    assert cake["key_id"].isna().all() and cake["timestamp"].isna().all()
    assert len(cake) == 90 and set(cake["split"]) == {"train", "valid", "test"}


def test_hugging_face_datasets_reads_it(converted, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")  # local files only, no hub
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    import datasets

    ds = datasets.load_dataset(
        "parquet",
        data_files=str(converted / "parquet" / "cat.parquet"),
        split="train",
        cache_dir=str(tmp_path / "cache"),
    )
    source = {r["key_id"]: r for r in formats.iter_ndjson(MIRROR / "full/simplified/cat.ndjson")}
    assert len(ds) == 25
    for row in ds:
        assert row["drawing"] == source[row["key_id"]]["drawing"]


def test_bad_records_are_refused_and_nothing_is_written(tmp_path):
    good = {"word": "cat", "drawing": [[[1, 2], [3, 4]]]}
    with pytest.raises(QuickDrawError, match="split 'dev'"):
        write_parquet(tmp_path / "a.parquet", [good], ["dev"])
    # the table holds simplified drawings (integers 0-255): a raw one is named, not cast
    with pytest.raises(QuickDrawError, match=r"record 0: a raw drawing .* in simplified data"):
        write_parquet(tmp_path / "b.parquet", [{"drawing": [[[1, 99999], [0, 1]]]}], ["train"])
    assert not list(tmp_path.iterdir())
