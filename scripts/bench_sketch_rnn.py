"""Benchmark: sketch-rnn training throughput, ours vs labml-nn's, and batched sampling.

1. Training: the same hyperparameters as labml-nn's `sketch_rnn` Configs
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
2. Sampling: 100 sketches in one batched `Model.sample` call vs 100 calls
   of one sketch each (same model; a trained checkpoint with --checkpoint).

Usage: .venv/bin/python scripts/bench_sketch_rnn.py [--steps 6] [--checkpoint runs/x/best.pt]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from quickdraw_tools import strokes as S
from quickdraw_tools.models import sketch_rnn as R

ROOT = Path(__file__).resolve().parents[1]

SHARED = ROOT.parent / "shared" / "quickdraw"
LABML = dict(batch=100, enc=256, dec=512, m=20, nz=128, lr=1e-3, clip=1.0, max_len=200)


def load_sketches(category: str, n: int, seed: int) -> list[np.ndarray]:
    """`n` random drawings of a training category as stroke-3 (10 < points <= 200, as labml)."""
    path = SHARED / "training" / f"{category}.ndjson"
    with open(path) as f:
        sketches = [S.drawing_to_stroke3(json.loads(line)["drawing"]) for line in f]
    sketches = [s for s in sketches if 10 < len(s) <= LABML["max_len"]]
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
    p.add_argument("--steps", type=int, default=6, help="timed training steps per side")
    p.add_argument("--block", type=int, default=2, help="steps per alternating block")
    p.add_argument("--category", default="cake", help="training/<category>.ndjson to use")
    p.add_argument("--checkpoint", help="sample from this trained sketch-rnn checkpoint")
    p.add_argument("--skip-training", action="store_true", help="only the sampling benchmark")
    args = p.parse_args(argv)

    print(
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {platform.processor() or ''} "
        f"{platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
        "CPU"
    )
    if not args.skip_training:
        try:
            import labml_nn.sketch_rnn  # noqa: F401
        except ImportError as e:
            print(f"labml-nn cannot be imported ({e}); pip install labml-nn labml --no-deps")
            return 1
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
