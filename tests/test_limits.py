"""Numbers with no upper bound, NaN, negative or too small, and checkpoints whose config asks for
more than a machine has (issue 20, items 3 and 5): each is refused in one line naming the value
and what would be valid, before any work starts. `scripts/red_team.py` replays them."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from attack_support import one_line_error, run_limited
from conftest import train_checkpoint

from quickdraw_tools.cli import main
from quickdraw_tools.commands import common
from quickdraw_tools.errors import SEED_MAX, QuickDrawError, check_seed, check_temperature

TINY_RNN = dict(max_seq_len=120, enc_size=8, dec_size=8, z_size=4, num_mixture=2)
TINY_DRAW = dict(T=2, enc_size=8, dec_size=8, z_size=2, read_n=2, write_n=2)


@pytest.fixture(scope="module")
def runs(shared, tmp_path_factory) -> dict[str, Path]:
    """A tiny sketch-rnn and a tiny DRAW checkpoint (initial weights), and their data."""
    tmp = tmp_path_factory.mktemp("limits")
    sheep = shared / "other" / "aaron_sheep.npz"
    bitmaps = shared / "mirror" / "full" / "numpy_bitmap" / "cat.npy"
    settings = dict(max_per_category=200)
    return {
        "sheep": sheep,
        "bitmaps": bitmaps,
        "rnn": train_checkpoint(tmp / "rnn", "sketch-rnn", TINY_RNN, [sheep], **settings),
        "draw": train_checkpoint(tmp / "draw", "draw", TINY_DRAW, [bitmaps], **settings),
    }


# --- 3. numbers -------------------------------------------------------------------------------


def test_workers_are_at_most_the_usable_cores(shared, tmp_path, capsys):
    """`convert --workers 100000` started that many processes and the OOM killer ended it (and
    the machine): now refused before any process starts, as are DataLoader workers in train."""
    cores = len(os.sched_getaffinity(0))
    source = shared / "training" / "cake.ndjson"
    out = tmp_path / "out"
    assert main(["convert", str(source), "--out", str(out), "--workers", "100000"]) == 1
    one_line_error(capsys, f"--workers must be 1 to {cores} (the cores this process may use)")
    assert not out.exists()
    assert main(["train", "sketch-rnn", "--data", str(shared / "other" / "aaron_sheep.npz"),
                 "--out", str(out), "--workers", "100000"]) == 1  # fmt: skip
    one_line_error(capsys, f"workers must be 0 to {cores}")
    assert not out.exists()


def test_counts_that_cost_memory_have_a_bound(runs, tmp_path, capsys):
    """sample --n, --cols, --steps; evaluate --k, --batch-size; grade report --bootstrap;
    grade serve --per-source: one line naming the flag, the value and the range."""
    rnn, out = str(runs["rnn"]), str(tmp_path / "s.svg")
    cases = [
        (["sample", rnn, "--n", "1000000000", "--out", out], "--n must be 1 to 10,000"),
        (["sample", rnn, "--cols", "1000000000", "--out", out], "--cols must be 1 to 10,000"),
        (["sample", rnn, "--mode", "interpolate", "--steps", "10000000", "--out", out],
         "--steps must be 2 to 10,000"),
        (["evaluate", rnn, "--data", str(runs["sheep"]), "--k", "1000000000"],
         "--k must be 1 to 10,000, got 1,000,000,000"),
        (["evaluate", rnn, "--data", str(runs["sheep"]), "--batch-size", "10000000"],
         "--batch-size must be 1 to 10,000"),
        (["grade", "report", "--db", str(tmp_path / "g.sqlite"), "--bootstrap", "1000000000"],
         "--bootstrap must be 0 to 20,000, got 1,000,000,000"),
        (["grade", "serve", "--db", str(tmp_path / "g.sqlite"), "--real", str(runs["sheep"]),
          "--generated", rnn, "--per-source", "1000000000", "--port", "0"],
         "--per-source must be 1 to 10,000"),
    ]  # fmt: skip
    for args, message in cases:
        assert main(args) == 1, args
        one_line_error(capsys, message)
    assert not list(tmp_path.iterdir())


def test_seeds_follow_one_rule_in_every_command(runs, shared, tmp_path, capsys):
    """0..2**63 - 1 in every command: -1 and 2**63 are refused with the same words; the
    largest seed works (numpy's global generator takes it as two 32-bit words)."""
    rnn, sheep = str(runs["rnn"]), str(runs["sheep"])
    cake = str(shared / "training" / "cake.ndjson")
    commands = {
        "convert": ["convert", cake, "--max-per-category", "50", "--out", str(tmp_path / "c")],
        "sample": ["sample", rnn, "--n", "2", "--out", str(tmp_path / "s.svg")],
        "evaluate": ["evaluate", rnn, "--data", sheep],
        "train": ["train", "sketch-rnn", "--data", sheep, "--out", str(tmp_path / "t"),
                  "--steps", "1", "--batch-size", "4", "--max-per-category", "100",
                  *[f"--{k.replace('_', '-')}={v}" for k, v in TINY_RNN.items()]],
        "judge score": ["judge", "score", rnn, cake, "--n", "5"],
        "grade serve": ["grade", "serve", "--db", str(tmp_path / "g.sqlite"), "--real", sheep,
                        "--generated", rnn, "--port", "0"],
    }  # fmt: skip
    quiet = {name: [] if name == "sample" else ["--quiet"] for name in commands}
    for name, args in commands.items():
        for bad in ("-1", str(2**63), str(10**30)):
            assert main([*args, "--seed", bad, *quiet[name]]) == 1, name
            seed = "seed" if name == "train" else "--seed"
            one_line_error(capsys, f"{seed} must be a whole number from 0 to 2**63 - 1, got {bad}")
    assert main(["grade", "report", "--db", str(tmp_path / "g.sqlite"), "--bootstrap-seed",
                 "-1"]) == 1  # fmt: skip
    one_line_error(capsys, "--bootstrap-seed must be a whole number from 0 to 2**63 - 1")
    for name in ("convert", "sample", "evaluate", "train"):
        assert main([*commands[name], "--seed", str(SEED_MAX), *quiet[name]]) == 0, name
    capsys.readouterr()
    assert check_seed(SEED_MAX) == SEED_MAX and SEED_MAX == 2**63 - 1


@pytest.mark.parametrize("tau", ["inf", "-inf", "nan", "1e-300", "0.0005", "1e300", "0"])
def test_temperatures_out_of_range_are_refused_everywhere(runs, shared, tmp_path, capsys, tau):
    """An infinite temperature, or one so small that logits / tau overflow float32 (softmax
    then gives NaN: a traceback), is refused by sample, grade serve, judge score and the
    models' own sampling, with the range 0.001..100."""
    rnn, draw = str(runs["rnn"]), str(runs["draw"])
    message = f"--temperature must be from 0.001 to 100 (lower is tidier), got {float(tau)}"
    for args in (
        ["sample", rnn, "--out", str(tmp_path / "s.svg")],
        ["sample", draw, "--out", str(tmp_path / "s.png")],
        ["grade", "serve", "--db", str(tmp_path / "g.sqlite"), "--real", str(runs["sheep"]),
         "--generated", rnn, "--port", "0"],
        ["judge", "score", rnn, str(shared / "training" / "cake.ndjson")],
    ):  # fmt: skip
        assert main([*args, "--temperature", tau]) == 1, args
        one_line_error(capsys, message)
    assert not list(tmp_path.iterdir())
    from quickdraw_tools.models.checkpoint import load_checkpoint

    for which in ("rnn", "draw"):
        model, state, _ = load_checkpoint(runs[which])
        with pytest.raises(QuickDrawError, match="temperature must be from 0.001 to 100"):
            model.sample_sketches(1, float(tau), torch.Generator().manual_seed(0), state)


def test_the_temperature_range_samples_finite_sketches(runs, tmp_path):
    """Both ends of the range (0.001 and 100) sample without NaN, for both models."""
    from quickdraw_tools.models.checkpoint import load_checkpoint

    for which in ("rnn", "draw"):
        model, state, _ = load_checkpoint(runs[which])
        for tau in (0.001, 100.0):
            out = model.sample_sketches(4, tau, torch.Generator().manual_seed(0), state)
            assert len(out) == 4 and all(np.isfinite(s).all() for s in out), (which, tau)
    assert check_temperature(0.001) == 0.001


def test_nan_and_infinite_training_numbers_are_refused(runs, tmp_path, capsys):
    """--kl-weight nan trained to a NaN loss; --time-limit nan was taken as no limit: both, and
    every other float flag given nan or inf, are one line now, and no run folder is made."""
    base = ["train", "sketch-rnn", "--data", str(runs["sheep"]), "--out", str(tmp_path / "t"),
            "--steps", "2"]  # fmt: skip
    for flag, value in [("--kl-weight", "nan"), ("--time-limit", "nan"), ("--lr", "inf"),
                        ("--grad-clip", "-inf"), ("--kl-tolerance", "nan")]:  # fmt: skip
        assert main([*base, flag, value]) == 1
        one_line_error(capsys, f"{flag} must be a finite number, got {float(value)}")
    assert not (tmp_path / "t").exists()
    from quickdraw_tools.models.sketch_rnn import SketchRNNConfig
    from quickdraw_tools.models.trainer import TrainConfig

    with pytest.raises(QuickDrawError, match="time_limit must be >= 0, got nan"):
        TrainConfig(time_limit=float("nan"))
    with pytest.raises(QuickDrawError, match="kl_weight must be a finite number >= 0, got nan"):
        SketchRNNConfig(kl_weight=float("nan"))


def test_split_sizes_that_make_no_dataset_are_our_message(shared, tmp_path, capsys):
    """--split-sizes 0,0,0 wrote an empty set; -1,5,5 got argparse's "expected one argument"
    (it looked like an option): both are one line naming the value now."""
    source = str(shared / "training" / "cake.ndjson")
    for sizes in ("0,0,0", "-1,5,5", "5,5", "a,b,c"):
        for args in (["--split-sizes", sizes], [f"--split-sizes={sizes}"]):
            assert main(["convert", source, "--out", str(tmp_path / "o"), *args]) == 1
            one_line_error(
                capsys,
                "--split-sizes must be 'official', 'all' or TRAIN,VALID,TEST (three whole "
                f"numbers >= 0, not all 0: an empty set is not a dataset), got '{sizes}'",
            )
    assert not (tmp_path / "o").exists()


def test_training_zero_steps_prints_no_none(runs, tmp_path, capsys):
    """`train --steps 0` printed "checkpoints: RUN/last.pt, None": it says why there is no
    best.pt instead."""
    args = ["train", "sketch-rnn", "--data", str(runs["sheep"]), "--out", str(tmp_path / "t"),
            "--steps", "0", "--batch-size", "4", "--max-per-category", "100", "--quiet",
            *[f"--{k.replace('_', '-')}={v}" for k, v in TINY_RNN.items()]]  # fmt: skip
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "None" not in out
    assert "no best.pt: no validation ran in 0 step(s)" in out
    assert f"checkpoints: {tmp_path / 't' / 'last.pt'}; metrics:" in out


def test_the_limits_are_the_ones_stated():
    """The README and docs state these numbers; a change must change them too."""
    assert (common.MAX_SAMPLES, common.MAX_IMPORTANCE_SAMPLES, common.MAX_BOOTSTRAP) == (
        10_000, 10_000, 20_000
    )  # fmt: skip
    assert (common.TEMPERATURE_MIN, common.TEMPERATURE_MAX, common.SEED_MAX) == (
        0.001, 100.0, 2**63 - 1
    )  # fmt: skip
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    for stated in ("10,000", "20,000", "0.001", "2**63", "100,000 points", "8 MiB", "4,096"):
        assert stated in readme, stated


# --- 5. checkpoints ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "which, field, value, message",
    [
        ("rnn", "dec_size", 10**7, "dec_size must be 1 to 4,096, got 10,000,000"),
        ("rnn", "enc_size", 0, "enc_size must be 1 to 4,096, got 0"),
        ("rnn", "num_mixture", -3, "num_mixture must be 1 to 1,000, got -3"),
        ("rnn", "max_seq_len", 10**9, "max_seq_len must be 1 to 10,000"),
        ("draw", "T", 10**6, "T must be 1 to 256, got 1,000,000"),
        ("draw", "height", 10**5, "height must be 1 to 256"),
    ],
)
def test_model_sizes_in_a_checkpoint_are_checked_before_any_tensor(
    runs, tmp_path, which, field, value, message
):
    """A checkpoint whose config asks for a 10,000,000-unit decoder (400 TB of weights) is
    refused in one line, naming the file, in a process held to 1 GB: nothing is allocated."""
    state = torch.load(runs[which], weights_only=True)
    state["model_config"][field] = value
    path = tmp_path / "big.pt"
    torch.save(state, path)
    data = runs["sheep"] if which == "rnn" else runs["bitmaps"]
    suffix = ".svg" if which == "rnn" else ".png"
    for args in (
        ["sample", str(path), "--out", str(tmp_path / f"s{suffix}")],
        ["evaluate", str(path), "--data", str(data)],
    ):
        done = run_limited(args)
        assert done.returncode == 1 and done.stderr.count("\n") == 1, done.stderr[-500:]
        assert f"{path}: " in done.stderr and message in done.stderr, done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.pt"]


def test_reconstruct_with_the_wrong_kind_of_input_says_what_the_model_takes(
    runs, shared, tmp_path, capsys
):
    rnn, draw = str(runs["rnn"]), str(runs["draw"])
    cases = [
        (rnn, runs["bitmaps"], ".svg", "the sketch-rnn model takes drawings (strokes) as --input",
         "is a .npy of bitmaps"),
        (rnn, runs["rnn"], ".svg", "the sketch-rnn model takes drawings (strokes) as --input",
         "is a checkpoint"),
        (draw, runs["sheep"], ".png", "the draw model takes 28x28 bitmaps as --input ('.npy')",
         "is a sketch-rnn .npz of strokes"),
        (draw, shared / "training" / "cake.ndjson", ".png", "the draw model takes 28x28 bitmaps",
         "is ndjson drawings (strokes)"),
    ]  # fmt: skip
    for checkpoint, given, suffix, takes, told in cases:
        out = tmp_path / f"r{suffix}"
        args = ["sample", checkpoint, "--mode", "reconstruct", "--input", str(given)]
        assert main([*args, "--out", str(out)]) == 1
        one_line_error(capsys, takes, f"{given} {told}")
        assert not out.exists()
