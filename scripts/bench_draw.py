"""Training speed of our DRAW against a straightforward version of the report's loop.

The reference (`ReportDraw`) has the same weights and gives the same losses,
but computes the attention the way the report's code does: per step, a Python
loop over the images of the batch, building each image's filterbanks and
glimpse (or canvas patch) on its own. Ours builds every filterbank of the batch
at once and reads and writes with batched matrix products.

Both train on the same batch of real cat bitmaps at the same sizes (the report's
defaults: batch 100, T 20, read/write N 5, z 10, LSTM 256, RMSprop), with steps
interleaved (ours, reference, ours, ...) so that other load on a shared machine
hits both alike. Prints steps/second and the ratio from one run.

    .venv/bin/python scripts/bench_draw.py               # CPU, 1 thread
    .venv/bin/python scripts/bench_draw.py --device cuda
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from quickdraw_tools.models.draw import (
    Draw,
    DrawConfig,
    DrawTraining,
    attention_window,
    filterbank,
)

SETTINGS = DrawTraining()  # the report's: RMSprop, lr 1e-3, clip 5, batch 100

CAT = Path(__file__).resolve().parents[2] / "shared/quickdraw/mirror/full/numpy_bitmap/cat.npy"


class ReportDraw(Draw):
    """DRAW with the report's unbatched attention: one image at a time inside each step."""

    def _read(self, x, x_hat, h_dec):
        c = self.config
        params = self.to_read(h_dec)
        glimpses = []
        for i in range(x.shape[0]):
            window = attention_window(params[i : i + 1], c.read_n, c.height, c.width)
            f_x, f_y = filterbank(window, c.read_n, c.height, c.width)
            f_x, f_y = f_x[0], f_y[0]
            patch_x = f_y @ x[i] @ f_x.T
            patch_hat = f_y @ x_hat[i] @ f_x.T
            glimpses.append(window.gamma * torch.cat([patch_x.flatten(), patch_hat.flatten()]))
        return torch.stack(glimpses), None

    def _write(self, h_dec):
        c = self.config
        out = self.to_write(h_dec)
        canvases = []
        for i in range(h_dec.shape[0]):
            patch = out[i, : c.write_n**2].view(c.write_n, c.write_n)
            window = attention_window(out[i : i + 1, c.write_n**2 :], c.write_n, c.height, c.width)
            f_x, f_y = filterbank(window, c.write_n, c.height, c.width)
            canvases.append(f_y[0].T @ patch @ f_x[0] / window.gamma)
        return torch.stack(canvases), None


def train_step(model: Draw, optimizer, batch) -> float:
    loss = model(batch).total
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), SETTINGS.grad_clip)
    optimizer.step()
    return loss.item()


def check_same_losses(config: DrawConfig, batch: torch.Tensor) -> float:
    """Largest |difference| between the two models' per-example losses (same weights, noise)."""
    ours = Draw(config)
    reference = ReportDraw(config)
    reference.load_state_dict(ours.state_dict())
    torch.manual_seed(0)
    a = ours(batch, reduction="none")
    torch.manual_seed(0)
    b = reference(batch, reduction="none")
    return max((a.recon - b.recon).abs().max().item(), (a.kl - b.kl).abs().max().item())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=10, help="timed steps per model")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per model first")
    parser.add_argument("--batch-size", type=int, default=SETTINGS.batch_size)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: torch sees no CUDA GPU")

    config = DrawConfig()
    grey = torch.from_numpy(np.array(np.load(CAT, mmap_mode="r")[: args.batch_size]))
    images = (grey.float() / 255 > 0.5).float()  # fixed 0/1 targets: both models see the same
    difference = check_same_losses(config, images[:8])
    batch = images.to(device)

    torch.manual_seed(0)
    models = {"ours (batched)": Draw(config), "report loop (per image)": ReportDraw(config)}
    optimizers = {}
    for name, model in models.items():
        model.to(device).train()
        optimizers[name] = model.configure_optimizer(SETTINGS)
        for _ in range(args.warmup):
            train_step(model, optimizers[name], batch)
    times: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(args.steps):
        for name, model in models.items():
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            train_step(model, optimizers[name], batch)
            if device.type == "cuda":
                torch.cuda.synchronize()
            times[name].append(time.perf_counter() - start)

    where = torch.cuda.get_device_name() if device.type == "cuda" else f"CPU, {args.threads} thr"
    print(
        f"DRAW training steps/s, batch {args.batch_size}, T {config.T}, N {config.read_n}/"
        f"{config.write_n}, LSTM {config.enc_size}, {where}; median of {args.steps} steps"
    )
    print(f"same weights and noise -> max |loss difference| {difference:.2e} nats")
    rates = {name: 1 / statistics.median(t) for name, t in times.items()}
    for name, rate in rates.items():
        print(f"  {name:<26} {rate:8.2f} steps/s")
    ours, reference = rates.values()
    print(f"  {'speed-up':<26} {ours / reference:8.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
