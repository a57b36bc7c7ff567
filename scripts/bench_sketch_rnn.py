"""Benchmark: sketch-rnn's decoders, training throughput vs labml-nn's, and batched sampling.

1. Decoders: the time of a train step (forward, backward, Adam) with each
   decoder, as a ratio to torch's fused LSTM without dropout, at the sizes of
   issue 13 (batch 50, N_max 120, encoder 256, decoder 512, HyperLSTM 256 /
   embedding 32, M 20, N_z 128), on the same batches of real sketches: the
   LSTM with recurrent dropout 0.1 (the default), the layer-norm LSTM and the
   HyperLSTM (both with dropout 0.1), as they train now (`models.recurrent`)
   and, in the rows marked "loop", as the step-by-step loop under autograd
   (`loop`, how every step ran before; --no-loops skips them). The variants'
   steps are interleaved, one of each per round in a rotating order, so that
   other load on a shared machine hits all alike. The table gives the median
   step in wall-clock time, sketches/second and the ratio, the ratio in this
   process's CPU time too, and each decoder's matmul FLOPs per step relative
   to the plain LSTM (the decoder alone, and the whole model: the time ratio
   the FLOP count alone predicts).
2. Training vs labml-nn: the same hyperparameters as labml-nn's `sketch_rnn` Configs
   (batch 100, encoder 256, decoder 512 LSTM, M = 20, N_z = 128, Adam lr 1e-3,
   gradient clipping 1.0, no recurrent dropout: labml has none), on the same
   sketches padded to the same length. labml-nn's side is its own
   `StrokesDataset`, `EncoderRNN`, `DecoderRNN`, `ReconstructionLoss` and
   `KLDivLoss` driven exactly as its `Configs.step` does (its `Configs` needs
   labml's experiment machinery, which only adds tracking). Our side is
   `models.sketch_rnn` (data augmentation on, as in training) with the
   trainer's step (forward, backward, clip, Adam). The two alternate in
   blocks so that a busy machine slows both alike; the table gives
   sketches/second and the ratio ours / labml.
   Skipped, saying so, when labml-nn cannot be imported.
3. Sampling: 100 sketches in one batched `Model.sample` call vs 100 calls
   of one sketch each (same model; a trained checkpoint with --checkpoint).

Usage: .venv/bin/python scripts/bench_sketch_rnn.py [--decoder-steps 8] [--steps 6]
       [--threads 1] [--no-loops] [--checkpoint runs/x/best.pt]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from _machine import cpu_name
from torch import nn
from torch.utils.data import DataLoader

from quickdraw_tools import strokes as S
from quickdraw_tools.models import sketch_rnn as R

ROOT = Path(__file__).resolve().parents[1]

SHARED = ROOT.parent / "shared" / "quickdraw"
LABML = dict(batch=100, enc=256, dec=512, m=20, nz=128, lr=1e-3, clip=1.0, max_len=200)
# issue 13's sizes for the decoders' comparison
DECODER_BENCH = dict(batch=50, max_seq_len=120, enc_size=256, dec_size=512, hyper_size=256)
DECODER_GOALS = {"lstm + dropout": 1.5, "layer_norm": 2.0, "hyper": 3.0}


def load_sketches(
    category: str, n: int, seed: int, max_len: int = LABML["max_len"]
) -> list[np.ndarray]:
    """`n` random drawings of a training category as stroke-3 (10 < points <= max_len)."""
    path = SHARED / "training" / f"{category}.ndjson"
    with open(path) as f:
        sketches = [S.drawing_to_stroke3(json.loads(line)["drawing"]) for line in f]
    sketches = [s for s in sketches if 10 < len(s) <= max_len]
    rng = np.random.default_rng(seed)
    return [sketches[i] for i in rng.permutation(len(sketches))[:n]]


class Labml:
    """labml-nn's sketch-rnn training step, as in `labml_nn.sketch_rnn.Configs.step`."""

    def __init__(self, sketches):
        from labml_nn import sketch_rnn as L

        self.L = L
        self.dataset = L.StrokesDataset(np.array(sketches, dtype=object), LABML["max_len"])
        self.encoder = L.EncoderRNN(LABML["nz"], LABML["enc"])
        self.decoder = L.DecoderRNN(LABML["nz"], LABML["dec"], LABML["m"])
        params = list(self.encoder.parameters()) + list(self.decoder.parameters())
        self.optimizer = torch.optim.Adam(params, lr=LABML["lr"])
        self.kl_loss, self.recon_loss = L.KLDivLoss(), L.ReconstructionLoss()
        loader = DataLoader(self.dataset, LABML["batch"], shuffle=True, drop_last=True)
        self.batches = _forever(loader)
        self.decoder_steps = self.dataset.data.shape[1] - 1

    def step(self) -> float:
        data, mask = next(self.batches)
        data, mask = data.transpose(0, 1), mask.transpose(0, 1)
        z, mu, sigma_hat = self.encoder(data)
        z_stack = z.unsqueeze(0).expand(data.shape[0] - 1, -1, -1)
        inputs = torch.cat([data[:-1], z_stack], 2)
        dist, q_logits, _ = self.decoder(inputs, z, None)
        kl = self.kl_loss(sigma_hat, mu)
        loss = self.recon_loss(mask, data[1:], dist, q_logits) + 0.5 * kl
        self.optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(self.encoder.parameters(), LABML["clip"])
        nn.utils.clip_grad_norm_(self.decoder.parameters(), LABML["clip"])
        self.optimizer.step()
        return loss.item()


