"""Splits: official sizes, proportional otherwise, deterministic, order-free, disjoint."""

from __future__ import annotations

import json
import random

import pytest

from quickdraw_tools.errors import QuickDrawError
from quickdraw_tools.splits import SPLITS, drawing_identity, split_records, split_sizes


def _records(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


def test_split_sizes():
    assert split_sizes(75_000) == {"train": 70_000, "valid": 2_500, "test": 2_500}
    assert split_sizes(300_000) == {"train": 70_000, "valid": 2_500, "test": 2_500}
    assert split_sizes(1_580) == {"train": 1_474, "valid": 53, "test": 53}
    assert split_sizes(25) == {"train": 23, "valid": 1, "test": 1}
    assert split_sizes(2) == {"train": 2, "valid": 0, "test": 0}
    assert split_sizes(0) == {"train": 0, "valid": 0, "test": 0}
    with pytest.raises(QuickDrawError, match="-1"):
        split_sizes(-1)


def test_real_split_is_deterministic_disjoint_and_order_free(shared):
    records = _records(shared / "training" / "cake.ndjson")  # no key_id: identity is a hash
    a = split_records(records, "cake", seed=0)
    assert a.sizes == split_sizes(len(records) - a.duplicates)
    ids = {s: {drawing_identity(records[i]) for i in a.indices[s]} for s in SPLITS}
    for x, y in [("train", "valid"), ("train", "test"), ("valid", "test")]:
        assert not ids[x] & ids[y]
    assert split_records(records, "cake", seed=0).indices == a.indices

    shuffled = list(enumerate(records))
    random.Random(1).shuffle(shuffled)
    b = split_records([r for _, r in shuffled], "cake", seed=0)
    same = {s: sorted(shuffled[i][0] for i in b.indices[s]) for s in SPLITS}
    assert same == a.indices  # each drawing lands in the same split whatever the order

    c = split_records(records, "cake", seed=1)
    assert c.indices != a.indices and c.sizes == a.sizes


def test_duplicates_never_cross_splits(shared):
    records = _records(shared / "mirror" / "full" / "simplified" / "monkey.ndjson")
    assert all("key_id" in r for r in records)
    doubled = records + records[:100]
    s = split_records(doubled, "monkey")
    assert s.duplicates == 100
    assert sum(s.sizes.values()) == len(records)
    assert all(i < len(records) for split in SPLITS for i in s.indices[split])
