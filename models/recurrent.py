"""sketch-rnn's decoder recurrences for training: a loop forward, a hand-written loop backward.

`sketch_rnn.py` defines the decoder cells step by step (`LSTMDecoder.step`,
`LayerNormLSTMDecoder.step`, `HyperLSTMDecoder.step`); that is the model, which
sampling runs and which the tests hold these functions to, outputs and
gradients. Run under autograd, that loop records every small op of every step
(about 15 for an LSTM, 60 for a HyperLSTM) and its backward replays them one
by one, forming each weight's gradient once per step. Here each recurrence is one
`torch.autograd.Function`:

- what does not depend on the previous step is left to the caller, for all
  steps at once: the input projections (and the output layer and loss after);
- the forward loop runs without autograd and keeps what backward needs
  (activated gates, cells, layer norms' outputs and statistics);
- the backward loop carries only dh and dc back through time: per step one
  matmul with the recurrent weights and the cell's elementwise derivatives
  (torch's fused `sigmoid_backward`, `tanh_backward`, `native_layer_norm_backward`);
- each weight's gradient is one matmul over all steps, dW = sum_t dgates_t^T h_{t-1}.

Why per step rather than in big batched passes: one step's tensors stay in
cache. A product of two (B, 4H) tensors takes 25 us here at B 50, H 512; the
same product over all 120 steps at once, 33 ms, streaming through main memory:
10x the 120 small ones. So the derivatives are formed inside the backward loop
from the step's saved activations, and the layer norms' gain and bias
gradients are accumulated there too; only the matmuls gather all steps.

Alternatives measured (the layer-norm decoder alone, forward + backward, batch 50,
120 steps, 512 units, one CPU thread, 2026-12-01): the step loop under autograd
5.6 s; that loop under `torch.jit.script` 10.7 s; its step under `torch.compile`
4.9 s, after 64 s of compiling; this 0.7 s. Neither compiler removes the
per-step graph that autograd keeps, and each brings its own failure modes
(TorchScript is deprecated; inductor needs a C++ compiler on the CPU), so
neither is used.

The cells' elementwise parts are the same for all three decoders (`_Cell`).
Gates are in torch's order (i, f, g, o); callers permute their weights' gate
blocks to it. Elementwise maths and layer norm run in the parameters' dtype
(float32); under autocast the per-step matmuls take the autocast dtype (as
autocast gives torch's fused LSTM) and weight gradients are formed in the
parameters' dtype. Nothing moves between devices: the same code runs on CPU and
CUDA, and under DDP the gradients reach the parameters through autograd as
from any module.
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

EPS = 1e-5  # nn.LayerNorm's default, as the cells' `LayerNorm`
_aten = torch.ops.aten


def dropout_mask(
    shape: tuple[int, ...],
    p: float,
    like: torch.Tensor,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Recurrent-dropout mask: 0 with probability `p`, else 1 / (1 - p), as `F.dropout`.

    Drawn on `like`'s device in float32 from `generator` (one for that device),
    else torch's global generator for it. (u >= p for u ~ U[0, 1): 2.5x faster
    than `bernoulli_` on CPU.)
    """
    u = torch.empty(shape, device=like.device, dtype=torch.float32)
    return u.uniform_(generator=generator).ge_(p).div_(1 - p)


def matmul_dtype(device: torch.device, dtype: torch.dtype) -> torch.dtype:
    """The dtype of the loop's matmuls: autocast's on `device` when it is on, else `dtype`."""
    if hasattr(torch, "get_autocast_dtype"):  # torch >= 2.4
        if torch.is_autocast_enabled(device.type):
            return torch.get_autocast_dtype(device.type)
    elif device.type == "cuda" and torch.is_autocast_enabled():
        return torch.get_autocast_gpu_dtype()
    elif device.type == "cpu" and torch.is_autocast_cpu_enabled():
        return torch.get_autocast_cpu_dtype()
    return dtype


def _mm(a, w, add=None, out=None) -> torch.Tensor:
    """a @ w (+ add) with `w` in the matmul dtype; the result in `a`'s dtype (into `out`)."""
    if w.dtype == a.dtype:
        if add is None:
            return torch.mm(a, w, out=out)
        return torch.addmm(add, a, w, out=out)
    r = torch.mm(a.to(w.dtype), w).to(a.dtype)
    if add is not None:
        r = r + add
    return r if out is None else out.copy_(r)


