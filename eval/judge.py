"""The sample judge: a sketch classifier trained on real drawings, and the scores it gives samples.

Sketch-generation papers report, beside likelihood, what a classifier trained on real drawings
makes of the samples:

- **recognizability**, the classifier's top-1 accuracy on samples for the category they claim
  (a Sketch-a-Net, Yu et al. 2015, in SketchHealer, Su et al. 2020, and SketchLattice, Qi et
  al. 2021), here with a 95% Wilson score interval;
- **FID**, the Fréchet distance between Gaussians fitted to the classifier's penultimate-layer
  features of samples and of real drawings (Heusel et al. 2017, eq. 6; DoodlerGAN, Ge et al.
  2021, and SketchKnitter, Wang et al. 2023, use a sketch classifier instead of Inception):

      FID = |mu_r - mu_g|^2 + tr(S_r + S_g - 2 (S_r S_g)^(1/2));

- **KID**, the unbiased estimate of the squared MMD with the kernel k(x, y) = (x.y / d + 1)^3
  (Bińkowski et al. 2018, "Demystifying MMD GANs", eq. 4 and section 4);
- **precision** and **recall** with k-nearest-neighbour manifolds (Kynkäänniemi et al. 2019,
  eqs. 1-3, k = 3): the fraction of samples inside the real drawings' manifold (each real
  feature's ball reaching its k-th nearest real neighbour), and the fraction of real drawings
  inside the samples' manifold;
- **density** and **coverage** (Naeem et al. 2020, "Reliable Fidelity and Diversity Metrics for
  Generative Models", with the same k and the same real balls): how many real balls hold
  each sample, over k (about 1 for real-like samples, 1/k for one that only a lone outlying
  real drawing's wide ball reaches, which precision counts as faithful), and the fraction of
  real balls that hold some sample (low for a model that repeats a few sketches).

Pairwise distances are computed in blocks of at most `MAX_DISTANCES` cells, so memory stays
bounded whatever n.

The judge is a small CNN on 28x28 bitmaps drawn by the official renderer
(`quickdraw_tools.raster`), one class per category. Its held-out drawings are the ones
`quickdraw convert` holds out (the keyed split of `quickdraw_tools.splits`): it never trains on
the valid or test split, reports its accuracy on both, and keeps the features of each
category's *valid* drawings as that category's reference (mean, covariance and the features
themselves). The test split is left out of both, so the test drawings of the same category are
the real baseline a model's samples are compared with (`score_rows` on real drawings that are
neither trained on nor in the reference).

FID depends on n: its plug-in estimate is biased upwards, by roughly a constant over n
(Bińkowski et al. 2018, appendix D; Chong & Forsyth 2020 fit FID_n = FID_inf + c / n), and the
constant differs from model to model, so FIDs compare only at the same n against the same
reference. `score_rows` therefore scores every source at one n (the smallest of `n`, every
source's size and every reference's size). KID is unbiased at any n, though noisier at small n.

Data flows one way: drawings (ndjson, .bin, sketch-rnn .npz) or official bitmaps (.npy) ->
bitmaps -> `JudgeNet` -> features and class probabilities -> scores. Nothing here reads
command-line arguments; `quickdraw_tools.commands.judge` does.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import QuickDrawError
from ..formats import (
    DRAWING_KINDS,
    file_kind,
    file_stem,
    iter_drawings,
    load_bitmaps,
    load_sketchrnn_npz,
    suffix_list,
)
from ..models import SAMPLING_TEMPERATURE
from ..models.base import resolve_device
from ..models.checkpoint import (
    check_keys,
    config_from_dict,
    load_safely,
    load_weights,
    save_checkpoint,
)
from ..raster import rasterize_many
from ..simplify import simplify_drawings
from ..splits import SPLITS, Split, limit, read_sidecar, split_bitmaps, split_records
from ..strokes import is_raw
from .grading.report import count_is
from .grading.sources import source_rng, unit_drawing

JUDGE_FORMAT = 1  # bump when the layout of a judge file changes
# key -> type(s) every judge file must have
JUDGE_KEYS = {
    "format_version": int,
    "kind": str,
    "config": dict,
    "train_config": dict,
    "weights": dict,
    "classes": list,
    "reference": dict,
    "held_out": dict,
    "digests": dict,
}
K_NEAREST = 3  # Kynkäänniemi et al. 2019 use k = 3; density and coverage use the same k
NEAREST_NEIGHBOUR_SCORES = ("precision", "recall", "density", "coverage")
MAX_DISTANCES = 1 << 22  # pairwise distances held at once (4M float64: 32 MB), however large n
REFERENCE_SPLIT = "valid"  # the held-out split whose features are each category's reference
HELD_OUT = ("valid", "test")  # the splits the judge never trains on
MIXED = "mixed"  # what `grading.sources` names the category of a model of several categories


@dataclass
class JudgeConfig:
    """The classifier (a small VGG-style CNN, in the spirit of Sketch-a-Net at 28x28)."""

    size: int = 28  # bitmap side it sees: the official numpy_bitmap size
    channels: int = 16  # channels of the first block; the second has twice, the third four times
    feature_size: int = 64  # penultimate-layer width: the feature space of FID, KID, P/R
    dropout: float = 0.3  # drop probability before the classifier layer


@dataclass
class JudgeTraining:
    """How the judge is trained (on CPU in minutes on ~1,500 drawings per category)."""

    epochs: int = 8  # passes over the training split
    batch_size: int = 64  # images per step
    lr: float = 2e-3  # Adam's peak learning rate, decayed to 0 on a cosine over the run
    shift: int = 2  # training images move by up to this many pixels each way, afresh each epoch
    seed: int = 0  # the keyed split's seed (convert's --seed) and the run's randomness
    max_per_category: int = 0  # at most this many drawings of each category (0: all)
    max_reference: int = 10_000  # reference features kept per category (KID, P/R, D/C)


# --- data -------------------------------------------------------------------------------------


@dataclass
class CategoryData:
    """One category's drawings, split as `quickdraw convert` splits them."""

    category: str
    images: dict[str, np.ndarray]  # split -> uint8 (N, size, size)
    # split -> drawings in the simplified 0-255 space, row for row; None for a bitmap file
    drawings: dict[str, list] | None = None


