"""The shared trainer: schedules, checkpoints, exact resume, NaN stop, DDP (gloo, 2 processes)."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

from quickdraw_tools.errors import QuickDrawError
from quickdraw_tools.models.base import DataBundle, Losses
from quickdraw_tools.models.trainer import (
    CHECKPOINT_FORMAT,
    TrainConfig,
    TrainingDiverged,
    learning_rate,
    read_checkpoint,
    train,
)

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class ToyConfig:
    size: int = 4  # input features
    nan_at: int = -1  # forward returns NaN from this step on (-1: never)


class Toy(nn.Module):
    """Noisy linear regression: uses the global RNG (like a VAE) and the step argument."""

    name = "toy"
    config_class = ToyConfig
    settings_class = TrainConfig

    def __init__(self, config: ToyConfig):
        super().__init__()
        self.config = config
        self.linear = nn.Linear(config.size, 1)

    def forward(self, batch, step=None, reduction="mean"):
        x, y = batch
        pred = self.linear(x).squeeze(1) + 0.01 * torch.randn(len(x))
        per = (pred - y) ** 2
        if step is not None and self.config.nan_at >= 0 and step >= self.config.nan_at:
            per = per * float("nan")
        mean = per.mean()
        value = per if reduction == "none" else mean
        return Losses(recon=value, kl=torch.zeros_like(value), total=mean)

    def configure_optimizer(self, settings: TrainConfig) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=settings.lr)


class Augmented(Dataset):
    """Items whose noise depends on (seed, epoch, index), as the contract asks."""

    def __init__(self, n: int, size: int, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.x = rng.normal(size=(n, size)).astype(np.float32)
        self.y = (self.x @ np.arange(1, size + 1, dtype=np.float32)).astype(np.float32)
        self.seed, self.epoch = seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i):
        rng = np.random.default_rng([self.seed, self.epoch, i])
        x = self.x[i] + rng.normal(scale=0.01, size=self.x.shape[1]).astype(np.float32)
        return torch.from_numpy(x), torch.tensor(self.y[i])


def toy(**kw) -> Toy:
    torch.manual_seed(0)  # same initial weights for every run
    return Toy(ToyConfig(**kw))


def bundle() -> DataBundle:
    return DataBundle(Augmented(40, 4), Augmented(12, 4, 1), Augmented(12, 4, 2), {"scale": 2.5})


def cfg(**kw) -> TrainConfig:
    base = dict(steps=12, batch_size=8, lr=0.05, eval_every=4, checkpoint_every=5, log_every=1)
    return TrainConfig(**{**base, **kw})


def rows(path, split="train"):
    with open(path, newline="") as f:
        return [r for r in csv.DictReader(f) if r["split"] == split]


def test_learning_rate_decays_to_the_floor():
    c = TrainConfig(lr=1e-3, lr_decay=0.5, min_lr=1e-5)
    assert learning_rate(0, c) == pytest.approx(1e-3)
    assert learning_rate(1, c) == pytest.approx((1e-3 - 1e-5) * 0.5 + 1e-5)
    assert learning_rate(10_000, c) == pytest.approx(1e-5)


def test_loss_falls_and_files_are_written(tmp_path):
    result = train(toy(), bundle(), cfg(steps=40, lr=0.2), tmp_path, progress=False)
    losses = [float(r["total"]) for r in rows(result.metrics)]
    assert np.mean(losses[-5:]) < 0.05 * np.mean(losses[:5])
    assert len(rows(result.metrics, "valid")) == 10  # every 4 steps, 40 steps
    ckpt = read_checkpoint(result.last_checkpoint)
    assert ckpt["format_version"] == CHECKPOINT_FORMAT and ckpt["step"] == 40
    assert ckpt["model"] == "toy" and ckpt["model_config"] == {"size": 4, "nan_at": -1}
    assert ckpt["data_state"] == {"scale": 2.5}
    assert set(ckpt) >= {"weights", "optimizer", "rng", "train_config", "best_valid"}
    best = read_checkpoint(result.best_checkpoint)
    assert best["best_valid"] == pytest.approx(
        min(float(r["total"]) for r in rows(result.metrics, "valid"))
    )
    assert not list(tmp_path.glob(".*tmp"))  # atomic writes leave no temporaries


def test_resume_gives_the_same_losses_and_weights(tmp_path):
    full = train(toy(), bundle(), cfg(), tmp_path / "full", progress=False)
    # "killed" after step 5's checkpoint: stop there, then resume to step 12
    train(toy(), bundle(), cfg(steps=5), tmp_path / "cut", progress=False)
    cut = train(toy(), bundle(), cfg(), tmp_path / "cut", resume=True, progress=False)
    assert [r["total"] for r in rows(full.metrics)] == [r["total"] for r in rows(cut.metrics)]
    # the cut run also validated at its last step (5); the regular ones agree
    regular = [(r["step"], r["total"]) for r in rows(cut.metrics, "valid") if r["step"] != "5"]
    assert [(r["step"], r["total"]) for r in rows(full.metrics, "valid")] == regular
    a, b = read_checkpoint(full.last_checkpoint), read_checkpoint(cut.last_checkpoint)
    for key in a["weights"]:
        assert torch.equal(a["weights"][key], b["weights"][key])


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    model = toy(nan_at=7)
    with pytest.raises(TrainingDiverged, match="loss is nan at step 7.*last good checkpoint"):
        train(model, bundle(), cfg(), tmp_path, progress=False)
    ckpt = read_checkpoint(tmp_path / "last.pt")
    assert ckpt["step"] == 5
    assert all(torch.isfinite(w).all() for w in ckpt["weights"].values())


class NanGradient(Toy):
    """A finite loss whose gradient is NaN from step 4 on (d/dw sqrt(w - w) = inf * 0)."""

    def forward(self, batch, step=None, reduction="mean"):
        losses = super().forward(batch, step, reduction)
        if step is not None and step >= 4:
            bias = self.linear.bias
            losses.total = losses.total + torch.sqrt(bias - bias).sum()
        return losses


def test_nan_gradient_stops_even_without_clipping(tmp_path):
    # with --grad-clip 0 the norm used to be skipped: the NaN update was applied and written
    # into last.pt at step 5, the checkpoint the error then called "last good"
    torch.manual_seed(0)
    model = NanGradient(ToyConfig())
    with pytest.raises(TrainingDiverged, match="gradient norm is nan at step 4"):
        train(model, bundle(), cfg(grad_clip=0.0), tmp_path, progress=False)
    ckpt = read_checkpoint(tmp_path / "last.pt")
    assert all(torch.isfinite(w).all() for w in ckpt["weights"].values())


def test_refuses_to_overwrite_a_run_and_bad_device(tmp_path):
    train(toy(), bundle(), cfg(steps=2), tmp_path, progress=False)
    with pytest.raises(QuickDrawError, match="--resume"):
        train(toy(), bundle(), cfg(steps=2), tmp_path, progress=False)
    with pytest.raises(QuickDrawError, match="already at step 2"):
        train(toy(), bundle(), cfg(steps=2), tmp_path, resume=True, progress=False)
    with pytest.raises(QuickDrawError, match="unknown device 'gpu'"):
        train(toy(), bundle(), cfg(device="gpu"), tmp_path / "x", progress=False)
    with pytest.raises(QuickDrawError, match="not found"):
        read_checkpoint(tmp_path / "missing.pt")


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"batch_size": 0}, "batch_size must be >= 1, got 0"),
        ({"eval_every": 0}, "eval_every must be >= 1"),
        ({"checkpoint_every": 0}, "checkpoint_every must be >= 1"),
        ({"log_every": 0}, "log_every must be >= 1"),
        ({"steps": -1}, "steps must be >= 0"),
        ({"lr": -1.0}, "lr must be > 0, got -1.0"),
        ({"lr_decay": 1.5}, "lr_decay is a per-step factor in \\(0, 1\\], got 1.5"),
        ({"grad_clip": -1.0}, "grad_clip must be >= 0"),
        ({"device": "gpu"}, "unknown device 'gpu'"),
    ],
)
def test_bad_settings_are_clear_errors_not_crashes_mid_run(bad, message):
    # these used to surface as ZeroDivisionError (batch, eval/checkpoint/log period 0) or
    # torch's ValueError (negative lr) after the data had been loaded
    with pytest.raises(QuickDrawError, match=message):
        cfg(**bad)


def test_ddp_with_gloo_and_two_processes(shared, tmp_path):
    """The torchrun path on CPU: DistributedSampler shards, DDP averages, rank 0 writes."""
    import os
    import subprocess
    import sys

    from quickdraw_tools import formats
    from quickdraw_tools import strokes as S

    records = formats.iter_ndjson(shared / "training" / "snowman.ndjson")
    sketches = [S.drawing_to_stroke3(r["drawing"]) for r in records]
    sketches = [s for s in sketches if len(s) <= 40][:60]
    data = tmp_path / "snowman.npz"
    formats.save_sketchrnn_npz(
        data, {"train": sketches[:40], "valid": sketches[40:50], "test": sketches[50:]}
    )
    run = tmp_path / "run"
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "quickdraw_tools.cli", "train", "sketch-rnn", "--data", str(data),
        "--out", str(run), "--steps", "3", "--batch-size", "5", "--device", "cpu",
        "--max-seq-len", "40", "--enc-size", "8", "--dec-size", "8", "--z-size", "4",
        "--num-mixture", "2", "--eval-every", "3", "--log-every", "1", "--quiet",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("trained sketch-rnn to step 3") == 2  # both ranks finish
    ckpt = read_checkpoint(run / "last.pt")
    assert ckpt["step"] == 3 and ckpt["world_size"] == 2
    assert len(ckpt["rng"]) == 2  # every rank's generator, for an exact resume
    assert len(rows(run / "metrics.csv")) == 3 and len(rows(run / "metrics.csv", "valid")) == 1
