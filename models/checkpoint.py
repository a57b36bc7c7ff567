"""Checkpoints: what `quickdraw train` writes, and reading one back without running anything.

A checkpoint is a torch file, and a torch file is a pickle: loaded carelessly, a
crafted one runs code. So every checkpoint is read with
``torch.load(weights_only=True)``, whose unpickler builds tensors and plain
Python values (dicts, lists, tuples, str, int, float, bool, None) and refuses
everything else, and then checked key by key before anything is built from it.

Format 2 (written since 2026-12-01) holds only such values: the numpy RNG state
is stored as a tensor. Format 1 files held numpy's own state tuple (a numpy
array inside); they still load, with exactly the numpy pieces of that tuple
allow-listed (array reconstruction, `ndarray`, `dtype`), and
`scripts/upgrade_checkpoint.py` rewrites them as format 2.

What a checkpoint holds (all of it needed to sample, evaluate or resume without
the command line): ``format_version``, ``model`` (the registry key),
``model_config``, ``weights``, ``data_state`` (from the training split, e.g.
sketch-rnn's scale factor; the data files, resolved, and a fingerprint of their
examples, which ``--resume`` reads the data from and checks it against; for a
run started with ``--init-from``, that checkpoint and its step), ``train_config``,
``step``, ``best_valid``, ``optimizer``, ``scaler``, ``rng`` (one state per
process), ``world_size``.
"""

from __future__ import annotations

import os
import pickle
import random
import re
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from ..atomic import atomic_write
from ..errors import QuickDrawError
from .base import model_class, resolve_device

if TYPE_CHECKING:
    from .trainer import TrainConfig

CHECKPOINT_FORMAT = 2  # bump when the layout changes; `upgrade` knows every older one
# key -> type(s) every checkpoint must have (resuming needs more: see `RESUME_KEYS`)
REQUIRED_KEYS: dict[str, Any] = {
    "format_version": int,
    "model": str,
    "model_config": dict,
    "weights": dict,
    "data_state": dict,
    "train_config": dict,
    "step": int,
}
RESUME_KEYS: dict[str, Any] = {
    "optimizer": dict,
    "scaler": dict,
    "rng": list,
    "best_valid": (float, int, type(None)),
}


def _numpy_rng_globals() -> list:
    """What numpy's MT19937 state tuple pickles as: the only extra globals format 1 needs."""
    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # numpy 1
        from numpy.core.multiarray import _reconstruct  # type: ignore[no-redef]
    return [_reconstruct, np.ndarray, np.dtype, type(np.dtype(np.uint32))]


def _refused_global(error: Exception) -> str | None:
    """The global a weights-only load refused ("posix.system"), from torch's message."""
    found = re.search(r"GLOBAL ([\w.]+)", str(error))
    return found.group(1) if found else None


def load_safely(path: Path, what: str = "checkpoint", numpy_rng: bool = False) -> Any:
    """``torch.load(path, weights_only=True)``: tensors and plain values only, so a crafted
    file runs nothing; a file that asks for more is refused in one line naming what it asked
    to run. `numpy_rng`: also admit the numpy pieces a format-1 checkpoint's RNG state needs.
    `what` names the file's kind in the messages ("checkpoint", "judge")."""
    try:
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as e:
            refused = _refused_global(e)
            if refused is None:
                first = str(e).strip().splitlines()[0][:120]
                raise QuickDrawError(f"{path} is not a readable {what} ({first})") from None
            if not (numpy_rng and refused.startswith("numpy.")):
                raise QuickDrawError(
                    f"refusing to load {path}: it asks to run {refused}; a {what} holds only "
                    "tensors and plain values (loading it as a pickle could run code)"
                ) from None
        # a format-1 file: numpy's RNG state needs exactly these numpy pieces, nothing more
        try:
            with torch.serialization.safe_globals(_numpy_rng_globals()):
                return torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as e:
            raise QuickDrawError(
                f"refusing to load {path}: it asks to run {_refused_global(e) or 'something'}; "
                f"a {what} holds only tensors and plain values"
            ) from None
    except QuickDrawError:
        raise
    except Exception as e:  # torch raises many types for a corrupt or foreign file
        raise QuickDrawError(f"{path} is not a readable {what} ({type(e).__name__})") from None


def check_keys(ckpt: dict, path: Path, keys: dict[str, Any]) -> None:
    """Raise a one-line QuickDrawError naming the first missing or mistyped key."""
    for key, kinds in keys.items():
        if key not in ckpt:
            raise QuickDrawError(f"{path} is not a usable checkpoint: it has no {key!r}")
        value = ckpt[key]
        if isinstance(value, bool) or not isinstance(value, kinds):
            raise QuickDrawError(
                f"{path} is not a usable checkpoint: {key!r} is {type(value).__name__}"
            )


