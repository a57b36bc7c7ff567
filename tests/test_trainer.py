"""The shared trainer: schedules, checkpoints, exact resume, NaN stop, DDP (gloo, 2 processes)."""

from __future__ import annotations

import csv
import os
import signal
import time
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
    TrainingInterrupted,
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


class Slow(Toy):
    """The toy with a 20 ms step, so a time limit ends it long before --steps."""

    def forward(self, batch, step=None, reduction="mean"):
        if step is not None:
            time.sleep(0.02)
        return super().forward(batch, step, reduction)


def test_time_limit_ends_the_run_validated_and_saved_like_a_last_step(tmp_path):
    torch.manual_seed(0)
    settings = cfg(steps=100_000, time_limit=0.3, eval_every=1000, checkpoint_every=1000)
    result = train(Slow(ToyConfig()), bundle(), settings, tmp_path, progress=False)
    assert 5 <= result.step < 100  # ~15 steps of 20 ms, far from 100,000
    assert read_checkpoint(result.last_checkpoint)["step"] == result.step
    assert [int(r["step"]) for r in rows(result.metrics, "valid")] == [result.step]
    assert read_checkpoint(result.best_checkpoint)["step"] == result.step
    # resumed, the limit holds again for the new process, and the run goes on from there
    torch.manual_seed(0)
    more = train(Slow(ToyConfig()), bundle(), settings, tmp_path, resume=True, progress=False)
    assert result.step + 5 <= more.step < result.step + 100


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
        ({"time_limit": -5.0}, "time_limit must be >= 0"),
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


# --- interrupted runs: SIGINT / SIGTERM save the current step --------------------------------


class SignalsAt(Toy):
    """Sends this process SIGINT during the forward pass of step `at` (0-based)."""

    at = 2

    def forward(self, batch, step=None, reduction="mean"):
        if step == self.at:
            os.kill(os.getpid(), signal.SIGINT)
        return super().forward(batch, step, reduction)


def test_a_signal_saves_the_step_in_progress_and_resuming_is_exact(tmp_path):
    before = signal.getsignal(signal.SIGINT)
    settings = cfg(steps=8, log_every=2)
    full = train(toy(), bundle(), settings, tmp_path / "full", progress=False)
    torch.manual_seed(0)
    with pytest.raises(TrainingInterrupted) as stopped:
        train(SignalsAt(ToyConfig()), bundle(), settings, tmp_path / "cut", progress=False)
    # the step in progress (index 2) finished: step 3 is saved, with its row in metrics.csv
    assert stopped.value.step == 3 and stopped.value.signum == signal.SIGINT
    assert str(stopped.value) == f"interrupted at step 3; saved {tmp_path / 'cut' / 'last.pt'}"
    assert read_checkpoint(tmp_path / "cut" / "last.pt")["step"] == 3
    assert [r["step"] for r in rows(tmp_path / "cut" / "metrics.csv")] == ["2", "3"]
    assert signal.getsignal(signal.SIGINT) is before  # the trainer's handler is gone
    cut = train(toy(), bundle(), settings, tmp_path / "cut", resume=True, progress=False)
    a, b = read_checkpoint(full.last_checkpoint), read_checkpoint(cut.last_checkpoint)
    assert all(torch.equal(a["weights"][k], b["weights"][k]) for k in a["weights"])
    # the logged steps: the regular ones, plus the step it stopped at
    assert [r["step"] for r in rows(cut.metrics)] == ["2", "3", "4", "6", "8"]


def snowman_npz(shared, path: Path, n: int = 60, max_len: int = 40, offset: int = 0) -> Path:
    """`n` real snowmen with at most `max_len` points, 2/3 train and 1/6 valid and test."""
    from quickdraw_tools import formats
    from quickdraw_tools import strokes as S

    records = formats.iter_ndjson(shared / "training" / "snowman.ndjson")
    sketches = [S.drawing_to_stroke3(r["drawing"]) for r in records]
    sketches = [s for s in sketches if len(s) <= max_len][offset : offset + n]
    a, b = 2 * n // 3, 5 * n // 6
    formats.save_sketchrnn_npz(
        path, {"train": sketches[:a], "valid": sketches[a:b], "test": sketches[b:]}
    )
    return path


TINY_RNN_FLAGS = [
    "--max-seq-len", "40", "--enc-size", "8", "--dec-size", "8", "--z-size", "4",
    "--num-mixture", "2", "--batch-size", "5", "--eval-every", "1000", "--checkpoint-every",
    "2", "--log-every", "1", "--quiet",
]  # fmt: skip
TINY_DRAW_FLAGS = [
    "--T", "2", "--read-n", "2", "--write-n", "3", "--z-size", "2", "--enc-size", "8",
    "--dec-size", "8", "--max-per-category", "60", "--batch-size", "8", "--eval-every", "1000",
    "--checkpoint-every", "2", "--log-every", "1", "--quiet",
]  # fmt: skip