def _bmm(a, w, out=None) -> torch.Tensor:
    """Batched a @ w with `w` in the matmul dtype; the result in `a`'s dtype (into `out`)."""
    if w.dtype == a.dtype:
        return torch.bmm(a, w, out=out)
    r = torch.bmm(a.to(w.dtype), w).to(a.dtype)
    return r if out is None else out.copy_(r)


class _Cell:
    """The elementwise part of an LSTM cell over a sequence, with optional layer norms.

    Forward, step by step: gates' pre-activations -> [layer norm per gate, gain,
    bias] -> (i, f, g, o) -> c = f c + i (g * mask) -> h = o tanh([LN] c),
    keeping what backward needs. Backward, step by step, from the back: dh_t
    (all of it) and dc_t (from step t + 1) give the gates' d pre-activations
    and dc_{t-1}; the layer norms' gain and bias gradients add up on the way.

    The gates have shape `shape`, gate axis `gate_dim`: (B, 4, H) with 1 or
    (4, B, H) with 0. `gates_ln` = (gain, bias) broadcasting over `shape`,
    `cell_ln` = (gain, bias), each (H,); None for no layer norm. Between the
    passes its tensors travel through `ctx.save_for_backward` (`pack`, `unpack`),
    so that autograd frees them after backward as it frees its own.
    """

    TENSORS = (
        "c0", "mask", "gain", "bias", "c_gain", "c_bias",  # inputs
        "act", "c", "h", "tanh_c",  # (T, ...) buffers
        "update", "norm", "rstd", "c_norm", "c_mean", "c_rstd",  # lists of T steps
    )  # fmt: skip

    def __init__(self, steps, shape, gate_dim, c0, mask, gates_ln, cell_ln):
        self.gate_dim, self.size = gate_dim, shape[-1]
        self.c0, self.mask = c0, mask
        self.gain, self.bias = gates_ln if gates_ln is not None else (None, None)
        self.c_gain, self.c_bias = cell_ln if cell_ln is not None else (None, None)
        cells, new = (steps, c0.shape[0], self.size), c0.new_empty
        self.act = new(steps, *shape)  # sigmoid(i, f, o), tanh(g)
        self.c, self.h, self.tanh_c = new(cells), new(cells), new(cells)
        self.update = []  # tanh(g) * mask, with a mask
        self.norm, self.rstd = [], []  # the gates' layer norm: its output, 1 / std
        self.c_norm, self.c_mean, self.c_rstd = [], [], []  # the cell's: output, mean, 1 / std

    def pack(self) -> list:
        """Take the cell's tensors out of it, as one list for `ctx.save_for_backward`
        (the ops' own outputs are kept, not copied into buffers: `out=` would copy)."""
        flat, self.lengths = [], []
        for name in self.TENSORS:
            value = getattr(self, name)
            setattr(self, name, None)
            is_list = isinstance(value, list)
            self.lengths.append(len(value) if is_list else None)
            flat.extend(value if is_list else [value])
        return flat

    def unpack(self, flat) -> None:
        """Put back what `pack` took (from `ctx.saved_tensors`)."""
        flat = list(flat)
        for name, n in zip(self.TENSORS, self.lengths, strict=True):
            setattr(self, name, flat.pop(0) if n is None else [flat.pop(0) for _ in range(n)])

    def forward(self, t: int, pre: torch.Tensor, c: torch.Tensor) -> tuple:
        """Step t: pre-activations (shape), c_{t-1} (B, H) -> h_t (into `h[t]`), c_t."""
        gd, size = self.gate_dim, [self.size]
        a = pre
        if self.gain is not None:
            n, _, rstd = torch.native_layer_norm(pre, size, None, None, EPS)
            self.norm.append(n)
            self.rstd.append(rstd)
            a = torch.addcmul(self.bias, n, self.gain)
        act = self.act[t]
        torch.sigmoid(a, out=act)
        i, f, g, o = act.unbind(gd)
        torch.tanh(a.select(gd, 2), out=g)
        if self.mask is not None:
            g = g * self.mask[t]
            self.update.append(g)
        c_new = torch.mul(f, c, out=self.c[t]).addcmul_(i, g)
        into = c_new
        if self.c_gain is not None:
            n, mean, rstd = torch.native_layer_norm(c_new, size, None, None, EPS)
            self.c_norm.append(n)
            self.c_mean.append(mean)
            self.c_rstd.append(rstd)
            into = torch.addcmul(self.c_bias, n, self.c_gain)
        tanh_c = torch.tanh(into, out=self.tanh_c[t])
        return torch.mul(o, tanh_c, out=self.h[t]), c_new

    def start_backward(self) -> None:
        """Zero the layer norms' gradient accumulators, per batch row (summed at the end)."""
        step = self.act[0]
        if self.gain is not None:
            self.d_gain, self.d_bias = torch.zeros_like(step), torch.zeros_like(step)
            self.zero, self.one = torch.zeros_like(self.rstd[0]), torch.ones_like(self.rstd[0])
        if self.c_gain is not None:
            self.d_c_gain, self.d_c_bias = torch.zeros_like(self.c[0]), torch.zeros_like(self.c[0])

    def backward(self, t: int, dh: torch.Tensor, dc: torch.Tensor, out: torch.Tensor):
        """Step t backward: dh_t, dc_t (B, H) -> d pre-activations (into `out`, shape) and
        returns dc_{t-1}."""
        gd, size = self.gate_dim, [self.size]
        i, f, g, o = self.act[t].unbind(gd)
        tanh_c = self.tanh_c[t]
        da = torch.empty_like(out) if self.gain is not None else out
        da_i, da_f, da_g, da_o = da.unbind(gd)
        _aten.sigmoid_backward.grad_input(dh * tanh_c, o, grad_input=da_o)
        d_in = _aten.tanh_backward(dh * o, tanh_c)
        if self.c_gain is not None:
            self.d_c_gain.addcmul_(d_in, self.c_norm[t])
            self.d_c_bias.add_(d_in)
            d_in = _aten.native_layer_norm_backward(
                d_in, self.c[t], size, self.c_mean[t], self.c_rstd[t], self.c_gain, None,
                [True, False, False],
            )[0]  # fmt: skip
        dc = dc + d_in
        update = g if self.mask is None else self.update[t]
        c_prev = self.c[t - 1] if t > 0 else self.c0
        _aten.sigmoid_backward.grad_input(dc * update, i, grad_input=da_i)
        _aten.sigmoid_backward.grad_input(dc * c_prev, f, grad_input=da_f)
        d_g = dc * i if self.mask is None else dc * i * self.mask[t]
        _aten.tanh_backward.grad_input(d_g, g, grad_input=da_g)
        if self.gain is not None:
            n = self.norm[t]
            self.d_gain.addcmul_(da, n)
            self.d_bias.add_(da)
            # Layer norm's backward from its output n alone (its input is not kept): on
            # n with mean 0 and rstd 1 it gives d pre / rstd, the formula being linear in
            # rstd once n is fixed.
            d_n = _aten.native_layer_norm_backward(
                da * self.gain, n, size, self.zero, self.one, None, None,
                [True, False, False],
            )[0]  # fmt: skip
            torch.mul(d_n, self.rstd[t], out=out)
        return dc * f

    def param_grads(self) -> tuple:
        """After the backward loop: d gain, d bias of the gates' and the cell's layer norms.

        Then it lets go of every tensor `unpack` gave back: the cell outputs among them carry
        this Function's node as their grad_fn, and the node holds the cell (through ctx), a
        cycle through C++ that Python's collector cannot see, so each training step's
        activations would stay in memory for good (GBs within minutes). A second backward
        (retain_graph) unpacks them again from ctx.saved_tensors.
        """
        grads = [None] * 4
        if self.gain is not None:
            grads[0] = self.d_gain.sum_to_size(self.gain.shape)
            grads[1] = self.d_bias.sum_to_size(self.bias.shape)
        if self.c_gain is not None:
            grads[2], grads[3] = self.d_c_gain.sum(0), self.d_c_bias.sum(0)
        for name in self.TENSORS:
            setattr(self, name, None)
        self.d_gain = self.d_bias = self.zero = self.one = self.d_c_gain = self.d_c_bias = None
        return tuple(grads)


