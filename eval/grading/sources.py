"""Where the sketches of a grading session come from, and how the pool is balanced.

A SOURCE is one of
    drawings.ndjson          Quick, Draw! ndjson (raw or simplified); category = the `word` field
    sketches.npz:SPLIT       a sketch-rnn ``.npz`` file and one of its splits; category = file stem
    model.pt (.pth, .ckpt)   a model checkpoint, sampled through `models.trainer.load_checkpoint`
                             and the model's `sample` method

Every sketch becomes stroke-3 ``(n, 3)`` float64; the page renders them all the same way, so
nothing in the SVG tells a real sketch from a generated one.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from quickdraw_tools.errors import QuickDrawError, check_choice
from quickdraw_tools.strokes import drawing_to_stroke3

from .store import REAL_SOURCE, Sketch

CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt")


@dataclass(frozen=True)
class SourceSpec:
    kind: str  # "ndjson", "npz" or "checkpoint"
    path: Path
    split: str | None = None  # the .npz split

    @property
    def label(self) -> str:
        """The name the report uses for this source (never shown to raters)."""
        return f"{self.path.stem}:{self.split}" if self.split else self.path.stem

    def __str__(self) -> str:
        return f"{self.path}:{self.split}" if self.split else str(self.path)


def parse_source(text: str) -> SourceSpec:
    """Parse a SOURCE argument; raise QuickDrawError naming the accepted forms."""
    path, split = Path(text), None
    if ".npz:" in text:
        head, _, split = text.rpartition(":")
        path = Path(head)
    suffix = path.suffix.lower()
    if suffix == ".ndjson":
        kind = "ndjson"
    elif suffix == ".npz":
        kind = "npz"
    elif suffix in CHECKPOINT_SUFFIXES:
        kind = "checkpoint"
    else:
        raise QuickDrawError(
            f"source {text!r}: expected FILE.ndjson, FILE.npz:SPLIT or a checkpoint "
            f"({', '.join(CHECKPOINT_SUFFIXES)})"
        )
    if not path.is_file():
        raise QuickDrawError(f"source {text!r}: no such file {path}")
    if kind == "npz":
        splits = _npz_splits(path)
        if not split:
            raise QuickDrawError(
                f"source {text!r}: name the split as {path}:SPLIT; splits: {', '.join(splits)}"
            )
        check_choice(f"split of {path}", split, splits)
    return SourceSpec(kind, path, split)


def _npz_splits(path: Path) -> list[str]:
    try:
        with np.load(path, encoding="latin1", allow_pickle=True) as data:
            return list(data.files)
    except (OSError, ValueError) as e:
        raise QuickDrawError(f"{path} is not a readable .npz file: {e}") from e


def _read_ndjson(path: Path) -> list[Sketch]:
    sketches = []
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                strokes = drawing_to_stroke3(record["drawing"], dtype=np.float64)
            except (json.JSONDecodeError, KeyError, TypeError, QuickDrawError) as e:
                raise QuickDrawError(f"{path}, line {line_no}: not a drawing record ({e})") from e
            if len(strokes):
                sketches.append(Sketch(REAL_SOURCE, str(record.get("word", path.stem)), strokes))
    return sketches


def _read_npz(path: Path, split: str) -> list[Sketch]:
    with np.load(path, encoding="latin1", allow_pickle=True) as data:
        arrays = data[split]
    category = path.stem
    out = []
    for i, a in enumerate(arrays):
        a = np.asarray(a, dtype=np.float64)
        if a.ndim != 2 or a.shape[1] != 3:
            raise QuickDrawError(f"{path}:{split}[{i}] is not stroke-3 (n, 3): shape {a.shape}")
        if len(a):
            out.append(Sketch(REAL_SOURCE, category, a))
    return out


def _sample_checkpoint(path: Path, n: int, seed: int, temperature: float) -> list[Sketch]:
    """`n` sketches sampled from a checkpoint through the trainer's loader."""
    import torch

    from models import trainer

    loaded = trainer.load_checkpoint(path)
    model = getattr(loaded, "model", loaded)
    if not hasattr(model, "sample"):
        raise QuickDrawError(f"{path}: the model in this checkpoint has no sample method")
    generator = torch.Generator().manual_seed(seed)
    samples = model.sample(n, temperature=temperature, generator=generator)
    category = _checkpoint_category(loaded, path)
    out = []
    for s in samples:
        a = s.detach().cpu().numpy() if isinstance(s, torch.Tensor) else np.asarray(s)
        a = np.asarray(a, dtype=np.float64)
        if a.ndim != 2 or a.shape[1] != 3:
            raise QuickDrawError(
                f"{path}: grading shows stroke sketches, but this model samples arrays of shape "
                f"{a.shape} (a bitmap model such as DRAW cannot be graded as SVG strokes)"
            )
        out.append(Sketch(REAL_SOURCE, category, a))
    return out


