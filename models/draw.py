"""DRAW: a recurrent attention VAE that draws 28×28 Quick, Draw! bitmaps.

Gregor, Danihelka, Graves, Rezende and Wierstra, "DRAW: A Recurrent Neural
Network For Image Generation" (ICML 2015), as the project's DRAW report applied
it to Quick, Draw! bitmaps. Equations are numbered as in the paper:

- the loop (eqs. 3-8): x̂_t = x − σ(c_{t−1}); r_t = read(x, x̂_t, h^dec_{t−1});
  h^enc_t = RNN^enc(h^enc_{t−1}, [r_t, h^dec_{t−1}]); z_t ~ Q(Z_t | h^enc_t);
  h^dec_t = RNN^dec(h^dec_{t−1}, z_t); c_t = c_{t−1} + write(h^dec_t);
- the loss (eqs. 9-12): L^x = −log D(x | c_T) with D Bernoulli on σ(c_T), and
  L^z = Σ_t ½·Σ_d(μ² + σ² − log σ² − 1) — the constant is ½·z_size per step
  (the report subtracted 0.5 once per step, overstating L^z by T·(z_size − 1)/2
  nats; `report_kl_offset(config)` gives that amount so the two can be compared);
- the attention (eqs. 19-29): a linear map of h^dec gives (g̃_X, g̃_Y, log σ²,
  log δ̃, log γ); g_X = (A+1)/2·(g̃_X+1), g_Y = (B+1)/2·(g̃_Y+1),
  δ = (max(A, B) − 1)/(N − 1)·δ̃; Gaussian filterbanks F_X (N×A), F_Y (N×B)
  normalised per row; read = γ·[F_Y x F_Xᵀ, F_Y x̂ F_Xᵀ];
  write = (1/γ̂)·F̂_Yᵀ w_t F̂_X. All of it is batched matrix products.

Pixel coordinates are 1-based (a = 1..A), as in the paper, so g̃ = 0 puts the
grid centre exactly at the image centre ((A+1)/2).

Targets: dynamic binarisation (a fresh Bernoulli sample of the grey levels each
time an image is seen) by default, or a fixed threshold. The report's mode,
grey levels used directly as Bernoulli targets ("grey"), trains fine but its
L^x is a cross-entropy, **not a log-likelihood**: never report it as one.
"""

from __future__ import annotations

import json
import math
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from ..atomic import atomic_write
from ..errors import QuickDrawError, check_choice
from ..formats import load_bitmaps
from .base import DataBundle, Losses

BINARIZE_MODES = ("dynamic", "threshold", "grey")
OPTIMIZERS = ("rmsprop", "adam")
REDUCTIONS = ("mean", "none")


@dataclass
class DrawConfig:
    """DRAW hyperparameters; defaults are the DRAW report's for Quick, Draw! bitmaps."""

    # model
    T: int = 20  # glimpses (decoder steps) per image
    height: int = 28  # B in the paper: image rows
    width: int = 28  # A in the paper: image columns
    read_attn: bool = True  # Gaussian read attention; False reads the whole image and x̂
    write_attn: bool = True  # Gaussian write attention; False writes the whole canvas
    learn_canvas: bool = False  # c_0 a learned per-pixel bias (starts at logit 0.1), not 0
    read_n: int = 5  # N of the read grid (N×N glimpse of x and of x̂)
    write_n: int = 5  # N of the write grid (N×N patch added to the canvas)
    z_size: int = 10  # latent dimensions per step
    enc_size: int = 256  # encoder LSTM units
    dec_size: int = 256  # decoder LSTM units
    # targets
    binarize: str = "dynamic"  # "dynamic" | "threshold" | "grey" (grey: not a likelihood)
    threshold: float = 0.5  # grey level in [0, 1] above which a pixel is on ("threshold" mode)
    # training (batch size, learning rate and clipping are TrainConfig's: see TRAIN_DEFAULTS)
    optimizer: str = "rmsprop"  # "rmsprop" (the report) | "adam"
    # data
    valid_fraction: float = 0.05  # share of each category held out for validation
    test_fraction: float = 0.1  # share of each category held out for the test bound
    max_per_category: int = 0  # cap rows per category, split as above (0: all)

    def __post_init__(self):
        check_choice("binarize mode", self.binarize, BINARIZE_MODES)
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        for name in ("T", "height", "width", "z_size", "enc_size", "dec_size"):
            if getattr(self, name) < 1:
                raise QuickDrawError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("read_n", "write_n"):
            if getattr(self, name) < 2:
                raise QuickDrawError(f"{name} must be >= 2 (δ divides by N − 1)")
        if self.max_per_category and self.max_per_category < 3:
            raise QuickDrawError(
                f"max_per_category must be 0 (all) or >= 3, got {self.max_per_category}"
            )
        if not 0.0 <= self.threshold <= 1.0:
            raise QuickDrawError(f"threshold must be in [0, 1], got {self.threshold}")
        if self.valid_fraction < 0 or self.test_fraction < 0:
            raise QuickDrawError("valid_fraction and test_fraction must be >= 0")
        if self.valid_fraction + self.test_fraction >= 1:
            raise QuickDrawError(
                f"valid_fraction + test_fraction must be < 1, got "
                f"{self.valid_fraction} + {self.test_fraction}"
            )