def _weight_grad(d: torch.Tensor, inputs: torch.Tensor, first: torch.Tensor) -> torch.Tensor:
    """sum_t d_t^T x_{t-1} for d (T, B, n) and x_{t-1} = `first` (B, m) at t = 0, else
    inputs[t - 1] ((T, B, m)): one matmul over all steps (no concatenated copy)."""
    b = first.shape[0]
    d2 = d.reshape(-1, d.shape[-1])
    return torch.addmm(d2[:b].t() @ first, d2[b:].t(), inputs[:-1].reshape(-1, first.shape[1]))


class _LSTM(torch.autograd.Function):
    """The LSTM or layer-norm LSTM recurrence; see `lstm`."""

    @staticmethod
    def forward(ctx, xw, h0, c0, w_hh, gates_gain, gates_bias, cell_gain, cell_bias, mask, mm):
        steps, b, size = xw.shape[0], xw.shape[1], xw.shape[2] // 4
        with torch.autocast(xw.device.type, enabled=False):
            w_t = w_hh.to(mm).t().contiguous()  # (H, 4H): h @ W^T reads W^T row by row
            gates_ln = cell_ln = None
            if gates_gain is not None:
                gates_ln = gates_gain.view(4, size), gates_bias.view(4, size)
                cell_ln = cell_gain, cell_bias
            cell = _Cell(steps, (b, 4, size), 1, c0, mask, gates_ln, cell_ln)
            h, c = h0, c0
            for t in range(steps):
                h, c = cell.forward(t, _mm(h, w_t, xw[t]).view(b, 4, size), c)
        out = cell.h
        ctx.cell, ctx.mm = cell, mm
        ctx.save_for_backward(h0, w_hh, *cell.pack())
        return out, h.clone(), c.clone()

    @staticmethod
    @once_differentiable
    def backward(ctx, d_out, d_h, d_c):
        h0, w_hh, *saved = ctx.saved_tensors
        cell = ctx.cell
        cell.unpack(saved)
        out = cell.h
        steps, b, size = out.shape
        with torch.autocast(out.device.type, enabled=False):
            w = w_hh.to(ctx.mm)
            cell.start_backward()
            d_pre = out.new_empty(steps, b, 4 * size)
            d_out, dh, dc = d_out.contiguous(), d_h, d_c
            for t in reversed(range(steps)):
                dc = cell.backward(t, d_out[t] + dh, dc, out=d_pre[t].view(b, 4, size))
                dh = _mm(d_pre[t], w)
            d_w = _weight_grad(d_pre, out, h0)
            d_gain, d_bias, d_cell_gain, d_cell_bias = cell.param_grads()
        if d_gain is not None:
            d_gain, d_bias = d_gain.reshape(-1), d_bias.reshape(-1)
        return d_pre, dh, dc, d_w, d_gain, d_bias, d_cell_gain, d_cell_bias, None, None