class Ours:
    """Our model and dataset with the shared trainer's step."""

    def __init__(self, sketches, decoder_steps: int):
        cfg = R.SketchRNNConfig(
            max_seq_len=decoder_steps, enc_size=LABML["enc"], dec_size=LABML["dec"],
            z_size=LABML["nz"], num_mixture=LABML["m"], recurrent_dropout=0.0,
        )  # fmt: skip
        scale = S.normalizing_scale_factor(sketches)
        data = [S.normalize(S.clip_offsets(s), scale) for s in sketches]
        self.model = R.SketchRNN(cfg)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=LABML["lr"])
        dataset = R.StrokeDataset(data, cfg.max_seq_len, augment=R.SketchRNNTraining())
        loader = DataLoader(dataset, LABML["batch"], shuffle=True, drop_last=True)
        self.batches = _forever(loader)
        self.step_count = 0

    def step(self) -> float:
        losses = self.model(next(self.batches), step=self.step_count)
        self.optimizer.zero_grad()
        losses.total.backward()
        nn.utils.clip_grad_norm_(self.model.parameters(), LABML["clip"])
        self.optimizer.step()
        self.step_count += 1
        return losses.total.item()


def _forever(loader):
    while True:
        yield from loader


def bench_training(steps: int, block: int, category: str) -> dict:
    sketches = load_sketches(category, 1000, seed=0)
    torch.manual_seed(0)
    labml = Labml(sketches)
    ours = Ours(sketches, labml.decoder_steps)
    print(
        f"training: {len(sketches)} {category} sketches, padded to {labml.decoder_steps} "
        f"decoder steps; batch {LABML['batch']}, encoder {LABML['enc']}, decoder "
        f"{LABML['dec']} LSTM, M {LABML['m']}, Nz {LABML['nz']}; {steps} steps each "
        f"(+1 warm-up), alternating blocks of {block}"
    )
    seconds = {"ours": 0.0, "labml-nn": 0.0}
    runners = {"ours": ours, "labml-nn": labml}
    for runner in runners.values():
        runner.step()  # warm-up
    done = 0
    while done < steps:
        n = min(block, steps - done)
        for name, runner in runners.items():
            start = time.perf_counter()
            for _ in range(n):
                loss = runner.step()
                assert np.isfinite(loss), f"{name} diverged"
            seconds[name] += time.perf_counter() - start
        done += n
    rates = {k: steps * LABML["batch"] / v for k, v in seconds.items()}
    return {"seconds": seconds, "rates": rates}


def matmul_flops(cfg: R.SketchRNNConfig) -> dict[str, float]:
    """Matmul FLOPs per sketch and time step of the forward pass (2 per multiply-add), from
    the sizes: the decoder, and the whole model (+ encoder, both directions, + output
    layer). Elementwise work (gates, layer norms) is left out: under 1% at these sizes.
    Backward costs about twice the forward for every part, so the ratios hold for a step."""
    n_in, h = 5 + (cfg.z_size if cfg.conditional else 0), cfg.dec_size
    decoder = 2 * 4 * h * (n_in + h)  # W_x x_t + W_h h_{t-1}
    if cfg.decoder == "hyper":
        hy, e = cfg.hyper_size, cfg.hyper_embedding
        decoder += 2 * 4 * hy * (n_in + h + hy)  # the hyper cell reads [x_t, h_{t-1}]
        decoder += 2 * hy * 12 * e  # its output -> 3 x 4 embeddings of E
        decoder += 2 * 12 * e * h  # embeddings -> per-gate scalings and biases
    encoder = 2 * 2 * 4 * cfg.enc_size * (5 + cfg.enc_size) if cfg.conditional else 0
    output = 2 * h * (6 * cfg.num_mixture + 3)
    return {"decoder": decoder, "model": decoder + encoder + output}