# The report's training settings, as `models.trainer.TrainConfig` fields (the trainer owns
# them; `quickdraw train draw` flags of the same names override them).
TRAIN_DEFAULTS = {
    "batch_size": 100,  # images per optimiser step
    "lr": 1e-3,  # learning rate
    "lr_decay": 1.0,  # the report keeps the learning rate constant
    "grad_clip": 5.0,  # max global gradient norm (clip_grad_norm_)
}


def report_kl_offset(config: DrawConfig) -> float:
    """How much the report's KL (constant 0.5 per step, not ½·z_size) overstates L^z, in nats."""
    return config.T * (config.z_size - 1) / 2


# ---------------------------------------------------------------------------
# Attention (paper section 3.2, eqs. 19-29)


@dataclass
class Window:
    """Attention parameters of a batch, each of shape (B,), in 1-based pixel units."""

    g_x: torch.Tensor  # grid centre, column
    g_y: torch.Tensor  # grid centre, row
    delta: torch.Tensor  # stride between grid points
    sigma2: torch.Tensor  # variance of every Gaussian filter
    gamma: torch.Tensor  # intensity

    def stack(self) -> torch.Tensor:
        """(B, 5): columns g_x, g_y, delta, sigma2, gamma."""
        return torch.stack([self.g_x, self.g_y, self.delta, self.sigma2, self.gamma], dim=-1)


def attention_window(params: torch.Tensor, n: int, height: int, width: int) -> Window:
    """(B, 5) raw outputs (g̃_X, g̃_Y, log σ², log δ̃, log γ) -> `Window` (eqs. 21-24)."""
    gx_, gy_, log_sigma2, log_delta_, log_gamma = params.unbind(-1)
    return Window(
        g_x=(width + 1) / 2 * (gx_ + 1),
        g_y=(height + 1) / 2 * (gy_ + 1),
        delta=(max(width, height) - 1) / (n - 1) * torch.exp(log_delta_),
        sigma2=torch.exp(log_sigma2),
        gamma=torch.exp(log_gamma),
    )


def filterbank(window: Window, n: int, height: int, width: int):
    """Gaussian filterbanks (eqs. 19-20, 25-26) -> F_X (B, N, width), F_Y (B, N, height).

    Each row (one grid point's filter) is normalised to sum to 1. A softmax over
    pixels is exactly that normalisation, computed without underflow: a grid
    point far outside the image with a small σ² still gets a row summing to 1
    (on the nearest pixels) instead of exp() rounding the whole row to 0.
    """
    offsets = torch.arange(n, dtype=window.g_x.dtype, device=window.g_x.device) - (n - 1) / 2
    mu_x = window.g_x[:, None] + offsets * window.delta[:, None]  # (B, N), eq. 19
    mu_y = window.g_y[:, None] + offsets * window.delta[:, None]  # eq. 20
    two_var = 2 * window.sigma2[:, None, None]

    def bank(mu: torch.Tensor, size: int) -> torch.Tensor:
        pixels = torch.arange(1, size + 1, dtype=mu.dtype, device=mu.device)  # 1-based
        return torch.softmax(-((pixels - mu[..., None]) ** 2) / two_var, dim=-1)  # (B, N, size)

    return bank(mu_x, width), bank(mu_y, height)


