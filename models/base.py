"""The contract between the models, the shared trainer and evaluation.

A model is a class that keeps the `GenerativeModel` protocol below; the
registry `MODELS` names the two there are. The trainer
(`quickdraw_tools.models.trainer`), the likelihood report
(`quickdraw_tools.eval.likelihood`), the grading sources and the `quickdraw`
commands talk to a model only through this protocol: none of them asks which
model it holds.
"""

from __future__ import annotations

import hashlib
import importlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import QuickDrawError, check_choice
from ..workers import usable_cores
from . import SAMPLING_TEMPERATURE

if TYPE_CHECKING:
    from .trainer import TrainConfig

# registry key -> (module, class), imported on first use
MODELS = {"sketch-rnn": (".sketch_rnn", "SketchRNN"), "draw": (".draw", "Draw")}


# the `Losses.extra` entry in which a model without latent variables (an unconditional
# sketch-rnn) gives log p(x) per example, exactly, when evaluating; evaluation then needs no
# importance samples. Extras named with "_" are not reported as loss terms.
LOG_PX = "_log_px"


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
    # examples of each split the model's own filter left out (sketch-rnn: longer than N_max),
    # split -> count, and why, as a phrase ("sketches longer than N_max = 250 points")
    dropped: dict[str, int] = field(default_factory=dict)
    dropped_why: str = ""

    def read_count(self, split: str) -> int:
        """Examples of `split` read before the model's filter (so "3 of 1,480" can be said)."""
        return len(getattr(self, split)) + self.dropped.get(split, 0)


class GenerativeModel(Protocol):
    """What every model provides (`SketchRNN`, `Draw`).

    Class attributes:
        name: the registry key ("sketch-rnn", "draw"), saved in checkpoints.
        config_class: the model's config dataclass (the architecture and its
            loss; paper defaults, a comment on every field).
        settings_class: its training settings, `TrainConfig` or a subclass of
            it with the model's own defaults and data settings (DRAW: RMSprop,
            constant learning rate, binarisation). Fields of both become
            ``quickdraw train`` flags.
        output: "strokes" (samples are stroke-3 arrays) or "bitmap" (uint8 images).
        sample_modes: the ``quickdraw sample --mode`` values it supports.
        presets (optional): name -> {field: value} over both dataclasses, the
            ``quickdraw train --preset`` choices; ``default_preset`` names the one a
            new run gets without ``--preset`` (DRAW: "ours"; the dataclasses keep
            the paper's values, so Python callers get those unless they ask).

    A settings class may name, in ``inherited`` (a ClassVar tuple), settings
    that a run started from another checkpoint's weights (``--init-from``)
    takes from that checkpoint's data state rather than from its new data
    (sketch-rnn: ``scale_factor``, the units its weights were trained in).

    Data flows one way: `build_datasets` reads the files ``quickdraw convert``
    writes and returns datasets whose batches `forward` and
    `log_importance_weight` take as they are.
    """

    name: ClassVar[str]
    config_class: ClassVar[type]
    settings_class: ClassVar[type[TrainConfig]]
    output: ClassVar[str]
    sample_modes: ClassVar[tuple[str, ...]]
    config: Any

    @classmethod
    def build_datasets(
        cls,
        config: Any,
        files: Sequence[str | Path],
        settings: TrainConfig,
        state: dict | None = None,
    ) -> DataBundle:
        """Train/valid/test datasets from data files (one category per file).

        The splits are the ones `quickdraw_tools.splits` made (or makes, keyed
        by the same seed, for files that carry none). Without `state`, the data
        state (e.g. sketch-rnn's scale factor) is derived from the training
        split; with the `state` of a trained model, that state is used and
        every split is prepared for evaluation (no augmentation, fixed targets).
        """
        ...

    def forward(self, batch: Any, step: int | None = None, reduction: str = "mean") -> Losses:
        """The training loss terms of a batch; ``step=None`` means evaluation (no annealing)."""
        ...

    def log_importance_weight(self, batch: Any) -> torch.Tensor:
        """log p(x, z) - log q(z | x) per example, (B,), at one fresh z ~ q(z | x)."""
        ...

    def configure_optimizer(self, settings: TrainConfig) -> torch.optim.Optimizer:
        """The optimiser this model trains with, at ``settings.lr``."""
        ...

    def sample_sketches(
        self,
        n: int,
        temperature: float = SAMPLING_TEMPERATURE,
        generator: torch.Generator | None = None,
        data_state: dict | None = None,
    ) -> list[np.ndarray]:
        """`n` new sketches: stroke-3 float arrays in data units, or uint8 (H, W) ink images."""
        ...

    def report_terms(self, recon: float, kl: float, iw_nll: float, data_state: dict) -> dict:
        """Mean loss terms and the importance-weighted bound under the model's own names."""
        ...

    def parameters(self, recurse: bool = True): ...

    def state_dict(self, *args, **kwargs): ...

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False): ...


def model_class(name: str) -> type:
    """The model class registered as `name` ("sketch-rnn" or "draw")."""
    check_choice("model", name, MODELS)
    module, cls = MODELS[name]
    return getattr(importlib.import_module(module, __package__), cls)


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when available; asking for CUDA without it is an error."""
    check_choice("device", name, ["auto", "cpu", "cuda"])
    if name == "cuda" and not torch.cuda.is_available():
        raise QuickDrawError("--device cuda was asked for, but torch sees no CUDA GPU")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def data_fingerprint(splits: dict[str, Sequence[np.ndarray]]) -> str:
    """A short SHA-256 of every array of every split, in order: two data sets with the same
    fingerprint hold the same examples (what a resumed run checks its data against)."""
    digest = hashlib.sha256()
    for name in sorted(splits):
        digest.update(f"{name}:{len(splits[name])};".encode())
        for array in splits[name]:
            array = np.ascontiguousarray(array)
            digest.update(f"{array.dtype.str}{array.shape}".encode())
            digest.update(array.tobytes())
    return digest.hexdigest()[:16]


def set_threads(threads: int = 0) -> int:
    """Set torch's intra-op threads and return how many: `threads`, or for 0
    ``$OMP_NUM_THREADS`` when it is set (torchrun sets it to 1 per process) and
    else `usable_cores()`: the cores this process may use, not the machine's."""
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 0:
        raise QuickDrawError(f"threads must be an integer >= 0, got {threads!r}")
    if threads == 0:
        env = os.environ.get("OMP_NUM_THREADS", "")
        threads = int(env) if env.isdigit() and int(env) > 0 else usable_cores()
    torch.set_num_threads(threads)
    return threads


def trained_category(data_state: dict) -> str | None:
    """The category a model was trained on, when it was trained on one; else None."""
    names = data_state.get("categories") or []
    return str(names[0]) if len(names) == 1 else None
