"""Deterministic train/valid/test splits per category.

The official sketch-rnn files hold 70,000 / 2,500 / 2,500 drawings per
category; with fewer than 75,000 drawings the same proportions are used.

A drawing's split depends only on (seed, category, the drawing's identity),
never on the order of the file or on the machine: each drawing is ranked by a
keyed hash of its identity, and the ranks are cut into train, valid and test.
The identity is the `key_id` when the record has one, else a hash of its
strokes (a bitmap row: a hash of its bytes), and duplicates are dropped first,
so no drawing lands in two splits.

A file whose rows are already in split order (``bitmap/<category>.npy`` from
`quickdraw convert`) carries its split in a sidecar,
``<category>.splits.json``; `write_sidecar` and `read_sidecar` are the only
code that knows its format.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import manifest
from .atomic import atomic_write
from .errors import QuickDrawError

SPLITS = ("train", "valid", "test")
OFFICIAL_SIZES = {"train": 70_000, "valid": 2_500, "test": 2_500}
OFFICIAL_TOTAL = sum(OFFICIAL_SIZES.values())


SIZE_MODES = ("official", "all")


def split_sizes(n: int, mode: str | Sequence[int] = "official") -> dict[str, int]:
    """Split sizes for `n` drawings.

    ``"official"`` (default): 70,000 / 2,500 / 2,500 when n >= 75,000 (the extra drawings
    are left out, as in the official sketch-rnn files), else the same proportions: valid and
    test each get round(n / 30) drawings, at least one each once there are three drawings,
    train the rest. ``"all"``: every drawing, valid and test round(n / 30) each (the
    official numpy_bitmap files hold every drawing). Three numbers ``(train, valid, test)``:
    those sizes (their sum must not exceed n).
    """
    if n < 0:
        raise QuickDrawError(f"number of drawings must be >= 0, got {n}")
    if not isinstance(mode, str):
        sizes = [int(v) for v in mode]
        if len(sizes) != 3 or min(sizes) < 0 or sum(sizes) == 0:
            raise QuickDrawError(
                f"split sizes must be three numbers >= 0, not all 0 (an empty set is not a "
                f"dataset), got {list(mode)}"
            )
        if sum(sizes) > n:
            raise QuickDrawError(f"split sizes {sizes} ask for more than the {n} drawings")
        return dict(zip(SPLITS, sizes, strict=True))
    if mode not in SIZE_MODES:
        raise QuickDrawError(f"unknown split sizes {mode!r}; valid: 'official', 'all', or T,V,T")
    if mode == "official" and n >= OFFICIAL_TOTAL:
        return dict(OFFICIAL_SIZES)
    held_out = max(round(n * OFFICIAL_SIZES["test"] / OFFICIAL_TOTAL), 1 if n >= 3 else 0)
    return {"train": n - 2 * held_out, "valid": held_out, "test": held_out}


def parse_split_sizes(text: str) -> str | tuple[int, int, int]:
    """``--split-sizes`` as given: ``official``, ``all`` or ``TRAIN,VALID,TEST``."""
    if text in SIZE_MODES:
        return text
    try:
        train, valid, test = (int(v) for v in text.split(","))
    except ValueError:
        train = valid = test = -1
    if min(train, valid, test) < 0 or train + valid + test == 0:
        raise QuickDrawError(
            f"--split-sizes must be 'official', 'all' or TRAIN,VALID,TEST (three whole numbers "
            f">= 0, not all 0: an empty set is not a dataset), got {text!r}"
        )
    return train, valid, test


def drawing_identity(record: dict[str, Any]) -> str:
    """`key_id` if the record has one, else a digest of its strokes."""
    key = record.get("key_id")
    if key not in (None, ""):
        return f"key:{key}"
    blob = json.dumps(record["drawing"], separators=(",", ":")).encode()
    return "sha1:" + hashlib.sha1(blob).hexdigest()


def bitmap_identity(row: np.ndarray) -> str:
    """A digest of a bitmap row's bytes: the identity of a drawing known only by its pixels."""
    return "sha1:" + hashlib.sha1(np.ascontiguousarray(row).tobytes()).hexdigest()


@dataclass
class Split:
    """Record indices (into the input sequence) per split, in file order."""

    indices: dict[str, list[int]]
    duplicates: int = 0  # records dropped because their identity was seen before
    unused: int = 0  # unique records beyond the official 75,000
    sizes: dict[str, int] = field(init=False)

    def __post_init__(self) -> None:
        self.sizes = {s: len(self.indices[s]) for s in SPLITS}


