"""What sketch-rnn's decoders buy: LSTM, layer-norm LSTM and HyperLSTM, the same time each.

Trains one conditional sketch-rnn per (data set, decoder), every decoder with recurrent dropout,
each for the same wall-clock budget (``quickdraw train sketch-rnn --time-limit``; one torch
thread per run, ``--parallel`` runs at a time, so each has a core of its own), then prints
a table like Ha & Eck's Table 1: validation and test L_R / L_KL of every run's best.pt (the
paper's definitions, as `scripts/report_sketch_rnn.py` computes them), with the steps and
sketches each decoder got through in its budget. It writes one SVG grid of samples per data
set (a row per decoder, same seeds) and each run's own grids (samples, reconstructions,
interpolation).

Data: ``../shared/quickdraw/other/aaron_sheep.npz`` (7,400 training sheep, the sketch-rnn
repository's own set) and two ``training/`` sets converted by `quickdraw convert` (cake,
snowman: ~1,480 training drawings each). A run whose best.pt exists is not trained again
(delete its folder, or pass --fresh, to retrain).

    nice .venv/bin/python scripts/report_decoders.py                 # 9 runs of 10 min, 2 at a time
    .venv/bin/python scripts/report_decoders.py --budget 60 --data cake   # a quick look
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from quickdraw_tools import svg
from quickdraw_tools.models.trainer import load_checkpoint, read_checkpoint

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "quickdraw"
sys.path.insert(0, str(ROOT / "scripts"))
from report_sketch_rnn import report_run  # noqa: E402

DECODERS = ("lstm", "layer_norm", "hyper")
CATEGORIES = ("cake", "snowman")  # converted from training/
# One model size for every run, small enough for a CPU budget of minutes: the paper's
# encoder 256 / decoder 512 (HyperLSTM 2,048) would get through a few hundred steps.
MODEL = [
    "--enc-size", "128", "--dec-size", "256", "--hyper-size", "128",
    "--z-size", "128", "--num-mixture", "20", "--recurrent-dropout", "0.1",
    "--kl-weight", "0.5", "--kl-decay-rate", "0.999",
]  # fmt: skip
MAX_SEQ_LEN = {"sheep": 250, "cake": 100, "snowman": 100}


def data_files(out: Path, names: list[str]) -> dict[str, Path]:
    """The .npz of every data set named, converting the training/ ones on first use."""
    files = {}
    missing = [n for n in names if n != "sheep" and not (out / "sketchrnn" / f"{n}.npz").exists()]
    if missing:
        subprocess.run(
            [sys.executable, "-m", "quickdraw_tools", "convert", "--input-dir",
             str(SHARED / "training"), "--out", str(out), "--formats", "sketchrnn", *missing],
            check=True,
        )  # fmt: skip
    for name in names:
        files[name] = (
            SHARED / "other" / "aaron_sheep.npz"
            if name == "sheep"
            else out / "sketchrnn" / f"{name}.npz"
        )
    return files


def train_command(data: Path, run: Path, decoder: str, budget: float, name: str) -> list[str]:
    return [
        sys.executable, "-m", "quickdraw_tools", "train", "sketch-rnn", "--data", str(data),
        "--out", str(run), "--decoder", decoder, *MODEL,
        "--max-seq-len", str(MAX_SEQ_LEN[name]), "--time-limit", str(budget),
        "--steps", "1000000", "--eval-every", "100", "--checkpoint-every", "100",
        "--threads", "1", "--seed", "0", "--quiet",
    ]  # fmt: skip


def train_all(jobs: list[tuple[list[str], Path]], parallel: int) -> list[str]:
    """Run the training commands, `parallel` at a time; the names of the runs that failed."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def one(job: tuple[list[str], Path]) -> str | None:
        command, run = job
        print(f"training {run.name} …", flush=True)
        log = run.parent / f"{run.name}.log"
        with open(log, "w") as out:
            code = subprocess.run(command, env=env, stdout=out, stderr=subprocess.STDOUT).returncode
        if code != 0:  # -9: killed, e.g. by the kernel's OOM killer
            print(f"  {run.name} FAILED with exit status {code}; see {log}", flush=True)
            shutil.rmtree(run, ignore_errors=True)  # so that a rerun trains it again
            return run.name
        print(f"  {run.name} done", flush=True)
        return None

    with ThreadPoolExecutor(parallel) as pool:
        return [name for name in pool.map(one, jobs) if name]