def read_checkpoint(path: str | os.PathLike) -> dict:
    """The checkpoint dict, loaded safely and checked; a clear error for anything else.
    A Magenta ``.gen.json`` reads as one too (`magenta.read_gen_json`)."""
    from .magenta import is_gen_json, read_gen_json  # (it imports this module)

    path = Path(path)
    if is_gen_json(path):  # a Magenta model for @magenta/sketch
        return read_gen_json(path)
    if not path.is_file():
        raise QuickDrawError(f"checkpoint {str(path)!r} not found")
    ckpt = load_safely(path, numpy_rng=True)
    if not isinstance(ckpt, dict) or "format_version" not in ckpt:
        raise QuickDrawError(f"{path} is not a checkpoint written by `quickdraw train`")
    check_keys(ckpt, path, REQUIRED_KEYS)
    if ckpt["format_version"] > CHECKPOINT_FORMAT:
        raise QuickDrawError(
            f"{path} has checkpoint format {ckpt['format_version']}; this version reads "
            f"up to {CHECKPOINT_FORMAT}: upgrade quickdraw-tools"
        )
    if not all(isinstance(k, str) and torch.is_tensor(v) for k, v in ckpt["weights"].items()):
        raise QuickDrawError(f"{path} is not a usable checkpoint: 'weights' are not all tensors")
    return ckpt


def save_checkpoint(path: Path, state: dict) -> None:
    """torch.save `state` to `path` atomically (temporary file, then rename)."""
    with atomic_write(path, "wb") as f:
        torch.save(state, f)


def config_from_dict(cls, values: dict, path: Path | str = "the checkpoint"):
    """`cls(**values)` for the fields `cls` has (a checkpoint may name fields since removed)."""
    known = {f.name for f in fields(cls)}
    try:
        return cls(**{k: v for k, v in values.items() if k in known})
    except TypeError as e:
        raise QuickDrawError(f"{path}: {cls.__name__} cannot be built from it ({e})") from None
    except QuickDrawError as e:  # a size out of range, checked before any tensor is made
        raise QuickDrawError(f"{path}: {cls.__name__}: {e}") from None


def checkpoint_settings(ckpt: dict) -> TrainConfig:
    """The training settings a checkpoint was written with (its model's `settings_class`)."""
    return config_from_dict(model_class(ckpt["model"]).settings_class, ckpt["train_config"])


def load_checkpoint(
    path: str | os.PathLike, device: str | torch.device = "cpu"
) -> tuple[nn.Module, dict, dict]:
    """Rebuild a trained model from a checkpoint, for sampling or evaluation.

    Returns ``(model, data_state, checkpoint)``: the model in eval mode on
    `device`, the data state saved at training time (e.g. sketch-rnn's
    ``scale_factor``), and the checkpoint dict (``step``, ``train_config``,
    ``best_valid``...).
    """
    ckpt = read_checkpoint(path)
    model_cls = model_class(ckpt["model"])
    model = model_cls(config_from_dict(model_cls.config_class, ckpt["model_config"], path))
    load_weights(model, ckpt["weights"], f"{path}: the weights do not fit its model config")
    model.to(resolve_device(device) if isinstance(device, str) else device).eval()
    return model, ckpt["data_state"], ckpt


def load_weights(module: torch.nn.Module, weights: dict, problem: str) -> None:
    """`module.load_state_dict(weights)`; missing, unexpected or mis-shaped tensors are one
    QuickDrawError: `problem`, then torch's last line in brackets."""
    try:
        module.load_state_dict(weights)
    except RuntimeError as e:
        first = str(e).strip().splitlines()[-1].strip()
        raise QuickDrawError(f"{problem} ({first})") from None


# --- random state, as plain values ------------------------------------------------------------


def _plain_numpy_state(state: tuple) -> dict:
    """numpy's legacy RNG state tuple -> a dict of plain values and a tensor."""
    kind, key, pos, has_gauss, gauss = state
    return {
        "kind": str(kind),
        "key": torch.from_numpy(np.asarray(key).astype(np.int64)),
        "pos": int(pos),
        "has_gauss": int(has_gauss),
        "gauss": float(gauss),
    }


def rng_state() -> dict:
    """This process's random state (torch, numpy, Python, CUDA) as tensors and plain values."""
    state = {
        "torch": torch.get_rng_state(),
        "numpy": _plain_numpy_state(np.random.get_state()),
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore what `rng_state` saved (or what a format-1 checkpoint saved)."""
    torch.set_rng_state(state["torch"])
    numpy = state["numpy"]
    if isinstance(numpy, dict):
        key = numpy["key"].numpy().astype(np.uint32)
        np.random.set_state((numpy["kind"], key, numpy["pos"], numpy["has_gauss"], numpy["gauss"]))
    else:  # format 1: numpy's own tuple
        np.random.set_state(numpy)
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        # a run may resume on a machine with fewer (or more) GPUs than it was saved on
        for i, gpu_state in enumerate(state["cuda"][: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(gpu_state, i)


def upgrade(ckpt: dict) -> dict:
    """A checkpoint dict in the current format (format 1: the numpy RNG states become tensors)."""
    out = dict(ckpt)
    if ckpt["format_version"] < 2:
        rngs = []
        for state in ckpt.get("rng", []):
            if state is not None and not isinstance(state["numpy"], dict):
                state = {**state, "numpy": _plain_numpy_state(state["numpy"])}
            rngs.append(state)
        out["rng"] = rngs
    out["format_version"] = CHECKPOINT_FORMAT
    return out