def split_records(
    records: Sequence[dict[str, Any]] | Iterable[dict[str, Any]],
    category: str,
    seed: int = 0,
    sizes: str | Sequence[int] = "official",
) -> Split:
    """Assign each record of one category to train, valid or test (see module doc)."""
    return split_identities((drawing_identity(r) for r in records), category, seed, sizes)


def split_bitmaps(rows: np.ndarray, category: str, seed: int = 0) -> Split:
    """`split_records` for bitmap rows ``(N, pixels)`` that carry no split (no sidecar)."""
    return split_identities((bitmap_identity(r) for r in rows), category, seed)


def split_identities(
    identities: Iterable[str] | np.ndarray,
    category: str,
    seed: int = 0,
    sizes: str | Sequence[int] = "official",
) -> Split:
    """Assign items, known by their identities (in file order), to train, valid or test
    (`sizes` as `split_sizes` takes them). `identities`: strings, or a numpy bytes array of
    their UTF-8 (what `packed` stores)."""
    if isinstance(identities, np.ndarray) and identities.dtype.kind == "S":
        encoded: Sequence[bytes] = identities.tolist()
    else:
        encoded = [str(identity).encode() for identity in identities]
    seen: set[bytes] = set()
    kept: list[int] = []
    for i, identity in enumerate(encoded):
        if identity not in seen:
            seen.add(identity)
            kept.append(i)
    prefix = f"{seed}\0{category}\0".encode()
    digests = b"".join(hashlib.blake2b(prefix + encoded[i], digest_size=16).digest() for i in kept)
    ranks = np.frombuffer(digests, dtype=">u8").reshape(-1, 2)
    # ascending rank, as bytes compare (the first 8 bytes, then the next 8); stable, so
    # equal ranks (never seen: 128-bit digests) would keep file order
    ranked = np.asarray(kept, dtype=np.int64)[np.lexsort((ranks[:, 1], ranks[:, 0]))]
    counts = split_sizes(len(ranked), sizes)
    indices, start = {}, 0
    for name in SPLITS:
        indices[name] = np.sort(ranked[start : start + counts[name]]).tolist()
        start += counts[name]
    duplicates = len(encoded) - len(kept)
    return Split(indices=indices, duplicates=duplicates, unused=len(ranked) - start)


def limit(split: Split, n: int) -> dict[str, list[int]]:
    """At most `n` items of `split` (0: all): the first ones of each split, in the
    proportions `split_sizes(n)` gives, so a smaller run is a prefix of a larger one."""
    if n < 0:
        raise QuickDrawError(f"max_per_category must be >= 0 (0: all), got {n}")
    if n == 0 or n >= sum(split.sizes.values()):
        return split.indices
    want = split_sizes(n)
    return {s: split.indices[s][: want[s]] for s in SPLITS}


# --- the sidecar of a file whose rows are in split order ---------------------------------

SIDECAR_SUFFIX = ".splits.json"


def sidecar_path(path: str | os.PathLike) -> Path:
    """``bitmap/cat.npy`` -> ``bitmap/cat.splits.json``."""
    path = Path(path)
    return path.with_name(path.name.removesuffix(path.suffix) + SIDECAR_SUFFIX)


def write_sidecar(path: str | os.PathLike, sizes: Mapping[str, int], seed: int) -> Path:
    """Record, beside the file at `path`, that its rows are train, valid, test in that order."""
    sidecar = sidecar_path(path)
    with atomic_write(sidecar, "w") as f:
        json.dump({**{s: int(sizes[s]) for s in SPLITS}, "seed": seed, "order": list(SPLITS)}, f)
    return sidecar


def read_sidecar(path: str | os.PathLike, rows: int) -> Split | None:
    """The split recorded beside the file at `path` (which has `rows` rows), or None if
    there is no sidecar. A sidecar that does not describe `rows` rows is an error."""
    sidecar = sidecar_path(path)
    if not sidecar.is_file():
        return None
    manifest.verify(sidecar)
    try:
        meta = json.loads(sidecar.read_text())
        sizes = [int(meta[s]) for s in SPLITS]
        order = meta.get("order", list(SPLITS))
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise QuickDrawError(f"{sidecar}: not a split file written by convert ({e})") from None
    if order != list(SPLITS) or min(sizes) < 0 or sum(sizes) != rows:
        raise QuickDrawError(
            f"{sidecar}: split sizes {dict(zip(SPLITS, sizes, strict=True))} do not match "
            f"the {rows} rows of {path}"
        )
    bounds = np.cumsum([0, *sizes]).tolist()
    indices = {s: list(range(bounds[i], bounds[i + 1])) for i, s in enumerate(SPLITS)}
    return Split(indices=indices)
