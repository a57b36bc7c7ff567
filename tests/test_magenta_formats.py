"""Formats as Magenta defines them (issue 22, item 10), on real drawings: the stroke-5 start
token is dropped only where one was put; sampling scales sigma by sqrt(tau), as the paper and
Magenta's JS; the KL weight starts at w_KL * eta_min, as the paper."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from quickdraw_tools.cli import main
from quickdraw_tools.errors import QuickDrawError
from quickdraw_tools.formats import iter_ndjson
from quickdraw_tools.models.sketch_rnn import SketchRNNConfig, kl_weight
from quickdraw_tools.strokes import (
    START_TOKEN,
    drawing_to_stroke3,
    stroke3_to_stroke5,
    stroke5_to_stroke3,
)
from quickdraw_tools.svg import as_strokes

ROOT = Path(__file__).resolve().parents[1]


def test_a_first_point_at_the_origin_is_kept(shared):
    """bed.ndjson line 5 starts at (0, 0): its first stroke-5 row after the token looks like
    the token, and is a point all the same."""
    record = list(iter_ndjson(shared / "mirror" / "full" / "simplified" / "bed.ndjson"))[4]
    assert record["drawing"][0][0][0] == record["drawing"][0][1][0] == 0
    s3 = drawing_to_stroke3(record["drawing"])
    big = stroke3_to_stroke5(s3, 100)
    assert np.array_equal(big[0], START_TOKEN) and np.array_equal(big[1], START_TOKEN)
    np.testing.assert_array_equal(stroke5_to_stroke3(big), s3)  # one token, one point
    np.testing.assert_array_equal(stroke5_to_stroke3(big[1:], start_token=False), s3)
    # drawn from stroke-5, the SVG starts where the drawing does
    xs, ys, _ = as_strokes(big)[0]
    assert (xs[0], ys[0]) == (0, 0) and len(xs) == len(record["drawing"][0][0])
    with pytest.raises(QuickDrawError, match="not the start token .* start_token=False"):
        stroke5_to_stroke3(stroke3_to_stroke5(s3[1:], 100)[1:])  # rows without a token


def test_every_mirror_drawing_round_trips_through_stroke5(shared):
    """All 6,725 simplified drawings, with and without the start token; 44 start at (0, 0)
    (`scripts/check_stroke_formats.py` prints these figures)."""
    at_origin = total = 0
    for path in sorted((shared / "mirror" / "full" / "simplified").glob("*.ndjson")):
        for record in iter_ndjson(path):
            s3 = drawing_to_stroke3(record["drawing"])
            big = stroke3_to_stroke5(s3, len(s3) + 2)
            assert len(big) == len(s3) + 3  # max_len + 1 rows: the token, then max_len
            np.testing.assert_array_equal(stroke5_to_stroke3(big), s3)
            np.testing.assert_array_equal(stroke5_to_stroke3(big[1:], start_token=False), s3)
            at_origin += bool(np.array_equal(big[1], START_TOKEN))
            total += 1
    assert (total, at_origin) == (6725, 44)
    printed = subprocess.run(
        [sys.executable, "scripts/check_stroke_formats.py"], cwd=ROOT, capture_output=True,
        text=True, check=True,
    ).stdout  # fmt: skip
    assert "starting at the origin (first row (0, 0, 1, 0, 0)): 44" in printed
    assert "the old rule (drop a leading (0, 0, 1, 0, 0) row): 6,681/6,725" in printed


@pytest.fixture(scope="module")
def cat_npz(shared, tmp_path_factory):
    out = tmp_path_factory.mktemp("data")
    source = shared / "mirror" / "full" / "simplified" / "cat.ndjson"
    assert main(["convert", str(source), "--out", str(out), "--quiet"]) == 0
    return out / "sketchrnn" / "cat.npz"


def test_sampling_scales_sigma_by_the_square_root_of_tau(cat_npz, tmp_path):
    """A one-Gaussian unconditional model trained on real cats: its first offsets at tau are
    N(mu, (sigma sqrt(tau))^2), not magenta Python's (sigma tau^2)^2."""
    run = tmp_path / "run"
    argv = ["train", "sketch-rnn", "--data", str(cat_npz), "--out", str(run), "--steps", "3",
            "--no-conditional", "--num-mixture", "1", "--dec-size", "16", "--max-seq-len", "150",
            "--batch-size", "8", "--quiet"]  # fmt: skip
    assert main(argv) == 0
    from quickdraw_tools.models.trainer import load_checkpoint

    model, _, _ = load_checkpoint(run / "last.pt", "cpu")
    start = torch.tensor(START_TOKEN).repeat(1, 1)[:, None]
    with torch.no_grad():
        state = model.initial_state(None, 1, torch.device("cpu"))
        params, _ = model.decode(start, None, state)
    sigma_x = float(params.sigma_x[0, 0, 0])
    tau = 0.25
    generator = torch.Generator().manual_seed(0)
    first = model.sample(20_000, temperature=tau, generator=generator, max_len=1)
    dx = np.array([s[0, 0] for s in first if len(s)])  # the first offset of each sample
    assert len(dx) > 5_000
    assert np.std(dx) == pytest.approx(sigma_x * np.sqrt(tau), rel=0.05)
    assert abs(np.std(dx) - sigma_x * tau**2) > 0.5 * sigma_x * np.sqrt(tau)


def test_the_kl_weight_starts_at_w_times_eta_min(cat_npz, tmp_path):
    cfg = SketchRNNConfig()
    assert kl_weight(0, cfg) == pytest.approx(cfg.kl_weight * cfg.kl_weight_start) == 0.005
    assert kl_weight(None, cfg) == cfg.kl_weight and kl_weight(10**7, cfg) == pytest.approx(0.5)
    run = tmp_path / "run"
    argv = ["train", "sketch-rnn", "--data", str(cat_npz), "--out", str(run), "--steps", "2",
            "--enc-size", "8", "--dec-size", "8", "--z-size", "4", "--num-mixture", "2",
            "--max-seq-len", "150", "--log-every", "1", "--quiet"]  # fmt: skip
    assert main(argv) == 0
    with open(run / "metrics.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["split"] == "train"]
    assert float(rows[0]["kl_weight"]) == pytest.approx(0.5 * 0.01)  # step 0: w * eta_min
    assert float(rows[1]["kl_weight"]) == pytest.approx(0.5 * (1 - 0.99 * 0.99995))