def decoder_variants(loops: bool) -> dict[str, tuple[R.SketchRNNConfig, bool]]:
    """name -> (config, run the decoder as the step-by-step loop under autograd)."""
    base = {**DECODER_BENCH}
    base.pop("batch")

    def cfg(decoder, drop):
        return R.SketchRNNConfig(**base, decoder=decoder, recurrent_dropout=drop)

    variants = {
        "lstm (fused, no dropout)": (cfg("lstm", 0.0), False),
        "lstm + dropout": (cfg("lstm", 0.1), False),
        "layer_norm": (cfg("layer_norm", 0.1), False),
        "hyper": (cfg("hyper", 0.1), False),
    }
    if loops:
        for name in ("lstm + dropout", "layer_norm", "hyper"):
            variants[f"{name}, loop"] = (variants[name][0], True)
    return variants


def bench_decoders(
    steps: int, category: str, loops: bool, device: torch.device, warmup: int = 1
) -> dict:
    """Median train-step seconds of each decoder variant, steps interleaved."""
    b, n_max = DECODER_BENCH["batch"], DECODER_BENCH["max_seq_len"]
    sketches = load_sketches(category, 4 * b, seed=0, max_len=n_max)
    scale = S.normalizing_scale_factor(sketches)
    data = R.StrokeDataset([S.normalize(S.clip_offsets(s), scale) for s in sketches], n_max)
    batches = []
    for i in range(0, len(data) - b + 1, b):  # the same batches for every variant
        items = [data[j] for j in range(i, i + b)]
        batch = torch.stack([x for x, _ in items]), torch.stack([n for _, n in items])
        batches.append(tuple(t.to(device) for t in batch))
    runners = {}
    for name, (cfg, loop) in decoder_variants(loops).items():
        torch.manual_seed(0)
        model = R.SketchRNN(cfg).to(device).train()
        if loop:  # the step-by-step reference path, as every step ran before
            model.decoder.forward = model.decoder.loop
        runners[name] = (model, torch.optim.Adam(model.parameters(), lr=1e-3))

    def step(name: str, k: int) -> tuple[float, float]:
        model, optimizer = runners[name]
        if device.type == "cuda":
            torch.cuda.synchronize()
        wall, cpu = time.perf_counter(), time.process_time()
        losses = model(batches[k % len(batches)], step=k)
        optimizer.zero_grad()
        losses.total.backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        assert torch.isfinite(losses.total), f"{name} diverged"
        return time.perf_counter() - wall, time.process_time() - cpu

    names = list(runners)
    for k in range(warmup):
        for name in names:
            step(name, k)
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in names}
    for k in range(steps):
        for name in names[k % len(names) :] + names[: k % len(names)]:  # rotating order
            times[name].append(step(name, warmup + k))
    return {
        "wall": {k: statistics.median(w for w, _ in v) for k, v in times.items()},
        "cpu": {k: statistics.median(c for _, c in v) for k, v in times.items()},
        "flops": {name: matmul_flops(cfg) for name, (cfg, _) in decoder_variants(loops).items()},
    }


def print_decoders(d: dict) -> None:
    base = "lstm (fused, no dropout)"
    wall, cpu, flops = d["wall"], d["cpu"], d["flops"]
    b = DECODER_BENCH["batch"]
    print(
        f"{'decoder':<26}{'step s':>8}{'sketch/s':>10}{'ratio':>8}{'goal':>8}{'cpu ratio':>11}"
        f"{'dec FLOPs':>11}{'FLOP-predicted':>16}"
    )
    for name, seconds in wall.items():
        goal = DECODER_GOALS.get(name)
        f = flops[name]
        print(
            f"{name:<26}{seconds:>8.2f}{b / seconds:>10.1f}{seconds / wall[base]:>7.2f}x"
            f"{f'<={goal}x' if goal else '':>8}{cpu[name] / cpu[base]:>10.2f}x"
            f"{f['decoder'] / flops[base]['decoder']:>10.2f}x"
            f"{f['model'] / flops[base]['model']:>15.2f}x"
        )
    print(
        "step s: median wall-clock train step; ratio: that / the fused LSTM's; cpu ratio: the "
        "same in this process's CPU time (less moved by other load on a shared machine);\n"
        "dec FLOPs: the decoder's matmul FLOPs per step / the plain LSTM's; FLOP-predicted: "
        "the whole model's, the time ratio the FLOP count alone predicts"
    )


