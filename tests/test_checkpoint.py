"""Checkpoints are read without running anything, checked key by key, and old ones still load."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import train_checkpoint

from quickdraw_tools.cli import main
from quickdraw_tools.errors import QuickDrawError
from quickdraw_tools.models.checkpoint import (
    CHECKPOINT_FORMAT,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
)

ROOT = Path(__file__).resolve().parents[1]
TINY_RNN = dict(max_seq_len=120, enc_size=8, dec_size=8, z_size=4, num_mixture=2)


class RunsCode:
    """Unpickles as a call of os.system: what a crafted checkpoint carries."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture(scope="module")
def sheep_checkpoint(shared, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("run")
    return train_checkpoint(run, "sketch-rnn", TINY_RNN, [shared / "other" / "aaron_sheep.npz"],
                            steps=2, max_per_category=300)  # fmt: skip


def crafted(tmp_path: Path, like: Path | None = None) -> tuple[Path, Path]:
    """A .pt file that would run `touch MARKER` if unpickled as a full pickle."""
    marker = tmp_path / "code-ran"
    state = read_checkpoint(like) if like else {"format_version": CHECKPOINT_FORMAT}
    state = {**state, "data_state": {"scale_factor": RunsCode(marker)}}
    path = tmp_path / "crafted.pt"
    torch.save(state, path)
    return path, marker


def test_a_crafted_checkpoint_is_refused_and_runs_nothing(tmp_path, sheep_checkpoint):
    path, marker = crafted(tmp_path, sheep_checkpoint)
    with pytest.raises(QuickDrawError, match=r"refusing to load .*crafted.pt: it asks to run"):
        read_checkpoint(path)
    assert not marker.exists()


@pytest.mark.parametrize(
    "command",
    [
        ["sample", "{ckpt}", "--out", "{tmp}/s.svg"],
        ["evaluate", "{ckpt}", "--data", "{sheep}"],
        ["grade", "serve", "--real", "{sheep}:test", "--generated", "{ckpt}", "--db", "{tmp}/g.db"],
    ],
)
def test_every_command_refuses_it_in_one_line(tmp_path, shared, sheep_checkpoint, command, capsys):
    path, marker = crafted(tmp_path, sheep_checkpoint)
    values = {"ckpt": path, "tmp": tmp_path, "sheep": shared / "other" / "aaron_sheep.npz"}
    assert main([c.format(**values) for c in command]) == 1
    err = capsys.readouterr().err
    assert "refusing to load" in err and len(err.strip().splitlines()) == 1, err
    assert not marker.exists()


def test_train_resume_refuses_it(tmp_path, shared, capsys):
    sheep = shared / "other" / "aaron_sheep.npz"
    run = tmp_path / "run"
    train_checkpoint(run, "sketch-rnn", TINY_RNN, [sheep], steps=1, max_per_category=300)
    path, marker = crafted(tmp_path, run / "last.pt")
    path.replace(run / "last.pt")
    args = ["train", "sketch-rnn", "--data", str(sheep), "--out", str(run), "--resume", "--quiet"]
    assert main([*args, "--steps", "3"]) == 1
    assert "refusing to load" in capsys.readouterr().err and not marker.exists()


def test_missing_or_wrong_keys_say_what_is_wrong(tmp_path, sheep_checkpoint):
    good = read_checkpoint(sheep_checkpoint)
    cases = {
        "no-config": ({k: v for k, v in good.items() if k != "model_config"}, "no 'model_config'"),
        "bad-step": ({**good, "step": "ten"}, "'step' is str"),
        "bad-weights": ({**good, "weights": {"w": 3}}, "'weights' are not all tensors"),
        "unknown-model": ({**good, "model": "gan"}, "unknown model 'gan'"),
        "a-list": ([1, 2], "not a checkpoint written by `quickdraw train`"),
        "future": ({**good, "format_version": 99}, "format 99; this version reads up to"),
    }
    for name, (state, message) in cases.items():
        path = tmp_path / f"{name}.pt"
        torch.save(state, path)
        with pytest.raises(QuickDrawError, match=message):
            load_checkpoint(path)
    shapes = {**good, "model_config": {**good["model_config"], "dec_size": 16}}
    torch.save(shapes, tmp_path / "shapes.pt")
    with pytest.raises(QuickDrawError, match="the weights do not fit its model config"):
        load_checkpoint(tmp_path / "shapes.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a zip, not a pickle")
    with pytest.raises(QuickDrawError, match="not a readable checkpoint"):
        read_checkpoint(tmp_path / "junk.pt")


def format_1(ckpt: dict) -> dict:
    """What the trainer wrote before format 2: numpy's own RNG state tuple, a numpy array in it."""
    old = []
    for state in ckpt["rng"]:
        n = state["numpy"]
        key = n["key"].numpy().astype(np.uint32)
        old.append({**state, "numpy": (n["kind"], key, n["pos"], n["has_gauss"], n["gauss"])})
    return {**ckpt, "rng": old, "format_version": 1}


def test_format_1_checkpoints_load_resume_and_upgrade(tmp_path, shared):
    sheep = shared / "other" / "aaron_sheep.npz"
    full, cut = tmp_path / "full", tmp_path / "cut"
    settings = dict(max_per_category=300, checkpoint_every=2, log_every=1)
    train_checkpoint(full, "sketch-rnn", TINY_RNN, [sheep], steps=4, **settings)
    train_checkpoint(cut, "sketch-rnn", TINY_RNN, [sheep], steps=2, **settings)
    old = format_1(read_checkpoint(cut / "last.pt"))
    save_checkpoint(cut / "last.pt", old)
    assert read_checkpoint(cut / "last.pt")["format_version"] == 1
    model, state, _ = load_checkpoint(cut / "last.pt")  # sampling and evaluation read it
    assert model.sample(1, generator=torch.Generator().manual_seed(0))
    # a resumed format-1 run continues exactly and writes format 2
    args = ["train", "sketch-rnn", "--data", str(sheep), "--out", str(cut), "--resume", "--quiet"]
    assert main([*args, "--steps", "4"]) == 0
    a, b = read_checkpoint(full / "last.pt"), read_checkpoint(cut / "last.pt")
    assert b["format_version"] == CHECKPOINT_FORMAT
    assert all(torch.equal(a["weights"][k], b["weights"][k]) for k in a["weights"])
    # the script rewrites an old file in place as format 2
    save_checkpoint(tmp_path / "old.pt", old)
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "upgrade_checkpoint.py"), str(tmp_path / "old.pt")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0 and "format 1 -> 2" in done.stdout, done.stderr
    upgraded = torch.load(tmp_path / "old.pt", weights_only=True)  # nothing but plain values
    assert upgraded["format_version"] == 2 and isinstance(upgraded["rng"][0]["numpy"], dict)
