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
subclass with the model's own defaults); `run_configs` merges the defaults, a
resumed run's saved settings and the flags given, in that order, and is the
one place that does.

Model randomness (noise, dropout) uses torch's global generator; the trainer
seeds it, saves it in checkpoints, and runs validation inside
``torch.random.fork_rng`` so validating never changes what training does.

What the trainer does, top to bottom in `train`: pick the device, seed,
optionally resume from ``RUN_DIR/last.pt``, then for every step: set the
learning rate from `learning_rate(step, cfg)`, forward (autocast on CUDA),
stop on a non-finite loss (keeping the last good checkpoint), backward, clip,
step; log to ``RUN_DIR/metrics.csv`` and the tqdm bar; every ``eval_every``
steps validate and keep ``best.pt``; every ``checkpoint_every`` steps write
``last.pt`` atomically.

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
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler
from tqdm import tqdm

from ..atomic import atomic_write
from ..errors import QuickDrawError, check_choice
from .base import DataBundle, GenerativeModel, Losses, resolve_device
from .checkpoint import (
    CHECKPOINT_FORMAT,
    RESUME_KEYS,
    check_keys,
    checkpoint_settings,
    config_from_dict,
    load_checkpoint,
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
    threads: int = 0  # torch threads in this process (0: torch's default)

    def __post_init__(self):
        check_choice("device", self.device, ["auto", "cpu", "cuda"])
        at_least = {"steps": 0, "batch_size": 1, "eval_every": 1, "checkpoint_every": 1}
        at_least.update(log_every=1, workers=0, threads=0, min_lr=0, grad_clip=0)
        at_least.update(max_per_category=0)
        for name, low in at_least.items():
            if getattr(self, name) < low:
                raise QuickDrawError(f"{name} must be >= {low}, got {getattr(self, name)}")
        if not self.lr > 0:
            raise QuickDrawError(f"lr must be > 0, got {self.lr}")
        if not 0 < self.lr_decay <= 1:
            raise QuickDrawError(f"lr_decay is a per-step factor in (0, 1], got {self.lr_decay}")


class TrainingDiverged(QuickDrawError):
    """The loss became NaN or infinite; the run stopped without saving it."""


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
    model_cls: type, given: dict[str, Any], resume_from: dict | None = None
) -> tuple[Any, TrainConfig]:
    """(model config, training settings) of a run, from the flags `given` (field -> value).

    A new run starts from the defaults of the model's `config_class` and
    `settings_class`; a resumed one (`resume_from` = its checkpoint) keeps the
    checkpoint's model and settings. Given training settings override either
    (e.g. a larger ``steps``); a resumed run refuses model flags.
    """
    model_fields = {f.name for f in fields(model_cls.config_class)}
    settings_fields = {f.name for f in fields(model_cls.settings_class)}
    overlap = model_fields & settings_fields
    assert not overlap, f"config fields clash with the training settings: {overlap}"
    unknown = sorted(given.keys() - model_fields - settings_fields)
    if unknown:
        raise QuickDrawError(f"unknown settings for {model_cls.name}: {unknown}")
    if resume_from is None:
        model_cfg = model_cls.config_class(**{k: given[k] for k in model_fields & given.keys()})
        settings = model_cls.settings_class()
    else:
        changed = sorted(model_fields & given.keys())
        if changed:
            raise QuickDrawError(
                f"--resume keeps the checkpoint's model; drop the model flag(s) {changed}"
            )
        model_cfg = config_from_dict(model_cls.config_class, resume_from["model_config"])
        settings = checkpoint_settings(resume_from)
    settings = replace(settings, **{k: given[k] for k in settings_fields & given.keys()})
    return model_cfg, settings


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
        # its own generator, so creating loaders never draws from the model's RNG
        generator=torch.Generator().manual_seed(cfg.seed + epoch),
        pin_memory=False,
    )


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


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
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

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
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
            f"{out_dir} already holds a run; pass --resume to continue it or choose a new --out"
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

    if is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
    if not resume:
        checkpoint(out_dir / LAST)  # a "last good" checkpoint exists from step 0

    model.train()
    batches = _batch_stream(data.train, cfg, step, rank, world)
    bar = tqdm(
        total=cfg.steps,
        initial=step,
        desc=f"train {model.name}",
        disable=not (progress and is_main),
    )
    started = time.perf_counter()
    while step < cfg.steps:
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
            bar.close()
            raise TrainingDiverged(
                f"loss is {check.item()} at step {step}; stopped without saving it. "
                f"The last good checkpoint is {out_dir / LAST}: resume from it with a "
                "lower --lr or --grad-clip"
            )
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(total).backward()
        scaler.unscale_(optimizer)
        # measured even when clipping is off (max norm inf), so non-finite gradients still stop
        max_norm = cfg.grad_clip if cfg.grad_clip > 0 else math.inf
        grad_norm = nn.utils.clip_grad_norm_(model.parameters(), max_norm)
        if not scaler.is_enabled() and not torch.isfinite(grad_norm):
            bar.close()
            raise TrainingDiverged(
                f"gradient norm is {grad_norm.item()} at step {step}; stopped without "
                f"applying it. The last good checkpoint is {out_dir / LAST}"
            )
        scaler.step(optimizer)
        scaler.update()
        step += 1

        if is_main and (step % cfg.log_every == 0 or step == cfg.steps):
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
            log.add(row)
            bar.set_postfix(loss=f"{row['total']:.3f}", lr=f"{lr:.2e}")
        bar.update(1)

        if step % cfg.eval_every == 0 or step == cfg.steps:
            if is_main:
                valid = evaluate(model, data.valid, cfg.batch_size, device, cfg.seed)
                log.add({"step": step, "split": "valid", **valid})
                if best_valid is None or valid["total"] < best_valid:
                    best_valid = valid["total"]
                    checkpoint(out_dir / BEST, gather=False)
            if world > 1:
                dist.barrier()
        if step % cfg.checkpoint_every == 0 or step == cfg.steps:
            checkpoint(out_dir / LAST)
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
    )


__all__ = [
    "TrainConfig",
    "TrainResult",
    "TrainingDiverged",
    "checkpoint_settings",
    "evaluate",
    "learning_rate",
    "load_checkpoint",
    "read_checkpoint",
    "resolve_device",
    "run_configs",
    "save_checkpoint",
    "train",
]
