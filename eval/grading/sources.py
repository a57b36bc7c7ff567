"""Where the sketches of a grading session come from, and how the pool is balanced.

A SOURCE is one of
    drawings.ndjson          Quick, Draw! drawings (raw or simplified ndjson, .ndjson.gz or the
                             official .bin); category = the `word` field, else the file stem
    sketches.npz:SPLIT       a sketch-rnn ``.npz`` file and one of its splits; category = file stem
    bitmaps.npy              official-layout 28x28 bitmaps, uint8 (N, 784); category = file stem
    model.pt (.pth, .ckpt,   a model checkpoint (or a Magenta .gen.json), loaded by
     .gen.json)              `models.trainer.load_checkpoint` and
                             sampled with the model's `sample_sketches`: strokes from a stroke
                             model (sketch-rnn), ink images from a bitmap model (DRAW)

A session shows every sketch the same way, so nothing on the page tells real from generated:
as strokes (stroke-3 ``(n, 3)`` float64) when every source gives strokes, and as bitmaps when
any source gives bitmaps (a DRAW checkpoint, a .npy file): stroke sketches are then rendered by
the official renderer (`quickdraw_tools.raster`) at the bitmap models' size.

`build_session` adds what a human study needs beyond the pool (HYPE, Zhou et al. 2019): gold
items (attention checks: known real drawings, and obvious fakes, random scribbles unless a
source is named) mixed into every rater's order, and the instructions page's examples. Gold
items and examples are never drawings of the pool, nor of each other.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ...errors import QuickDrawError, check_choice
from ...formats import (
    DRAWING_KINDS,
    file_kind,
    file_stem,
    iter_drawings,
    load_bitmaps,
    load_sketchrnn_npz,
    suffix_list,
)
from ...models import SAMPLING_TEMPERATURE
from ...splits import SPLITS
from ...strokes import drawing_to_stroke3, stroke3_to_drawing
from ..labels import path_labels
from .store import REAL_SOURCE, Sketch

SCRIBBLES = "scribbles"  # what the spec records for gold fakes drawn by `scribbles`
SCRAMBLED = "scrambled real drawings"  # ...for example fakes made by `scramble`
GOLD_SOURCES = {"real": "gold real", "fake": "gold fake"}  # the source labels of gold items

# file kind (`formats.SUFFIXES`) -> source kind
KINDS = {"ndjson": "drawings", "binary": "drawings", "sketchrnn": "npz"}


@dataclass(frozen=True)
class SourceSpec:
    kind: str  # "drawings", "npz", "bitmap" or "checkpoint"
    path: Path
    split: str | None = None  # the .npz split

    def __str__(self) -> str:
        return f"{self.path}:{self.split}" if self.split else str(self.path)


def parse_source(text: str) -> SourceSpec:
    """Parse a SOURCE argument; raise QuickDrawError naming the accepted forms."""
    path, split = Path(text), None
    if ".npz:" in text.lower():
        head, _, split = text.rpartition(":")
        path = Path(head)
    found = file_kind(path)
    kind = KINDS.get(found, found) if found else None
    if kind is None:
        raise QuickDrawError(
            f"source {text!r}: expected drawings ({suffix_list(*DRAWING_KINDS)}), "
            f"FILE.npz:SPLIT, FILE.npy (bitmaps) or a checkpoint ({suffix_list('checkpoint')})"
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


# Every reader keeps every sketch, the blank ones too (`Sketch.blank`: an empty or one-point
# sample, a canvas without ink): a model's blank samples are samples, and counting them out
# (or drawing again until something shows) would flatter the model.


def _read_drawings(path: Path) -> list[Sketch]:
    sketches = []
    for record in iter_drawings(path):
        strokes = drawing_to_stroke3(record["drawing"], dtype=np.float64)
        category = str(record.get("word") or file_stem(path))
        sketches.append(Sketch(REAL_SOURCE, category, strokes=strokes))
    return sketches


def _read_npz(path: Path, split: str) -> list[Sketch]:
    arrays = load_sketchrnn_npz(path)[split]  # a safe reader: no arbitrary unpickling
    return [
        Sketch(REAL_SOURCE, file_stem(path), strokes=np.asarray(a, dtype=np.float64))
        for a in arrays
    ]


def _sample_checkpoint(
    path: Path, n: int, seed: int, temperature: float, device: str = "cpu"
) -> list[Sketch]:
    """`n` sketches drawn from a checkpoint with its model's `sample_sketches`, as drawn (a
    blank one too): strokes from a stroke model (sketch-rnn), ink levels from a bitmap model
    (DRAW)."""
    import torch

    from ...models.base import trained_category
    from ...models.trainer import load_checkpoint

    model, data_state, _ = load_checkpoint(path, device)
    generator = torch.Generator().manual_seed(seed)  # on the CPU: the same draws on any device
    category = trained_category(data_state) or "mixed"
    drawn = model.sample_sketches(n, temperature, generator, data_state)
    if model.output == "strokes":
        return [Sketch(REAL_SOURCE, category, strokes=np.asarray(s, np.float64)) for s in drawn]
    return [Sketch(REAL_SOURCE, category, image=np.asarray(s, np.uint8)) for s in drawn]


def _read_bitmaps(path: Path) -> list[Sketch]:
    rows = load_bitmaps(path)
    side = int(round(np.sqrt(rows.shape[1])))
    return [Sketch(REAL_SOURCE, file_stem(path), image=r.reshape(side, side)) for r in rows]


def source_rng(seed: int | None, *names: str) -> np.random.Generator:
    """The generator of one source's draws: from the run's `seed` and that source alone
    (`names`: its argument, as given, and what the draws are for), never from the other
    sources of the command, so a source's sketches and scores do not change with them.
    ``seed=None``: fresh randomness."""
    if seed is None:
        return np.random.default_rng()
    digest = hashlib.sha256("\0".join(names).encode()).digest()
    return np.random.default_rng([seed, *np.frombuffer(digest[:16], np.uint32).tolist()])


def read_source(
    spec: SourceSpec,
    label: str,
    n: int | None,
    rng: np.random.Generator,
    temperature: float = SAMPLING_TEMPERATURE,
    device: str = "cpu",
) -> list[Sketch]:
    """Up to `n` sketches (all if None) from `spec`, chosen at random, labelled `label`."""
    if spec.kind == "checkpoint":
        if n is None:
            raise QuickDrawError("sampling from a checkpoint needs a count")
        seed = int(rng.integers(2**31))
        sketches = _sample_checkpoint(spec.path, n, seed, temperature, device)
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
    return [Sketch(label, s.category, s.strokes, s.image) for s in sketches]  # never gold


def source_labels(specs: Sequence[SourceSpec]) -> list[str]:
    """Distinct report labels for the generated sources (`eval.labels`: a checkpoint is named
    by its run, a file by its category, lengthened where two clash)."""
    out = path_labels([s.path for s in specs], [f":{s.split}" if s.split else "" for s in specs])
    return [f"{lab} (generated)" if lab == REAL_SOURCE else lab for lab in out]


def build_pool(
    real: SourceSpec,
    generated: Sequence[SourceSpec],
    per_source: int,
    seed: int | None = None,
    temperature: float = SAMPLING_TEMPERATURE,
    device: str = "cpu",
    per_source_at_most: bool = False,
) -> tuple[list[Sketch], dict]:
    """The session's pool: `per_source` sketches from each generated source and as many real
    sketches as generated ones in total, so half of what a rater sees is real.

    Real sketches are drawn category by category to match the generated sketches' categories
    where the real source has them. Each source's sketches are drawn with `source_rng`: from
    `seed` and that source alone. Blank samples are kept as drawn (``spec["blank"]`` counts
    them per source). `per_source_at_most`: with a real source too small for `per_source`
    per generated source, take as many as it allows (``spec["notes"]`` says so) rather than
    refuse. Returns (pool, spec) where spec records what was used.
    """
    pool, session = _draw_pool(
        real, generated, per_source, seed, temperature, device, at_most=per_source_at_most
    )
    if session["display"] == "bitmap":
        pool = as_bitmaps(pool)
    return pool, session


@dataclass
class Session:
    """What `build_session` makes: the pool (gold items among it), the spec to store, and the
    instructions page's examples ({"real": [...], "fake": [...]})."""

    pool: list[Sketch]
    spec: dict
    examples: dict[str, list[Sketch]] = field(default_factory=dict)