def render_strokes(strokes: Sequence[np.ndarray], size: int = 28) -> np.ndarray:
    """Stroke-3 sketches ``(n, 3)`` -> uint8 ``(N, size, size)`` bitmaps, drawn as the official
    files are after `unit_drawing` puts each in the 0-255 space (as `grade serve` shows them)."""
    drawings = [unit_drawing(s) for s in strokes]
    return rasterize_many(drawings, size=size).reshape(len(drawings), size, size)


def _render(drawings: list, size: int) -> np.ndarray:
    return rasterize_many(drawings, size=size).reshape(len(drawings), size, size)


def _drawing_category(
    category: str, records: list[dict], seed: int, size: int, cap: int
) -> CategoryData:
    """One category's records split as convert splits them (the keyed split of every record),
    the raw drawings simplified as convert simplifies them, then drawn."""
    split = split_records(records, category, seed=seed)
    drawings = {}
    for name, rows in limit(split, cap).items():
        drawings[name] = [records[i]["drawing"] for i in rows]
        raw = [i for i, d in enumerate(drawings[name]) if is_raw(d)]
        for i, simple in zip(raw, simplify_drawings([drawings[name][i] for i in raw]), strict=True):
            drawings[name][i] = simple
    return CategoryData(category, {s: _render(d, size) for s, d in drawings.items()}, drawings)


def read_labelled(
    files: Sequence[str | os.PathLike],
    seed: int = 0,
    max_per_category: int = 0,
    size: int = 28,
    progress: bool = False,
) -> dict[str, CategoryData]:
    """Category -> its drawings, split train/valid/test as `quickdraw convert` would split them.

    files: drawings (ndjson, ``.ndjson.gz``, ``.bin``; the category is each record's ``word``,
        else the file's stem), sketch-rnn ``.npz`` files (their own splits; the stem names the
        category) or 28x28 bitmap ``.npy`` files (the split `convert` recorded beside the file,
        else the keyed split of the rows; the stem names the category).
    seed: the split's seed, as convert's ``--seed``.
    max_per_category: at most this many drawings per category (0: all), the same prefix of each
        split that the trainers take (`splits.limit`).
    """
    from tqdm import tqdm

    records: dict[str, list[dict]] = {}
    out: dict[str, CategoryData] = {}

    def claim(category: str, path: Path) -> None:
        if category in out or category in records:
            raise QuickDrawError(f"{path}: category {category!r} comes from two files")

    paths = [Path(f) for f in files]
    for path in paths:  # every file checked before any is read
        if file_kind(path) not in (*DRAWING_KINDS, "sketchrnn", "bitmap"):
            raise QuickDrawError(
                f"{path}: the judge trains on drawings ({suffix_list(*DRAWING_KINDS)}), sketch-rnn "
                f"files ({suffix_list('sketchrnn')}) or bitmaps ({suffix_list('bitmap')})"
            )
        if not path.is_file():
            raise QuickDrawError(f"data file {str(path)!r} not found")
    for path in tqdm(paths, desc="read", unit=" file", disable=not progress, leave=False):
        kind = file_kind(path)
        if kind in DRAWING_KINDS:
            for record in iter_drawings(path):
                if any(len(stroke[0]) for stroke in record["drawing"]):  # convert drops the rest
                    category = str(record.get("word") or file_stem(path))
                    if category in out:  # already read from a .npz or .npy file
                        claim(category, path)
                    records.setdefault(category, []).append(record)
        elif kind == "sketchrnn":
            category = file_stem(path)
            claim(category, path)
            arrays = load_sketchrnn_npz(path)
            split = Split({s: list(range(len(arrays[s]))) for s in SPLITS})
            drawings = {
                s: [unit_drawing(arrays[s][i]) for i in rows if len(arrays[s][i])]
                for s, rows in limit(split, max_per_category).items()
            }
            images = {s: _render(d, size) for s, d in drawings.items()}
            out[category] = CategoryData(category, images, drawings)
        else:  # bitmaps
            category = file_stem(path)
            claim(category, path)
            rows = load_bitmaps(path)
            if rows.shape[1] != size * size:
                raise QuickDrawError(f"{path}: rows of {rows.shape[1]} pixels, not {size}x{size}")
            split = read_sidecar(path, len(rows)) or split_bitmaps(rows, category, seed)
            images = {
                s: rows[np.asarray(ids, dtype=np.int64)].reshape(-1, size, size)
                for s, ids in limit(split, max_per_category).items()
            }
            out[category] = CategoryData(category, images)
    for category, rs in tqdm(
        records.items(), desc="render", unit=" category", disable=not progress, leave=False
    ):
        out[category] = _drawing_category(category, rs, seed, size, max_per_category)
    return dict(sorted(out.items()))


# --- the classifier ---------------------------------------------------------------------------


def _block(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]


class JudgeNet(nn.Module):
    """28x28 bitmap -> `feature_size` features (post-ReLU, as Inception's pool features are
    non-negative) -> class logits. Three conv blocks (28 -> 14 -> 7 -> global average)."""

    def __init__(self, config: JudgeConfig, classes: int):
        super().__init__()
        c = config.channels
        self.config = config
        self.body = nn.Sequential(
            *_block(1, c), *_block(c, c), nn.MaxPool2d(2),
            *_block(c, 2 * c), *_block(2 * c, 2 * c), nn.MaxPool2d(2),
            *_block(2 * c, 4 * c), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
            nn.Linear(4 * c, config.feature_size), nn.ReLU(),
        )  # fmt: skip
        self.head = nn.Sequential(
            nn.Dropout(config.dropout), nn.Linear(config.feature_size, classes)
        )

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 1, H, W) ink in [0, 1] -> (B, feature_size): the space the distances live in."""
        return self.body(images)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 1, H, W) ink in [0, 1] -> (B, classes) logits."""
        return self.head(self.features(images))