def read_glimpse(images: torch.Tensor, f_x: torch.Tensor, f_y: torch.Tensor) -> torch.Tensor:
    """F_Y · image · F_Xᵀ for every image of a batch: (B, C, H, W) -> (B, C, N, N) (eq. 27)."""
    return f_y[:, None] @ images @ f_x.transpose(1, 2)[:, None]


def write_patch(patch: torch.Tensor, f_x: torch.Tensor, f_y: torch.Tensor) -> torch.Tensor:
    """F̂_Yᵀ · w · F̂_X: (B, N, N) patch -> (B, H, W) canvas update (eq. 29, without 1/γ̂)."""
    return f_y.transpose(1, 2) @ patch @ f_x


def kl_standard_normal(mu: torch.Tensor, log_sigma: torch.Tensor) -> torch.Tensor:
    """KL(N(μ, σ²) ‖ N(0, I)) per example, (B, z) -> (B,) (eq. 11 for one step).

    ½·Σ_d(μ² + σ² − log σ² − 1): the −1 is inside the sum, so the constant is
    ½·z_size, not the report's 0.5.
    """
    return 0.5 * (mu.pow(2) + torch.exp(2 * log_sigma) - 2 * log_sigma - 1).sum(-1)


# ---------------------------------------------------------------------------
# The model


@dataclass
class DrawTrace:
    """What `generate`/`reconstruct` record: every step's canvas and attention windows."""

    canvases: torch.Tensor  # (T, B, H, W): σ(c_t) for t = 1..T, pixel probabilities
    read_windows: torch.Tensor | None  # (T, B, 5) `Window.stack()` per step; None without reading
    write_windows: torch.Tensor | None  # (T, B, 5), or None when write attention is off
    read_n: int
    write_n: int

    def cpu(self) -> DrawTrace:
        """The same trace with its tensors on the CPU (for pictures)."""

        def cpu(t):
            return None if t is None else t.cpu()

        return DrawTrace(
            cpu(self.canvases),
            cpu(self.read_windows),
            cpu(self.write_windows),
            self.read_n,
            self.write_n,
        )

    @property
    def final(self) -> torch.Tensor:
        """(B, H, W): the last canvas, σ(c_T)."""
        return self.canvases[-1]


