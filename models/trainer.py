"""One training loop for every model of `base.MODELS` (sketch-rnn, DRAW).

The trainer talks to a model only through `base.GenerativeModel`:
``cls.build_datasets(config, files, settings)`` gives the data,
``model.configure_optimizer(settings)`` the optimiser, and
``model(batch, step=step)`` the `base.Losses` whose ``total`` it minimises.
``step`` is the training step (for annealing such as sketch-rnn's KL weight);
validation calls ``model(batch, step=None, reduction="none")``, which means
"evaluate: no annealing". ``losses.extra`` scalars are logged. Dataset items
are tensors (or tuples/dicts of them) the default collate can stack; a
dataset with randomness (augmentation, binarisation) defines
``set_epoch(epoch)``, which the trainer calls before every epoch, so that item
``i`` of epoch ``e`` is the same in an uninterrupted and a resumed run (the
item's ``np.random.Generator`` comes from ``(seed, epoch, i)``).

The settings of a run are the model's `settings_class` (`TrainConfig` or a
subclass with the model's own defaults); `run_configs` merges the defaults,
the model's preset, a resumed run's saved settings and the flags given, in
that order, and is the one place that does. `prepare_run` sets up the three
kinds of run `quickdraw train` starts: new; resumed (on the data its
checkpoint names, and only that data); and new from another checkpoint's
weights (``--init-from``: step 0, a fresh optimiser, new data).

Model randomness (noise, dropout) uses torch's global generator; the trainer
seeds it, saves it in checkpoints, and runs validation inside
``torch.random.fork_rng`` so validating never changes what training does.

What the trainer does, top to bottom in `train`: pick the device, seed,
optionally resume from ``RUN_DIR/last.pt``, then for every step: set the
learning rate from `learning_rate(step, cfg)`, forward (autocast on CUDA),
stop on a non-finite loss (keeping the last good checkpoint), backward, clip,
step; log to ``RUN_DIR/metrics.csv`` and the tqdm bar; every ``eval_every``
steps validate and keep ``best.pt``; every ``checkpoint_every`` steps write
``last.pt`` atomically. SIGINT (Ctrl-C) or SIGTERM ends the step in progress,
writes ``last.pt`` and metrics.csv at that step and raises `TrainingInterrupted`.
With ``time_limit`` the run also ends at the first step after that many
seconds, validated and saved like a last step (a time budget per decoder, say).

Multi-GPU: launch the same command under ``torchrun --nproc_per_node N``; the
trainer sees ``WORLD_SIZE`` and wraps the model in DistributedDataParallel,
shards batches with DistributedSampler (``batch_size`` is per process), and
rank 0 alone validates and writes files.
"""

from __future__ import annotations

import csv
import math
import os
import random
import signal
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler
from tqdm import tqdm

from ..atomic import atomic_write
from ..errors import QuickDrawError, check_choice, check_seed
from ..workers import check_workers
from .base import DataBundle, GenerativeModel, Losses, model_class, resolve_device, set_threads
from .checkpoint import (
    CHECKPOINT_FORMAT,
    RESUME_KEYS,
    check_keys,
    checkpoint_settings,
    config_from_dict,
    load_checkpoint,
    load_weights,
    read_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)

LAST, BEST, METRICS = "last.pt", "best.pt", "metrics.csv"


