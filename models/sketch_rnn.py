"""sketch-rnn: Ha & Eck, "A Neural Representation of Sketch Drawings" (ICLR 2018).

arXiv:1704.03477. A sequence-to-sequence VAE over stroke-5 sketches:

- encoder (section 3.1): a bidirectional LSTM reads the sketch; its two final
  hidden states give mu and sigma_hat, sigma = exp(sigma_hat / 2) and
  z = mu + sigma * eps, eps ~ N(0, I);
- decoder (section 3.2): an LSTM, layer-normalised LSTM or HyperLSTM whose
  initial state is tanh(W z + b) and whose input at step i is S_{i-1} ⊕ z;
  its output parameterises a mixture of M bivariate Gaussians for
  (dx, dy) plus 3 pen-state logits (eq. 3);
- loss (section 3.3): L_R = L_s + L_p (eq. 9; the offset term masked after
  the sketch's end, both terms divided by N_max), L_KL (eq. 10, normalised
  by N_z), and the training objective L_R + w_KL * eta_step * max(L_KL, KL_min)
  with eta_step = 1 - (1 - eta_min) * R^step (section 3.4);
- unconditional mode (section 3.5): the decoder alone, zero initial state,
  no z.

Defaults follow the paper and magenta's `sketch_rnn` hparams (magenta stores
dropout as a *keep* probability 0.9; here it is a *drop* probability 0.1).
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
from .. import strokes as S
from ..errors import (
    QuickDrawError,
    check_choice,
    check_count,
    check_finite,
    check_temperature,
)
from . import SAMPLING_TEMPERATURE, recurrent
from .base import LOG_PX, DataBundle, Losses
from .trainer import TrainConfig

DECODERS = ("lstm", "layer_norm", "hyper")
# the name `evaluate` reports `magenta_eval_loss` under, beside L_R
MAGENTA_EVAL = "magenta_eval_L_R"


@dataclass
class SketchRNNConfig:
    max_seq_len: int = 250  # N_max: sketches are padded to (and filtered at) this many points
    enc_size: int = 256  # encoder LSTM units per direction
    dec_size: int = 512  # decoder units
    decoder: str = "lstm"  # lstm | layer_norm | hyper (the paper's best, HyperLSTM)
    hyper_size: int = 256  # HyperLSTM: units of the small hyper network
    hyper_embedding: int = 32  # HyperLSTM: size of its per-gate embeddings
    z_size: int = 128  # N_z, latent size
    num_mixture: int = 20  # M, Gaussians in the offset mixture
    conditional: bool = True  # False: decoder only (the paper's unconditional model)
    recurrent_dropout: float = 0.1  # *drop* probability on the decoder's cell update
    kl_weight: float = 0.5  # w_KL
    # The paper's annealing (section 3.4) weighs L_KL by w_KL * eta_step, eta_step = 1 -
    # (1 - eta_min) R^step: the weight starts at w_KL * eta_min (0.5 * 0.01 = 0.005) and rises
    # to w_KL. Magenta's training script starts the weight at eta_min itself (0.01). This
    # follows the paper (`kl_weight`).
    kl_weight_start: float = 0.01  # eta_min: the KL weight starts at w_KL * eta_min (the paper)
    kl_decay_rate: float = 0.99995  # R, the annealing rate per step
    kl_tolerance: float = 0.2  # KL_min, the floor under L_KL

    def __post_init__(self):
        # checked before any tensor is made: a checkpoint's config (or a typo) must not ask for
        # more memory than the machine has
        for name, high in SIZE_LIMITS.items():
            check_count(getattr(self, name), name, 1, high)
        for name in ("kl_weight", "kl_weight_start", "kl_tolerance"):
            check_finite(getattr(self, name), name)
        if not 0 <= self.kl_decay_rate <= 1:
            raise QuickDrawError(f"kl_decay_rate must be in [0, 1], got {self.kl_decay_rate}")


# the largest model sizes a config may ask for: twice the paper's largest decoder (2,048 units)
SIZE_LIMITS = {
    "max_seq_len": 10_000,  # points; the official files' drawings have a few hundred
    "enc_size": 4096,
    "dec_size": 4096,
    "hyper_size": 4096,
    "hyper_embedding": 4096,
    "z_size": 4096,
    "num_mixture": 1000,
}


@dataclass
class SketchRNNTraining(TrainConfig):
    """`TrainConfig` plus sketch-rnn's data augmentation (magenta's defaults)."""

    random_scale: float = 0.15  # augmentation: scale x, y by U[1 - a, 1 + a] independently
    augment_prob: float = 0.10  # augmentation: drop interior points with this probability
    scale_factor: float = 0.0  # divide offsets by this (0: the training split's own offset std)

    # what a run started from another checkpoint's weights (--init-from) takes from that
    # checkpoint's data state: the units its weights were trained in (see models/base.py)
    inherited = ("scale_factor",)

    def __post_init__(self):
        super().__post_init__()
        if not 0 <= self.random_scale < 1:
            raise QuickDrawError(f"random_scale must be in [0, 1), got {self.random_scale}")
        if not 0 <= self.augment_prob <= 1:
            raise QuickDrawError(f"augment_prob must be in [0, 1], got {self.augment_prob}")
        if not (0 <= self.scale_factor < float("inf")):
            raise QuickDrawError(
                f"scale_factor must be >= 0 (0: derive it), got {self.scale_factor}"
            )


def kl_weight(step: int | None, cfg: SketchRNNConfig) -> float:
    """w_KL * eta_step, eta_step = 1 - (1 - eta_min) R^step; evaluation (step None): w_KL."""
    if step is None:
        return cfg.kl_weight
    return cfg.kl_weight * (1.0 - (1.0 - cfg.kl_weight_start) * cfg.kl_decay_rate**step)


# --- maths ------------------------------------------------------------------------


@dataclass
class MixtureParams:
    """Decoder outputs for every step: shapes (B, T, M) except `pen_logits` (B, T, 3)."""

    logit_pi: torch.Tensor
    mu_x: torch.Tensor
    mu_y: torch.Tensor
    sigma_x: torch.Tensor
    sigma_y: torch.Tensor
    rho: torch.Tensor
    pen_logits: torch.Tensor

    @classmethod
    def from_output(cls, y: torch.Tensor, m: int) -> MixtureParams:
        """Split the (..., 6M + 3) output layer as in eq. 3 of the paper."""
        y = y.float()  # the loss is computed in float32 even under autocast
        pi, mx, my, sx, sy, r = y[..., : 6 * m].split(m, dim=-1)
        # |rho| < 1 keeps 1 - rho^2 > 0 in float32
        rho = torch.tanh(r).clamp(-1 + 1e-6, 1 - 1e-6)
        return cls(pi, mx, my, sx.exp(), sy.exp(), rho, y[..., 6 * m :])


def mixture_log_prob(p: MixtureParams, dx: torch.Tensor, dy: torch.Tensor) -> torch.Tensor:
    """log sum_j pi_j N(dx, dy | mu_j, sigma_j, rho_j); dx, dy (B, T) -> (B, T). Eq. 24/25 of
    Graves (2013), written with logsumexp for stability."""
    zx = (dx.unsqueeze(-1) - p.mu_x) / p.sigma_x
    zy = (dy.unsqueeze(-1) - p.mu_y) / p.sigma_y
    one_minus_rho2 = 1 - p.rho**2
    quad = (zx**2 + zy**2 - 2 * p.rho * zx * zy) / one_minus_rho2
    log_norm = (
        -0.5 * quad
        - torch.log(2 * math.pi * p.sigma_x * p.sigma_y)
        - 0.5 * torch.log(one_minus_rho2)
    )
    return torch.logsumexp(F.log_softmax(p.logit_pi, dim=-1) + log_norm, dim=-1)


def reconstruction_loss(
    p: MixtureParams, target: torch.Tensor, lengths: torch.Tensor, n_max: int
) -> torch.Tensor:
    """Per-example L_R = L_s + L_p (eq. 9), shape (B,).

    target: stroke-5 rows 1..T, (B, T, 5). L_s sums over the sketch's own
    `lengths` points (masked after its end); L_p over all T steps (the model
    must learn to keep emitting end-of-sketch); both are divided by N_max.
    """
    t = target.shape[1]
    mask = (torch.arange(t, device=target.device)[None, :] < lengths[:, None]).float()
    l_s = -(mixture_log_prob(p, target[..., 0], target[..., 1]) * mask).sum(1)
    l_p = -(F.log_softmax(p.pen_logits, dim=-1) * target[..., 2:]).sum((1, 2))
    return (l_s + l_p) / n_max


def magenta_eval_loss(
    p: MixtureParams, target: torch.Tensor, lengths: torch.Tensor, n_max: int
) -> torch.Tensor:
    """Per-example reconstruction loss as magenta's training script reports it on the valid and
    test sets (its `r_cost` with ``is_training`` off), shape (B,): the offset NLL with 1e-6
    added inside its log, and the pen loss over the sketch's own points only (masked after the
    sketch ends, so ending on time is never charged), both summed and divided by N_max. Not the
    paper's L_R (`reconstruction_loss`); reported beside it, so figures compare with magenta's."""
    t = target.shape[1]
    mask = (torch.arange(t, device=target.device)[None, :] < lengths[:, None]).float()
    density = mixture_log_prob(p, target[..., 0], target[..., 1]).exp()
    l_s = -torch.log(density + 1e-6)
    l_p = -(F.log_softmax(p.pen_logits, dim=-1) * target[..., 2:]).sum(-1)
    return ((l_s + l_p) * mask).sum(1) / n_max


def kl_divergence(mu: torch.Tensor, sigma_hat: torch.Tensor) -> torch.Tensor:
    """Per-example L_KL = -1/(2 N_z) sum(1 + sigma_hat - mu^2 - exp(sigma_hat)) (eq. 10), (B,)."""
    return -0.5 * (1 + sigma_hat - mu**2 - sigma_hat.exp()).mean(-1)


# --- decoder cells ----------------------------------------------------------------
#
# Each decoder is defined by its `step` (one time step, as the papers write it);
# `loop` runs the steps and is what sampling and evaluation (no gradients) use.
# With gradients the same maths runs as one `recurrent` function per decoder,
# whose backward is written by hand (see there why, and what else was tried).
# A train step at batch 50, N_max 120, decoder 512 (`scripts/bench_sketch_rnn.py`,
# 2026-12-01, one CPU thread), relative to torch's fused LSTM without dropout:
# LSTM + recurrent dropout 1.19x (the loop under autograd: 5.73x), layer norm
# 1.30x (5.98x), HyperLSTM 2.29x (7.68x; its matmul FLOPs alone predict 1.63x).
# The tests hold both paths to the same outputs and gradients, with the same
# dropout masks.


class LayerNorm(nn.Module):
    """Layer norm over the last axis, applied to `groups` equal chunks separately."""

    def __init__(self, size: int, groups: int = 1):
        super().__init__()
        self.groups = groups
        self.norm = nn.LayerNorm(size // groups, elementwise_affine=False)
        self.gain = nn.Parameter(torch.ones(size))
        self.bias = nn.Parameter(torch.zeros(size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        x = self.norm(x.reshape(*shape[:-1], self.groups, -1)).reshape(shape)
        return x * self.gain + self.bias


def _lstm_update(
    gates: torch.Tensor, c: torch.Tensor, mask: torch.Tensor | None, ln_c=None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gates (i, g, f, o) -> new (h, c); recurrent dropout on g (Semeniuta et al. 2016):
    `mask` (B, H), 0 or 1 / (1 - p) (`recurrent.dropout_mask`), multiplies tanh(g)."""
    i, g, f, o = gates.chunk(4, dim=-1)
    g = torch.tanh(g) if mask is None else torch.tanh(g) * mask
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * g
    h = torch.sigmoid(o) * torch.tanh(ln_c(c) if ln_c is not None else c)
    return h, c