class Draw(nn.Module):
    """DRAW with (or without) Gaussian read/write attention; see the module docstring."""

    name = "draw"
    config_class = DrawConfig

    def __init__(self, config: DrawConfig):
        super().__init__()
        self.config = c = config
        pixels = c.height * c.width
        read_size = 2 * c.read_n**2 if c.read_attn else 2 * pixels
        self.encoder = nn.LSTMCell(read_size + c.dec_size, c.enc_size)
        self.to_q = nn.Linear(c.enc_size, 2 * c.z_size)  # μ and log σ (eq. 1-2)
        self.decoder = nn.LSTMCell(c.z_size, c.dec_size)
        # write(h_dec): a patch w_t (N̂×N̂) plus its window's 5 parameters, or the whole canvas
        write_out = c.write_n**2 + 5 if c.write_attn else pixels
        self.to_write = nn.Linear(c.dec_size, write_out)
        self.to_read = nn.Linear(c.dec_size, 5) if c.read_attn else None
        # c_0: the report starts from 0 (σ = 0.5 everywhere) and must paint the background
        # through the write windows; a learned bias starting near the ink density does not.
        self.canvas0 = (
            nn.Parameter(torch.full((c.height, c.width), math.log(0.1 / 0.9)))
            if c.learn_canvas
            else None
        )

    # -- the pieces of one step -------------------------------------------

    def _read(self, x, x_hat, h_dec) -> tuple[torch.Tensor, Window | None]:
        c = self.config
        if not c.read_attn:
            return torch.cat([x.flatten(1), x_hat.flatten(1)], dim=1), None
        window = attention_window(self.to_read(h_dec), c.read_n, c.height, c.width)
        f_x, f_y = filterbank(window, c.read_n, c.height, c.width)
        glimpse = read_glimpse(torch.stack([x, x_hat], dim=1), f_x, f_y)
        return window.gamma[:, None] * glimpse.flatten(1), window

    def _write(self, h_dec) -> tuple[torch.Tensor, Window | None]:
        c = self.config
        out = self.to_write(h_dec)
        if not c.write_attn:
            return out.view(-1, c.height, c.width), None
        patch = out[:, : c.write_n**2].view(-1, c.write_n, c.write_n)
        window = attention_window(out[:, c.write_n**2 :], c.write_n, c.height, c.width)
        f_x, f_y = filterbank(window, c.write_n, c.height, c.width)
        return write_patch(patch, f_x, f_y) / window.gamma[:, None, None], window

    def _initial_state(self, batch: int, like: torch.Tensor):
        c = self.config
        zeros = like.new_zeros
        enc = (zeros(batch, c.enc_size), zeros(batch, c.enc_size))
        dec = (zeros(batch, c.dec_size), zeros(batch, c.dec_size))
        if self.canvas0 is not None:
            return enc, dec, self.canvas0.expand(batch, c.height, c.width)
        return enc, dec, zeros(batch, c.height, c.width)

    def _unroll(self, x: torch.Tensor, record: bool = False, log_ratio: bool = False):
        """Run the T steps on images x (B, H, W) in [0, 1] -> (c_T, L^z per example, trace).

        With `log_ratio`, the second value is instead Σ_t log p(z_t) − log q(z_t | x)
        at the sampled z (its expectation is −L^z), for importance weights.
        """
        c = self.config
        batch = x.shape[0]
        (h_enc, s_enc), (h_dec, s_dec), canvas = self._initial_state(batch, x)
        kl = x.new_zeros(batch)
        canvases, reads, writes = [], [], []
        for _ in range(c.T):
            x_hat = x - torch.sigmoid(canvas)  # eq. 3
            r, read_window = self._read(x, x_hat, h_dec)  # eq. 4
            h_enc, s_enc = self.encoder(torch.cat([r, h_dec], dim=1), (h_enc, s_enc))  # eq. 5
            mu, log_sigma = self.to_q(h_enc).chunk(2, dim=1)
            noise = torch.randn_like(mu)  # fresh at every step
            z = mu + torch.exp(log_sigma) * noise  # eq. 6
            h_dec, s_dec = self.decoder(z, (h_dec, s_dec))  # eq. 7
            update, write_window = self._write(h_dec)
            canvas = canvas + update  # eq. 8
            if log_ratio:  # log N(z; 0, I) − log N(z; μ, σ²); the log 2π terms cancel
                kl = kl + (0.5 * noise.pow(2) - 0.5 * z.pow(2) + log_sigma).sum(-1)
            else:
                kl = kl + kl_standard_normal(mu, log_sigma)  # eq. 11
            if record:
                canvases.append(torch.sigmoid(canvas))
                if read_window is not None:
                    reads.append(read_window.stack())
                if write_window is not None:
                    writes.append(write_window.stack())
        trace = self._trace(canvases, reads, writes) if record else None
        return canvas, kl, trace

    def _trace(self, canvases, reads, writes) -> DrawTrace:
        return DrawTrace(
            canvases=torch.stack(canvases),
            read_windows=torch.stack(reads) if reads else None,
            write_windows=torch.stack(writes) if writes else None,
            read_n=self.config.read_n,
            write_n=self.config.write_n,
        )

    # -- the contract with the trainer (models/base.py) -------------------

    def images(self, batch) -> torch.Tensor:
        """A batch ((B, 784) or (B, H, W), uint8 or float in [0, 1]; or a tuple whose first
        element is one) -> float (B, H, W) in [0, 1] on this model's device."""
        if isinstance(batch, (tuple, list)):
            batch = batch[0]
        c = self.config
        x = torch.as_tensor(batch)
        if x.dtype == torch.uint8:
            x = x.float() / 255
        x = x.to(device=self.to_q.weight.device, dtype=self.to_q.weight.dtype)
        if x.shape[1:] not in ((c.height * c.width,), (c.height, c.width)):
            raise QuickDrawError(
                f"DRAW expects images of shape (B, {c.height * c.width}) or "
                f"(B, {c.height}, {c.width}), got {tuple(x.shape)}"
            )
        return x.view(-1, c.height, c.width)

    def targets(self, x: torch.Tensor) -> torch.Tensor:
        """The Bernoulli targets for grey levels x: a fresh binarisation, a threshold, or x.

        In "dynamic" mode x is resampled every call; 0/1 images (the held-out
        splits, binarised once at build time) are their own sample, so
        validation and test bounds are deterministic in the data.
        """
        mode = self.config.binarize
        if mode == "dynamic":
            return torch.bernoulli(x)
        if mode == "threshold":
            return (x > self.config.threshold).to(x.dtype)
        return x  # "grey": cross-entropy against grey levels, not a likelihood

    def forward(self, batch, step: int | None = None, reduction: str = "mean") -> Losses:
        """Losses of a batch in nats: recon = L^x, kl = L^z (eqs. 9-12), total = mean(L^x + L^z).

        `step` is unused (DRAW has no schedules). With reduction="none", recon
        and kl are per example, shape (B,).
        """
        check_choice("reduction", reduction, REDUCTIONS)
        x = self.targets(self.images(batch))
        canvas, kl, _ = self._unroll(x)
        recon = F.binary_cross_entropy_with_logits(canvas, x, reduction="none").sum((1, 2))
        total = (recon + kl).mean()
        if reduction == "mean":
            recon, kl = recon.mean(), kl.mean()
        return Losses(recon=recon, kl=kl, total=total)

    def log_importance_weight(self, batch) -> torch.Tensor:
        """log p(x, z) − log q(z | x) per example, (B,), at one z ~ q(z | x) (fresh noise).

        For the importance-weighted bound (Burda et al. 2016) in `eval.likelihood`:
        its expectation is −(L^x + L^z), the same targets and likelihood as `forward`.
        """
        x = self.targets(self.images(batch))
        canvas, log_ratio, _ = self._unroll(x, log_ratio=True)
        log_px = -F.binary_cross_entropy_with_logits(canvas, x, reduction="none").sum((1, 2))
        return log_px + log_ratio

    def configure_optimizer(self, lr: float = TRAIN_DEFAULTS["lr"]) -> torch.optim.Optimizer:
        """The optimiser the config names (RMSprop as in the report, or Adam) at `lr`."""
        c = self.config
        if c.optimizer == "adam":
            return torch.optim.Adam(self.parameters(), lr=lr)
        return torch.optim.RMSprop(self.parameters(), lr=lr)

    # -- using a trained model --------------------------------------------

    @torch.no_grad()
    def generate(
        self, n: int, generator: torch.Generator | None = None, temperature: float = 1.0
    ) -> DrawTrace:
        """Draw n images from the prior z_t ~ N(0, temperature²·I), keeping every step's canvas.

        Only the decoder runs (eqs. 13-16); `generator` makes it reproducible.
        """
        if n < 1:
            raise QuickDrawError(f"n must be >= 1, got {n}")
        if temperature <= 0:
            raise QuickDrawError(f"temperature must be > 0, got {temperature}")
        c = self.config
        weight = self.to_q.weight
        _, (h_dec, s_dec), canvas = self._initial_state(n, weight)
        canvases, writes = [], []
        for _ in range(c.T):
            z = torch.randn(
                n, c.z_size, generator=generator, device=weight.device, dtype=weight.dtype
            )
            h_dec, s_dec = self.decoder(temperature * z, (h_dec, s_dec))
            update, window = self._write(h_dec)
            canvas = canvas + update
            canvases.append(torch.sigmoid(canvas))
            if window is not None:
                writes.append(window.stack())
        return self._trace(canvases, [], writes)

    @torch.no_grad()
    def reconstruct(self, batch) -> DrawTrace:
        """Encode and redraw images (the same input forms as `forward`), keeping every step.

        The input is used as given (no binarisation), so the read windows show
        what the model looks at in the picture you pass.
        """
        _, _, trace = self._unroll(self.images(batch), record=True)
        return trace