def build_session(
    real: SourceSpec,
    generated: Sequence[SourceSpec],
    per_source: int,
    seed: int | None = None,
    temperature: float = SAMPLING_TEMPERATURE,
    device: str = "cpu",
    gold_real: SourceSpec | None = None,
    gold_fake: SourceSpec | None = None,
    gold: int = 5,
    example_fake: SourceSpec | None = None,
    examples: int = 3,
    examples_at_most: bool = False,
    per_source_at_most: bool = False,
) -> Session:
    """`build_pool`'s pool plus attention checks and examples.

    With `gold_real`, `gold` known real drawings from it and `gold` obvious fakes (from
    `gold_fake`, else random `scribbles`, which claim the pool's category) join the pool,
    marked ``Sketch.gold``. The instructions page shows `examples` real drawings (from
    `gold_real`, else `real`) and as many fakes: from `example_fake`, else the gold fakes'
    source, else other real drawings of that source, `scramble`d (a drawing of the category
    the raters grade, broken as a careless model breaks it). None of them is a drawing of the
    pool or a gold item. `examples_at_most`: fewer examples where a source has fewer drawings
    left, rather than an error (the command's default). The pool's own draws are those of
    `build_pool` with the same seed; gold items and examples use a generator of their own.
    """
    if gold < 1:
        raise QuickDrawError(f"--gold must be at least 1, got {gold}")
    if examples < 0:
        raise QuickDrawError(f"--examples must be 0 or more, got {examples}")
    if gold_fake is not None and gold_real is None:
        raise QuickDrawError("--gold-fake needs --gold-real: attention checks need both kinds")
    if gold_real is not None and gold_real.kind == "checkpoint":
        raise QuickDrawError(f"--gold-real {gold_real} is a checkpoint: give real drawings")
    read: dict[SourceSpec, list[Sketch]] = {}  # each file is read once
    pool, session = _draw_pool(
        real, generated, per_source, seed, temperature, device, read, per_source_at_most
    )
    rng = np.random.default_rng(None if seed is None else [seed, 1])
    used = {_key(s) for s in pool}
    claimed = Counter(s.category for s in pool).most_common(1)[0][0]
    gold_items: list[Sketch] = []
    if gold_real is not None:
        gold_items += _pick(gold_real, GOLD_SOURCES["real"], gold, rng, used, "--gold-real", read)
        fakes = (
            _pick(
                gold_fake,
                GOLD_SOURCES["fake"],
                gold,
                rng,
                used,
                "--gold-fake",
                read,
                temperature,
                device,
            )
            if gold_fake is not None
            else [Sketch(GOLD_SOURCES["fake"], claimed, strokes=s) for s in scribbles(gold, rng)]
        )
        gold_items = [_as_gold(s, "real") for s in gold_items] + [
            _as_gold(s, "fake") for s in fakes
        ]
        used |= {_key(s) for s in gold_items}
        session["gold"] = {
            "real": str(gold_real),
            "fake": str(gold_fake) if gold_fake is not None else SCRIBBLES,
            "per_kind": gold,
        }
    else:
        session["gold"] = None
    shown: dict[str, list[Sketch]] = {"real": [], "fake": []}
    real_from, fake_from = gold_real or real, example_fake or gold_fake
    if examples:
        flag = "--examples: real examples from"
        shown["real"] = _pick(
            real_from, "example real", examples, rng, used, flag, read, at_most=examples_at_most
        )
        used |= {_key(s) for s in shown["real"]}
        if fake_from is None:
            flag = "--examples: scrambled examples from"
            found = _pick(real_from, "example fake", examples, rng, used, flag, read, at_most=True)
            if len(found) < examples and not examples_at_most:
                raise QuickDrawError(
                    f"{flag} {real_from}: {len(found)} drawings not already in the session, "
                    f"{examples} needed; give --example-fake SOURCE or a smaller --examples"
                )
            shown["fake"] = [scramble(s, rng) for s in found]
        else:
            flag = "--example-fake" if example_fake else "--gold-fake"
            shown["fake"] = _pick(
                fake_from, "example fake", examples, rng, used, flag, read, temperature, device,
                at_most=examples_at_most,
            )  # fmt: skip
    session["examples"] = {
        "real": str(real_from) if examples else None,
        "fake": (str(fake_from) if fake_from else SCRAMBLED) if examples else None,
        "per_kind": examples,
    }
    everything = pool + gold_items + shown["real"] + shown["fake"]
    if any(s.image is not None for s in everything):
        session["display"] = "bitmap"
        everything = as_bitmaps(everything)
    n_pool, n_gold, n_real = len(pool), len(gold_items), len(shown["real"])
    return Session(
        pool=everything[: n_pool + n_gold],
        spec=session,
        examples={
            "real": everything[n_pool + n_gold : n_pool + n_gold + n_real],
            "fake": everything[n_pool + n_gold + n_real :],
        },
    )