def _ifgo(w: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """Gate blocks along `dim` from the cells' order (i, g, f, o) to torch's (i, f, g, o)."""
    i, g, f, o = w.chunk(4, dim)
    return torch.cat([i, f, g, o], dim)


class _Decoder(nn.Module):
    """What the three decoders share: dropout masks and the choice of path."""

    drop: float
    mask_sizes: tuple[int, ...]  # units of each cell whose update g is dropped

    def dropout_masks(self, x: torch.Tensor, generator: torch.Generator | None = None):
        """One (T, B, units) mask per cell for the sequence x (B, T, in), drawn on x's
        device from `generator` (else torch's); None when no dropout applies (eval)."""
        if not (self.training and self.drop > 0):
            return None
        shape = (x.shape[1], x.shape[0])
        return tuple(
            recurrent.dropout_mask((*shape, n), self.drop, x, generator) for n in self.mask_sizes
        )

    def forward(self, x: torch.Tensor, state: tuple, masks: tuple | None = None):
        """x (B, T, in) -> outputs (B, T, H), final state. `masks` as `dropout_masks` gives
        (drawn here when None). With gradients the hand-differentiated recurrence runs,
        else `loop`; both are the same function of the inputs."""
        if masks is None:
            masks = self.dropout_masks(x)
        if torch.is_grad_enabled():
            return self.train_forward(x, state, masks)
        return self.loop(x, state, masks)

    def loop(self, x: torch.Tensor, state: tuple, masks: tuple | None = None):
        """The decoder as a loop over `step` (the reference for `train_forward`)."""
        if masks is None:
            masks = self.dropout_masks(x)
        xw = self.project(x)
        outs = []
        for t in range(x.shape[1]):
            masks_t = None if masks is None else tuple(m[t] for m in masks)
            state = self.step(x[:, t], xw[:, t], state, masks_t)
            outs.append(state[0])
        return torch.stack(outs, 1), state


class LSTMDecoder(_Decoder):
    """Plain LSTM; without active dropout it runs torch's fused LSTM over the sequence."""

    def __init__(self, input_size: int, hidden: int, drop: float):
        super().__init__()
        self.hidden, self.drop = hidden, drop
        self.state_sizes = (hidden, hidden)  # (h, c)
        self.mask_sizes = (hidden,)
        self.lstm = nn.LSTM(input_size, hidden, batch_first=True)
        with torch.no_grad():  # forget-gate bias 1 (magenta, Jozefowicz et al. 2015)
            self.lstm.bias_ih_l0[2 * hidden : 3 * hidden].fill_(1.0)
            self.lstm.bias_hh_l0.zero_()

    def forward(self, x: torch.Tensor, state: tuple, masks: tuple | None = None):
        """As `_Decoder.forward` with active dropout, else torch's fused LSTM (faster than
        any loop on CUDA, and on the CPU no slower than `recurrent.lstm`)."""
        if self.training and self.drop > 0:
            return super().forward(x, state, masks)
        h, c = state
        out, (h, c) = self.lstm(x, (h[None], c[None]))
        return out, (h[0], c[0])

    def project(self, x: torch.Tensor) -> torch.Tensor:
        """The input projection of every step at once, biases included (torch's gate order)."""
        l = self.lstm
        return F.linear(x, l.weight_ih_l0, l.bias_ih_l0 + l.bias_hh_l0)

    def step(self, x_t, xw_t, state, masks_t=None) -> tuple:
        """One step: xw_t (B, 4H) the input's projection, state (h, c), masks_t ((B, H),)."""
        h, c = state
        # torch orders gates (i, f, g, o)
        gi, gf, gg, go = (xw_t + F.linear(h, self.lstm.weight_hh_l0)).chunk(4, dim=-1)
        mask = None if masks_t is None else masks_t[0]
        return _lstm_update(torch.cat([gi, gg, gf, go], -1), c, mask)

    def train_forward(self, x, state, masks):
        xw = self.project(x.transpose(0, 1))
        out, state = recurrent.lstm(
            xw, state, self.lstm.weight_hh_l0, None if masks is None else masks[0]
        )
        return out.transpose(0, 1), state


class LayerNormLSTMDecoder(_Decoder):
    """LSTM with layer norm on each gate's pre-activation and on the cell (Ba et al. 2016)."""

    def __init__(self, input_size: int, hidden: int, drop: float):
        super().__init__()
        self.hidden, self.drop = hidden, drop
        self.state_sizes = (hidden, hidden)
        self.mask_sizes = (hidden,)
        self.w_x = nn.Linear(input_size, 4 * hidden, bias=False)
        self.w_h = nn.Linear(hidden, 4 * hidden, bias=False)
        self.ln_gates = LayerNorm(4 * hidden, groups=4)
        self.ln_c = LayerNorm(hidden)
        with torch.no_grad():
            self.ln_gates.bias[2 * hidden : 3 * hidden].fill_(1.0)  # forget bias (i, g, f, o)

    def project(self, x: torch.Tensor) -> torch.Tensor:
        return self.w_x(x)

    def step(self, x_t, xw_t, state, masks_t=None) -> tuple:
        """One step: xw_t (B, 4H) = W_x x_t, state (h, c), masks_t ((B, H),) or None."""
        h, c = state
        gates = self.ln_gates(xw_t + self.w_h(h))
        mask = None if masks_t is None else masks_t[0]
        return _lstm_update(gates, c, mask, self.ln_c)

    def train_forward(self, x, state, masks):
        xw = F.linear(x.transpose(0, 1), _ifgo(self.w_x.weight))
        out, state = recurrent.lstm(
            xw,
            state,
            _ifgo(self.w_h.weight),
            None if masks is None else masks[0],
            (_ifgo(self.ln_gates.gain), _ifgo(self.ln_gates.bias)),
            (self.ln_c.gain, self.ln_c.bias),
        )
        return out.transpose(0, 1), state


class HyperLSTMDecoder(_Decoder):
    """HyperLSTM (Ha, Dai & Le 2016), as in magenta's sketch-rnn with layer norm.

    A small layer-norm LSTM reads [x, h] and emits, per step, embeddings that
    scale the main LSTM's input and recurrent projections gate by gate and
    produce its biases.
    """

    def __init__(self, input_size: int, hidden: int, drop: float, hyper: int, embed: int):
        super().__init__()
        self.hidden, self.drop = hidden, drop
        self.state_sizes = (hidden, hidden, hyper, hyper)  # (h, c, hyper_h, hyper_c)
        self.mask_sizes = (hidden, hyper)  # the main cell's and the hyper cell's
        self.hyper = LayerNormLSTMDecoder(input_size + hidden, hyper, drop)
        self.w_x = nn.Linear(input_size, 4 * hidden, bias=False)
        self.w_h = nn.Linear(hidden, 4 * hidden, bias=False)
        # hyper output -> embeddings for x-scaling, h-scaling and bias, 4 gates each
        self.embed = nn.Linear(hyper, 3 * 4 * embed)
        # embeddings -> per-gate scaling vectors / biases (grouped: one matrix per gate)
        self.scale_x = nn.Parameter(torch.zeros(4, embed, hidden))
        self.scale_h = nn.Parameter(torch.zeros(4, embed, hidden))
        self.bias_z = nn.Parameter(torch.zeros(4, embed, hidden))
        self.bias = nn.Parameter(torch.zeros(4 * hidden))
        self.ln_gates = LayerNorm(4 * hidden, groups=4)
        self.ln_c = LayerNorm(hidden)
        with torch.no_grad():
            # start as a plain LSTM: scalings 1 (embedding bias 1, weights 0.1/embed)
            nn.init.constant_(self.scale_x, 0.1 / embed)
            nn.init.constant_(self.scale_h, 0.1 / embed)
            self.embed.bias.zero_()
            self.embed.bias[: 2 * 4 * embed].fill_(1.0)
            self.ln_gates.bias[2 * hidden : 3 * hidden].fill_(1.0)
        self.embed_size = embed

    def project(self, x: torch.Tensor) -> torch.Tensor:
        return self.w_x(x)

    def step(self, x_t, xw_t, state, masks_t=None) -> tuple:
        """One step: x_t (B, in), xw_t (B, 4H) = W_x x_t, state (h, c, hyper h, hyper c),
        masks_t (main (B, H), hyper (B, H')) or None."""
        h, c, hh, hc = state
        mask, hyper_mask = (None, None) if masks_t is None else masks_t
        b, e, H = x_t.shape[0], self.embed_size, self.hidden
        hyper_xw = self.hyper.w_x(torch.cat([x_t, h], -1))
        hh, hc = self.hyper.step(None, hyper_xw, (hh, hc), (hyper_mask,))
        zx, zh, zb = self.embed(hh).view(b, 3, 4, e).unbind(1)
        dx = torch.einsum("bge,geh->bgh", zx, self.scale_x)
        dh = torch.einsum("bge,geh->bgh", zh, self.scale_h)
        bias = torch.einsum("bge,geh->bgh", zb, self.bias_z)
        hw = self.w_h(h).view(b, 4, H)
        gates = (dx * xw_t.view(b, 4, H) + dh * hw + bias).reshape(b, 4 * H) + self.bias
        h, c = _lstm_update(self.ln_gates(gates), c, mask, self.ln_c)
        return h, c, hh, hc

    def train_forward(self, x, state, masks):
        t, b = x.shape[1], x.shape[0]
        n_in, H = x.shape[-1], self.hidden
        x = x.transpose(0, 1)
        hyper = self.hyper
        w_hyper = _ifgo(hyper.w_x.weight)  # (4H', in + H): [x_t, h_{t-1}]
        xw = F.linear(x, _ifgo(self.w_x.weight)).view(t, b, 4, H).transpose(1, 2)
        xh = F.linear(x, w_hyper[:, :n_in])
        w_h = torch.cat([_ifgo(self.w_h.weight), w_hyper[:, n_in:]])
        e = self.embed_size
        embed_w = _ifgo(self.embed.weight.view(3, 4 * e, -1), 1).reshape(12 * e, -1)
        embed_b = _ifgo(self.embed.bias.view(3, 4 * e), 1).reshape(-1)
        scales = torch.cat([_ifgo(s) for s in (self.scale_x, self.scale_h, self.bias_z)])
        layer_norms = (
            _ifgo(self.ln_gates.gain).view(4, 1, H),
            _ifgo(self.ln_gates.bias).view(4, 1, H),
            self.ln_c.gain,
            self.ln_c.bias,
            _ifgo(hyper.ln_gates.gain).view(4, -1),
            _ifgo(hyper.ln_gates.bias).view(4, -1),
            hyper.ln_c.gain,
            hyper.ln_c.bias,
        )
        out, state = recurrent.hyper_lstm(
            xw.contiguous(),
            xh,
            state,
            w_h,
            _ifgo(hyper.w_h.weight),
            (embed_w, embed_b),
            scales,
            _ifgo(self.bias).view(4, 1, H),
            layer_norms,
            masks,
        )
        return out.transpose(0, 1), state


def _lstm_direction(lstm: nn.LSTM, suffix: str, x: torch.Tensor) -> torch.Tensor:
    """Outputs (B, T, H) of one direction ("" or "_reverse") of a 1-layer batch-first LSTM."""
    params = [
        getattr(lstm, f"{n}_l0{suffix}") for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
    ]
    h0 = x.new_zeros(1, x.shape[0], lstm.hidden_size)
    out, _, _ = torch.lstm(x, (h0, h0), params, True, 1, 0.0, lstm.training, False, True)
    return out


# --- the model ----------------------------------------------------------------------


class SketchRNN(nn.Module):
    """sketch-rnn. `forward(batch, step, reduction)` -> `Losses` (recon = L_R, kl = L_KL).

    A batch is ``(strokes5, lengths)``: stroke-5 ``(B, N_max + 1, 5)`` with the
    start token, in normalised units, and the number of points ``(B,)``. Keeps
    the `base.GenerativeModel` contract.
    """

    name = "sketch-rnn"
    config_class = SketchRNNConfig
    settings_class = SketchRNNTraining
    output = "strokes"
    sample_modes = ("sample", "reconstruct", "interpolate", "analogy", "complete")

    def __init__(self, config: SketchRNNConfig):
        super().__init__()
        check_choice("decoder", config.decoder, DECODERS)
        if not 0 <= config.recurrent_dropout < 1:
            raise QuickDrawError(
                f"recurrent_dropout is a drop probability in [0, 1), got {config.recurrent_dropout}"
            )
        self.config = c = config
        if not c.conditional:  # no encoder: nothing to reconstruct, interpolate or compose
            self.sample_modes = ("sample", "complete")
        z = c.z_size if c.conditional else 0
        if c.conditional:
            self.encoder = nn.LSTM(5, c.enc_size, batch_first=True, bidirectional=True)
            self.to_mu = nn.Linear(2 * c.enc_size, c.z_size)
            self.to_sigma_hat = nn.Linear(2 * c.enc_size, c.z_size)
        if c.decoder == "lstm":
            self.decoder = LSTMDecoder(5 + z, c.dec_size, c.recurrent_dropout)
        elif c.decoder == "layer_norm":
            self.decoder = LayerNormLSTMDecoder(5 + z, c.dec_size, c.recurrent_dropout)
        else:
            self.decoder = HyperLSTMDecoder(
                5 + z, c.dec_size, c.recurrent_dropout, c.hyper_size, c.hyper_embedding
            )
        if c.conditional:
            self.to_state = nn.Linear(c.z_size, sum(self.decoder.state_sizes))
        self.to_params = nn.Linear(c.dec_size, 6 * c.num_mixture + 3)

    # encoder / decoder pieces

    def encode(
        self, strokes5: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, N_max + 1, 5), (B,) -> mu, sigma_hat, each (B, N_z).

        Each direction reads only the sketch's own points (as magenta's
        `sequence_length`): the forward one from the first point, the backward
        one from the last. Packed sequences would do this too, but torch's
        packed LSTM is ~20x slower on CPU, so the backward direction instead
        reads each sketch reversed within its length, and both take the output
        at the sketch's last step.
        """
        x = strokes5[:, 1:]
        b, t = x.shape[:2]
        lengths = lengths.clamp(1, t)
        steps = torch.arange(t, device=x.device)[None, :]
        inside = steps < lengths[:, None]
        reverse = torch.where(inside, lengths[:, None] - 1 - steps, steps)
        x_rev = x.gather(1, reverse[..., None].expand(-1, -1, x.shape[2]))
        last = (torch.arange(b, device=x.device), lengths - 1)
        h_fw = _lstm_direction(self.encoder, "", x)[last]
        h_bw = _lstm_direction(self.encoder, "_reverse", x_rev)[last]
        h = torch.cat([h_fw, h_bw], dim=-1)
        return self.to_mu(h), self.to_sigma_hat(h)

    def initial_state(self, z: torch.Tensor | None, batch: int, device) -> tuple:
        """tanh(W z + b) split into the decoder's state tensors; zeros when unconditional."""
        if z is None:
            return tuple(torch.zeros(batch, n, device=device) for n in self.decoder.state_sizes)
        return tuple(torch.tanh(self.to_state(z)).split(list(self.decoder.state_sizes), dim=-1))

    def decode(
        self, inputs: torch.Tensor, z: torch.Tensor | None, state: tuple | None = None
    ) -> tuple[MixtureParams, tuple]:
        """Teacher-forced decoder: inputs S_0..S_{T-1} (B, T, 5) -> mixture params, final state."""
        b, t = inputs.shape[:2]
        if state is None:
            state = self.initial_state(z, b, inputs.device)
        x = inputs if z is None else torch.cat([inputs, z[:, None].expand(b, t, -1)], -1)
        out, state = self.decoder(x, state)
        return MixtureParams.from_output(self.to_params(out), self.config.num_mixture), state

    def forward(self, batch, step: int | None = None, reduction: str = "mean") -> Losses:
        """Loss terms of a batch; ``step=None`` evaluates (full KL weight, no annealing)."""
        check_choice("reduction", reduction, ["mean", "none"])
        strokes5, lengths = batch
        z, kl = None, torch.zeros(strokes5.shape[0], device=strokes5.device)
        if self.config.conditional:
            mu, sigma_hat = self.encode(strokes5, lengths)
            z = mu + torch.exp(sigma_hat / 2) * torch.randn_like(mu)
            kl = kl_divergence(mu, sigma_hat)
        params, _ = self.decode(strokes5[:, :-1], z)
        n_max = self.config.max_seq_len
        recon = reconstruction_loss(params, strokes5[:, 1:], lengths, n_max)
        weight = kl_weight(step, self.config) if self.config.conditional else 0.0
        # the KL floor applies to the batch mean, as in magenta
        total = recon.mean() + weight * torch.clamp(kl.mean(), min=self.config.kl_tolerance)
        extra = {"kl_weight": torch.tensor(weight)}
        if step is None:  # evaluation: magenta's own figure too, beside the paper's L_R
            extra[MAGENTA_EVAL] = magenta_eval_loss(params, strokes5[:, 1:], lengths, n_max)
            if not self.config.conditional:  # no z: log p(x) itself, as eval.likelihood reads it
                extra[LOG_PX] = -n_max * recon
        if reduction == "mean":
            recon, kl = recon.mean(), kl.mean()
            extra = {k: v.mean() for k, v in extra.items()}
        return Losses(recon, kl, total, extra)

    def log_importance_weight(self, batch) -> torch.Tensor:
        """log p(x, z) - log q(z | x) for one fresh z ~ q(z | x), nats per sketch, (B,).

        The pieces of `forward`: log p(x | z) = -N_max * L_R (eq. 9 without its
        1/N_max), and the Gaussian log densities of z under the prior N(0, I) and
        the encoder's N(mu, sigma). Its expectation is the ELBO; `eval.likelihood`
        averages k of them inside a log for the importance-weighted bound. An
        unconditional model has no z: this is then log p(x) itself.
        """
        strokes5, lengths = batch
        z, log_ratio = None, torch.zeros(strokes5.shape[0], device=strokes5.device)
        if self.config.conditional:
            mu, sigma_hat = self.encode(strokes5, lengths)
            eps = torch.randn_like(mu)
            z = mu + torch.exp(sigma_hat / 2) * eps
            # log N(z; 0, I) - log N(z; mu, sigma): the 2*pi terms cancel
            log_ratio = (-0.5 * z**2 + 0.5 * eps**2 + sigma_hat / 2).sum(-1)
        params, _ = self.decode(strokes5[:, :-1], z)
        n_max = self.config.max_seq_len
        log_px = -n_max * reconstruction_loss(params, strokes5[:, 1:], lengths, n_max)
        return log_px + log_ratio

    def configure_optimizer(self, settings: TrainConfig) -> torch.optim.Optimizer:
        """Adam, as in the paper and magenta."""
        return torch.optim.Adam(self.parameters(), lr=settings.lr)

    def report_terms(self, recon: float, kl: float, iw_nll: float, data_state: dict) -> dict:
        """L_R and L_KL as the paper defines them (eqs. 9-10), and the bound in nats."""
        return {"L_R": recon, "L_KL": kl, "iw_nll_nats": iw_nll}

    def sample_sketches(
        self,
        n: int,
        temperature: float = SAMPLING_TEMPERATURE,
        generator: torch.Generator | None = None,
        data_state: dict | None = None,
    ) -> list[np.ndarray]:
        """`n` sketches from the prior (`sample`), in the training data's units."""
        scale = float((data_state or {}).get("scale_factor", 1.0))
        return self.sample(n, temperature=temperature, generator=generator, scale=scale)

    @classmethod
    def build_datasets(
        cls,
        config: SketchRNNConfig,
        files: Sequence[str | Path],
        settings: TrainConfig | None = None,
        state: dict | None = None,
    ) -> DataBundle:
        """See `build_datasets`."""
        return build_datasets(config, files, settings, state)

    # using a trained model

    def _prepare(self, sketches: Sequence[np.ndarray], scale: float) -> tuple:
        """Stroke-3 sketches in data units -> batch (strokes5, lengths) on the model's device."""
        n_max = self.config.max_seq_len
        for i, s in enumerate(sketches):
            if len(s) > n_max:
                raise QuickDrawError(f"sketch {i} has {len(s)} points, more than N_max={n_max}")
        big = np.stack([S.stroke3_to_stroke5(S.normalize(s, scale), n_max) for s in sketches])
        device = next(self.parameters()).device
        lengths = torch.tensor([len(s) for s in sketches], device=device)
        return torch.from_numpy(big).to(device), lengths

    @torch.no_grad()
    def encode_sketches(
        self, sketches: Sequence[np.ndarray], scale: float, generator=None, sample: bool = False
    ) -> torch.Tensor:
        """Latent codes (n, N_z) of stroke-3 sketches: mu, or a sample if `sample`."""
        if not self.config.conditional:
            raise QuickDrawError("this sketch-rnn is unconditional: it has no encoder")
        mu, sigma_hat = self.encode(*self._prepare(sketches, scale))
        if not sample:
            return mu
        eps = torch.randn(mu.shape, generator=generator, device="cpu").to(mu.device)
        return mu + torch.exp(sigma_hat / 2) * eps

    @torch.no_grad()
    def sample(
        self,
        n: int = 1,
        z: torch.Tensor | None = None,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
        scale: float = 1.0,
        max_len: int | None = None,
        state: tuple | None = None,
        prev: torch.Tensor | None = None,
        softmax_temperature: float | None = None,
    ) -> list[np.ndarray]:
        """Draw `n` sketches at once; returns stroke-3 float32 arrays in data units.

        Temperature tau (0 < tau): the mixture weights and pen logits are
        divided by tau before the softmax (tau < 1 sharpens them), and each
        Gaussian's variance is multiplied by tau, so sigma by sqrt(tau): as the
        paper's section 4 writes it and as magenta's JavaScript sketch-rnn
        (@magenta/sketch) samples. Magenta's Python `sample` multiplies sigma by
        tau squared instead (its `sample_gaussian_2d`); that is not followed
        here, so its samples at a tau < 1 are tighter than these.
        `softmax_temperature`, when given, divides the mixture and pen logits
        instead of tau (`magenta_js_temperature` gives @magenta/sketch's
        0.5 + tau / 2). `z` (n, N_z) conditions a
        conditional model; if omitted it is drawn from N(0, I). `generator`
        makes the draws reproducible; `scale` (the training scale factor)
        turns normalised offsets back into data units. `state`/`prev` continue
        a primed decoder (see `complete`).
        """
        check_temperature(temperature, "temperature")
        soft = temperature if softmax_temperature is None else softmax_temperature
        check_temperature(soft, "softmax_temperature")
        self.eval()
        device = next(self.parameters()).device

        def randn(*shape):  # draws on the CPU generator, so results match across devices
            return torch.randn(shape, generator=generator).to(device)

        if self.config.conditional and z is None:
            z = randn(n, self.config.z_size)
        if not self.config.conditional:
            z = None
        if state is None:
            state = self.initial_state(z, n, device)
        x = prev if prev is not None else torch.tensor(S.START_TOKEN, device=device).repeat(n, 1)
        max_len = self.config.max_seq_len if max_len is None else max_len
        out = torch.zeros(n, max_len, 3, device=device)
        done = torch.zeros(n, dtype=torch.bool, device=device)
        lengths = torch.full((n,), max_len, device=device)
        sqrt_tau = math.sqrt(temperature)
        for t in range(max_len):
            p, state = self.decode(x[:, None], z, state)
            p = MixtureParams(*(getattr(p, f)[:, 0] for f in p.__dataclass_fields__))
            j = torch.multinomial(
                F.softmax(p.logit_pi / soft, -1).cpu(), 1, generator=generator
            ).to(device)
            mx, my, sx, sy, rho = (
                v.gather(1, j)[:, 0] for v in (p.mu_x, p.mu_y, p.sigma_x, p.sigma_y, p.rho)
            )
            e1, e2 = randn(n), randn(n)
            dx = mx + sx * sqrt_tau * e1
            dy = my + sy * sqrt_tau * (rho * e1 + torch.sqrt(1 - rho**2) * e2)
            pen = torch.multinomial(
                F.softmax(p.pen_logits / soft, -1).cpu(), 1, generator=generator
            )[:, 0].to(device)
            newly_done = (pen == 2) & ~done
            lengths[newly_done] = t
            done |= newly_done
            out[:, t] = torch.stack([dx, dy, (pen == 1).float()], -1)
            x = torch.cat([dx[:, None], dy[:, None], F.one_hot(pen, 3).float()], -1)
            if done.all():
                break
        sketches = []
        for row, length in zip(out.cpu().numpy(), lengths.tolist(), strict=True):
            s = row[: int(length)].copy()
            s[:, :2] *= scale
            sketches.append(s)
        return sketches

    @torch.no_grad()
    def reconstruct(
        self,
        sketch: np.ndarray,
        scale: float,
        temperatures: Sequence[float] = (0.1, 0.5, 1.0),
        generator=None,
    ) -> list[np.ndarray]:
        """Encode one stroke-3 sketch and decode it once per temperature."""
        z = self.encode_sketches([sketch], scale)
        return [
            self.sample(1, z, t, generator, scale)[0] for t in temperatures
        ]  # one per temperature

    @torch.no_grad()
    def interpolate(
        self,
        a: np.ndarray,
        b: np.ndarray,
        scale: float,
        steps: int = 8,
        method: str = "slerp",
        temperature: float = 0.1,
        generator=None,
    ) -> list[np.ndarray]:
        """Decode `steps` points on the path from z(a) to z(b): ``slerp`` or ``lerp``."""
        check_choice("interpolation", method, ["slerp", "lerp"])
        if steps < 2:
            raise QuickDrawError(f"interpolate needs steps >= 2 (both ends), got {steps}")
        za, zb = self.encode_sketches([a, b], scale)
        ts = torch.linspace(0, 1, steps, device=za.device)
        zs = torch.stack([(slerp if method == "slerp" else lerp)(za, zb, float(t)) for t in ts])
        return self.sample(steps, zs, temperature, generator, scale)

    @torch.no_grad()
    def analogy(
        self,
        a: np.ndarray,
        b: np.ndarray,
        c: np.ndarray,
        scale: float,
        n: int = 1,
        temperature: float = 0.1,
        generator=None,
    ) -> list[np.ndarray]:
        """Decode z(a) - z(b) + z(c) `n` times (the paper's latent-space arithmetic)."""
        za, zb, zc = self.encode_sketches([a, b, c], scale)
        z = (za - zb + zc).expand(n, -1)
        return self.sample(n, z, temperature, generator, scale)

    @torch.no_grad()
    def complete(
        self,
        partial: np.ndarray,
        scale: float,
        n: int = 4,
        temperature: float = 0.5,
        generator=None,
        z: torch.Tensor | None = None,
        softmax_temperature: float | None = None,
    ) -> list[np.ndarray]:
        """`n` endings of an unfinished stroke-3 sketch, each returned whole (prefix + ending).

        The decoder reads the given points (teacher-forced), then samples on.
        A conditional model uses z = mu of the partial sketch unless `z` is given.
        `softmax_temperature` as in `sample`.
        """
        if len(partial) == 0:
            raise QuickDrawError("complete needs at least one point to start from")
        strokes5, lengths = self._prepare([partial], scale)
        if self.config.conditional and z is None:
            z = self.encode(strokes5, lengths)[0]
        if z is not None:
            z = z.expand(n, -1)
        k = len(partial)
        prefix = strokes5[:, : k + 1].expand(n, -1, -1)  # start token + the k points
        _, state = self.decode(prefix[:, :-1], z)
        rest = self.sample(
            n,
            z,
            temperature,
            generator,
            scale,
            max_len=self.config.max_seq_len - k,
            state=state,
            prev=prefix[:, -1],
            softmax_temperature=softmax_temperature,
        )
        head = np.asarray(partial, dtype=np.float32)
        return [np.concatenate([head, r]) for r in rest]