def _as_input(images: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(images)).to(device).float().div_(255).unsqueeze(1)


def random_shift(images: torch.Tensor, shift: int, generator: torch.Generator) -> torch.Tensor:
    """Each image of (B, 1, H, W) moved by its own whole-pixel offset in [-shift, shift]^2, the
    uncovered border black (the background)."""
    if shift == 0:
        return images
    b, _, h, w = images.shape
    padded = F.pad(images, (shift, shift, shift, shift))
    dy, dx = torch.randint(0, 2 * shift + 1, (2, b), generator=generator).to(images.device)
    rows = (dy[:, None] + torch.arange(h, device=images.device))[:, :, None]  # (B, H, 1)
    cols = (dx[:, None] + torch.arange(w, device=images.device))[:, None, :]  # (B, 1, W)
    batch = torch.arange(b, device=images.device)[:, None, None]
    return padded[batch, 0, rows, cols].unsqueeze(1)


def learning_rate(step: int, total: int, peak: float) -> float:
    """Cosine decay from `peak` at step 0 to 0 at step `total`."""
    return peak * 0.5 * (1 + math.cos(math.pi * min(step, total) / max(total, 1)))


def _digests(images: np.ndarray) -> torch.Tensor:
    """One int64 per image (8 bytes of BLAKE2b of its pixels): to spot a scored sketch that is
    a drawing the judge trained on or keeps as its reference."""
    flat = np.ascontiguousarray(images).reshape(len(images), -1)
    values = [
        int.from_bytes(hashlib.blake2b(r.tobytes(), digest_size=8).digest(), "little", signed=True)
        for r in flat
    ]
    return torch.tensor(values, dtype=torch.int64)


@dataclass
class Reference:
    """One category's real held-out features: what samples of that category are compared with."""

    mean: np.ndarray  # (D,) float64, over all the reference drawings
    cov: np.ndarray  # (D, D) float64, unbiased (ddof 1)
    features: np.ndarray  # (m, D) float64: all of them, or `max_reference` chosen at random
    n: int  # drawings the mean and covariance come from