def scramble(sketch: Sketch, rng: np.random.Generator) -> Sketch:
    """A real drawing broken as a careless model breaks one: each stroke moved away from its
    place by up to a third of the drawing's size and its points shaken (a bitmap: its four
    quarters put back in the wrong places). It keeps the drawing's category, so the example
    fakes show the category the raters grade, not a scribble of nothing."""
    if sketch.image is not None:
        image = np.asarray(sketch.image)
        h, w = image.shape[0] // 2, image.shape[1] // 2
        tiles = [image[:h, :w], image[:h, w:], image[h:, :w], image[h:, w:]]
        order = [1, 3, 0, 2] if rng.random() < 0.5 else [2, 0, 3, 1]  # no tile stays put
        t = [tiles[i][:h, :w] for i in order]
        out = np.zeros_like(image)
        out[:h, :w], out[:h, w : 2 * w], out[h : 2 * h, :w], out[h : 2 * h, w : 2 * w] = t
        return Sketch("example fake", sketch.category, image=out)
    drawing = stroke3_to_drawing(np.asarray(sketch.strokes, dtype=np.float64))
    xy = np.concatenate([np.column_stack(stroke[:2]) for stroke in drawing]) if drawing else None
    size = float(np.ptp(xy, axis=0).max()) if xy is not None and len(xy) > 1 else 1.0
    broken = []
    for xs, ys in (stroke[:2] for stroke in drawing):
        points = np.column_stack([xs, ys]) + rng.uniform(-size / 3, size / 3, size=2)
        points += rng.normal(0, size / 60, size=points.shape)
        broken.append([points[:, 0].tolist(), points[:, 1].tolist()])
    strokes = drawing_to_stroke3(broken, dtype=np.float64)
    return Sketch("example fake", sketch.category, strokes=strokes)


