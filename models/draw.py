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

Targets are data, made by the dataset (`BitmapDataset`) from the training
settings (`DrawTraining.binarize`): dynamic binarisation (a fresh Bernoulli
sample of the grey levels each time an image is seen) by default, or a fixed
threshold. The report's mode, grey levels used directly as Bernoulli targets
("grey"), trains fine but its L^x is a cross-entropy, **not a
log-likelihood**: never report it as one. The model scores whatever targets in
[0, 1] it is given.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from .. import formats
from ..datasets import QuickDraw
from ..errors import QuickDrawError, check_choice, check_count, check_temperature
from ..formats import file_kind, file_stem
from . import SAMPLING_TEMPERATURE
from .base import DataBundle, Losses, data_fingerprint
from .trainer import TrainConfig

BINARIZE_MODES = ("dynamic", "threshold", "grey")
OPTIMIZERS = ("rmsprop", "adam")
REDUCTIONS = ("mean", "none")


@dataclass
class DrawConfig:
    """DRAW's architecture; defaults are the DRAW report's for Quick, Draw! bitmaps."""

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

    def __post_init__(self):
        for name in ("T", "height", "width", "z_size", "enc_size", "dec_size"):
            if getattr(self, name) < 1:
                raise QuickDrawError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("read_n", "write_n"):
            if getattr(self, name) < 2:
                raise QuickDrawError(f"{name} must be >= 2 (δ divides by N − 1)")
        # checked before any tensor is made: every image keeps T canvases of height x width
        for name, high in SIZE_LIMITS.items():
            check_count(getattr(self, name), name, 1, high)


# the largest sizes a config may ask for (a canvas per step: T x height x width per image)
SIZE_LIMITS = {
    "T": 256,
    "height": 256,
    "width": 256,
    "read_n": 256,
    "write_n": 256,
    "z_size": 4096,
    "enc_size": 4096,
    "dec_size": 4096,
}


@dataclass
class DrawTraining(TrainConfig):
    """`TrainConfig` with the DRAW report's training settings, and DRAW's targets."""

    lr_decay: float = 1.0  # lr multiplier per step (the report keeps the lr constant)
    grad_clip: float = 5.0  # max global gradient norm; 0 disables clipping
    optimizer: str = "rmsprop"  # rmsprop (the report) | adam
    binarize: str = "dynamic"  # targets: dynamic | threshold | grey (grey: not a likelihood)
    threshold: float = 0.5  # grey level in [0, 1] above which a pixel is on ("threshold" mode)

    def __post_init__(self):
        super().__post_init__()
        check_choice("binarize mode", self.binarize, BINARIZE_MODES)
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        if not 0.0 <= self.threshold <= 1.0:
            raise QuickDrawError(f"threshold must be in [0, 1], got {self.threshold}")


# `quickdraw train draw --preset NAME` (fields of DrawConfig and DrawTraining). "ours", what a
# new run gets without --preset, is the configuration the README's table measures best: Adam,
# dynamic binarisation and a learned initial canvas, on the report's sizes, batch 100, constant
# lr 1e-3 and clip 5. "report" is the DRAW report's own: RMSprop, grey levels as Bernoulli
# targets (L_x then is a cross-entropy, not a log-likelihood) and c_0 = 0. The two differ in
# exactly these three fields. The dataclasses keep the report's values as their defaults
# (binarisation aside), so Python code that builds them gets the report unless it asks.
PRESETS: dict[str, dict[str, object]] = {
    "ours": {"optimizer": "adam", "binarize": "dynamic", "learn_canvas": True},
    "report": {"optimizer": "rmsprop", "binarize": "grey", "learn_canvas": False},
}
DEFAULT_PRESET = "ours"


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
    settings_class = DrawTraining
    output = "bitmap"
    sample_modes = ("sample", "reconstruct")
    presets = PRESETS
    default_preset = DEFAULT_PRESET

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

    def forward(self, batch, step: int | None = None, reduction: str = "mean") -> Losses:
        """Losses of a batch in nats: recon = L^x, kl = L^z (eqs. 9-12), total = mean(L^x + L^z).

        `step` is unused (DRAW has no schedules). With reduction="none", recon
        and kl are per example, shape (B,).
        """
        check_choice("reduction", reduction, REDUCTIONS)
        x = self.images(batch)
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
        x = self.images(batch)
        canvas, log_ratio, _ = self._unroll(x, log_ratio=True)
        log_px = -F.binary_cross_entropy_with_logits(canvas, x, reduction="none").sum((1, 2))
        return log_px + log_ratio

    def configure_optimizer(self, settings: TrainConfig) -> torch.optim.Optimizer:
        """The optimiser the settings name (RMSprop as in the report, or Adam)."""
        if getattr(settings, "optimizer", "rmsprop") == "adam":
            return torch.optim.Adam(self.parameters(), lr=settings.lr)
        return torch.optim.RMSprop(self.parameters(), lr=settings.lr)

    def report_terms(self, recon: float, kl: float, iw_nll: float, data_state: dict) -> dict:
        """L^x, L^z and their sum in nats per image and in bits per pixel, and the bound."""
        bits = self.config.height * self.config.width * math.log(2)
        out: dict = {
            "L_x": recon,
            "L_z": kl,
            "L_x+L_z": recon + kl,
            "bits_per_pixel": (recon + kl) / bits,
            "iw_nll_nats": iw_nll,
            "iw_bits_per_pixel": iw_nll / bits,
        }
        if data_state.get("binarize") == "grey":
            out["note"] = "grey-level targets: L_x is a cross-entropy, not a log-likelihood"
        return out

    def sample_sketches(
        self,
        n: int,
        temperature: float = SAMPLING_TEMPERATURE,
        generator: torch.Generator | None = None,
        data_state: dict | None = None,
    ) -> list[np.ndarray]:
        """`n` images from the prior (`generate`) as uint8 (H, W) ink levels, 255·σ(c_T)."""
        final = self.generate(n, generator=generator, temperature=temperature).final
        ink = np.rint(final.detach().cpu().numpy() * 255).clip(0, 255).astype(np.uint8)
        return list(ink)

    @classmethod
    def build_datasets(
        cls,
        config: DrawConfig,
        files,
        settings: TrainConfig | None = None,
        state: dict | None = None,
    ) -> DataBundle:
        """See `build_datasets`."""
        return build_datasets(config, files, settings, state)

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
        check_temperature(temperature, "temperature")
        c = self.config
        weight = self.to_q.weight
        _, (h_dec, s_dec), canvas = self._initial_state(n, weight)
        canvases, writes = [], []
        for _ in range(c.T):
            # drawn where the generator lives, so a seed gives the same images on any device
            where = generator.device if generator is not None else weight.device
            z = torch.randn(n, c.z_size, generator=generator, device=where).to(weight)
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
# Data: official-layout bitmap files (uint8, (N, 784))