@dataclass
class TrainConfig:
    """Training settings shared by all models (a model's `settings_class` may add its own)."""

    steps: int = 10_000  # optimiser steps in total (a resumed run stops here too)
    batch_size: int = 100  # sketches/images per step, per process under torchrun
    lr: float = 1e-3  # initial learning rate (Adam)
    lr_decay: float = 0.9999  # lr multiplier per step (sketch-rnn: 0.9999)
    min_lr: float = 1e-5  # the lr decays towards this floor
    grad_clip: float = 1.0  # max global gradient norm; 0 disables clipping
    device: str = "auto"  # auto | cpu | cuda
    amp: bool = True  # mixed precision (bf16, or fp16 with loss scaling) on CUDA only
    eval_every: int = 500  # validate every N steps (and at the last step)
    checkpoint_every: int = 500  # write last.pt every N steps (and at the last step)
    log_every: int = 10  # write a metrics.csv row every N steps
    seed: int = 0  # seeds the split of files without one, data order, augmentation, noise
    max_per_category: int = 0  # use at most N drawings of each category, split alike (0: all)
    workers: int = 0  # DataLoader worker processes
    threads: int = 0  # torch threads (0: $OMP_NUM_THREADS, else the cores this process may use)
    time_limit: float = 0.0  # stop after this many seconds of training in this process (0: none)

    def __post_init__(self):
        check_choice("device", self.device, ["auto", "cpu", "cuda"])
        at_least = {"steps": 0, "batch_size": 1, "eval_every": 1, "checkpoint_every": 1}
        at_least.update(log_every=1, workers=0, threads=0, min_lr=0, grad_clip=0)
        at_least.update(max_per_category=0, time_limit=0)
        for name, low in at_least.items():
            if not getattr(self, name) >= low:  # NaN fails this too
                raise QuickDrawError(f"{name} must be >= {low}, got {getattr(self, name)}")
        check_seed(self.seed, "seed")
        check_workers(self.workers, "workers", low=0)
        if not self.lr > 0:
            raise QuickDrawError(f"lr must be > 0, got {self.lr}")
        if not 0 < self.lr_decay <= 1:
            raise QuickDrawError(f"lr_decay is a per-step factor in (0, 1], got {self.lr_decay}")


class TrainingDiverged(QuickDrawError):
    """The loss became NaN or infinite; the run stopped without saving it."""


class TrainingInterrupted(QuickDrawError):
    """SIGINT (Ctrl-C) or SIGTERM: the run saved ``last.pt`` at `step` and stopped."""

    def __init__(self, step: int, checkpoint: Path, signum: int, rank: int = 0):
        self.step, self.checkpoint, self.signum, self.rank = step, checkpoint, signum, rank
        super().__init__(f"interrupted at step {step}; saved {checkpoint}")


def learning_rate(step: int, cfg: TrainConfig) -> float:
    """Exponential decay from ``lr`` towards ``min_lr`` (sketch-rnn's schedule)."""
    return (cfg.lr - cfg.min_lr) * cfg.lr_decay**step + cfg.min_lr