def _checkpoint_category(loaded, path: Path) -> str:
    """The category a checkpoint was trained on, when it says so; else the file stem."""
    for holder in (loaded, getattr(loaded, "state", None), getattr(loaded, "config", None)):
        if isinstance(holder, dict):
            value = holder.get("category") or holder.get("categories")
        else:
            value = getattr(holder, "category", None) or getattr(holder, "categories", None)
        if isinstance(value, str):
            return value
        if isinstance(value, list | tuple) and len(value) == 1:
            return str(value[0])
    return path.stem


def read_source(
    spec: SourceSpec, label: str, n: int | None, rng: np.random.Generator, temperature: float = 1.0
) -> list[Sketch]:
    """Up to `n` sketches (all if None) from `spec`, chosen at random, labelled `label`."""
    if spec.kind == "checkpoint":
        if n is None:
            raise QuickDrawError("sampling from a checkpoint needs a count")
        seed = int(rng.integers(2**31))
        sketches = _sample_checkpoint(spec.path, n, seed, temperature)
    elif spec.kind == "ndjson":
        sketches = _read_ndjson(spec.path)
    else:
        sketches = _read_npz(spec.path, spec.split)
    if not sketches:
        raise QuickDrawError(f"source {spec}: no drawings in it")
    if n is not None and len(sketches) > n:
        keep = np.sort(rng.choice(len(sketches), size=n, replace=False))
        sketches = [sketches[i] for i in keep]
    return [Sketch(label, s.category, s.strokes) for s in sketches]


def source_labels(specs: Sequence[SourceSpec]) -> list[str]:
    """Distinct report labels for the generated sources (parent folder added on a clash)."""
    labels = [s.label for s in specs]
    counts = Counter(labels)
    labels = [
        f"{s.path.parent.name}/{lab}" if counts[lab] > 1 else lab
        for s, lab in zip(specs, labels, strict=True)
    ]
    counts = Counter(labels)
    seen: Counter = Counter()
    out = []
    for lab in labels:
        seen[lab] += 1
        out.append(f"{lab}#{seen[lab]}" if counts[lab] > 1 else lab)
    if REAL_SOURCE in out:
        out = [f"{lab} (generated)" if lab == REAL_SOURCE else lab for lab in out]
    return out


def build_pool(
    real: SourceSpec,
    generated: Sequence[SourceSpec],
    per_source: int,
    seed: int | None = None,
    temperature: float = 1.0,
) -> tuple[list[Sketch], dict]:
    """The session's pool: `per_source` sketches from each generated source and as many real
    sketches as generated ones in total, so half of what a rater sees is real.

    Real sketches are drawn category by category to match the generated sketches' categories
    where the real source has them. Returns (pool, spec) where spec records what was used.
    """
    if per_source < 1:
        raise QuickDrawError(f"--per-source must be at least 1, got {per_source}")
    if not generated:
        raise QuickDrawError("give at least one --generated source")
    rng = np.random.default_rng(seed)
    labels = source_labels(generated)
    fake: list[Sketch] = []
    for spec, label in zip(generated, labels, strict=True):
        fake += read_source(spec, label, per_source, rng, temperature)
    everything_real = read_source(real, REAL_SOURCE, None, rng)
    if len(everything_real) < len(fake):
        raise QuickDrawError(
            f"the real source {real} has {len(everything_real)} drawings, fewer than the "
            f"{len(fake)} generated ones; lower --per-source or give a bigger real source"
        )
    real_pool = _match_categories(everything_real, [s.category for s in fake], rng)
    pool = real_pool + fake
    session = {
        "real": str(real),
        "generated": [str(g) for g in generated],
        "labels": labels,
        "per_source": per_source,
        "seed": seed,
        "temperature": temperature,
    }
    return pool, session


def _match_categories(
    real: list[Sketch], wanted: list[str], rng: np.random.Generator
) -> list[Sketch]:
    """len(wanted) real sketches without repeats, following `wanted`'s categories where possible."""
    by_category: dict[str, list[int]] = defaultdict(list)
    for i, s in enumerate(real):
        by_category[s.category].append(i)
    for ids in by_category.values():
        rng.shuffle(ids)
    chosen: list[int] = []
    shortfall = 0
    for category, count in sorted(Counter(wanted).items()):
        ids = by_category.get(category, [])
        take = ids[:count]
        del ids[:count]
        chosen += take
        shortfall += count - len(take)
    if shortfall:
        rest = [i for ids in by_category.values() for i in ids]
        chosen += [rest[i] for i in rng.choice(len(rest), size=shortfall, replace=False)]
    return [real[i] for i in sorted(chosen)]