@pytest.mark.parametrize(
    "signum, model", [(signal.SIGINT, "sketch-rnn"), (signal.SIGTERM, "draw")], ids=["int", "term"]
)
def test_signal_to_a_real_run_saves_it_and_the_printed_command_continues_it(
    signum, model, shared, tmp_path, capsys
):
    import shlex
    import subprocess
    import sys
    import time

    from quickdraw_tools.cli import main

    if model == "draw":
        data, flags = str(shared / "mirror/full/numpy_bitmap/cat.npy"), TINY_DRAW_FLAGS
    else:
        data, flags = str(snowman_npz(shared, tmp_path / "snowman.npz")), TINY_RNN_FLAGS
    run, full = tmp_path / "run", tmp_path / "full"
    cmd = [sys.executable, "-m", "quickdraw_tools.cli", "train", model, "--data", data,
           "--out", str(run), "--steps", "100000", *flags]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not (run / "metrics.csv").exists():  # written with the step-2 checkpoint
            assert proc.poll() is None, proc.communicate()[1].decode()[-2000:]
            assert time.monotonic() < deadline, "no checkpoint within 120 s"
            time.sleep(0.05)
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signum, err.decode()[-2000:]
    step = read_checkpoint(run / "last.pt")["step"]
    assert 2 <= step < 100000
    last = run / "last.pt"
    expected = (
        f"interrupted at step {step}; saved {last}; continue with: "
        f"quickdraw train {model} --resume {shlex.quote(str(last))}"
    )
    assert err.decode().strip().splitlines()[-1] == expected
    # metrics.csv holds every step done (log_every 1), the last one included
    assert [int(r["step"]) for r in rows(run / "metrics.csv")] == list(range(1, step + 1))

    # the printed command continues it (2 more steps), on its own data, exactly
    argv = shlex.split(expected.split("continue with: ")[1])[1:]
    assert main([*argv, "--steps", str(step + 2), "--quiet"]) == 0
    assert f"resuming {run} from step {step}" in capsys.readouterr().out
    whole = ["train", model, "--data", data, "--out", str(full), *flags]
    assert main([*whole, "--steps", str(step + 2)]) == 0
    a, b = read_checkpoint(full / "last.pt"), read_checkpoint(last)
    assert a["step"] == b["step"] == step + 2
    assert all(torch.equal(a["weights"][k], b["weights"][k]) for k in a["weights"])


# --- --resume takes the checkpoint's data; --init-from starts a new run ----------------------


def test_resume_takes_the_data_its_checkpoint_names_and_refuses_other_data(
    shared, tmp_path, capsys
):
    import shutil

    from quickdraw_tools.cli import main

    snow = snowman_npz(shared, tmp_path / "snowman.npz")
    other = snowman_npz(shared, tmp_path / "other" / "snowman.npz", offset=60)
    run = tmp_path / "run"
    last = run / "last.pt"
    assert main(["train", "sketch-rnn", "--data", str(snow), "--out", str(run),
                 "--steps", "2", *TINY_RNN_FLAGS]) == 0  # fmt: skip
    capsys.readouterr()
    # no --data: the files the checkpoint names
    assert main(["train", "sketch-rnn", "--resume", str(last), "--steps", "3", "--quiet"]) == 0
    assert f"resuming {run} from step 2" in capsys.readouterr().out
    assert read_checkpoint(last)["step"] == 3

    def refused(*args: str) -> str:
        assert main(["train", "sketch-rnn", *args, "--quiet"]) == 1
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1, err
        return err

    # other data (same name, other sketches: the scale factor and best.pt would not be the run's)
    err = refused("--resume", str(last), "--data", str(other), "--steps", "4")
    assert f"--data {other} holds other data" in err and "fingerprint" in err
    assert f"--init-from {last} --data FILE... --out NEW_RUN" in err
    # the same data read differently is other data too
    err = refused("--resume", str(last), "--steps", "4", "--max-per-category", "20")
    assert "the files it names, read with these flags, now hold other data" in err
    # resuming is from the run's last.pt, in its own folder
    err = refused("--resume", str(run / "best.pt"), "--steps", "4")
    assert f"not best.pt; to start a new run from the weights of {run / 'best.pt'}" in err
    err = refused("--resume", str(last), "--out", str(tmp_path / "elsewhere"), "--steps", "4")
    assert f"continues the run in {run}, not --out" in err
    assert refused("--resume", str(last), "--init-from", str(last)).endswith("give one of them")
    assert "already holds a run; continue it with --resume" in refused(
        "--data", str(snow), "--out", str(run), "--steps", "4"
    )
    assert read_checkpoint(last)["step"] == 3  # nothing was trained by the refused runs

    # the same data in another place is the same data (files moved): given, it is taken
    moved = tmp_path / "moved" / "snowman.npz"
    moved.parent.mkdir()
    shutil.move(snow, moved)
    err = refused("--resume", str(last), "--steps", "4")
    assert f"was trained on {snow.resolve()}, which is not there any more; pass --data" in err
    # the old form, --out RUN --resume, still continues --out's run
    assert main(["train", "sketch-rnn", "--data", str(moved), "--out", str(run), "--resume",
                 "--steps", "4", "--quiet"]) == 0  # fmt: skip
    ckpt = read_checkpoint(last)
    assert ckpt["step"] == 4 and ckpt["data_state"]["files"] == [str(moved.resolve())]