def bench_sampling(checkpoint: str | None, n: int = 100) -> dict:
    if checkpoint:
        from quickdraw_tools.models.trainer import load_checkpoint

        model, state, _ = load_checkpoint(checkpoint)
        scale = state["scale_factor"]
        what = checkpoint
    else:
        torch.manual_seed(0)
        model = R.SketchRNN(R.SketchRNNConfig(max_seq_len=100, enc_size=256, dec_size=512))
        with torch.no_grad():  # an untrained model ends at once; make it draw ~max_len
            model.to_params.bias[-1] = -6.0
        scale, what = 1.0, "an untrained model (default config, N_max 100)"
    model.eval()
    start = time.perf_counter()
    batched = model.sample(n, temperature=0.5, generator=torch.Generator().manual_seed(0))
    t_batch = time.perf_counter() - start
    gen = torch.Generator().manual_seed(0)
    start = time.perf_counter()
    single = [model.sample(1, temperature=0.5, generator=gen, scale=scale)[0] for _ in range(n)]
    t_single = time.perf_counter() - start
    return {
        "what": what,
        "batched": t_batch,
        "single": t_single,
        "points": (sum(map(len, batched)), sum(map(len, single))),
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--decoder-steps", type=int, default=8, help="timed steps per decoder")
    p.add_argument("--no-loops", action="store_true", help="skip the step-by-step loops")
    p.add_argument("--steps", type=int, default=6, help="timed training steps per side (labml)")
    p.add_argument("--block", type=int, default=2, help="steps per alternating block (labml)")
    p.add_argument("--category", default="cake", help="training/<category>.ndjson to use")
    p.add_argument("--checkpoint", help="sample from this trained sketch-rnn checkpoint")
    p.add_argument("--skip-training", action="store_true", help="only the sampling benchmark")
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (1: on a small machine shared with other jobs, more threads "
        "make the fused LSTM's times erratic, e.g. 5.7 s a step instead of about 1 s)",
    )
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="for the decoders")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: torch sees no CUDA GPU")

    print(
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {cpu_name()} "
        f"({platform.machine()}, {os.cpu_count()} CPUs), torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads; load average {os.getloadavg()[0]:.1f}"
    )
    if not args.skip_training:
        c = DECODER_BENCH
        print(
            f"decoders on {args.device}: batch {c['batch']}, N_max {c['max_seq_len']}, encoder "
            f"{c['enc_size']}, decoder {c['dec_size']} (hyper {c['hyper_size']}), recurrent "
            f"dropout 0.1 except the fused LSTM; median of {args.decoder_steps} interleaved "
            "train steps (forward, backward, Adam) each"
        )
        print_decoders(bench_decoders(args.decoder_steps, args.category, not args.no_loops, device))
        print(f"load average after the decoders: {os.getloadavg()[0]:.1f}")
        try:
            import labml_nn.sketch_rnn  # noqa: F401
        except ImportError as e:
            print(
                f"labml-nn: skipped, it cannot be imported ({e}); "
                "pip install --no-deps labml-nn labml einops pyyaml gitpython"
            )
        else:
            t = bench_training(args.steps, args.block, args.category)
            print(f"{'implementation':<16}{'seconds':>10}{'sketches/s':>14}")
            for name in ("ours", "labml-nn"):
                print(f"{name:<16}{t['seconds'][name]:>10.1f}{t['rates'][name]:>14.1f}")
            print(f"ratio ours / labml-nn: {t['rates']['ours'] / t['rates']['labml-nn']:.2f}x")
    s = bench_sampling(args.checkpoint)
    print(f"sampling 100 sketches from {s['what']} (temperature 0.5):")
    print(f"  one batched call: {s['batched']:.2f} s ({s['points'][0]} points)")
    print(f"  100 single calls: {s['single']:.2f} s ({s['points'][1]} points)")
    print(f"  speed-up: {s['single'] / s['batched']:.1f}x")
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