def lstm(
    xw: torch.Tensor,
    state: tuple[torch.Tensor, torch.Tensor],
    w_hh: torch.Tensor,
    mask: torch.Tensor | None = None,
    gates_ln: tuple[torch.Tensor, torch.Tensor] | None = None,
    cell_ln: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
    """An LSTM over a sequence, optionally layer-normalised; gates in the order (i, f, g, o).

    xw (T, B, 4H): the inputs' projections for all steps (biases included);
    state (h0, c0), each (B, H); w_hh (4H, H); mask (T, B, H) multiplies tanh(g)
    (recurrent dropout), None for none; `gates_ln` (gain, bias), each (4H,),
    normalises each gate's pre-activation, `cell_ln` (gain, bias), each (H,),
    the cell before its tanh. Returns outputs (T, B, H) and the final (h, c).
    """
    dtype = w_hh.dtype
    h0, c0 = (s.to(dtype) for s in state)
    gain, bias = gates_ln if gates_ln is not None else (None, None)
    cell_gain, cell_bias = cell_ln if cell_ln is not None else (None, None)
    mm = matmul_dtype(xw.device, dtype)
    out, h, c = _LSTM.apply(xw.to(dtype), h0, c0, w_hh, gain, bias, cell_gain, cell_bias, mask, mm)
    return out, (h, c)


class _HyperLSTM(torch.autograd.Function):
    """The HyperLSTM recurrence; see `hyper_lstm`."""

    @staticmethod
    def forward(
        ctx, mm, mask, hyper_mask, xw, xh, h0, c0, hh0, hc0, w_h, w_hh, w_embed, b_embed,
        scales, bias, gain, ln_bias, cell_gain, cell_bias, h_gain, h_bias, h_cell_gain,
        h_cell_bias,
    ):  # fmt: skip
        steps, b, size = xw.shape[0], xw.shape[2], xw.shape[3]
        hyper, embed = hh0.shape[1], scales.shape[1]
        gates = 4 * size
        with torch.autocast(xw.device.type, enabled=False):
            w_h_t = w_h.to(mm).t().contiguous()  # (H, 4H + 4H')
            w_hh_t = w_hh.to(mm).t().contiguous()
            w_embed_t = w_embed.to(mm).t().contiguous()
            scales_mm = scales.to(mm)
            main = _Cell(steps, (4, b, size), 0, c0, mask, (gain, ln_bias), (cell_gain, cell_bias))
            cell = _Cell(
                steps,
                (b, 4, hyper),
                1,
                hc0,
                hyper_mask,
                (h_gain, h_bias),
                (h_cell_gain, h_cell_bias),
            )
            r_all = xw.new_empty(steps, b, w_h.shape[0])  # h's projections: main, then hyper's
            z_all = xw.new_empty(steps, b, 12 * embed)  # x-, h- and bias embeddings, per gate
            s_all = xw.new_empty(steps, 12, b, size)  # their per-gate scalings, (12, B, H)
            h, c, hh, hc = h0, c0, hh0, hc0
            for t in range(steps):
                r = _mm(h, w_h_t, out=r_all[t])
                hh, hc = cell.forward(t, _mm(hh, w_hh_t, xh[t] + r[:, gates:]).view(b, 4, -1), hc)
                z = _mm(hh, w_embed_t, b_embed, out=z_all[t])
                s = _bmm(z.view(b, 12, embed).transpose(0, 1), scales_mm, out=s_all[t])
                h_w = r[:, :gates].view(b, 4, size).transpose(0, 1)
                pre = torch.addcmul(s[8:] + bias, s[:4], xw[t]).addcmul_(s[4:8], h_w)
                h, c = main.forward(t, pre, c)
        out, main_saved = main.h, main.pack()
        ctx.cells, ctx.mm, ctx.split = (main, cell), mm, len(main_saved)
        ctx.save_for_backward(
            xw, h0, hh0, w_h, w_hh, w_embed, scales, r_all, z_all, s_all, *main_saved, *cell.pack()
        )
        return out, h.clone(), c.clone(), hh.clone(), hc.clone()

    @staticmethod
    @once_differentiable
    def backward(ctx, d_out, d_h, d_c, d_hh, d_hc):
        xw, h0, hh0, w_h, w_hh, w_embed, scales, r_all, z_all, s_all, *saved = ctx.saved_tensors
        main, cell = ctx.cells
        main.unpack(saved[: ctx.split])
        cell.unpack(saved[ctx.split :])
        out = main.h
        steps, b, size = out.shape
        hyper, embed = hh0.shape[1], scales.shape[1]
        gates = 4 * size
        with torch.autocast(out.device.type, enabled=False):
            w_h_mm, w_hh_mm, w_embed_mm = w_h.to(ctx.mm), w_hh.to(ctx.mm), w_embed.to(ctx.mm)
            scales_t = scales.to(ctx.mm).transpose(1, 2).contiguous()
            main.start_backward()
            cell.start_backward()
            d_scales = torch.zeros_like(scales, dtype=out.dtype)
            d_bias = out.new_zeros(4, b, size)
            d_xw, d_r, d_z = torch.empty_like(xw), torch.empty_like(r_all), torch.empty_like(z_all)
            ds = s_all.new_empty(12, b, size)  # d (x-scaling, h-scaling, bias) of one step
            d_out, dh, dc, dhh, dhc = d_out.contiguous(), d_h, d_c, d_hh, d_hc
            for t in reversed(range(steps)):
                d_pre = ds[8:]  # d pre-activations are the bias embeddings' gradient
                dc = main.backward(t, d_out[t] + dh, dc, out=d_pre)  # (4, B, H)
                r, s, dr = r_all[t], s_all[t], d_r[t]
                torch.mul(d_pre, xw[t], out=ds[:4])
                torch.mul(d_pre, r[:, :gates].view(b, 4, size).transpose(0, 1), out=ds[4:8])
                d_bias += d_pre
                torch.mul(d_pre, s[:4], out=d_xw[t])
                torch.mul(d_pre, s[4:8], out=dr[:, :gates].view(b, 4, size).transpose(0, 1))
                d_scales.baddbmm_(z_all[t].view(b, 12, embed).permute(1, 2, 0), ds)
                dz = d_z[t]
                dz.view(b, 12, embed).copy_(_bmm(ds, scales_t).transpose(0, 1))
                dh_pre = dr[:, gates:]
                dhc = cell.backward(t, _mm(dz, w_embed_mm, dhh), dhc, out=dh_pre.view(b, 4, -1))
                dhh = _mm(dh_pre, w_hh_mm)
                dh = _mm(dr, w_h_mm)
            d_w_h = _weight_grad(d_r, out, h0)
            d_xh = d_r[..., gates:]
            d_w_hh = _weight_grad(d_xh, cell.h, hh0)
            d_z2 = d_z.view(-1, 12 * embed)
            d_w_embed = d_z2.t() @ cell.h.view(-1, hyper)
            grads = main.param_grads() + cell.param_grads()
        return (
            None, None, None, d_xw, d_xh, dh, dc, dhh, dhc, d_w_h, d_w_hh, d_w_embed,
            d_z2.sum(0), d_scales, d_bias.sum(1, keepdim=True), *grads,
        )  # fmt: skip


def hyper_lstm(
    xw: torch.Tensor,
    xh: torch.Tensor,
    state: tuple[torch.Tensor, ...],
    w_h: torch.Tensor,
    w_hh: torch.Tensor,
    embed: tuple[torch.Tensor, torch.Tensor],
    scales: torch.Tensor,
    bias: torch.Tensor,
    layer_norms: tuple[torch.Tensor, ...],
    masks: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    """A HyperLSTM with layer norm (Ha, Dai & Le 2016) over a sequence; gates (i, f, g, o).

    The hyper cell, a layer-norm LSTM of H' units, reads [x_t, h_{t-1}]; its
    output's embeddings z (3 x 4 gates x E) scale the main cell's input and
    recurrent projections and give its bias, gate by gate: pre_k = (z_x,k S_x,k)
    * (W_x x_t)_k + (z_h,k S_h,k) * (W_h h_{t-1})_k + z_b,k S_b,k + b_k, then the
    main layer-norm LSTM.

    xw (T, 4, B, H): W_x x_t for all steps, gate-major; xh (T, B, 4H'): the hyper
    cell's projections of x_t; state (h, c, hyper h, hyper c); w_h (4H + 4H', H):
    the main cell's W_h over the hyper cell's weights for h_{t-1}; w_hh (4H', H');
    embed (weight (12E, H'), bias (12E,)), rows ordered (x, h, bias) x gate x E;
    scales (12, E, H) = S_x, S_h, S_b; bias (4, 1, H); layer_norms: main gates'
    gain and bias (4, 1, H), main cell's (H,), hyper gates' (4, H'), hyper cell's
    (H',); masks (main (T, B, H), hyper (T, B, H')) or None. Returns outputs
    (T, B, H) and the final state.
    """
    dtype = w_h.dtype
    state = tuple(s.to(dtype) for s in state)
    mask, hyper_mask = masks if masks is not None else (None, None)
    mm = matmul_dtype(xw.device, dtype)
    out, *state = _HyperLSTM.apply(
        mm, mask, hyper_mask, xw.to(dtype), xh.to(dtype), *state, w_h, w_hh, *embed, scales,
        bias, *layer_norms,
    )  # fmt: skip
    return out, tuple(state)