def _key(sketch: Sketch) -> tuple:
    """What makes two sketches the same drawing (the same points or pixels)."""
    data = np.asarray(sketch.strokes if sketch.strokes is not None else sketch.image)
    return (sketch.strokes is None, data.shape, np.ascontiguousarray(data, np.float64).tobytes())


def _as_gold(sketch: Sketch, kind: str) -> Sketch:
    return Sketch(sketch.source, sketch.category, sketch.strokes, sketch.image, gold=kind)


def _pick(
    spec: SourceSpec,
    label: str,
    n: int,
    rng: np.random.Generator,
    used: set,
    flag: str,
    read: dict[SourceSpec, list[Sketch]],
    temperature: float = SAMPLING_TEMPERATURE,
    device: str = "cpu",
    at_most: bool = False,
) -> list[Sketch]:
    """`n` sketches of `spec`, labelled `label`, none of them a drawing in `used` (`at_most`:
    as many as there are, up to `n`); a file's drawings are kept in `read` for the next call."""
    if spec.kind == "checkpoint":  # fresh samples: a repeat of a pool sketch is not plausible
        found = read_source(spec, label, n, rng, temperature, device)
    else:
        if spec not in read:
            read[spec] = read_source(spec, label, None, rng)  # all of it: no draw from rng
        found = [
            Sketch(label, s.category, s.strokes, s.image) for s in read[spec] if _key(s) not in used
        ]
    if at_most:
        n = min(n, len(found))
    if len(found) < n:
        raise QuickDrawError(
            f"{flag} {spec}: {len(found)} drawings not already in the session, {n} needed; "
            "give a bigger source, another file than --real, or a smaller count"
        )
    keep = np.sort(rng.choice(len(found), size=n, replace=False))
    return [found[i] for i in keep]


