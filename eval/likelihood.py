"""Held-out likelihood of trained models: the training bound and an importance-weighted one.

`evaluate_checkpoint` runs a checkpoint over one split of the files
`quickdraw convert` writes, per category and overall, through the model's own
`forward(..., reduction="none")`: the numbers are the training losses, not a
second implementation of them.

- sketch-rnn: L_R and L_KL with the paper's definitions (Ha & Eck 2018, eqs.
  9-10: L_R is divided by N_max, L_KL by N_z), so they compare with its Table 1.
- DRAW: L_x, L_z and L_x + L_z in nats per image (Gregor et al. 2015, eqs.
  9-12), and the same bound in bits per pixel.

Both models are VAEs, so both also get the importance-weighted bound of Burda
et al. (2016) with k samples from the encoder:

    log p(x) >= E[ log (1/k) sum_j p(x, z_j) / q(z_j | x) ]

in nats per example. With k = 1 its expectation is the ELBO (the training
bound); it tightens as k grows, so checkpoints can be compared by an estimate
of their negative log-likelihood. The per-sample log weights come from the
model's `log_importance_weight(batch) -> (B,)`, which uses the same encoder,
decoder and likelihood as `forward`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch.utils.data import DataLoader, Dataset

from ..errors import QuickDrawError, check_choice
from ..formats import file_stem
from ..models.base import LOG_PX
from ..splits import SPLITS
from .labels import path_labels

if TYPE_CHECKING:
    from ..models.base import Losses


@dataclass
class Totals:
    """Running sums over examples of one category."""

    n: int = 0
    recon: float = 0.0
    kl: float = 0.0
    iw: float = 0.0  # importance-weighted bound on -log p(x), nats per example
    # per-example figures a model reports beside its loss terms (sketch-rnn: magenta's own)
    extra: dict[str, float] = field(default_factory=dict)

    def add(self, losses: Losses, iw: torch.Tensor) -> None:
        recon = losses.recon
        self.n += len(recon)
        self.recon += float(recon.double().sum())
        self.kl += float(losses.kl.double().sum())
        self.iw += float(iw.double().sum())
        for name, value in losses.extra.items():
            if value.shape == recon.shape and not name.startswith("_"):
                self.extra[name] = self.extra.get(name, 0.0) + float(value.double().sum())

    def merge(self, other: Totals) -> None:
        self.n += other.n
        self.recon += other.recon
        self.kl += other.kl
        self.iw += other.iw
        for name, value in other.extra.items():
            self.extra[name] = self.extra.get(name, 0.0) + value


def importance_weighted_nll(model: torch.nn.Module, batch, k: int) -> torch.Tensor:
    """-log (1/k) sum_j w_j per example, (B,), from k calls of the model's log weight."""
    if k < 1:
        raise QuickDrawError(f"k (importance samples) must be >= 1, got {k}")
    log_w = torch.stack([model.log_importance_weight(batch) for _ in range(k)])  # (k, B)
    return -(torch.logsumexp(log_w.double(), dim=0) - math.log(k))


def _category_datasets(model, data_state: dict, files: Sequence[Path], split: str, settings):
    """[(category, dataset)] for one split of the given files, prepared as in training.

    Each file is one category; the model builds its datasets itself, with the data state
    and settings of the training run (so DRAW holds out the rows it held out, binarised
    alike, and sketch-rnn uses the training scale factor).
    """
    out = []
    for path in files:
        data = type(model).build_datasets(model.config, [path], settings, state=data_state)
        out.append((file_stem(path), getattr(data, split)))
    return out


def _summarise(model, t: Totals, data_state: dict) -> dict:
    """Means of one category (or all) with the model's own names for the terms."""
    if t.n == 0:
        return {"n": 0}
    terms = model.report_terms(t.recon / t.n, t.kl / t.n, t.iw / t.n, data_state)
    return {"n": t.n, **terms, **{name: value / t.n for name, value in t.extra.items()}}


@torch.no_grad()
def evaluate_checkpoint(
    checkpoint: str | os.PathLike,
    files: Sequence[str | os.PathLike],
    split: str = "test",
    k: int = 1,
    batch_size: int = 100,
    device: str = "cpu",
    seed: int = 0,
    progress: bool = True,
) -> dict:
    """Likelihood report of one checkpoint on `split` of `files` (see module doc).

    Returns a JSON-ready dict: checkpoint, model, split, k, and per category
    and "overall" the model's loss terms and the importance-weighted bound.
    """
    from tqdm import tqdm

    from ..models.trainer import checkpoint_settings, load_checkpoint, to_device

    check_choice("split", split, SPLITS)
    if k < 1:
        raise QuickDrawError(f"k (importance samples) must be >= 1, got {k}")
    if batch_size < 1:
        raise QuickDrawError(f"batch_size must be >= 1, got {batch_size}")
    files = [Path(f) for f in files]
    for f in files:
        if not f.is_file():
            raise QuickDrawError(f"data file {str(f)!r} not found")
    model, data_state, ckpt = load_checkpoint(checkpoint, device)
    torch.manual_seed(seed)
    categories: dict[str, Totals] = {}
    datasets: list[tuple[str, Dataset]] = _category_datasets(
        model, data_state, files, split, checkpoint_settings(ckpt)
    )
    total = sum(len(d) for _, d in datasets)
    on = next(model.parameters()).device  # where load_checkpoint put the model
    with tqdm(total=total, unit="example", desc=f"evaluate {split}", disable=not progress) as bar:
        for category, dataset in datasets:
            t = categories.setdefault(category, Totals())
            for batch in DataLoader(dataset, batch_size=batch_size, shuffle=False):
                batch = to_device(batch, on)
                losses = model(batch, step=None, reduction="none")
                # a model without latent variables gives log p(x) itself: no samples needed
                exact = losses.extra.get(LOG_PX)
                iw = -exact if exact is not None else importance_weighted_nll(model, batch, k)
                t.add(losses, iw)
                bar.update(len(losses.recon))
    overall = Totals()
    for t in categories.values():
        overall.merge(t)
    if overall.n == 0:
        raise QuickDrawError(f"the {split} split of {[str(f) for f in files]} is empty")
    return {
        "checkpoint": str(checkpoint),
        "model": model.name,
        "step": ckpt.get("step"),
        "split": split,
        "k": k,
        "categories": {c: _summarise(model, t, data_state) for c, t in categories.items()},
        "overall": _summarise(model, overall, data_state),
    }


def format_table(reports: Sequence[dict]) -> str:
    """One readable table for one or more reports (rows: checkpoint x category)."""
    rows = []
    labels = path_labels([rep["checkpoint"] for rep in reports])
    for rep, run in zip(reports, labels, strict=True):
        for name, values in [*rep["categories"].items(), ("overall", rep["overall"])]:
            rows.append((run, name, values))
    keys = [k for k in rows[0][2] if k not in ("n", "note")] if rows else []
    header = ["run", "category", "n", *keys]
    lines = [header]
    for run, name, values in rows:
        cells = [f"{values[k]:.4f}" if k in values else "" for k in keys]
        lines.append([run, name, str(values["n"]), *cells])
    widths = [max(len(r[i]) for r in lines) for i in range(len(header))]
    text = "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in lines)
    notes = {rep["overall"].get("note") for rep in reports} - {None}
    return text + "".join(f"\nnote: {n}" for n in sorted(notes))