class BitmapDataset(Dataset):
    """Bitmaps as float32 (784,) Bernoulli targets in [0, 1], made as the settings say.

    ``binarize="dynamic"`` with ``resample=True`` draws a fresh binarisation of
    item ``i`` in every epoch from an rng seeded by ``(seed, epoch, i)`` (so a
    resumed run sees the same targets); with ``resample=False`` the images
    are binarised once, here, so held-out bounds are deterministic in the
    data. "threshold" and "grey" are fixed either way.
    """

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        categories: list[str],
        binarize: str = "dynamic",
        threshold: float = 0.5,
        seed: int = 0,
        resample: bool = True,
    ):
        assert images.ndim == 2 and len(images) == len(labels)
        check_choice("binarize mode", binarize, BINARIZE_MODES)
        grey = images.astype(np.float32) / 255 if images.dtype == np.uint8 else images
        self.labels = labels  # index into `categories`, for per-category results
        self.categories = categories
        self.seed, self.epoch = seed, 0
        self.resample = binarize == "dynamic" and resample
        if binarize == "threshold":
            grey = (grey > threshold).astype(np.float32)
        elif binarize == "dynamic" and not resample:
            rng = np.random.default_rng([seed, len(grey)])
            grey = (rng.random(grey.shape, dtype=np.float32) < grey).astype(np.float32)
        self.images = torch.from_numpy(np.ascontiguousarray(grey, dtype=np.float32))

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> torch.Tensor:
        if not self.resample:
            return self.images[i]
        rng = np.random.default_rng([self.seed, self.epoch, i])
        grey = self.images[i].numpy()
        on = rng.random(grey.shape, dtype=np.float32) < grey
        return torch.from_numpy(on.astype(np.float32))


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
        elif file_kind(path) == "bitmap":
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


def build_datasets(
    config: DrawConfig,
    files: Sequence[str | Path] | str | Path,
    settings: TrainConfig | None = None,
    state: dict | None = None,
) -> DataBundle:
    """Bitmap files -> train/valid/test `BitmapDataset`s, split per category.

    A file that `quickdraw convert` wrote comes with its split (so no drawing
    crosses splits between formats); other files, such as the official
    `numpy_bitmap` ones, get the same keyed split, by the settings' seed.
    The training split is binarised afresh every epoch ("dynamic"); the
    held-out splits are binarised once, and so is the training split when
    `state` is given (evaluating a trained model).
    """
    settings = settings if settings is not None else DrawTraining()
    binarize = getattr(settings, "binarize", "dynamic")
    threshold = getattr(settings, "threshold", 0.5)
    paths = bitmap_files(files)
    categories = [file_stem(p) for p in paths]
    if len(set(categories)) != len(categories):
        raise QuickDrawError(f"two bitmap files with the same category name: {categories}")
    if config.height * config.width != formats.BITMAP_SIZE:
        raise QuickDrawError(
            f"bitmap files hold 28x28 images; the model draws {config.height}x{config.width}"
        )
    # the data layer's one loader: convert's split beside a file, else the keyed split
    parts = QuickDraw.splits_from_files(
        paths, "bitmap", seed=settings.seed, max_per_category=settings.max_per_category
    )
    side = parts["train"].size
    if side * side != config.height * config.width:
        raise QuickDrawError(
            f"{', '.join(map(str, paths))}: {side}x{side} bitmaps; the model draws "
            f"{config.height}x{config.width} (quickdraw convert --size {config.height})"
        )
    datasets = {}
    bitmaps = {split: data.bitmaps() for split, data in parts.items()}
    for i, (split, data) in enumerate(parts.items()):
        datasets[split] = BitmapDataset(
            bitmaps[split],
            data.targets,
            categories,
            binarize,
            threshold,
            seed=settings.seed + i,
            resample=split == "train" and state is None,
        )
    if len(datasets["train"]) == 0 and state is None:
        raise QuickDrawError("no training images left after the split")
    if state is None:
        labels = np.concatenate([d.labels for d in datasets.values()])
        counts = np.bincount(labels, minlength=len(categories))
        sizes = {c: int(n) for c, n in zip(categories, counts, strict=True)}
        state = {
            "files": [str(p.resolve()) for p in paths],
            "categories": categories,
            "sizes": sizes,
            "split_sizes": {s: len(d) for s, d in datasets.items()},
            "binarize": binarize,
            "fingerprint": data_fingerprint({s: [b] for s, b in bitmaps.items()}),
        }
    return DataBundle(datasets["train"], datasets["valid"], datasets["test"], state)
