"""The `quickdraw` command as a whole: every flag explained, the same flag meaning the same."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from quickdraw_tools import __version__
from quickdraw_tools.cli import build_parser, main
from quickdraw_tools.commands import train as train_command


def all_parsers():
    """(name, parser) of every command and subcommand, and of `train MODEL`'s own parsers."""
    from quickdraw_tools.models.base import MODELS, model_class

    out = []

    def walk(name, parser):
        out.append((name, parser))
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub, child in action.choices.items():
                    walk(f"{name} {sub}", child)

    walk("quickdraw", build_parser())
    assert set(MODELS) == set(train_command.MODELS)
    for model in MODELS:
        out.append((f"quickdraw train {model}", train_command.model_parser(model_class(model))))
    return out


def test_every_flag_has_help_and_enumerations_have_choices():
    enumerated = {"--mode", "--split", "--method", "--device", "--format", "--caption"}
    enumerated |= {"--color-by", "--on-error", "--source-format", "--decoder", "--binarize"}
    enumerated |= {"--optimizer"}
    seen = set()
    for name, parser in all_parsers():
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction | argparse._HelpAction):
                continue
            assert action.help and action.help.strip(), f"{name} {action.option_strings}"
            for flag in action.option_strings:
                seen.add(flag)
                # model and training fields are checked by their dataclasses (one message)
                if flag in enumerated and not name.startswith("quickdraw train "):
                    assert action.choices, f"{name} {flag} has no choices"
    assert {"--json", "--json-out", "--quiet", "--device", "--threads", "--workers"} <= seen


def test_same_flag_same_meaning():
    """--json prints JSON, --device defaults to auto, --quiet and --png are switches."""
    for name, parser in all_parsers():
        for action in parser._actions:
            flags = set(action.option_strings)
            if flags & {"--json", "--quiet", "--png"}:
                assert action.nargs == 0, f"{name} {flags}: a switch"
            if "--json" in flags:
                assert "JSON" in action.help, name
            if "--device" in flags:
                assert action.default in ("auto", argparse.SUPPRESS), name
            if "--workers" in flags:
                assert "process" in action.help, f"{name}: --workers means processes"
            if "--threads" in flags:
                assert "thread" in action.help, name


