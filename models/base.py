"""The contract between the models and the shared trainer.

Every model module (`models/sketch_rnn.py`, `models/draw.py`) provides:

- a config dataclass (paper defaults, a comment on every field);
- a `torch.nn.Module` subclass with class attributes `name` (the registry key,
  "sketch-rnn" or "draw") and `config_class`, built as `Model(config)`, whose
  `forward(batch, step=None, reduction="mean")` returns `Losses`;
- `build_datasets(config, files, seed) -> DataBundle`: train/valid/test
  datasets built from the files `quickdraw convert` writes, plus the state
  derived from the *training* split only (e.g. sketch-rnn's scale factor) that
  must travel inside the checkpoint.

The trainer (`models/trainer.py`) knows nothing else about a model.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils.data import Dataset

from ..errors import check_choice

# registry key -> module that defines the model, imported on first use
MODEL_MODULES = {"sketch-rnn": ".sketch_rnn", "draw": ".draw"}


@dataclass
class Losses:
    """Loss terms of one batch, in nats.

    With reduction="none", `recon` and `kl` are per example, shape (B,); with
    "mean" they are batch means. `total` is always the scalar the optimiser
    minimises (it may weight or floor the KL term, so it need not equal
    recon + kl).
    """

    recon: torch.Tensor
    kl: torch.Tensor
    total: torch.Tensor
    extra: dict[str, torch.Tensor] = field(default_factory=dict)  # e.g. kl_weight


@dataclass
class DataBundle:
    train: Dataset
    valid: Dataset
    test: Dataset
    state: dict[str, Any]  # from the training split only; saved in checkpoints


def model_module(name: str):
    """The module that defines model `name` ("sketch-rnn" or "draw")."""
    check_choice("model", name, MODEL_MODULES)
    return importlib.import_module(MODEL_MODULES[name], __package__)
