"""The README's two set-up commands are the ones that work: run what can be run here."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from quickdraw_tools import formats
from quickdraw_tools.cli import main

ROOT = Path(__file__).resolve().parents[1]


def _code_blocks():
    text = (ROOT / "README.md").read_text()
    return [b.strip() for b in re.findall(r"```sh\n(.*?)```", text, flags=re.S)]


def test_first_screen_has_setup_and_test_commands():
    setup, tests = _code_blocks()[:2]
    assert setup.startswith("bash scripts/setup.sh && .venv/bin/quickdraw convert ")
    ci = (ROOT / ".ci" / "run").read_text()
    assert "bash scripts/setup.sh" in ci
    assert tests in ci.splitlines(), "the README's test command must be the one .ci/run runs"


def test_main_job_runs(shared, tmp_path, monkeypatch):
    setup = _code_blocks()[0]
    argv = shlex.split(setup.split("&& .venv/bin/quickdraw ", 1)[1])
    out = argv.index("--out")
    argv[out + 1] = str(tmp_path / "data")
    monkeypatch.chdir(ROOT)  # the README's ../shared path is relative to the checkout
    assert main([*argv, "--quiet"]) == 0
    for category in ("cat", "apple"):
        npz = formats.load_sketchrnn_npz(tmp_path / "data" / "sketchrnn" / f"{category}.npz")
        assert sum(map(len, npz.values())) == 25
        assert formats.load_bitmaps(tmp_path / "data" / "bitmap" / f"{category}.npy").shape == (
            25,
            784,
        )
    assert (tmp_path / "data" / "mnist" / "train-images-idx3-ubyte").is_file()