def magenta_js_temperature(temperature: float) -> float:
    """The softmax temperature of the mixture weights and pen that @magenta/sketch's
    ``getPDF(state, temperature)`` uses by default: 0.5 + temperature / 2 (its sigmas are
    scaled by sqrt(temperature), as here)."""
    return 0.5 + temperature / 2


def lerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    return (1 - t) * a + t * b


def slerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """Spherical interpolation (the paper's choice for latent paths); lerp if a ∥ b."""
    cos = (a / a.norm()) @ (b / b.norm())
    omega = torch.arccos(cos.clamp(-1, 1))
    if omega.abs() < 1e-6:
        return lerp(a, b, t)
    return (torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / torch.sin(omega)


# --- data ------------------------------------------------------------------------


class StrokeDataset(Dataset):
    """Sketches (normalised stroke-3) -> ``(stroke-5 (N_max + 1, 5) float32, length)``.

    With `augment` (the training settings), each item is randomly scaled and has points dropped
    (`strokes.random_scale`, `strokes.augment_strokes`) by an rng seeded from
    ``(seed, epoch, index)``, so a resumed run sees the same items.
    """

    def __init__(
        self,
        sketches: list[np.ndarray],
        max_seq_len: int,
        augment: SketchRNNTraining | None = None,
        seed: int = 0,
    ):
        self.sketches, self.max_seq_len, self.augment = sketches, max_seq_len, augment
        self.seed, self.epoch = seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.sketches)

    def __getitem__(self, i: int):
        s = self.sketches[i]
        if self.augment is not None:
            rng = np.random.default_rng([self.seed, self.epoch, i])
            s = S.random_scale(s, rng, self.augment.random_scale)
            s = S.augment_strokes(s, rng, self.augment.augment_prob)
        big = S.stroke3_to_stroke5(s, self.max_seq_len)
        return torch.from_numpy(big), torch.tensor(len(s))