# ---------------------------------------------------------------------------
# `quickdraw sample` for DRAW

SAMPLE_SUFFIXES = (".png", ".gif", ".npy")


def sample_cli(model: Draw, data_state: dict, args) -> int:
    """`quickdraw sample CHECKPOINT` for DRAW (modes: sample, reconstruct).

    --out decides what is written: `.png` a grid of the finished drawings plus
    `<out>.steps.png` (one row per drawing, one column per step); `.gif` the
    canvases building up with their attention windows; `.npy` the finished
    canvases as uint8 (n, 784), the official bitmap layout. --temperature
    scales the prior's standard deviation (z_t ~ N(0, τ²I)). reconstruct reads
    the --index rows of an --input bitmap `.npy` and shows the read (green) and
    write (red) windows at every step.
    """
    from . import draw_viz

    out = Path(args.out)
    if out.suffix.lower() not in SAMPLE_SUFFIXES:
        raise QuickDrawError(
            f"DRAW draws bitmaps: --out must end in .png, .gif or .npy, not {out.name!r}"
        )
    if args.mode not in ("sample", "reconstruct"):
        raise QuickDrawError(f"DRAW supports --mode sample and reconstruct, not {args.mode!r}")
    temperature = args.temperature[0]
    device = model.to_q.weight.device
    if args.mode == "sample":
        generator = torch.Generator(device=device).manual_seed(args.seed)
        trace = model.generate(args.n, generator=generator, temperature=temperature)
        originals = None
    else:
        if not args.input:
            raise QuickDrawError("--mode reconstruct needs --input (a bitmap .npy file)")
        pool = load_bitmaps(args.input)
        index = args.index if args.index is not None else [0, 1, 2]
        for i in index:
            if not 0 <= i < len(pool):
                raise QuickDrawError(f"--index {i} is out of range: {args.input} has {len(pool)}")
        originals = model.images(torch.from_numpy(pool[index]))
        torch.manual_seed(args.seed)
        trace = model.reconstruct(originals)
    trace = trace.cpu()
    cols = args.cols or math.ceil(math.sqrt(trace.canvases.shape[1]))
    if out.suffix.lower() == ".npy":
        bitmaps = (trace.final.flatten(1) * 255).round().to(torch.uint8).numpy()
        with atomic_write(out, "wb") as f:
            np.save(f, bitmaps, allow_pickle=False)
        written = [out]
    elif out.suffix.lower() == ".gif":
        written = [draw_viz.save_gif(trace, out, max_images=len(trace.final), cols=cols)]
    elif originals is not None:
        written = [draw_viz.save_reconstructions(originals.cpu(), trace, out)]
    else:
        steps_path = out.with_name(out.stem + ".steps.png")
        written = [
            draw_viz.save_sample_grid(trace, out, cols=cols),
            draw_viz.save_step_grid(trace, steps_path, max_images=16),
        ]
    print(f"wrote {args.mode} ({trace.canvases.shape[1]} images): " + ", ".join(map(str, written)))
    return 0