def scribbles(n: int, rng: np.random.Generator) -> list[np.ndarray]:
    """`n` obvious fakes: 2-4 strokes each of 6-14 points thrown uniformly over the
    simplified files' 0-255 square, as stroke-3 ``(m, 3)`` float64 (integer coordinates, like
    a real drawing's). No one takes such a zig-zag for a drawing of anything."""
    out = []
    for _ in range(n):
        drawing = []
        for _ in range(int(rng.integers(2, 5))):
            points = rng.integers(0, 256, size=(int(rng.integers(6, 15)), 2))
            drawing.append([points[:, 0].tolist(), points[:, 1].tolist()])
        out.append(drawing_to_stroke3(drawing, dtype=np.float64))
    return out


def _draw_pool(
    real: SourceSpec,
    generated: Sequence[SourceSpec],
    per_source: int,
    seed: int | None,
    temperature: float,
    device: str,
    read: dict[SourceSpec, list[Sketch]] | None = None,
    at_most: bool = False,
) -> tuple[list[Sketch], dict]:
    """`build_pool` before any bitmap rendering (`spec["display"]` says whether it needs it);
    the real source's drawings are left in `read`."""
    if per_source < 1:
        raise QuickDrawError(f"--per-source must be at least 1, got {per_source}")
    if not generated:
        raise QuickDrawError("give at least one --generated source")
    if real.kind == "checkpoint":
        raise QuickDrawError(
            f"--real {real} is a checkpoint: give real drawings (ndjson, npz, npy)"
        )
    # all of the real source: no draw from its generator yet
    everything_real = read_source(real, REAL_SOURCE, None, source_rng(seed, "real", str(real)))
    if read is not None:
        read[real] = everything_real
    most = len(everything_real) // len(generated)
    notes = []
    if most < 1:
        raise QuickDrawError(
            f"the real source {real} has {_drawings(len(everything_real))}, fewer than the "
            f"{len(generated)} generated sources: half the pool must be real; give a bigger "
            "real source"
        )
    if per_source > most and at_most:
        notes.append(
            f"the real source {real} has {_drawings(len(everything_real))}: {most} sketch"
            f"{'es' if most > 1 else ''} per generated source, not {per_source}, so that half "
            "the pool is real (a bigger real source, such as another split, gives more)"
        )
        per_source = most
    labels = source_labels(generated)
    fake: list[Sketch] = []
    for spec, label in zip(generated, labels, strict=True):
        rng = source_rng(seed, "generated", str(spec))
        fake += read_source(spec, label, per_source, rng, temperature, device)
    if len(everything_real) < len(fake):
        raise QuickDrawError(
            f"the real source {real} has {_drawings(len(everything_real))}, fewer than the "
            f"{len(fake)} generated ones; lower --per-source to {most} or give a bigger real "
            "source"
        )
    rng = source_rng(seed, "real", str(real))
    real_pool = _match_categories(everything_real, [s.category for s in fake], rng)
    pool = real_pool + fake
    display = "bitmap" if any(s.image is not None for s in pool) else "strokes"
    blank = Counter(s.source for s in pool if s.blank)
    session = {
        "display": display,
        "real": str(real),
        "generated": [str(g) for g in generated],
        "labels": labels,
        "per_source": per_source,
        "seed": seed,
        "temperature": temperature,
        # blank sketches (empty, one point, no ink) per source: kept and shown as drawn
        "blank": {source: blank[source] for source in [REAL_SOURCE, *labels]},
        "notes": notes,
    }
    return pool, session


def _drawings(n: int) -> str:
    return f"{n} drawing" if n == 1 else f"{n} drawings"


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
    """Stroke-3 -> drawing in the simplified files' space: aligned and scaled as Google's
    recipe does (`simplify.scale_drawing`: top-left at 0, the larger side spanning 0-255). A
    drawing already in that space (every point in [0, 255], some coordinate at 255) is kept as
    it is, so a simplified Quick, Draw! drawing renders exactly as its official bitmap."""
    from ...simplify import scale_drawing

    drawing = stroke3_to_drawing(np.asarray(strokes, dtype=np.float64))
    if not drawing:
        return []  # an empty sample: a blank canvas
    xy = np.concatenate([np.column_stack(stroke[:2]) for stroke in drawing])
    if xy.min() >= 0 and xy.max() == 255:
        return drawing
    return [[p[:, 0].tolist(), p[:, 1].tolist()] for p in scale_drawing(drawing)]


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
        s = pool[i]
        out[i] = Sketch(s.source, s.category, image=row.reshape(side, side), gold=s.gold)
    return out