def load_splits(
    files: Sequence[str | Path], max_per_category: int = 0
) -> dict[str, list[np.ndarray]]:
    """The train/valid/test stroke-3 sketches of sketch-rnn ``.npz`` files (one category
    each), at most `max_per_category` of each file (0: all), through the data layer's one
    loader (`quickdraw_tools.datasets.QuickDraw.from_files`)."""
    from ..datasets import QuickDraw

    if not files:
        raise QuickDrawError("no .npz files given")
    parts = QuickDraw.splits_from_files(files, "stroke3", max_per_category=max_per_category)
    return {split: data.sketches() for split, data in parts.items()}


def build_datasets(
    cfg: SketchRNNConfig,
    files: Sequence[str | Path],
    settings: TrainConfig | None = None,
    state: dict | None = None,
) -> DataBundle:
    """Datasets from sketch-rnn ``.npz`` files (``DIR/sketchrnn/<category>.npz``).

    As magenta's loader: drop sketches longer than N_max (counted per split in
    ``DataBundle.dropped``), clamp offsets to ±1000, divide by the scale factor
    of the *training* split, or by ``settings.scale_factor`` when that is set
    (a run started from another checkpoint's weights keeps its units), saved in
    ``state["scale_factor"]``; only the training set is augmented. Given the
    `state` of a trained model, its scale factor is used and nothing is augmented.
    """
    from .base import data_fingerprint

    settings = settings if settings is not None else SketchRNNTraining()
    raw = load_splits(files, settings.max_per_category)
    kept = {}
    for name, sketches in raw.items():
        kept[name] = [S.clip_offsets(s) for s in S.filter_by_length(sketches, cfg.max_seq_len)]
        if not kept[name] and state is None:
            raise QuickDrawError(
                f"no {name} sketches with 1..{cfg.max_seq_len} points in {list(map(str, files))}"
            )
    dropped = {k: len(raw[k]) - len(kept[k]) for k in raw}
    if state is None:
        own = S.normalizing_scale_factor(kept["train"])
        scale = float(getattr(settings, "scale_factor", 0.0)) or own
        state = {
            "scale_factor": scale,
            "own_scale_factor": own,  # the training split's own, whether or not it is used
            "files": [str(Path(f).resolve()) for f in files],
            "categories": [formats.file_stem(Path(f)) for f in files],
            "sizes": {k: len(v) for k, v in kept.items()},
            "dropped_too_long": dropped,
            "fingerprint": data_fingerprint(kept),
        }
        augment = settings if isinstance(settings, SketchRNNTraining) else SketchRNNTraining()
    else:
        scale, augment = state["scale_factor"], None
    norm = {k: [S.normalize(s, scale) for s in v] for k, v in kept.items()}
    n_max = cfg.max_seq_len
    return DataBundle(
        train=StrokeDataset(norm["train"], n_max, augment, seed=settings.seed),
        valid=StrokeDataset(norm["valid"], n_max),
        test=StrokeDataset(norm["test"], n_max),
        state=state,
        dropped=dropped,
        dropped_why=f"sketches longer than N_max = {n_max} points",
    )