# ---------------------------------------------------------------------------
# Data: official-layout bitmap files (uint8, (N, 784))


class BitmapDataset(Dataset):
    """Images as float32 (784,) rows in [0, 1] (grey levels, or 0/1 once binarised)."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, categories: list[str]):
        assert images.ndim == 2 and len(images) == len(labels)
        self.images = images
        self.labels = labels  # index into `categories`, for per-category results
        self.categories = categories

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.images[i]


def bitmap_files(files) -> list[Path]:
    """Expand the inputs to `.npy` bitmap files: files, or folders holding `bitmap/*.npy`
    (what `quickdraw convert --formats bitmap` writes) or `*.npy` (the official layout)."""
    if isinstance(files, (str, Path)):
        files = [files]
    found: list[Path] = []
    for item in files:
        path = Path(item)
        if path.is_dir():
            inner = path / "bitmap" if (path / "bitmap").is_dir() else path
            npys = sorted(inner.glob("*.npy"))
            if not npys:
                raise QuickDrawError(f"no .npy bitmap files in {inner}")
            found.extend(npys)
        elif path.suffix == ".npy":
            if not path.is_file():
                raise QuickDrawError(f"bitmap file not found: {path}")
            found.append(path)
        else:
            raise QuickDrawError(
                f"DRAW trains on .npy bitmap files (N, 784) uint8; got {path} "
                "(make them with `quickdraw convert CATEGORY --formats bitmap`)"
            )
    if not found:
        raise QuickDrawError("no bitmap files given")
    return found


def convert_splits(path: Path, n: int) -> dict[str, np.ndarray] | None:
    """The split `quickdraw convert` recorded beside `path` (`<category>.splits.json`: row
    counts, rows in train, valid, test order), or None for a file without one."""
    meta_path = path.with_suffix(".splits.json")
    if not meta_path.is_file():
        return None
    try:
        meta = json.loads(meta_path.read_text())
        sizes = [int(meta[s]) for s in ("train", "valid", "test")]
    except (ValueError, KeyError, TypeError) as e:
        raise QuickDrawError(f"{meta_path}: not a split file written by convert ({e})") from e
    if (
        meta.get("order", ["train", "valid", "test"]) != ["train", "valid", "test"]
        or sum(sizes) != n
    ):
        raise QuickDrawError(f"{meta_path}: split sizes {sizes} do not match {n} rows in {path}")
    bounds = np.cumsum([0, *sizes])
    return {
        s: np.arange(bounds[i], bounds[i + 1]) for i, s in enumerate(("train", "valid", "test"))
    }


def split_indices(n: int, config: DrawConfig, seed: int, key: str) -> dict[str, np.ndarray]:
    """Seeded train/valid/test row indices for one category file (`key` = its name), so
    a category's split does not depend on which other categories are trained with it."""
    rng = np.random.default_rng([seed, zlib.crc32(key.encode())])
    order = rng.permutation(n)
    n_test = math.ceil(config.test_fraction * n)
    n_valid = math.ceil(config.valid_fraction * n)
    return {
        "test": np.sort(order[:n_test]),
        "valid": np.sort(order[n_test : n_test + n_valid]),
        "train": np.sort(order[n_test + n_valid :]),
    }


