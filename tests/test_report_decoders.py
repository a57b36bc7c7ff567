"""scripts/report_decoders.py end to end on real cakes, with a budget of seconds per decoder."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from quickdraw_tools.models.trainer import read_checkpoint

ROOT = Path(__file__).resolve().parents[1]


def test_each_decoder_gets_the_same_time_and_a_table_row(shared, tmp_path):
    run = [sys.executable, str(ROOT / "scripts" / "report_decoders.py"), "--data", "cake"]
    run += ["--budget", "3", "--out", str(tmp_path), "--img", str(tmp_path / "img")]
    out = subprocess.run(run, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    rows = [line for line in out.stdout.splitlines() if line.startswith("| cake |")]
    assert [r.split(" | ")[1] for r in rows] == ["lstm 256", "layer_norm 256", "hyper 256"]
    assert "3 s of training per run" in out.stdout
    for decoder in ("lstm", "layer_norm", "hyper"):
        last = read_checkpoint(tmp_path / "runs" / f"cake-{decoder}" / "last.pt")
        assert last["train_config"]["time_limit"] == 3.0
        assert last["model_config"]["decoder"] == decoder
        assert last["model_config"]["recurrent_dropout"] == 0.1
        assert 1 <= last["step"] < 1_000_000  # ended by the budget, not by --steps
    grid = (tmp_path / "img" / "decoders-cake-samples.svg").read_text()
    assert grid.startswith("<?xml") or grid.startswith("<svg")
    assert "layer_norm 8" in grid and "hyper 1" in grid
    # a second call trains nothing and prints the same table
    again = subprocess.run(run, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert "training cake" not in again.stdout
    assert [line for line in again.stdout.splitlines() if line.startswith("| cake |")] == rows
