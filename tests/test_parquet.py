"""Parquet tables: read back by pandas and by Hugging Face `datasets`, drawings identical."""

from __future__ import annotations

import pytest
from conftest import MIRROR

from quickdraw_tools import formats
from quickdraw_tools.cli import main
from quickdraw_tools.errors import QuickDrawError
from quickdraw_tools.parquet import category_names, write_parquet
from quickdraw_tools.splits import SPLITS
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


def _table(converted, category):
    """A category's three tables (train, valid, test) as one pandas frame."""
    import pandas as pd

    parts = [pd.read_parquet(converted / "parquet" / s / f"{category}.parquet") for s in SPLITS]
    return pd.concat(parts, ignore_index=True)


def test_pandas_reads_the_official_schema_and_the_split(converted):
    table = _table(converted, "cat")
    assert list(table.columns) == [
        "key_id", "word", "countrycode", "timestamp", "recognized", "drawing", "split",
    ]  # fmt: skip
    assert str(table["timestamp"].dtype) == "datetime64[us, UTC]"
    names = category_names(converted / "parquet" / "train" / "cat.parquet")
    assert names == ["cat", "cake"]  # the run's categories, in its order
    source = {r["key_id"]: r for r in formats.iter_ndjson(MIRROR / "full/simplified/cat.ndjson")}
    for row in table.itertuples():
        record = source[row.key_id]
        assert [[list(s[0]), list(s[1])] for s in row.drawing] == record["drawing"]
        assert names[row.word] == "cat" and row.countrycode == record["countrycode"]
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
    cake = _table(converted, "cake")  # a file without ids or times
    assert cake["key_id"].isna().all() and cake["timestamp"].isna().all()
    assert len(cake) == 90 and set(cake["split"]) == {"train", "valid", "test"}
    assert set(cake["word"]) == {1}


def test_hugging_face_reads_the_splits_and_word_as_a_class_label(converted, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")  # local files only, no hub
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    import datasets

    ds = datasets.load_dataset(
        "parquet", data_dir=str(converted / "parquet"), cache_dir=str(tmp_path / "cache")
    )
    assert sorted(ds) == ["test", "train", "validation"]  # splits, not a column to filter
    cat, cake = (
        formats.load_sketchrnn_npz(converted / "sketchrnn" / f"{c}.npz") for c in ("cat", "cake")
    )
    source = {r["key_id"]: r for r in formats.iter_ndjson(MIRROR / "full/simplified/cat.ndjson")}
    word = ds["train"].features["word"]
    assert word == datasets.ClassLabel(names=["cat", "cake"])
    for ours, theirs in (("train", "train"), ("valid", "validation"), ("test", "test")):
        words = list(ds[theirs]["word"])
        assert (words.count(0), words.count(1)) == (len(cat[ours]), len(cake[ours]))
        assert set(ds[theirs]["split"]) == {ours}
        for row in ds[theirs].filter(lambda row: row["word"] == 0):
            assert row["drawing"] == source[row["key_id"]]["drawing"]
            assert word.int2str(row["word"]) == "cat"
    # the features sit in the schema's metadata exactly as `datasets` writes its own
    import pyarrow.parquet as pq

    features = datasets.Features(
        {
            "key_id": datasets.Value("string"),
            "word": datasets.ClassLabel(names=["cat", "cake"]),
            "countrycode": datasets.Value("string"),
            "timestamp": datasets.Value("timestamp[us, tz=UTC]"),
            "recognized": datasets.Value("bool"),
            "drawing": datasets.List(datasets.List(datasets.List(datasets.Value("int16")))),
            "split": datasets.Value("string"),
        }
    )
    theirs_file = tmp_path / "theirs.parquet"
    datasets.Dataset.from_dict({k: [] for k in features}, features=features).to_parquet(
        str(theirs_file)
    )
    ours = pq.read_schema(converted / "parquet" / "test" / "cake.parquet")
    assert ours.metadata[b"huggingface"] == pq.read_schema(theirs_file).metadata[b"huggingface"]
    assert ours.remove_metadata() == pq.read_schema(theirs_file).remove_metadata()


def test_bad_records_are_refused_and_nothing_is_written(tmp_path):
    good = {"word": "cat", "drawing": [[[1, 2], [3, 4]]]}
    with pytest.raises(QuickDrawError, match="split 'dev'"):
        write_parquet(tmp_path / "a.parquet", [good], ["dev"])
    # the table holds simplified drawings (integers 0-255): a raw one is named, not cast
    with pytest.raises(QuickDrawError, match=r"record 0: a raw drawing .* in simplified data"):
        write_parquet(tmp_path / "b.parquet", [{"drawing": [[[1, 99999], [0, 1]]]}], ["train"])
    assert not list(tmp_path.iterdir())