def _share(config: DrawConfig, split: str) -> int:
    """How many rows of `split` `max_per_category` allows."""
    n = config.max_per_category
    held_out = {"valid": config.valid_fraction, "test": config.test_fraction}
    if split in held_out:
        return max(1, math.ceil(held_out[split] * n))
    return n - sum(max(1, math.ceil(f * n)) for f in held_out.values())


def build_datasets(config: DrawConfig, files, seed: int) -> DataBundle:
    """Bitmap files -> train/valid/test `BitmapDataset`s, split per category.

    A file that `quickdraw convert` wrote comes with its split (so no drawing
    crosses splits between formats); other files, such as the official
    `numpy_bitmap` ones, are split here with `seed`.

    In "dynamic" mode the held-out splits are binarised once here (seeded),
    so their bounds are deterministic; the training split keeps grey levels
    and is resampled at every step.
    """
    paths = bitmap_files(files)
    categories = [p.stem for p in paths]
    if len(set(categories)) != len(categories):
        raise QuickDrawError(f"two bitmap files with the same category name: {categories}")
    parts: dict[str, list[tuple[np.ndarray, int]]] = {"train": [], "valid": [], "test": []}
    sizes = {}
    for label, (path, category) in enumerate(zip(paths, categories, strict=True)):
        array = load_bitmaps(path)
        splits = convert_splits(path, len(array))
        if splits is None:
            splits = split_indices(len(array), config, seed, category)
        if config.max_per_category:  # the first rows of each split
            splits = {s: rows[: _share(config, s)] for s, rows in splits.items()}
        sizes[category] = sum(len(rows) for rows in splits.values())
        for split, rows in splits.items():
            parts[split].append((array[rows], label))
    generator = torch.Generator().manual_seed(seed)
    datasets = {}
    for split, chunks in parts.items():
        images = torch.from_numpy(np.concatenate([a for a, _ in chunks])).float() / 255
        labels = torch.cat([torch.full((len(a),), lab, dtype=torch.long) for a, lab in chunks])
        if split != "train" and config.binarize == "dynamic":
            images = torch.bernoulli(images, generator=generator)
        datasets[split] = BitmapDataset(images, labels, categories)
    if len(datasets["train"]) == 0:
        raise QuickDrawError("no training images left after the split")
    state = {
        "categories": categories,
        "sizes": sizes,
        "split_sizes": {s: len(d) for s, d in datasets.items()},
    }
    return DataBundle(datasets["train"], datasets["valid"], datasets["test"], state)


Model = Draw  # the name `models.trainer` looks up in every model module