@pytest.mark.parametrize(
    "model,expected",
    [
        ("draw", {"--lr-decay": "1.0", "--grad-clip": "5.0", "--optimizer": "adam"}),
        ("sketch-rnn", {"--lr-decay": "0.9999", "--grad-clip": "1.0", "--decoder": "lstm"}),
    ],
)
def test_train_help_shows_the_defaults_that_are_used(model, expected, capsys):
    from quickdraw_tools.models.base import model_class
    from quickdraw_tools.models.trainer import run_configs

    with pytest.raises(SystemExit):
        main(["train", model, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "examples:" in text and f"quickdraw train {model} --data" in text
    parser = train_command.model_parser(model_class(model))
    for flag, default in expected.items():
        (action,) = [a for a in parser._actions if flag in a.option_strings]
        assert f"(default: {default}" in action.help, (flag, action.help)
    # and they are the values a run gets (the model's default preset applied)
    config, settings = run_configs(model_class(model), {})
    values = {**vars(config), **vars(settings)}
    for flag, default in expected.items():
        assert str(values[flag[2:].replace("-", "_")]) == default, flag


def snowmen(shared, n: int = 60) -> list:
    """The first `n` real snowmen as stroke-3, whatever their length."""
    from quickdraw_tools import formats
    from quickdraw_tools import strokes as S

    records = formats.iter_ndjson(shared / "training" / "snowman.ndjson")
    return [S.drawing_to_stroke3(r["drawing"]) for _, r in zip(range(n), records, strict=False)]


def tiny_npz(shared, path, max_len: int = 40):
    """40/10/10 real snowmen with at most `max_len` points, as a sketch-rnn .npz."""
    from quickdraw_tools import formats

    sketches = [s for s in snowmen(shared, 200) if len(s) <= max_len][:60]
    formats.save_sketchrnn_npz(
        path, {"train": sketches[:40], "valid": sketches[40:50], "test": sketches[50:]}
    )
    return path


TINY_RNN = dict(max_seq_len=40, enc_size=8, dec_size=8, z_size=4, num_mixture=2)


def test_threads_means_the_same_in_every_command(monkeypatch, tmp_path, shared):
    """--threads N sets torch's threads; 0 (the default) is $OMP_NUM_THREADS when set, else the
    cores this process may use (its affinity), in `train` as in every other command."""
    import os

    import torch
    from conftest import train_checkpoint

    from quickdraw_tools.commands.common import THREADS_HELP
    from quickdraw_tools.models.base import set_threads

    helps = set()
    for _, parser in all_parsers():
        for action in parser._actions:
            if "--threads" in action.option_strings:
                helps.add((action.help, action.default in (0, argparse.SUPPRESS)))
    assert helps == {(f"{THREADS_HELP} (default: 0)", True)}
    assert len([n for n, p in all_parsers() if "--threads" in p._option_string_actions]) >= 4

    before = torch.get_num_threads()
    try:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
        assert set_threads(0) == torch.get_num_threads() == len(os.sched_getaffinity(0))
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
        assert set_threads(0) == torch.get_num_threads() == 1
        assert set_threads(3) == torch.get_num_threads() == 3
        # the commands apply it the same way: train (through its settings), sample, evaluate
        data = tiny_npz(shared, tmp_path / "snowman.npz")
        ckpt = train_checkpoint(tmp_path / "run", "sketch-rnn", TINY_RNN, [data], threads=2)
        assert torch.get_num_threads() == 2
        assert main(["sample", str(ckpt), "--n", "1", "--threads", "3",
                     "--out", str(tmp_path / "s.svg")]) == 0  # fmt: skip
        assert torch.get_num_threads() == 3
        monkeypatch.delenv("OMP_NUM_THREADS")
        assert main(["evaluate", str(ckpt), "--data", str(data), "--quiet"]) == 0
        assert torch.get_num_threads() == len(os.sched_getaffinity(0))
        assert main(["sample", str(ckpt), "--threads", "-1", "--out", "x.svg"]) == 1
    finally:
        torch.set_num_threads(before)


def test_version_and_a_closed_pipe():
    assert main.__module__ == "quickdraw_tools.cli"
    done = subprocess.run(
        [sys.executable, "-m", "quickdraw_tools.cli", "--version"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.stdout.strip() == f"quickdraw {__version__}"
    # the reader of the pipe leaves at once: no "Broken pipe" error, no traceback
    listing = subprocess.run(
        f"{sys.executable} -m quickdraw_tools.cli download --list | head -n 1",
        shell=True, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert listing.stdout == "aircraft carrier\n" and listing.stderr == ""
    closed = subprocess.Popen(
        [sys.executable, "-m", "quickdraw_tools.cli", "download", "--list"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    closed.stdout.close()  # closed before it writes a line
    _, err = closed.communicate(timeout=60)
    assert err == b"" and closed.returncode in (0, 141)


def test_train_and_evaluate_say_how_many_sketches_were_too_long(shared, tmp_path, capsys):
    import json

    from quickdraw_tools import formats

    sketches = snowmen(shared)
    splits = {"train": sketches[:40], "valid": sketches[40:50], "test": sketches[50:]}
    data = tmp_path / "snowman.npz"
    formats.save_sketchrnn_npz(data, splits)
    n_max = 40
    long = {k: sum(len(s) > n_max for s in v) for k, v in splits.items()}
    assert all(long.values()) and all(long[k] < len(v) for k, v in splits.items())
    run = tmp_path / "run"
    assert main(["train", "sketch-rnn", "--data", str(data), "--out", str(run), "--steps", "1",
                 "--max-seq-len", str(n_max), "--enc-size", "8", "--dec-size", "8", "--z-size",
                 "4", "--num-mixture", "2", "--batch-size", "5", "--quiet"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert (
        f"dropped sketches longer than N_max = {n_max} points: train {long['train']} of 40, "
        f"valid {long['valid']} of 10, test {long['test']} of 10"
    ) in out.splitlines()
    for split in ("test", "valid"):
        args = ["evaluate", str(run / "last.pt"), "--data", str(data), "--split", split]
        assert main([*args, "--quiet"]) == 0
        line = (
            f"run: dropped sketches longer than N_max = {n_max} points: {split} {long[split]} of 10"
        )
        assert line in capsys.readouterr().out.splitlines()
    assert main([*args, "--json", "--quiet"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["dropped"]["dropped"] == long["valid"] and report["dropped"]["of"] == 10
    assert report["overall"]["n"] == 10 - long["valid"]


def test_sample_writes_png_grids_for_sketch_rnn_too(shared, tmp_path):
    import math
    import re

    import numpy as np
    from conftest import train_checkpoint
    from PIL import Image

    data = tiny_npz(shared, tmp_path / "snowman.npz")
    ckpt = train_checkpoint(tmp_path / "run", "sketch-rnn", TINY_RNN, [data])
    args = ["sample", str(ckpt), "--n", "6", "--seed", "0"]
    assert main([*args, "--out", str(tmp_path / "s.png")]) == 0
    assert main([*args, "--out", str(tmp_path / "s.svg")]) == 0
    svg = (tmp_path / "s.svg").read_text()
    size = [float(re.search(f'{k}="([0-9.]+)', svg).group(1)) for k in ("width", "height")]
    with Image.open(tmp_path / "s.png") as im:
        assert im.format == "PNG" and im.size == tuple(map(math.ceil, size))  # the same grid
        assert np.asarray(im.convert("L")).min() < 128  # strokes drawn
    assert not list(tmp_path.glob(".*.tmp"))  # written atomically


def test_svg_draws_bitmaps_and_mnist_files_as_png_grids(shared, tmp_path, capsys):
    import numpy as np
    from PIL import Image

    from quickdraw_tools.commands.svg import GAP, PIXEL_SCALE
    from quickdraw_tools.mnist import write_mnist

    def cell(path, row, col, band=0):
        """The (28, 28) ink of one grid cell, read back from the PNG's pixels."""
        side = 28 * PIXEL_SCALE
        x, y = GAP + col * (side + GAP), GAP + row * (side + band + GAP)
        with Image.open(path) as im:
            pixels = np.asarray(im.convert("L"))[y : y + side, x : x + side]
        return 255 - pixels[::PIXEL_SCALE, ::PIXEL_SCALE]

    npy = shared / "mirror/full/numpy_bitmap/cat.npy"
    cats = np.load(npy)[:10].reshape(-1, 28, 28)
    out = tmp_path / "pictures"
    assert main(["svg", str(npy), "--grid", "4x2", "--limit", "10", "--out", str(out)]) == 0
    assert "wrote 2 PNG file(s) of bitmaps" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["cat_grid_000.png", "cat_grid_001.png"]
    with Image.open(out / "cat_grid_000.png") as im:
        assert im.size == (GAP + 4 * (112 + GAP), GAP + 2 * (112 + GAP))
    assert np.array_equal(cell(out / "cat_grid_000.png", 0, 0), cats[0])
    assert np.array_equal(cell(out / "cat_grid_000.png", 1, 3), cats[7])
    assert np.array_equal(cell(out / "cat_grid_001.png", 0, 1), cats[9])
    assert main(["svg", str(npy), "--limit", "2", "--out", str(tmp_path / "one")]) == 0
    assert sorted(p.name for p in (tmp_path / "one").iterdir()) == [
        "cat_00000.png",
        "cat_00001.png",
    ]

    # MNIST files (what convert writes): labels and categories.txt beside them name each image
    apples = np.load(shared / "mirror/full/numpy_bitmap/apple.npy")[:3].reshape(-1, 28, 28)
    images = np.concatenate([cats[:3], apples])
    labels = np.array([0, 0, 0, 1, 1, 1])
    write_mnist(
        tmp_path / "mnist", (images, labels), (images[::-1], labels[::-1]), ["cat", "apple"]
    )
    t10k = tmp_path / "mnist" / "t10k-images-idx3-ubyte"
    args = ["svg", str(t10k), "--grid", "3x2", "--caption", "word", "--out", str(tmp_path / "m")]
    assert main(args) == 0
    (page,) = (tmp_path / "m").iterdir()
    assert page.name == "t10k-images_grid_000.png"
    assert np.array_equal(cell(page, 0, 0, band=16), apples[2])
    assert np.array_equal(cell(page, 1, 2, band=16), cats[0])
    capsys.readouterr()
    for bad, message in [
        (["--color-by", "stroke"], "--color-by colours strokes"),
        (["--caption", "country"], "--caption country needs drawings"),
        (["--split", "test"], "--split applies to sketch-rnn .npz files"),
    ]:
        assert main(["svg", str(t10k), *bad, "--out", str(tmp_path / "bad")]) == 1
        assert message in capsys.readouterr().err
    labels_file = str(tmp_path / "mnist" / "t10k-labels-idx1-ubyte")
    assert main(["svg", labels_file, "--out", str(tmp_path / "bad")]) == 1
    assert "holds labels; draw its images file" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()  # refused before anything was written