def to_device(batch: Any, device: torch.device) -> Any:
    """Move a tensor, or a tuple/list/dict of them, to `device`."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, (tuple, list)):
        return type(batch)(to_device(b, device) for b in batch)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    return batch


# --- run settings -------------------------------------------------------------


def run_configs(
    model_cls: type,
    given: dict[str, Any],
    resume_from: dict | None = None,
    *,
    preset: str | None = None,
    init_from: dict | None = None,
) -> tuple[Any, TrainConfig]:
    """(model config, training settings) of a run, from the flags `given` (field -> value).

    A new run starts from the defaults of the model's `config_class` and
    `settings_class`, overridden by its preset (`preset`, or the model's
    ``default_preset``), then by the flags given. A resumed one (`resume_from`
    = its checkpoint) keeps the checkpoint's model and settings; given training
    settings override them (e.g. a larger ``steps``) and model flags or a preset
    are refused. A new run from a checkpoint's weights (`init_from`) keeps that
    checkpoint's model config (model flags may change what does not change the
    weights' shapes), gets a new run's training settings, and takes the settings
    its ``settings_class.inherited`` names from the checkpoint's data state
    unless a flag sets them.
    """
    model_fields = {f.name for f in fields(model_cls.config_class)}
    settings_fields = {f.name for f in fields(model_cls.settings_class)}
    overlap = model_fields & settings_fields
    assert not overlap, f"config fields clash with the training settings: {overlap}"
    unknown = sorted(given.keys() - model_fields - settings_fields)
    if unknown:
        raise QuickDrawError(f"unknown settings for {model_cls.name}: {unknown}")
    presets: dict[str, dict] = getattr(model_cls, "presets", {}) or {}
    if preset is not None:
        if not presets:
            raise QuickDrawError(f"{model_cls.name} has no presets")
        check_choice("preset", preset, presets)
    if resume_from is not None:
        if init_from is not None:
            raise QuickDrawError("a run is either resumed or started from a checkpoint's weights")
        if preset is not None:
            raise QuickDrawError("--resume keeps the checkpoint's settings; drop --preset")
        changed = sorted(model_fields & given.keys())
        if changed:
            raise QuickDrawError(
                f"--resume keeps the checkpoint's model; drop the model flag(s) {changed}"
            )
        model_cfg = config_from_dict(model_cls.config_class, resume_from["model_config"])
        settings = checkpoint_settings(resume_from)
        return model_cfg, replace(settings, **{k: given[k] for k in settings_fields & given.keys()})
    chosen = presets.get(preset or getattr(model_cls, "default_preset", None) or "", {})
    values = {**chosen, **given}
    model_values = {k: values[k] for k in model_fields & values.keys()}
    if init_from is None:
        model_cfg = model_cls.config_class(**model_values)
    else:
        saved = config_from_dict(model_cls.config_class, init_from["model_config"])
        # the preset's model fields would not fit the weights: only explicit flags change them
        model_cfg = replace(saved, **{k: given[k] for k in model_fields & given.keys()})
    settings_values = {k: values[k] for k in settings_fields & values.keys()}
    if init_from is not None:
        for name in getattr(model_cls.settings_class, "inherited", ()):
            if name not in given and name in init_from["data_state"]:
                settings_values[name] = init_from["data_state"][name]
    return model_cfg, model_cls.settings_class(**settings_values)


@dataclass
class RunPlan:
    """A run set up by `prepare_run`, ready for ``train(plan.model, plan.data, plan.settings,
    plan.out_dir, resume=plan.resume)``."""

    model: Any  # a `GenerativeModel`, with the checkpoint's weights when resumed or initialised
    data: DataBundle
    settings: TrainConfig
    out_dir: Path
    resume: bool  # continue out_dir/last.pt
    start_step: int  # the step it starts from (0 for a new run)
    init_from: Path | None = None  # the checkpoint whose weights a new run starts from
    notes: list[str] = field(default_factory=list)  # what to tell the user before training


def _as_checkpoint(path: str | os.PathLike) -> Path:
    """A checkpoint file, or a run directory meaning its last.pt."""
    path = Path(path)
    return path / LAST if path.is_dir() else path


def _data_files(data: Sequence[str | os.PathLike]) -> list[Path]:
    for path in data:
        if not Path(path).exists():
            raise QuickDrawError(
                f"data file {str(path)!r} not found (write it with `quickdraw convert`)"
            )
    return [Path(p) for p in data]


def data_differences(saved: dict, new: dict) -> list[str]:
    """The keys of two data states that differ (where the files lie aside): empty for the
    same examples prepared alike. Keys only one of them has are not compared (a
    checkpoint written before the key existed)."""
    ignored = {"files", "init_from"}
    return sorted(k for k in (saved.keys() & new.keys()) - ignored if saved[k] != new[k])


def prepare_run(
    model_name: str,
    given: dict[str, Any],
    data: Sequence[str | os.PathLike] | None = None,
    out: str | os.PathLike | None = None,
    resume: bool | str | os.PathLike | None = None,
    init_from: str | os.PathLike | None = None,
    preset: str | None = None,
) -> RunPlan:
    """Set up one of three runs: new, resumed, or new from a checkpoint's weights.

    - new (`data`, `out`): the model's defaults, its preset and the flags `given`.
    - resumed (``resume`` = ``RUN/last.pt`` or ``RUN``, or True for ``out/last.pt``):
      continues that run in RUN, exactly, on the data its checkpoint names; `data`
      may be given only when it is that data (the same examples, found by the data
      state's fingerprint, sizes and scale), e.g. when the files have moved. Other
      data is refused: its scale factor and best.pt would not be the run's.
    - new from weights (`init_from` = a checkpoint, `data`, `out`): a new run in a
      new `out` (step 0, a fresh optimiser, new training settings) whose model is
      the checkpoint's config and weights; the settings its ``settings_class``
      marks ``inherited`` come from the checkpoint (sketch-rnn's scale factor:
      the units its weights expect), the rest of the data state from `data`.
    """
    model_cls = model_class(model_name)
    resuming = resume is not None and resume is not False
    if resuming and init_from is not None:
        raise QuickDrawError(
            "--resume continues a run and --init-from starts a new one from a checkpoint's "
            "weights: give one of them"
        )
    if resuming:
        return _plan_resume(model_cls, given, data, out, resume, preset)
    if data is None:
        raise QuickDrawError(
            "--data is required: the converted files to train on (or --resume RUN/last.pt "
            "to continue a run on its own data)"
        )
    if out is None:
        raise QuickDrawError("--out is required: the new run's directory")
    files, out_dir = _data_files(data), Path(out)
    if (out_dir / LAST).exists():
        raise QuickDrawError(
            f"{out_dir} already holds a run; continue it with --resume {out_dir / LAST} "
            "or choose a new --out"
        )
    source = ckpt = None
    if init_from is not None:
        source = _as_checkpoint(init_from)
        ckpt = read_checkpoint(source)
        if ckpt["model"] != model_cls.name:
            raise QuickDrawError(f"{source} holds a {ckpt['model']!r} model, not {model_name!r}")
    model_cfg, settings = run_configs(model_cls, given, preset=preset, init_from=ckpt)
    torch.manual_seed(settings.seed)  # the same initial weights for the same seed
    model = model_cls(model_cfg)
    notes = []
    if source is not None and ckpt is not None:
        problem = f"the weights of {source} do not fit the model these flags make"
        load_weights(model, ckpt["weights"], problem)
        notes.append(f"starting {out_dir} from the weights of {source} (step {ckpt['step']})")
    bundle = model_cls.build_datasets(model_cfg, files, settings)
    settings, note = _fit_batch(settings, len(bundle.train))
    notes += [note] if note else []
    if source is not None and ckpt is not None:
        bundle.state = {
            **bundle.state,
            "init_from": {"checkpoint": str(source.resolve()), "step": ckpt["step"]},
        }
        for name in getattr(model_cls.settings_class, "inherited", ()):
            if name in given:  # the flag chose it, not the checkpoint
                continue
            own = bundle.state.get(f"own_{name}")
            mine = f" (the new training split's own: {own:.6g})" if own is not None else ""
            notes.append(f"{name} {getattr(settings, name):.6g} from {source}{mine}")
    return RunPlan(model, bundle, settings, out_dir, False, 0, source, notes)


def _fit_batch(settings: TrainConfig, examples: int) -> tuple[TrainConfig, str]:
    """A new run's settings with ``batch_size`` lowered to the training split when the split
    is smaller than one batch (per process), and the note that says so ("" when unchanged).
    The lowered size is the run's own: its checkpoints keep it, so a resumed run has it too."""
    per_process = examples // _distributed()[2]
    if not 0 < per_process < settings.batch_size:
        return settings, ""  # it fits; an empty split is refused by `train`
    note = (
        f"the training split has {examples} examples, fewer than one batch of "
        f"{settings.batch_size}: training on batches of {per_process}, all of them"
        f"{' per process' if per_process != examples else ''} (--batch-size {per_process})"
    )
    return replace(settings, batch_size=per_process), note


def _plan_resume(model_cls, given, data, out, resume, preset) -> RunPlan:
    if resume is True:
        if out is None:
            raise QuickDrawError("--resume needs the checkpoint to continue: --resume RUN/last.pt")
        source = Path(out) / LAST
    else:
        source = _as_checkpoint(resume)
    run_dir = source.parent
    if not source.is_file():
        raise QuickDrawError(f"checkpoint {str(source)!r} not found")
    if source.name != LAST:
        raise QuickDrawError(
            f"--resume continues a run from its {LAST} ({run_dir / LAST}), not {source.name}; "
            f"to start a new run from the weights of {source}, use --init-from {source} "
            "with --data and a new --out"
        )
    if out is not None and Path(out).resolve() != run_dir.resolve():
        raise QuickDrawError(
            f"--resume {source} continues the run in {run_dir}, not --out {out}: drop --out "
            f"(to start a new run in {out} from its weights, use --init-from {source})"
        )
    ckpt = read_checkpoint(source)
    check_keys(ckpt, source, RESUME_KEYS)
    if ckpt["model"] != model_cls.name:
        raise QuickDrawError(f"{source} holds a {ckpt['model']!r} model, not {model_cls.name!r}")
    model_cfg, settings = run_configs(model_cls, given, ckpt, preset=preset)
    if ckpt["step"] >= settings.steps:
        raise QuickDrawError(
            f"{source} is already at step {ckpt['step']}; raise --steps above {ckpt['step']} "
            "to train further"
        )
    saved = ckpt["data_state"]
    if data is None:
        recorded = saved.get("files")
        if not recorded:
            raise QuickDrawError(
                f"{source} does not name its data files (written before checkpoints recorded "
                "them); pass --data with the files it was trained on"
            )
        missing = [f for f in recorded if not Path(f).exists()]
        if missing:
            raise QuickDrawError(
                f"{source} was trained on {missing[0]}, which is not there any more; pass "
                "--data with where its files are now"
            )
        files = [Path(f) for f in recorded]
    else:
        files = _data_files(data)
    torch.manual_seed(settings.seed)
    model = model_cls(model_cfg)  # its weights come from the checkpoint in `train`
    bundle = model_cls.build_datasets(model_cfg, files, settings)
    differ = data_differences(saved, bundle.state)
    if differ:
        held = (
            "the files it names, read with these flags, now hold other data"
            if data is None
            else f"--data {' '.join(map(str, data))} holds other data"
        )
        what = f"{held} (its {', '.join(differ)} differ)"
        raise QuickDrawError(
            f"--resume continues {run_dir} on the data it was trained on, but {what}; to train "
            f"on other data, start a new run from its weights: --init-from {source} --data "
            "FILE... --out NEW_RUN"
        )
    if "init_from" in saved:
        bundle.state = {**bundle.state, "init_from": saved["init_from"]}
    notes = [f"resuming {run_dir} from step {ckpt['step']}"]
    return RunPlan(model, bundle, settings, run_dir, True, ckpt["step"], None, notes)


def describe_dropped(data: DataBundle, splits: Sequence[str] = ("train", "valid", "test")) -> str:
    """One line such as "dropped sketches longer than N_max = 250 points: train 3 of 1480,
    valid 0 of 53, test 1 of 53": what the model's own filter left out of each split (empty
    when the model has no such filter)."""
    if not data.dropped:
        return ""
    parts = []
    for split in splits:
        if split in data.dropped:
            parts.append(f"{split} {data.dropped[split]} of {data.read_count(split)}")
    return f"dropped {data.dropped_why}: {', '.join(parts)}"


# --- data order ----------------------------------------------------------------


def _epoch_batches(
    dataset, cfg: TrainConfig, epoch: int, skip: int, rank: int, world: int
) -> DataLoader:
    """The batches of one epoch for this process, skipping the first `skip` batches.

    DistributedSampler (also with one process) gives a seeded permutation per
    epoch; slicing it is how a resumed run picks up mid-epoch.
    """
    sampler = DistributedSampler(
        dataset, num_replicas=world, rank=rank, shuffle=True, seed=cfg.seed, drop_last=True
    )
    sampler.set_epoch(epoch)
    if hasattr(dataset, "set_epoch"):
        dataset.set_epoch(epoch)
    indices = list(sampler)[skip * cfg.batch_size :]
    return DataLoader(
        dataset,
        batch_size=cfg.batch_size,
        sampler=indices,
        drop_last=True,
        num_workers=cfg.workers,
        worker_init_fn=_ignore_sigint if cfg.workers else None,
        # its own generator, so creating loaders never draws from the model's RNG
        generator=torch.Generator().manual_seed(cfg.seed + epoch),
        pin_memory=False,
    )


def _ignore_sigint(worker_id: int) -> None:
    """DataLoader workers leave Ctrl-C to the trainer, which saves the run and stops them."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _batches_per_epoch(dataset, cfg: TrainConfig, world: int) -> int:
    n = len(dataset) // world // cfg.batch_size
    if n == 0:
        raise QuickDrawError(
            f"the training split has {len(dataset)} examples, fewer than one batch "
            f"of {cfg.batch_size} per process; lower --batch-size"
        )
    return n


def _batch_stream(
    dataset, cfg: TrainConfig, start_step: int, rank: int, world: int
) -> Iterator[Any]:
    per_epoch = _batches_per_epoch(dataset, cfg, world)
    epoch, skip = divmod(start_step, per_epoch)
    while True:
        yield from _epoch_batches(dataset, cfg, epoch, skip, rank, world)
        epoch, skip = epoch + 1, 0


# --- validation ------------------------------------------------------------------


@torch.no_grad()
def evaluate(
    model: nn.Module, dataset, batch_size: int, device: torch.device, seed: int = 0
) -> dict[str, float]:
    """Mean ``recon``, ``kl`` and ``total`` over a whole dataset, in eval mode.

    Runs with a fixed seed inside `fork_rng`, so it is repeatable and leaves the
    caller's random state untouched.
    """
    was_training = model.training
    model.eval()
    sums = {"recon": 0.0, "kl": 0.0, "total": 0.0}
    count = 0
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        for batch in DataLoader(dataset, batch_size=batch_size, shuffle=False):
            losses: Losses = model(to_device(batch, device), step=None, reduction="none")
            n = losses.recon.shape[0]
            sums["recon"] += losses.recon.sum().item()
            sums["kl"] += losses.kl.sum().item()
            # `total` is a batch scalar; weight it by the batch size for the mean
            sums["total"] += losses.total.item() * n
            count += n
    model.train(was_training)
    if count == 0:
        raise QuickDrawError("the validation split is empty")
    return {k: v / count for k, v in sums.items()}


# --- the loop ---------------------------------------------------------------------


class _MetricsLog:
    """metrics.csv: one row per logged step; columns fixed by the first row."""

    def __init__(self, path: Path, resume_step: int | None):
        self.path = path
        self.columns: list[str] | None = None
        self.rows: list[dict] = []
        if resume_step is not None and path.exists():
            with open(path, newline="") as f:
                reader = csv.DictReader(f)
                self.columns = reader.fieldnames
                # rows logged after the checkpoint are redone by the resumed run
                self.rows = [r for r in reader if int(r["step"]) <= resume_step]

    def add(self, row: dict) -> None:
        if self.columns is None:
            self.columns = list(row)
        for key in row:
            if key not in self.columns:
                self.columns.append(key)
        self.rows.append(row)

    def flush(self) -> None:
        if self.columns is None:
            return
        with atomic_write(self.path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=self.columns, restval="")
            writer.writeheader()
            writer.writerows(self.rows)


class _StopSignals:
    """While active, SIGINT and SIGTERM only set `signum`: the loop checks it after each
    step, saves last.pt and stops. The first signal restores the previous handlers, so a
    second one acts at once (the checkpoint on disk stays whole: it is written atomically).
    Signals can only be caught in the main thread; elsewhere this does nothing."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _StopSignals:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._caught)
        return self

    def _caught(self, signum: int, frame) -> None:
        self.signum = signum
        self._restore()

    def _restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
        self._previous = {}

    def __exit__(self, *exc) -> None:
        self._restore()


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    # numpy's global generator takes 32 bits; a larger seed (up to 2**64 - 1: 2**63 - 1 plus
    # a rank) as its two 32-bit words, so seeds below 2**32 give the streams they always gave
    np.random.seed(seed if seed < 2**32 else [seed & 0xFFFFFFFF, seed >> 32])
    torch.manual_seed(seed)


def _distributed() -> tuple[int, int, int]:
    """(rank, local_rank, world_size) from torchrun's environment; (0, 0, 1) without it."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 0, 1
    return int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"]), world


def _scalar(value: torch.Tensor | float) -> float:
    return float(value.detach().float().item()) if torch.is_tensor(value) else float(value)


@dataclass
class TrainResult:
    step: int  # last completed step
    last_checkpoint: Path
    best_checkpoint: Path | None
    best_valid: float | None  # best validation `total`
    metrics: Path
    time_limited: bool = False  # ended by `time_limit` before `steps`


def train(
    model: GenerativeModel,
    data: DataBundle,
    cfg: TrainConfig,
    out_dir: str | os.PathLike,
    resume: bool = False,
    progress: bool = True,
) -> TrainResult:
    """Train `model` on `data.train`, validating on `data.valid`; files go to `out_dir`.

    With ``resume=True`` it continues from ``out_dir/last.pt`` and gives the
    same losses and weights as a run that was never interrupted.

    SIGINT (Ctrl-C) or SIGTERM stops it after the step in progress: it writes
    ``last.pt`` at that step (and metrics.csv up to it) and raises
    `TrainingInterrupted`; resuming from there is exact too.
    """
    out_dir = Path(out_dir)
    rank, local_rank, world = _distributed()
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
    device = resolve_device(cfg.device)
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    is_main = rank == 0

    set_threads(cfg.threads)
    _seed_everything(cfg.seed + rank)
    model.to(device)
    optimizer = model.configure_optimizer(cfg)
    use_amp = cfg.amp and device.type == "cuda"
    amp_dtype = torch.bfloat16
    if use_amp and not torch.cuda.is_bf16_supported():
        amp_dtype = torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp and amp_dtype == torch.float16)

    step, best_valid = 0, None
    if resume:
        ckpt = read_checkpoint(out_dir / LAST)
        check_keys(ckpt, out_dir / LAST, RESUME_KEYS)
        if ckpt["model"] != model.name:
            raise QuickDrawError(
                f"{out_dir / LAST} holds a {ckpt['model']!r} model, not {model.name!r}"
            )
        model.load_state_dict(ckpt["weights"])
        optimizer.load_state_dict(ckpt["optimizer"])
        if ckpt["scaler"] and scaler.is_enabled():
            # a disabled scaler saves {}: a run resumed on an fp16 GPU starts a fresh scale
            scaler.load_state_dict(ckpt["scaler"])
        step, best_valid = ckpt["step"], ckpt["best_valid"]
        set_rng_state(ckpt["rng"][rank] if rank < len(ckpt["rng"]) else ckpt["rng"][0])
        if step >= cfg.steps:
            raise QuickDrawError(
                f"{out_dir / LAST} is already at step {step}; raise --steps above {step} "
                "to train further"
            )
    elif (out_dir / LAST).exists():
        raise QuickDrawError(
            f"{out_dir} already holds a run; continue it with --resume {out_dir / LAST} "
            "or choose a new --out"
        )

    net = model
    if world > 1:
        net = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    log = _MetricsLog(out_dir / METRICS, step if resume else None) if is_main else None

    def checkpoint(path: Path, gather: bool = True) -> None:
        """Write a checkpoint; with `gather` every rank must call it (collective)."""
        rng = [rng_state()]
        if world > 1 and gather:  # every rank's generator, so a resumed DDP run is exact
            rng = [None] * world
            dist.all_gather_object(rng, rng_state())
        if is_main:
            save_checkpoint(
                path,
                {
                    "format_version": CHECKPOINT_FORMAT,
                    "model": model.name,
                    "model_config": asdict(model.config),
                    "weights": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scaler": scaler.state_dict(),
                    "step": step,
                    "best_valid": best_valid,
                    "data_state": data.state,
                    "train_config": asdict(cfg),
                    "rng": rng,
                    "world_size": world,
                },
            )
            log.flush()

    def train_row(lr: float, check: torch.Tensor, losses: Losses, grad_norm) -> dict:
        row = {
            "step": step,
            "split": "train",
            "lr": lr,
            "total": check.item(),
            "recon": _scalar(losses.recon),
            "kl": _scalar(losses.kl),
            "grad_norm": _scalar(grad_norm),
            "seconds": round(time.perf_counter() - started, 3),
        }
        row.update({k: _scalar(v) for k, v in losses.extra.items()})
        return row

    def stop_signal(stop: _StopSignals) -> int | None:
        """The signal that asked to stop, agreed by every rank (so all save the same step)."""
        if world == 1:
            return stop.signum
        flag = torch.tensor([float(stop.signum or 0)], device=device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return int(flag.item()) or None

    def out_of_time() -> bool:
        """Whether --time-limit is spent; rank 0's clock decides for every rank."""
        if not cfg.time_limit:
            return False
        spent = time.perf_counter() - started >= cfg.time_limit
        if world == 1:
            return spent
        flag = torch.tensor([float(spent)], device=device)
        dist.broadcast(flag, src=0)
        return bool(flag.item())

    _batches_per_epoch(data.train, cfg, world)  # a split smaller than a batch: refused now
    fresh = not resume  # a new run: nothing of it is kept if it fails before its first step
    created = is_main and not out_dir.exists()
    with _StopSignals() as stop, _FirstStepGuard(fresh and is_main, out_dir, created) as guard:
        if is_main:
            out_dir.mkdir(parents=True, exist_ok=True)
        if not resume:
            checkpoint(out_dir / LAST)  # a "last good" checkpoint exists from step 0

        model.train()
        batches = _batch_stream(data.train, cfg, step, rank, world)
        bar = guard.bar = tqdm(
            total=cfg.steps,
            initial=step,
            desc=f"train {model.name}",
            disable=not (progress and is_main),
        )
        started = time.perf_counter()
        last: tuple | None = None  # (lr, loss, losses, grad norm) of the latest step
        logged = step  # the latest step with a train row
        time_limited = False
        while step < cfg.steps:
            signum = stop_signal(stop)
            if signum is not None:
                # save the step just done, and its row, then stop (resuming is exact)
                if is_main and last is not None and logged != step:
                    log.add(train_row(*last))
                checkpoint(out_dir / LAST)
                guard.stepped = True  # a run stopped by a signal is kept, at whatever step
                raise TrainingInterrupted(step, out_dir / LAST, signum, rank)
            batch = to_device(next(batches), device)
            lr = learning_rate(step, cfg)
            for group in optimizer.param_groups:
                group["lr"] = lr
            with torch.autocast(device.type, dtype=amp_dtype, enabled=use_amp):
                losses: Losses = net(batch, step=step)
            total = losses.total.float()
            check = total.detach().clone()
            if world > 1:  # every rank must agree to stop, or the others hang
                dist.all_reduce(check)
                check /= world
            if not torch.isfinite(check):
                raise TrainingDiverged(
                    f"loss is {check.item()} at step {step}; stopped without saving it. "
                    + _last_good(out_dir, fresh and step == 0, "resume from it with a lower "
                                 "--lr or --grad-clip")
                )  # fmt: skip
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(total).backward()
            scaler.unscale_(optimizer)
            # measured even when clipping is off (max norm inf), so non-finite gradients stop
            max_norm = cfg.grad_clip if cfg.grad_clip > 0 else math.inf
            grad_norm = nn.utils.clip_grad_norm_(model.parameters(), max_norm)
            if not scaler.is_enabled() and not torch.isfinite(grad_norm):
                raise TrainingDiverged(
                    f"gradient norm is {grad_norm.item()} at step {step}; stopped without "
                    "applying it. " + _last_good(out_dir, fresh and step == 0)
                )
            scaler.step(optimizer)
            scaler.update()
            step += 1
            guard.stepped = True
            last = (lr, check, losses, grad_norm)
            # the last step: --steps reached, or --time-limit spent (validated and saved alike)
            time_limited = step < cfg.steps and out_of_time()
            final = step == cfg.steps or time_limited

            if is_main and (step % cfg.log_every == 0 or final):
                row = train_row(*last)
                log.add(row)
                logged = step
                bar.set_postfix(loss=f"{row['total']:.3f}", lr=f"{lr:.2e}")
            bar.update(1)

            if step % cfg.eval_every == 0 or final:
                if is_main:
                    valid = evaluate(model, data.valid, cfg.batch_size, device, cfg.seed)
                    log.add({"step": step, "split": "valid", **valid})
                    if best_valid is None or valid["total"] < best_valid:
                        best_valid = valid["total"]
                        checkpoint(out_dir / BEST, gather=False)
                if world > 1:
                    dist.barrier()
            if step % cfg.checkpoint_every == 0 or final:
                checkpoint(out_dir / LAST)
            if final:
                break
        bar.close()
        if world > 1:
            dist.barrier()
    best = out_dir / BEST
    return TrainResult(
        step=step,
        last_checkpoint=out_dir / LAST,
        best_checkpoint=best if best.exists() else None,
        best_valid=best_valid,
        metrics=out_dir / METRICS,
        time_limited=time_limited,
    )


def _last_good(out_dir: Path, nothing_kept: bool, advice: str = "") -> str:
    """What a diverged run leaves: the last good checkpoint, or nothing (a new run that
    diverged at its first step keeps no files, so the same command can simply be run again)."""
    if nothing_kept:
        return "No step was completed, so nothing of the run is kept" + (
            f"; {advice.replace('resume from it with', 'start it again with')}" if advice else ""
        )
    return f"The last good checkpoint is {out_dir / LAST}" + (f": {advice}" if advice else "")


class _FirstStepGuard:
    """Closes the progress bar however the loop ends (so an error starts on a line of its
    own), and when a new run fails before its first step, removes what it wrote (its step-0
    last.pt and metrics.csv, and `out_dir` itself if the run made it): a retry of the same
    command then starts afresh instead of finding "a run" there."""

    def __init__(self, active: bool, out_dir: Path, created: bool) -> None:
        self.active, self.out_dir, self.created = active, out_dir, created
        self.stepped = False
        self.bar: tqdm | None = None

    def __enter__(self) -> _FirstStepGuard:
        return self

    def __exit__(self, kind, error, traceback) -> None:
        if self.bar is not None:
            self.bar.close()
        if error is None or not self.active or self.stepped:
            return
        for name in (LAST, METRICS):
            (self.out_dir / name).unlink(missing_ok=True)
        if self.created:
            try:
                self.out_dir.rmdir()  # only when empty: nothing else is ever removed
            except OSError:
                pass


__all__ = [
    "TrainConfig",
    "TrainResult",
    "RunPlan",
    "TrainingDiverged",
    "TrainingInterrupted",
    "checkpoint_settings",
    "data_differences",
    "describe_dropped",
    "evaluate",
    "learning_rate",
    "load_checkpoint",
    "prepare_run",
    "read_checkpoint",
    "resolve_device",
    "run_configs",
    "save_checkpoint",
    "train",
]