def test_init_from_is_a_new_run_with_the_checkpoints_weights_and_scale(shared, tmp_path, capsys):
    from dataclasses import asdict

    from quickdraw_tools.cli import main
    from quickdraw_tools.models import sketch_rnn as R

    snow = snowman_npz(shared, tmp_path / "snowman.npz")
    lion = snowman_npz(shared, tmp_path / "b" / "lion.npz", n=48, offset=60)  # other data
    run, new, zero = tmp_path / "run", tmp_path / "new", tmp_path / "zero"
    assert main(["train", "sketch-rnn", "--data", str(snow), "--out", str(run),
                 "--steps", "2", *TINY_RNN_FLAGS]) == 0  # fmt: skip
    source = read_checkpoint(run / "last.pt")
    capsys.readouterr()
    training = ["--batch-size", "5", "--log-every", "1", "--quiet"]  # no model flags needed
    start = ["train", "sketch-rnn", "--init-from", str(run / "last.pt"), "--data", str(lion)]
    # step 0 of the new run: the source's weights, a fresh optimiser
    assert main([*start, "--out", str(zero), "--steps", "0", *training]) == 0
    out = capsys.readouterr().out
    ckpt = read_checkpoint(zero / "last.pt")
    assert ckpt["step"] == 0 and ckpt["optimizer"]["state"] == {}
    assert all(torch.equal(ckpt["weights"][k], source["weights"][k]) for k in ckpt["weights"])
    assert ckpt["model_config"] == source["model_config"]
    # sketch-rnn keeps the source's scale factor (its weights' units), says so, and records both
    cfg = R.SketchRNNConfig(**source["model_config"])
    own = R.build_datasets(cfg, [lion], R.SketchRNNTraining(batch_size=5)).state["scale_factor"]
    scale = source["data_state"]["scale_factor"]
    state = ckpt["data_state"]
    assert own != scale and state["scale_factor"] == scale and state["own_scale_factor"] == own
    assert ckpt["train_config"]["scale_factor"] == scale  # so resuming it keeps it
    assert state["categories"] == ["lion"] and state["files"] == [str(lion.resolve())]
    assert state["init_from"] == {"checkpoint": str((run / "last.pt").resolve()), "step": 2}
    assert f"starting {zero} from the weights of {run / 'last.pt'} (step 2)" in out
    assert f"scale_factor {scale:.6g} from {run / 'last.pt'} (the new training split's own: " \
        f"{own:.6g})" in out  # fmt: skip
    # the new run's training settings are a new run's (the defaults and the flags given)
    defaults = asdict(R.SketchRNNTraining(batch_size=5, log_every=1, steps=0))
    assert ckpt["train_config"] == {**defaults, "scale_factor": scale}

    # it trains, and resumes on its own data with its inherited scale
    assert main([*start, "--out", str(new), "--steps", "2", *training]) == 0
    assert main(["train", "sketch-rnn", "--resume", str(new / "last.pt"), "--steps", "3",
                 "--quiet"]) == 0  # fmt: skip
    resumed = read_checkpoint(new / "last.pt")
    assert resumed["step"] == 3 and resumed["data_state"]["scale_factor"] == scale
    # model flags may change what does not change the weights' shapes; others are refused
    assert main([*start, "--out", str(tmp_path / "kl"), "--steps", "0", "--kl-weight", "1.0",
                 *training]) == 0  # fmt: skip
    assert read_checkpoint(tmp_path / "kl" / "last.pt")["model_config"]["kl_weight"] == 1.0
    capsys.readouterr()
    assert main([*start, "--out", str(tmp_path / "big"), "--dec-size", "16", *training]) == 1
    assert "do not fit the model these flags make" in capsys.readouterr().err
    assert main([*start, "--out", str(new), *training]) == 1  # a new run needs a new --out
    assert "already holds a run" in capsys.readouterr().err