def samples_grid(runs: list[Path], path: Path, n: int, seed: int, temperature: float) -> None:
    """One row of `n` samples per run (same seed each), each captioned with its decoder."""
    grid, captions = [], []
    for run in runs:
        model, state, _ = load_checkpoint(run / "best.pt")
        gen = torch.Generator().manual_seed(seed)
        grid += model.sample(n, temperature=temperature, generator=gen, scale=state["scale_factor"])
        captions += [f"{model.config.decoder} {k + 1}" for k in range(n)]
    svg.svg_grid(grid, n, captions, path, cell=80)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    names = ["sheep", *CATEGORIES]
    p.add_argument("--data", nargs="+", default=names, choices=names, help="default: all three")
    p.add_argument(
        "--budget", type=float, default=600.0, help="seconds of training per run (default: 600)"
    )
    p.add_argument("--parallel", type=int, default=2, help="runs at a time, 1 thread each")
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "decoders")
    p.add_argument("--img", type=Path, help="also copy the per-data-set sample grids here")
    p.add_argument("--fresh", action="store_true", help="retrain runs that already have a best.pt")
    p.add_argument("--seed", type=int, default=0, help="seed of evaluation and samples")
    p.add_argument("--temperature", type=float, default=0.4, help="for the samples grids")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())

    files = data_files(args.out / "data", args.data)
    runs = {(d, dec): args.out / "runs" / f"{d}-{dec}" for d in args.data for dec in DECODERS}
    jobs = []
    for (name, decoder), run in runs.items():
        if args.fresh and run.exists():
            shutil.rmtree(run)
        if not (run / "best.pt").exists():
            if run.exists():  # a run stopped part way: its budget is spent or unknown
                shutil.rmtree(run)
            run.parent.mkdir(parents=True, exist_ok=True)
            jobs.append((train_command(files[name], run, decoder, args.budget, name), run))
    # the slowest decoders first, so the last round is not one HyperLSTM alone
    jobs.sort(key=lambda job: DECODERS.index(job[1].name.rsplit("-", 1)[1]), reverse=True)
    failed = train_all(jobs, args.parallel)
    if failed:
        print(f"not reported: {', '.join(failed)} failed (rerun this script to retrain them)")
        return 1

    rows = []
    for (name, _), run in runs.items():
        row = report_run(run, args.out / "report", args.seed, args.temperature)
        last = read_checkpoint(run / "last.pt")
        budget = last["train_config"]["time_limit"]
        row["run"], row["steps"] = name, last["step"]
        row["sketches/s"] = round(last["step"] * last["train_config"]["batch_size"] / budget)
        row["best at"] = row.pop("step")
        rows.append(row)
    for name in args.data:
        path = args.out / "report" / f"decoders-{name}-samples.svg"
        samples_grid([runs[name, dec] for dec in DECODERS], path, 8, args.seed, args.temperature)
        if args.img:
            args.img.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, args.img / path.name)

    sizes = " ".join(MODEL)
    print(f"{started}; {args.budget:g} s of training per run, 1 thread each, {args.parallel} at a "
          f"time; {sizes}; N_max {MAX_SEQ_LEN}; best.pt of each run")  # fmt: skip
    cols = ["run", "dec", "train", "steps", "sketches/s", "best at"]
    cols += ["valid L_R", "valid L_KL", "test L_R", "test L_KL"]
    print("| " + " | ".join(cols) + " |")
    print("| " + " | ".join("---" for _ in cols) + " |")
    for row in rows:
        cells = [f"{row[c]:.3f}" if isinstance(row[c], float) else str(row[c]) for c in cols]
        print("| " + " | ".join(cells) + " |")
    print(f"SVG grids in {args.out / 'report'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
