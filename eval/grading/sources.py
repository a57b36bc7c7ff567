"""Where the sketches of a grading session come from, and how the pool is balanced.

A SOURCE is one of
    drawings.ndjson          Quick, Draw! drawings (raw or simplified ndjson, .ndjson.gz or the
                             official .bin); category = the `word` field, else the file stem
    sketches.npz:SPLIT       a sketch-rnn ``.npz`` file and one of its splits; category = file stem
    bitmaps.npy              official-layout 28x28 bitmaps, uint8 (N, 784); category = file stem
    model.pt (.pth, .ckpt)   a model checkpoint, loaded by `models.trainer.load_checkpoint` and
                             sampled with the model's own method: sketch-rnn's `sample` (strokes)
                             or DRAW's `generate` (bitmaps)

A session shows every sketch the same way, so nothing on the page tells real from generated:
as strokes (stroke-3 ``(n, 3)`` float64) when every source gives strokes, and as bitmaps when
any source gives bitmaps (a DRAW checkpoint, a .npy file): stroke sketches are then rendered by
the official renderer (`quickdraw_tools.raster`) at the bitmap models' size.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...errors import QuickDrawError, check_choice
from ...formats import SPLITS, iter_drawings, load_bitmaps, load_sketchrnn_npz
from ...strokes import drawing_to_stroke3, stroke3_to_drawing
from .store import REAL_SOURCE, Sketch

CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt")
DRAWING_SUFFIXES = (".ndjson", ".ndjson.gz", ".jsonl", ".bin")


@dataclass(frozen=True)
class SourceSpec:
    kind: str  # "drawings", "npz", "bitmap" or "checkpoint"
    path: Path
    split: str | None = None  # the .npz split

    @property
    def label(self) -> str:
        """The name the report uses for this source (never shown to raters)."""
        return f"{file_stem(self.path)}:{self.split}" if self.split else file_stem(self.path)

    def __str__(self) -> str:
        return f"{self.path}:{self.split}" if self.split else str(self.path)


def file_stem(path: Path) -> str:
    """The name without its format suffix: ``cat.ndjson.gz`` -> ``cat``."""
    name = path.name
    for suffix in (*DRAWING_SUFFIXES, ".npz", ".npy", *CHECKPOINT_SUFFIXES):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def parse_source(text: str) -> SourceSpec:
    """Parse a SOURCE argument; raise QuickDrawError naming the accepted forms."""
    path, split = Path(text), None
    if ".npz:" in text:
        head, _, split = text.rpartition(":")
        path = Path(head)
    name = path.name.lower()
    if name.endswith(DRAWING_SUFFIXES):
        kind = "drawings"
    elif name.endswith(".npz"):
        kind = "npz"
    elif name.endswith(CHECKPOINT_SUFFIXES):
        kind = "checkpoint"
    elif name.endswith(".npy"):
        kind = "bitmap"
    else:
        raise QuickDrawError(
            f"source {text!r}: expected FILE.ndjson (.ndjson.gz, .bin), FILE.npz:SPLIT, "
            f"FILE.npy (bitmaps) or a checkpoint ({', '.join(CHECKPOINT_SUFFIXES)})"
        )
    if not path.is_file():
        raise QuickDrawError(f"source {text!r}: no such file {path}")
    if kind == "npz" and not split:
        raise QuickDrawError(
            f"source {text!r}: name the split as {path}:SPLIT; splits: {', '.join(SPLITS)}"
        )
    if kind == "npz":
        check_choice(f"split of {path}", split, SPLITS)
    return SourceSpec(kind, path, split)


def _read_drawings(path: Path) -> list[Sketch]:
    sketches = []
    for record in iter_drawings(path):
        strokes = drawing_to_stroke3(record["drawing"], dtype=np.float64)
        if len(strokes):
            category = str(record.get("word") or file_stem(path))
            sketches.append(Sketch(REAL_SOURCE, category, strokes=strokes))
    return sketches


def _read_npz(path: Path, split: str) -> list[Sketch]:
    arrays = load_sketchrnn_npz(path)[split]  # a safe reader: no arbitrary unpickling
    return [
        Sketch(REAL_SOURCE, file_stem(path), strokes=np.asarray(a, dtype=np.float64))
        for a in arrays
        if len(a)
    ]


def _sample_checkpoint(path: Path, n: int, seed: int, temperature: float) -> list[Sketch]:
    """`n` sketches drawn from a checkpoint through the trainer's loader: strokes from a stroke
    model (sketch-rnn's `sample`), ink levels from a bitmap model (DRAW's `generate`)."""
    import torch

    from ...models.trainer import load_checkpoint

    model, data_state, _ = load_checkpoint(path)
    generator = torch.Generator().manual_seed(seed)
    category = _checkpoint_category(data_state, path)
    if hasattr(model, "sample"):
        scale = float(data_state.get("scale_factor", 1.0))
        out: list[Sketch] = []
        for _ in range(5):  # an empty sample (end of sketch at once) is drawn again
            for s in model.sample(n, temperature=temperature, generator=generator, scale=scale):
                s = np.asarray(s, dtype=np.float64)
                if len(s) and len(out) < n:
                    out.append(Sketch(REAL_SOURCE, category, strokes=s))
            if len(out) == n:
                break
        return out
    if hasattr(model, "generate"):
        final = model.generate(n, generator=generator, temperature=temperature).final
        ink = np.rint(final.detach().cpu().numpy() * 255).clip(0, 255).astype(np.uint8)
        return [Sketch(REAL_SOURCE, category, image=im) for im in ink]
    raise QuickDrawError(f"{path}: the model {model.name!r} has neither sample() nor generate()")


def _checkpoint_category(data_state: dict, path: Path) -> str:
    """The category a checkpoint was trained on, when it was one category; else "mixed"."""
    names = data_state.get("categories") or [Path(f).stem for f in data_state.get("files", [])]
    return str(names[0]) if len(names) == 1 else "mixed"


def _read_bitmaps(path: Path) -> list[Sketch]:
    rows = load_bitmaps(path)
    side = int(round(np.sqrt(rows.shape[1])))
    return [
        Sketch(REAL_SOURCE, file_stem(path), image=r.reshape(side, side)) for r in rows if r.any()
    ]


def read_source(
    spec: SourceSpec, label: str, n: int | None, rng: np.random.Generator, temperature: float = 1.0
) -> list[Sketch]:
    """Up to `n` sketches (all if None) from `spec`, chosen at random, labelled `label`."""
    if spec.kind == "checkpoint":
        if n is None:
            raise QuickDrawError("sampling from a checkpoint needs a count")
        seed = int(rng.integers(2**31))
        sketches = _sample_checkpoint(spec.path, n, seed, temperature)
    elif spec.kind == "drawings":
        sketches = _read_drawings(spec.path)
    elif spec.kind == "bitmap":
        sketches = _read_bitmaps(spec.path)
    else:
        sketches = _read_npz(spec.path, spec.split)
    if not sketches:
        raise QuickDrawError(f"source {spec}: no drawings in it")
    if n is not None and len(sketches) > n:
        keep = np.sort(rng.choice(len(sketches), size=n, replace=False))
        sketches = [sketches[i] for i in keep]
    return [Sketch(label, s.category, s.strokes, s.image) for s in sketches]


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
    if real.kind == "checkpoint":
        raise QuickDrawError(
            f"--real {real} is a checkpoint: give real drawings (ndjson, npz, npy)"
        )
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
    display = "bitmap" if any(s.image is not None for s in pool) else "strokes"
    if display == "bitmap":
        pool = as_bitmaps(pool)
    session = {
        "display": display,
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


def unit_drawing(strokes: np.ndarray) -> list:
    """Stroke-3 -> drawing in the simplified files' space: top-left at 0, uniformly scaled so
    the larger side spans 0-255 (how Google prepared the simplified drawings). A drawing
    already in that space (every point in [0, 255], some coordinate at 255) is kept as it is,
    so a simplified Quick, Draw! drawing renders exactly as its official bitmap."""
    drawing = stroke3_to_drawing(np.asarray(strokes, dtype=np.float64))
    xy = np.concatenate([np.column_stack(stroke[:2]) for stroke in drawing])
    if xy.min() >= 0 and xy.max() == 255:
        return drawing
    lo = xy.min(axis=0)
    k = 255.0 / max(float((xy.max(axis=0) - lo).max()), 1e-9)
    return [
        [((np.asarray(xs) - lo[0]) * k).tolist(), ((np.asarray(ys) - lo[1]) * k).tolist()]
        for xs, ys in drawing
    ]


def as_bitmaps(pool: Sequence[Sketch]) -> list[Sketch]:
    """Every sketch as a bitmap of the size the bitmap sources use (the official renderer draws
    the stroke sketches), so a bitmap model is judged against real sketches shown alike."""
    from ...raster import rasterize_many

    sizes = {s.image.shape for s in pool if s.image is not None}
    if len(sizes) != 1 or len(next(iter(sizes))) != 2 or len(set(next(iter(sizes)))) != 1:
        raise QuickDrawError(f"the bitmap sources disagree on the image size: {sorted(sizes)}")
    side = next(iter(sizes))[0]
    stroke_ids = [i for i, s in enumerate(pool) if s.strokes is not None]
    drawn = rasterize_many([unit_drawing(pool[i].strokes) for i in stroke_ids], size=side)
    out = list(pool)
    for i, row in zip(stroke_ids, drawn, strict=True):
        out[i] = Sketch(pool[i].source, pool[i].category, image=row.reshape(side, side))
    return out
