"""Speed with Google's models: our batched sampling vs @magenta/sketch, and `evaluate`.

    .venv/bin/python scripts/bench_magenta.py          # about 2 minutes
    .venv/bin/python scripts/bench_magenta.py --n 64 --drawings 2500

Measured side by side in one run, one CPU thread each (node runs the JS on one thread):

1. Sampling: `--n` sketches from Google's sheep (`../shared/magenta/sheep.gen.json`) at
   tau = 0.65 with Magenta's temperature convention, up to N_max points each: `@magenta/sketch`
   0.2.0 in node drawing them one by one as a web page does (`scripts/magenta_js/draw.js`:
   update, getPDF, sample per point; tfjs's CPU backend, since its native node backend fetches
   a binary from outside the package registries) vs one call of our batched `SketchRNN.sample`.
   Goal: ours >= 20x faster.
2. Evaluation: `evaluate_checkpoint` (the `quickdraw evaluate` code: loading the model and the
   data included) on the first `--drawings` sheep of The Sheep Market (`aaron_sheep.npz`) that
   fit the model's N_max (156 points), with the same
   model, vs the forward pass of a training step alone (training mode, gradients on, batch
   100) over the same drawings. Goal: evaluation at least as fast (ratio >= 1).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _magenta_js import MAGENTA, ROOT, js_missing, run_js  # noqa: E402

AARON_SHEEP = ROOT.parent / "shared" / "quickdraw" / "other" / "aaron_sheep.npz"
TEMPERATURE = 0.65  # @magenta/sketch's default


def bench_sampling(n: int) -> tuple[float, float, int, int]:
    """(JS seconds, our seconds, JS points, our points) for n sketches of Google's sheep."""
    import torch

    from quickdraw_tools.models.magenta import load_magenta
    from quickdraw_tools.models.sketch_rnn import magenta_js_temperature

    path = MAGENTA / "sheep.gen.json"
    js = run_js("draw.js", [str(path), str(n), str(TEMPERATURE)], timeout=3600)
    assert isinstance(js, dict)
    model, state = load_magenta(path)
    soft = magenta_js_temperature(TEMPERATURE)

    def draw(count: int, seed: int) -> list:
        gen = torch.Generator().manual_seed(seed)
        return model.sample(count, temperature=TEMPERATURE, generator=gen,
                            scale=state["scale_factor"], softmax_temperature=soft)  # fmt: skip

    draw(4, 1)  # warm up
    start = time.perf_counter()
    ours = draw(n, 0)
    seconds = time.perf_counter() - start
    return js["seconds"], seconds, js["points"], sum(len(s) for s in ours)


def bench_evaluate(drawings: int) -> tuple[int, float, float]:
    """(drawings scored, evaluate's seconds, the training forward pass's seconds)."""
    from torch.utils.data import DataLoader

    from quickdraw_tools.eval.likelihood import evaluate_checkpoint
    from quickdraw_tools.formats import load_sketchrnn_npz, save_sketchrnn_npz
    from quickdraw_tools.models.checkpoint import checkpoint_settings, read_checkpoint
    from quickdraw_tools.models.magenta import load_magenta

    path = MAGENTA / "sheep.gen.json"
    n_max = read_checkpoint(path)["model_config"]["max_seq_len"]
    flock = [s for s in load_sketchrnn_npz(AARON_SHEEP)["train"] if len(s) <= n_max][:drawings]
    with tempfile.TemporaryDirectory() as tmp:
        npz = Path(tmp) / "sheep.npz"
        save_sketchrnn_npz(npz, {"train": [], "valid": [], "test": flock})
        evaluate_checkpoint(path, [npz], batch_size=100, progress=False, device="cpu")  # warm up
        start = time.perf_counter()
        report = evaluate_checkpoint(path, [npz], batch_size=100, progress=False, device="cpu")
        evaluate_seconds = time.perf_counter() - start
        model, state = load_magenta(path)
        data = type(model).build_datasets(
            model.config, [npz], checkpoint_settings(read_checkpoint(path)), state=state
        )
        batches = list(DataLoader(data.test, batch_size=100))
    model.train()  # as a training step runs it: recurrent dropout, gradients
    forward_seconds = 0.0
    for batch in batches:
        start = time.perf_counter()
        losses = model(batch, step=0)
        forward_seconds += time.perf_counter() - start
        del losses
    return report["overall"]["n"], evaluate_seconds, forward_seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=64, help="sketches to sample (default 64)")
    parser.add_argument("--drawings", type=int, default=2500, help="drawings to evaluate")
    args = parser.parse_args()
    why = js_missing()
    if why:
        print(f"cannot run Magenta's JS: {why}", file=sys.stderr)
        return 1
    import torch

    torch.set_num_threads(1)
    js_s, ours_s, js_points, ours_points = bench_sampling(args.n)
    n, eval_s, forward_s = bench_evaluate(args.drawings)
    print("| what | @magenta/sketch / forward pass | ours | ratio | goal |")
    print("| --- | ---: | ---: | ---: | --- |")
    print(f"| {args.n} sheep, tau {TEMPERATURE} (magenta-js) | {js_s:.2f} s ({js_points:,} "
          f"points, one by one) | {ours_s:.2f} s ({ours_points:,} points, batched) | "
          f"**{js_s / ours_s:.1f}x** | >= 20x |")  # fmt: skip
    ratio = forward_s / eval_s
    print(f"| evaluate {n:,} sheep vs a training step's forward pass | {forward_s:.2f} s | "
          f"{eval_s:.2f} s (loading included) | **{ratio:.2f}x** | >= 1x |")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
