"""Deterministic train/valid/test splits per category.

The official sketch-rnn files hold 70,000 / 2,500 / 2,500 drawings per
category; with fewer than 75,000 drawings the same proportions are used.

A drawing's split depends only on (seed, category, the drawing's identity),
never on the order of the file or on the machine: each drawing is ranked by a
keyed hash of its identity, and the ranks are cut into train, valid and test.
The identity is the `key_id` when the record has one, else a hash of its
strokes, and duplicates are dropped first, so no drawing lands in two splits.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .errors import QuickDrawError

SPLITS = ("train", "valid", "test")
OFFICIAL_SIZES = {"train": 70_000, "valid": 2_500, "test": 2_500}
OFFICIAL_TOTAL = sum(OFFICIAL_SIZES.values())


def split_sizes(n: int) -> dict[str, int]:
    """Split sizes for `n` drawings: official when n >= 75,000, else proportional.

    Valid and test each get round(n / 30) drawings (2,500 / 75,000), at least one
    each once there are three drawings; train gets the rest. Beyond 75,000 the
    extra drawings are left out, as in the official files.
    """
    if n < 0:
        raise QuickDrawError(f"number of drawings must be >= 0, got {n}")
    if n >= OFFICIAL_TOTAL:
        return dict(OFFICIAL_SIZES)
    held_out = max(round(n * OFFICIAL_SIZES["test"] / OFFICIAL_TOTAL), 1 if n >= 3 else 0)
    return {"train": n - 2 * held_out, "valid": held_out, "test": held_out}


def drawing_identity(record: dict[str, Any]) -> str:
    """`key_id` if the record has one, else a digest of its strokes."""
    key = record.get("key_id")
    if key not in (None, ""):
        return f"key:{key}"
    blob = json.dumps(record["drawing"], separators=(",", ":")).encode()
    return "sha1:" + hashlib.sha1(blob).hexdigest()


def _rank(seed: int, category: str, identity: str) -> bytes:
    return hashlib.blake2b(f"{seed}\0{category}\0{identity}".encode(), digest_size=16).digest()


@dataclass
class Split:
    """Record indices (into the input sequence) per split, in file order."""

    indices: dict[str, list[int]]
    duplicates: int = 0  # records dropped because their identity was seen before
    unused: int = 0  # unique records beyond the official 75,000
    sizes: dict[str, int] = field(init=False)

    def __post_init__(self) -> None:
        self.sizes = {s: len(self.indices[s]) for s in SPLITS}

    def assignment(self) -> dict[int, str]:
        """Record index -> split name."""
        return {i: s for s in SPLITS for i in self.indices[s]}


def split_records(
    records: Sequence[dict[str, Any]] | Iterable[dict[str, Any]], category: str, seed: int = 0
) -> Split:
    """Assign each record of one category to train, valid or test (see module doc)."""
    seen: set[str] = set()
    ranked: list[tuple[bytes, int]] = []
    duplicates = 0
    for i, record in enumerate(records):
        identity = drawing_identity(record)
        if identity in seen:
            duplicates += 1
            continue
        seen.add(identity)
        ranked.append((_rank(seed, category, identity), i))
    ranked.sort()
    sizes = split_sizes(len(ranked))
    indices, start = {}, 0
    for name in SPLITS:
        indices[name] = sorted(i for _, i in ranked[start : start + sizes[name]])
        start += sizes[name]
    return Split(indices=indices, duplicates=duplicates, unused=len(ranked) - start)