@dataclass
class Judge:
    """A trained judge, ready to score: the network in eval mode and what it was trained with."""

    net: JudgeNet
    classes: list[str]
    references: dict[str, Reference]
    held_out: dict  # accuracy overall and per category on the splits it never trained on
    digests: dict[str, set[int]]  # "training" / "reference" -> digests of their bitmaps
    config: JudgeConfig
    train_config: JudgeTraining
    path: str = ""

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    @torch.no_grad()
    def embed(self, images: np.ndarray, batch_size: int = 500) -> tuple[np.ndarray, np.ndarray]:
        """uint8 (N, H, W) -> (features (N, D) float64, class probabilities (N, C) float64)."""
        s = self.config.size
        if images.ndim != 3 or images.shape[1:] != (s, s):
            raise QuickDrawError(f"the judge sees {s}x{s} bitmaps, got shape {images.shape}")
        feats, probs = [], []
        for start in range(0, len(images), batch_size):
            f = self.net.features(_as_input(images[start : start + batch_size], self.device))
            feats.append(f.double().cpu())
            probs.append(self.net.head(f).softmax(-1).double().cpu())
        if not feats:
            d = self.config.feature_size
            return np.zeros((0, d)), np.zeros((0, len(self.classes)))
        return torch.cat(feats).numpy(), torch.cat(probs).numpy()

    def seen(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """Which of the uint8 (N, H, W) bitmaps are, byte for byte, a drawing the judge trained
        on ("training") or keeps as its reference ("reference"): a bool (N,) array each."""
        digests = _digests(images).tolist()
        return {k: np.array([d in v for d in digests], bool) for k, v in self.digests.items()}


def train_judge(
    files: Sequence[str | os.PathLike],
    out: str | os.PathLike,
    config: JudgeConfig | None = None,
    training: JudgeTraining | None = None,
    device: str = "auto",
    progress: bool = True,
) -> dict:
    """Train a judge on `files` (see `read_labelled`), write it to `out`, return its summary.

    The judge trains on each category's train split only; its accuracy is measured on the
    valid and test splits, and the features of the valid split become the references. The
    summary (JSON-ready) holds the held-out accuracy overall and per category.
    """
    from tqdm import tqdm

    config = config or JudgeConfig()
    training = training or JudgeTraining()
    _check_settings(config, training)
    if Path(out).is_dir():
        raise QuickDrawError(f"{out} is a directory; give the judge file to write (.pt)")
    on = resolve_device(device)
    data = read_labelled(files, training.seed, training.max_per_category, config.size, progress)
    classes = list(data)
    if len(classes) < 2:
        raise QuickDrawError(
            f"a judge tells categories apart: give at least two, got {classes or 'none'}"
        )
    for c, d in data.items():
        sizes = {s: len(d.images[s]) for s in SPLITS}
        if sizes["train"] == 0 or sizes[REFERENCE_SPLIT] < 2:
            raise QuickDrawError(
                f"category {c!r} has {sizes['train']} training and {sizes[REFERENCE_SPLIT]} "
                f"{REFERENCE_SPLIT} drawings after the split; the judge needs at least 1 and 2 "
                "(give more drawings, or a larger --max-per-category)"
            )
    train_x = np.concatenate([data[c].images["train"] for c in classes])
    train_y = np.concatenate(
        [np.full(len(data[c].images["train"]), i) for i, c in enumerate(classes)]
    )
    torch.manual_seed(training.seed)
    generator = torch.Generator().manual_seed(training.seed)
    net = JudgeNet(config, len(classes)).to(on)
    optimizer = torch.optim.Adam(net.parameters(), lr=training.lr)
    x_all = torch.from_numpy(train_x)
    y_all = torch.from_numpy(train_y).long()
    per_epoch = math.ceil(len(train_x) / training.batch_size)
    total = training.epochs * per_epoch
    step = 0
    with tqdm(total=total, desc="train judge", unit=" step", disable=not progress) as bar:
        for epoch in range(training.epochs):
            net.train()
            order = torch.randperm(len(train_x), generator=generator)
            for start in range(0, len(order), training.batch_size):
                ids = order[start : start + training.batch_size]
                for group in optimizer.param_groups:
                    group["lr"] = learning_rate(step, total, training.lr)
                x = x_all[ids].to(on).float().div_(255).unsqueeze(1)
                x = random_shift(x, training.shift, generator)
                loss = F.cross_entropy(net(x), y_all[ids].to(on))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                step += 1
                bar.update()
                bar.set_postfix(epoch=epoch + 1, loss=f"{loss.item():.3f}")
    net.eval()
    judge = Judge(net, classes, {}, {}, {}, config, training)
    held_out, references = _held_out(judge, data, training)
    state = {
        "format_version": JUDGE_FORMAT,
        "kind": "judge",
        "config": asdict(config),
        "train_config": asdict(training),
        "weights": {k: v.detach().cpu() for k, v in net.state_dict().items()},
        "classes": classes,
        "reference": references,
        "held_out": held_out,
        "digests": {
            "training": _digests(train_x),
            "reference": _digests(
                np.concatenate([data[c].images[REFERENCE_SPLIT] for c in classes])
            ),
        },
        "files": [str(f) for f in files],
        "split_sizes": {c: {s: len(d.images[s]) for s in SPLITS} for c, d in data.items()},
    }
    save_checkpoint(Path(out), state)
    return {
        "judge": str(out),
        "classes": classes,
        "held_out": held_out,
        "split_sizes": state["split_sizes"],
    }


def _held_out(judge: Judge, data: dict[str, CategoryData], training: JudgeTraining):
    """(accuracy report, reference tensors) from the splits the judge never trained on."""
    per_category, references = {}, {}
    correct = count = 0
    rng = np.random.default_rng(training.seed)
    for i, (c, d) in enumerate(data.items()):
        images = np.concatenate([d.images[s] for s in HELD_OUT])
        feats, probs = judge.embed(images)
        right = int((probs.argmax(1) == i).sum())
        per_category[c] = {"accuracy": right / len(images), "n": len(images)}
        correct += right
        count += len(images)
        ref = feats[: len(d.images[REFERENCE_SPLIT])]  # HELD_OUT starts with the reference split
        kept = ref
        if len(ref) > training.max_reference:
            kept = ref[np.sort(rng.choice(len(ref), training.max_reference, replace=False))]
        references[c] = {
            "mean": torch.from_numpy(ref.mean(0)),
            "cov": torch.from_numpy(np.cov(ref, rowvar=False)),
            "features": torch.from_numpy(kept.astype(np.float32)),
            "n": len(ref),
        }
    accuracy = {"accuracy": correct / count, "n": count, "splits": list(HELD_OUT)}
    return {**accuracy, "per_category": per_category}, references


def _check_settings(config: JudgeConfig, training: JudgeTraining) -> None:
    positive = {
        "size": config.size,
        "channels": config.channels,
        "feature_size": config.feature_size,
        "epochs": training.epochs,
        "batch_size": training.batch_size,
        "max_reference": training.max_reference,
    }
    for name, value in positive.items():
        if value < 1:
            raise QuickDrawError(f"{name} must be >= 1, got {value}")
    if not 0 <= config.dropout < 1:
        raise QuickDrawError(f"dropout must be in [0, 1), got {config.dropout}")
    if training.lr <= 0:
        raise QuickDrawError(f"lr must be > 0, got {training.lr}")
    if training.shift < 0 or training.max_per_category < 0:
        raise QuickDrawError("shift and max_per_category must be >= 0")


# --- reading a judge back, without running anything -------------------------------------------


def read_judge(path: str | os.PathLike) -> dict:
    """The judge file's dict, loaded with ``weights_only=True`` and checked key by key."""
    path = Path(path)
    if not path.is_file():
        raise QuickDrawError(f"judge {str(path)!r} not found")
    state = load_safely(path, what="judge")
    if not isinstance(state, dict) or state.get("kind") != "judge":
        what = (
            f"a {state['model']} checkpoint" if isinstance(state, dict) and "model" in state else ""
        )
        raise QuickDrawError(
            f"{path} is {what or 'not a judge'}: make a judge with `quickdraw judge train`"
        )
    check_keys(state, path, JUDGE_KEYS)
    if state["format_version"] > JUDGE_FORMAT:
        raise QuickDrawError(
            f"{path} has judge format {state['format_version']}; this version reads up to "
            f"{JUDGE_FORMAT}: upgrade quickdraw-tools"
        )
    classes = state["classes"]
    if (
        len(classes) < 2
        or not all(isinstance(c, str) for c in classes)
        or len(set(classes)) != len(classes)
    ):
        raise QuickDrawError(f"{path} is not a usable judge: its classes are {classes!r}")
    if not all(isinstance(k, str) and torch.is_tensor(v) for k, v in state["weights"].items()):
        raise QuickDrawError(f"{path} is not a usable judge: 'weights' are not all tensors")
    d = state["config"].get("feature_size")
    for c in classes:
        ref = state["reference"].get(c)
        shapes = {"mean": (d,), "cov": (d, d)}
        good = isinstance(ref, dict) and isinstance(ref.get("n"), int) and ref["n"] >= 2
        good = good and all(torch.is_tensor(ref.get(k)) for k in ("mean", "cov", "features"))
        good = good and all(tuple(ref[k].shape) == s for k, s in shapes.items())
        good = good and ref["features"].ndim == 2 and ref["features"].shape[1] == d
        if not good:
            raise QuickDrawError(f"{path} is not a usable judge: no valid reference for {c!r}")
    for name in ("training", "reference"):
        digests = state["digests"].get(name)
        if not torch.is_tensor(digests) or digests.dtype != torch.int64 or digests.ndim != 1:
            raise QuickDrawError(f"{path} is not a usable judge: digests {name!r} are missing")
    return state


def load_judge(path: str | os.PathLike, device: str | torch.device = "cpu") -> Judge:
    """A judge file -> `Judge` on `device` (``auto`` picks CUDA when available)."""
    state = read_judge(path)
    config = config_from_dict(JudgeConfig, state["config"], path)
    training = config_from_dict(JudgeTraining, state["train_config"], path)
    net = JudgeNet(config, len(state["classes"]))
    load_weights(net, state["weights"], f"{path}: the weights do not fit its config")
    net.to(resolve_device(device) if isinstance(device, str) else device).eval()
    references = {
        c: Reference(
            mean=r["mean"].double().numpy(),
            cov=r["cov"].double().numpy(),
            features=r["features"].double().numpy(),
            n=r["n"],
        )
        for c, r in state["reference"].items()
        if c in state["classes"]
    }
    digests = {k: set(v.tolist()) for k, v in state["digests"].items()}
    return Judge(
        net,
        list(state["classes"]),
        references,
        state["held_out"],
        digests,
        config,
        training,
        str(path),
    )


# --- the distances ----------------------------------------------------------------------------


def _sqrt_psd(a: np.ndarray) -> np.ndarray:
    """The symmetric square root of a symmetric positive semi-definite matrix."""
    w, v = np.linalg.eigh((a + a.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_distance(mu1: np.ndarray, cov1: np.ndarray, mu2: np.ndarray, cov2: np.ndarray) -> float:
    """Fréchet (2-Wasserstein) distance squared between N(mu1, cov1) and N(mu2, cov2):
    |mu1 - mu2|^2 + tr(cov1 + cov2 - 2 (cov1 cov2)^(1/2)).

    tr((cov1 cov2)^(1/2)) is the sum of the square roots of the eigenvalues of
    cov1^(1/2) cov2 cov1^(1/2), a symmetric PSD matrix similar to cov1 cov2, so no general
    (complex) matrix square root is needed and singular covariances are fine.
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    cov1, cov2 = np.atleast_2d(cov1).astype(np.float64), np.atleast_2d(cov2).astype(np.float64)
    if mu1.shape != mu2.shape or cov1.shape != cov2.shape or cov1.shape != (len(mu1), len(mu1)):
        raise QuickDrawError(
            f"frechet_distance: shapes do not match: {mu1.shape}, {cov1.shape}, "
            f"{mu2.shape}, {cov2.shape}"
        )
    root = _sqrt_psd(cov1)
    middle = root @ cov2 @ root
    trace_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0, None)).sum()
    value = float(((mu1 - mu2) ** 2).sum() + np.trace(cov1) + np.trace(cov2) - 2 * trace_sqrt)
    return max(value, 0.0)  # rounding can leave -1e-12 for equal Gaussians


def feature_fid(features: np.ndarray, reference: Reference) -> float:
    """FID of (n, D) features against a reference's mean and covariance (needs n >= 2)."""
    if len(features) < 2:
        raise QuickDrawError(f"FID needs at least 2 sketches, got {len(features)}")
    return frechet_distance(
        features.mean(0), np.cov(features, rowvar=False), reference.mean, reference.cov
    )


def polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """k(x, y) = (x.y / d + 1)^3 for rows of (m, d) and (n, d): (m, n)."""
    return (x @ y.T / x.shape[1] + 1) ** 3


def kernel_inception_distance(
    x: np.ndarray,
    y: np.ndarray,
    subset_size: int = 1000,
    subsets: int = 100,
    rng: np.random.Generator | None = None,
) -> float:
    """Unbiased MMD^2 between the rows of x (m, d) and y (n, d) with `polynomial_kernel`:

        1/(m(m-1)) sum_{i!=j} k(x_i, x_j) + 1/(n(n-1)) sum_{i!=j} k(y_i, y_j)
            - 2/(mn) sum_{i,j} k(x_i, y_j).

    As Bińkowski et al. compute it: on all rows when both sets have at most `subset_size`,
    else averaged over `subsets` random subsets of `subset_size` rows of each (`rng`).
    """
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if len(x) < 2 or len(y) < 2 or x.shape[1] != y.shape[1]:
        raise QuickDrawError(
            f"KID needs two sets of >= 2 rows of one width, got {x.shape}, {y.shape}"
        )

    def mmd2(a: np.ndarray, b: np.ndarray) -> float:
        m, n = len(a), len(b)
        kaa, kbb = polynomial_kernel(a, a), polynomial_kernel(b, b)
        within_a = (kaa.sum() - np.trace(kaa)) / (m * (m - 1))
        within_b = (kbb.sum() - np.trace(kbb)) / (n * (n - 1))
        return float(within_a + within_b - 2 * polynomial_kernel(a, b).mean())

    if max(len(x), len(y)) <= subset_size:
        return mmd2(x, y)
    rng = rng if rng is not None else np.random.default_rng(0)
    size = min(subset_size, len(x), len(y))
    values = [
        mmd2(x[rng.choice(len(x), size, replace=False)], y[rng.choice(len(y), size, replace=False)])
        for _ in range(subsets)
    ]
    return float(np.mean(values))


def _distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distances between the rows of a (m, d) and b (n, d): (m, n)."""
    squared = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T
    return np.sqrt(np.clip(squared, 0, None))


def _blocks(rows: int, columns: int) -> list[slice]:
    """Row ranges of an (rows, columns) distance matrix, each at most `MAX_DISTANCES` cells."""
    step = max(1, MAX_DISTANCES // max(columns, 1))
    return [slice(s, min(s + step, rows)) for s in range(0, rows, step)]


def _knn_radii(points: np.ndarray, k: int) -> np.ndarray:
    """Each point's distance to its k-th nearest other point: (m,)."""
    out = np.empty(len(points))
    for b in _blocks(len(points), len(points)):
        d = _distances(points[b], points)
        rows = np.arange(b.stop - b.start)
        d[rows, rows + b.start] = np.inf  # a point is not its own neighbour
        out[b] = np.partition(d, k - 1, axis=1)[:, k - 1]
    return out


def _ball_counts(queries: np.ndarray, points: np.ndarray, radii: np.ndarray) -> np.ndarray:
    """How many of the closed balls (points[j], radii[j]) hold each query: int (n,)."""
    out = np.empty(len(queries), dtype=np.int64)
    for b in _blocks(len(queries), len(points)):
        out[b] = (_distances(queries[b], points) <= radii[None, :]).sum(1)
    return out


def _balls_hit(points: np.ndarray, radii: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Whether each closed ball (points[i], radii[i]) holds at least one query: bool (m,)."""
    out = np.empty(len(points), dtype=bool)
    for b in _blocks(len(points), len(queries)):
        out[b] = (_distances(points[b], queries) <= radii[b, None]).any(1)
    return out


def _point_sets(real: np.ndarray, fake: np.ndarray, k: int, what: str) -> tuple:
    real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    if k < 1:
        raise QuickDrawError(f"{what} need k >= 1, got {k}")
    if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
        raise QuickDrawError(
            f"{what} need two sets of rows of one width, got {real.shape} and {fake.shape}"
        )
    if len(real) <= k or len(fake) <= k:
        raise QuickDrawError(
            f"{what} with k={k} need more than {k} points in each set, "
            f"got {len(real)} real and {len(fake)} generated"
        )
    return real, fake


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int = K_NEAREST) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019) of `fake` (n, d) against `real`
    (m, d): precision is the fraction of fake points inside the real manifold (the union of
    balls around each real point reaching its k-th nearest real neighbour); recall the fraction
    of real points inside the fake manifold. Both sets need more than k points."""
    real, fake = _point_sets(real, fake, k, "precision/recall")
    precision = (_ball_counts(fake, real, _knn_radii(real, k)) > 0).mean()
    recall = (_ball_counts(real, fake, _knn_radii(fake, k)) > 0).mean()
    return float(precision), float(recall)


def density_coverage(real: np.ndarray, fake: np.ndarray, k: int = K_NEAREST) -> tuple[float, float]:
    """Density and coverage (Naeem et al. 2020) of `fake` (N, d) against `real` (M, d), with
    B_i the closed ball around real point i reaching its k-th nearest real neighbour (the
    balls of `precision_recall`'s real manifold):

        density  = 1/(kN) sum_j #{i : fake_j in B_i}
        coverage = 1/M #{i : some fake_j in B_i}

    Unlike precision, density counts the balls: a sample that only a lone outlying real
    point's wide ball reaches adds 1/k, where a real-like sample lies in about k balls (a tight
    group of more than k outlying points still reaches it k times or more: a larger k helps).
    Unlike recall, coverage draws no balls around the samples, so outlying samples cannot
    stretch them over real points. For two samples of one distribution E[density] = 1 and
    E[coverage] = 1 - prod_{i<k} (M-1-i) / (M+N-1-i), which is 1 - 2^-k (0.875 at k = 3) when
    M = N is large. Density is not bounded by 1. One sketch repeated N times covers only the
    balls that hold it, k/M on average."""
    real, fake = _point_sets(real, fake, k, "density/coverage")
    radii = _knn_radii(real, k)
    density = _ball_counts(fake, real, radii).sum() / (k * len(fake))
    coverage = _balls_hit(real, radii, fake).mean()
    return float(density), float(coverage)


# --- scribbles and erased drawings: what the judge must tell from real drawings ---------------


def scribble(
    rng: np.random.Generator, strokes: tuple[int, int] = (1, 6), points: tuple[int, int] = (5, 30)
) -> list[list[list[int]]]:
    """A random-walk drawing in the simplified 0-255 space (ints, the larger side 0-255).

    Between strokes[0] and strokes[1] strokes (inclusive), each a Gaussian random walk of
    points[0] to points[1] points starting somewhere random; then aligned and scaled as Google's
    simplification does.
    """
    walks = []
    for _ in range(int(rng.integers(strokes[0], strokes[1] + 1))):
        start = rng.uniform(0, 20, size=2)
        steps = rng.normal(0, 1, size=(int(rng.integers(points[0], points[1] + 1)), 2))
        walks.append(start + np.cumsum(steps, axis=0))
    xy = np.concatenate(walks)
    low, extent = xy.min(0), max(float(np.ptp(xy, axis=0).max()), 1e-9)
    drawing = []
    for w in walks:
        p = np.rint((w - low) * 255 / extent).astype(int)
        drawing.append([p[:, 0].tolist(), p[:, 1].tolist()])
    return drawing


def erase_every_other_stroke(drawing: Sequence) -> list:
    """The drawing with its 2nd, 4th, ... strokes removed (the 1st is kept, so never empty)."""
    return list(drawing[::2])


# --- scoring ----------------------------------------------------------------------------------


@dataclass
class Row:
    """Sketches to score together: one source's sketches that claim one category."""

    source: str
    category: str
    images: np.ndarray  # uint8 (N, size, size)
    notes: list[str] = field(default_factory=list)
    # (N,) bool: a blank sketch (empty, one point, no ink) is scored as not recognised,
    # whatever the classifier makes of its empty canvas; None: none is blank
    blank: np.ndarray | None = None

    def blanks(self) -> np.ndarray:
        return np.zeros(len(self.images), bool) if self.blank is None else self.blank


def _chosen(size: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """`n` of `size` rows at random, in order (all of them when there are no more than `n`)."""
    if size <= n:
        return np.arange(size)
    return np.sort(rng.choice(size, n, replace=False))


def _subsample(images: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    return images[_chosen(len(images), n, rng)]


def nearest_neighbour_scores(
    reference: np.ndarray, features: np.ndarray, rng: np.random.Generator, k: int = K_NEAREST
) -> dict[str, Any]:
    """Precision, recall, density and coverage of sample features (n, D) against reference
    features (m, D), both sets cut to the smaller size (rows chosen with `rng`, the reference
    first): recall and coverage depend on the ratio of the two sizes, so they are taken at
    one. Also ``n``, that size."""
    size = min(len(reference), len(features))
    real, fake = _subsample(reference, size, rng), _subsample(features, size, rng)
    precision, recall = precision_recall(real, fake, k)
    density, coverage = density_coverage(real, fake, k)
    return {
        "n": size, "precision": precision, "recall": recall, "density": density,
        "coverage": coverage,
    }  # fmt: skip


FEATURE_SPACE_RULE = (
    "Precision and recall (Kynkäänniemi et al. 2019), density and coverage (Naeem et al. 2020) "
    f"in the judge's feature space, k = {K_NEAREST}, each row's sketches against as many of its "
    "category's reference drawings (chosen at random). Fidelity: precision is the share of "
    "sketches inside some real drawing's ball (reaching its k-th nearest real neighbour); "
    "density is how many balls hold each sketch, over k: about 1 for real drawings, 1/k for a "
    "sketch that only a lone outlying real drawing's wide ball reaches, which precision counts "
    "in full. Diversity: recall is the share of real drawings inside some sketch's ball; "
    "coverage is the share of real drawings' balls holding a sketch: about "
    f"{1 - 2.0**-K_NEAREST:.2f} for real drawings, about k/n for a model that repeats one sketch"
)


def feature_space_scores(
    judge: Judge, categories: Sequence[str], features: np.ndarray, rng: np.random.Generator
) -> dict[str, Any]:
    """A grading report row's `nearest_neighbour_scores` (keys ``feature_n``, ``precision``,
    ``recall``, ``density``, ``coverage``): its sketches' features (n, D), each claiming
    ``categories[i]``, against their category's reference. Undefined (NaN, ``feature_n`` 0)
    unless every sketch claims one category the judge knows and there are more than k of them
    (a row of several categories has its categories' own rows)."""
    claimed = set(categories)
    reference = judge.references.get(claimed.pop()) if len(claimed) == 1 else None
    if reference is None or min(len(features), len(reference.features)) <= K_NEAREST:
        return {"feature_n": 0, **dict.fromkeys(NEAREST_NEIGHBOUR_SCORES, math.nan)}
    near = nearest_neighbour_scores(reference.features, features, rng)
    return {"feature_n": near["n"], **{m: near[m] for m in NEAREST_NEIGHBOUR_SCORES}}


def score_rows(
    judge: Judge, rows: Sequence[Row], n: int = 1000, seed: int = 0, k: int = K_NEAREST
) -> dict:
    """Recognizability, FID, KID, precision, recall, density and coverage of each row (see the
    module doc).

    Every row of a known category is scored on the same number of sketches: the smallest of
    `n`, each such row's size and each of their references' sizes, chosen at random (`seed`).
    A row whose category is not one of the judge's classes gets only what the judge predicts
    for it; its scores are undefined (None), and its note says why.
    """
    from .grading.report import wilson_interval  # here: the grading report may import the judge

    if n < 1:
        raise QuickDrawError(f"n must be >= 1, got {n}")
    if not rows:
        raise QuickDrawError("nothing to score")
    known = [r for r in rows if r.category in judge.references]
    common = min(
        [n] + [len(r.images) for r in known] + [judge.references[r.category].n for r in known]
    )
    if known and common <= k:
        small = min(known, key=lambda r: min(len(r.images), judge.references[r.category].n))
        raise QuickDrawError(
            f"{small.source} ({small.category!r}) leaves {common} sketches to score (its own or "
            f"its reference's count); scoring needs more than {k} (the nearest-neighbour k)"
        )
    out = []
    for row in rows:
        scored = row.category in judge.references
        # a row's draws come from the seed and the row alone: its scores never depend on
        # which other rows are scored beside it
        rng = source_rng(seed, "score", row.source, row.category)
        keep = _chosen(len(row.images), common if scored else n, rng)
        images, blank = row.images[keep], row.blanks()[keep]
        feats, probs = judge.embed(images)
        top = probs.argmax(1)
        predicted = Counter(judge.classes[i] for i in top)
        seen = judge.seen(images)
        result: dict[str, Any] = {
            "source": row.source,
            "category": row.category,
            "n": len(images),
            "blank": int(blank.sum()),
            "recognizability": None,
            "recognizability_ci95": None,
            "fid": None,
            "kid": None,
            "precision": None,
            "recall": None,
            "density": None,
            "coverage": None,
            "predicted": {c: m / len(images) for c, m in predicted.most_common(3)},
            "in_training": int(seen["training"].sum()),
            "in_reference": int(seen["reference"].sum()),
            "notes": list(row.notes),
        }
        if result["blank"]:
            result["notes"].append(
                f"{result['blank']} of these {len(images)} sketches are blank (empty, one point "
                "or no ink): each is counted as not recognised, and scored as the blank canvas "
                "it is by FID, KID and the nearest-neighbour scores"
            )
        if scored:
            reference = judge.references[row.category]
            right = int(((top == judge.classes.index(row.category)) & ~blank).sum())
            near = nearest_neighbour_scores(reference.features, feats, rng, k)
            result.update(
                {m: near[m] for m in NEAREST_NEIGHBOUR_SCORES},
                recognizability=right / len(images),
                recognizability_ci95=list(wilson_interval(right, len(images))),
                fid=feature_fid(feats, reference),
                kid=kernel_inception_distance(feats, reference.features, rng=rng),
            )
        else:
            why = "; a model of several categories claims none" if row.category == MIXED else ""
            result["notes"].append(
                f"category {row.category!r} is not one of the judge's classes "
                f"({', '.join(judge.classes)}){why}: recognizability, FID, KID, precision, "
                "recall, density and coverage are undefined"
            )
        if result["in_training"] or result["in_reference"]:
            result["notes"].append(
                f"of these {len(images)} sketches, "
                f"{count_is(result['in_training'], 'a drawing', 'drawings')} the judge trained on "
                f"and {count_is(result['in_reference'])} in its reference: scores flatter them"
            )
        out.append(result)
    sizes = {c: judge.references[c].n for c in dict.fromkeys(r.category for r in known)}
    return {
        "judge": judge.path,
        "classes": judge.classes,
        "held_out_accuracy": judge.held_out.get("accuracy"),
        "n": common if known else None,
        "k": k,
        "reference_sizes": sizes,
        "fid_note": _fid_note(common, sizes) if known else "no source claims a judge class",
        "sources": out,
    }


def _fid_note(n: int, reference_sizes: dict[str, int]) -> str:
    values = sorted(set(reference_sizes.values()))
    sizes = str(values[0]) if len(values) == 1 else f"{values[0]}-{values[-1]}"
    return (
        "FID is biased upwards at finite n (about a constant over n, which differs between "
        f"models): compare FIDs only at the same n and reference. Every row here is scored on "
        f"n = {n} sketches against its category's reference ({sizes} drawings). KID is unbiased."
    )


def source_rows(
    sources: Sequence[str],
    n: int,
    seed: int,
    size: int = 28,
    temperature: float = SAMPLING_TEMPERATURE,
    device: str = "cpu",
    progress: bool = False,
) -> list[Row]:
    """The rows of SOURCE arguments as `grade serve` reads them (`grading.sources`): one row per
    (source, category), strokes drawn by the official renderer, checkpoints sampled `n` times.

    Each source is read, chosen from and sampled with `source_rng` (`seed` and that source
    alone). Every sketch is kept, the blank ones too (`Row.blank`)."""
    from tqdm import tqdm

    from .grading.sources import parse_source, read_source

    specs = [parse_source(s) for s in sources]  # every argument checked before any work
    rows = []
    for spec in tqdm(specs, desc="read sources", unit=" source", disable=not progress, leave=False):
        count = n if spec.kind == "checkpoint" else None
        rng = source_rng(seed, "judge", str(spec))
        sketches = read_source(spec, str(spec), count, rng, temperature, device)
        by_category: dict[str, list] = {}
        for s in sketches:
            by_category.setdefault(s.category, []).append(s)
        for category, group in by_category.items():
            shapes = {s.image.shape for s in group if s.image is not None} - {(size, size)}
            if shapes:
                raise QuickDrawError(
                    f"source {spec}: its bitmaps are {'x'.join(map(str, shapes.pop()))}; the judge "
                    f"sees {size}x{size} bitmaps"
                )
            images = np.zeros((len(group), size, size), np.uint8)
            drawn = [i for i, s in enumerate(group) if s.strokes is not None]
            if drawn:
                images[drawn] = render_strokes([group[i].strokes for i in drawn], size)
            for i, s in enumerate(group):
                if s.image is not None:
                    images[i] = s.image
            blank = np.array([s.blank for s in group], dtype=bool)
            rows.append(Row(str(spec), category, images, blank=blank))
    return rows


def score_sources(
    judge_path: str | os.PathLike,
    sources: Sequence[str],
    n: int = 1000,
    seed: int = 0,
    temperature: float = SAMPLING_TEMPERATURE,
    device: str = "auto",
    progress: bool = True,
) -> dict:
    """Score SOURCE arguments (files or checkpoints, as `grade serve` takes) with a judge."""
    if n < 1:
        raise QuickDrawError(f"--n must be >= 1, got {n}")
    if not sources:
        raise QuickDrawError("give at least one SOURCE to score")
    judge = load_judge(judge_path, device)
    on = "cuda" if judge.device.type == "cuda" else "cpu"
    rows = source_rows(sources, n, seed, judge.config.size, temperature, on, progress)
    report = score_rows(judge, rows, n=n, seed=seed)
    report["temperature"] = temperature
    report["seed"] = seed
    return report


# --- tables -----------------------------------------------------------------------------------


def _number(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def text_table(lines: Sequence[Sequence[str]], left: int = 1) -> str:
    """Rows of cells as aligned text: the first `left` columns to the left, the rest right."""
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    return "\n".join(
        "  ".join(
            c.ljust(w) if i < left else c.rjust(w)
            for i, (c, w) in enumerate(zip(line, widths, strict=True))
        ).rstrip()
        for line in lines
    )


def format_scores(report: dict) -> str:
    """The scores as a table, then the notes (FID's dependence on n, undefined rows)."""
    lines = [
        [
            "source", "category", "n", "blank", "recognised (95% CI)", "FID", "KID",
            "precision", "recall", "density", "coverage",
        ]
    ]  # fmt: skip
    notes = []
    for r in report["sources"]:
        recognised = "-"
        if r["recognizability"] is not None:
            lo, hi = r["recognizability_ci95"]
            recognised = f"{100 * r['recognizability']:.1f}% ({100 * lo:.0f}-{100 * hi:.0f})"
        lines.append([
            r["source"], r["category"], str(r["n"]), str(r.get("blank", 0)), recognised,
            _number(r["fid"]),
            _number(r["kid"], 3), _number(r["precision"]), _number(r["recall"]),
            _number(r["density"]), _number(r["coverage"]),
        ])  # fmt: skip
        notes += [f"{r['source']} ({r['category']}): {note}" for note in r["notes"]]
    return text_table(lines, left=2) + "".join(f"\nnote: {n}" for n in [*notes, report["fid_note"]])


def format_training(summary: dict) -> str:
    """The held-out accuracy of a freshly trained judge, per category and overall."""
    held = summary["held_out"]
    sizes = summary["split_sizes"]
    lines = [["category", "train", "held out", "accuracy"]]
    for c, r in held["per_category"].items():
        lines.append([c, str(sizes[c]["train"]), str(r["n"]), f"{100 * r['accuracy']:.1f}%"])
    train = sum(s["train"] for s in sizes.values())
    lines.append(["all", str(train), str(held["n"]), f"{100 * held['accuracy']:.1f}%"])
    return text_table(lines)
